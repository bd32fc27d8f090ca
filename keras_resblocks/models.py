"""The generic ResNet model, its named variants and feature extraction."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import sys

import keras

from keras_resblocks._suggest import SEE_ALL, did_you_mean
from keras_resblocks.blocks import PACKAGE, PlainBlock, ResidualBlock
from keras_resblocks.architecture import (  # noqa: F401  (list_models, parameter_count: also here)
    POOLINGS,
    Architecture,
    block_plan,
    list_models,
    parameter_count,
    stem_plan,
)
from keras_resblocks.architecture import check_limits
from keras_resblocks.architecture import check_preprocessing as _check_preprocessing
from keras_resblocks.variants import ARCHITECTURES, CONSTRUCTOR_NAMES, DEFAULT_HEAD
from keras_resblocks.normalization import BatchNormalization

_ARCH_FIELDS = {f.name for f in dataclasses.fields(Architecture)}


def cifar_architecture(depth, block="residual", **fields):
    """The CIFAR ResNet of He et al. 2015 (section 4.2) of a given depth.

    ``depth`` must be ``6n + 2``: three stages of ``n`` blocks of widths
    16/32/64 with option A (``"zero_pad"``) shortcuts.

    Example:

    >>> from keras_resblocks import cifar_architecture
    >>> cifar_architecture(26).stage_depths
    (4, 4, 4)
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"A CIFAR ResNet has 6n+2 layers (20, 32, 44, 56, 110, ...). Received: depth={depth!r}"
        )
    n = (depth - 2) // 6
    base = dict(ARCHITECTURES["resnet20"], stage_depths=(n, n, n), block=block)
    if block == "plain":
        base["shortcut"] = "auto"
    base.update(fields)
    return Architecture(**base)


def _check_input_shape(input_shape, arch):
    if input_shape is None:
        return
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(
            "`input_shape` must be (height, width, channels). "
            f"Received: input_shape={input_shape!r}"
        )
    if shape[-1] is None:
        raise ValueError(
            f"`input_shape` must give the number of channels. Received: input_shape={input_shape!r}"
        )
    for n in shape:
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
            raise ValueError(
                f"`input_shape` entries must be positive integers or None. "
                f"Received: input_shape={input_shape!r}"
            )
    smallest = arch.min_input_size
    for n in shape[:2]:
        if n is not None and n < smallest:
            raise ValueError(
                f"The '{arch.stem}' stem and stage strides {list(arch.stage_strides)} "
                f"downsample by {smallest}, so inputs must be at least "
                f"{smallest}x{smallest}. Received: input_shape={input_shape!r}"
            )


def _stem(x, arch):
    plan = stem_plan(arch)
    for i, (units, kernel_size, strides, use_bias, norm) in enumerate(plan, start=1):
        # One conv keeps the names stem_conv / stem_bn; the deep stem's are numbered.
        suffix = str(i) if len(plan) > 1 else ""
        padding = "same"
        if strides > 1:
            # Symmetric padding, as PyTorch pads: "same" would pad a strided conv on
            # one side only.
            x = keras.layers.ZeroPadding2D(kernel_size // 2, name="stem_pad")(x)
            padding = "valid"
        x = keras.layers.Conv2D(
            units,
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=use_bias,
            name=f"stem_conv{suffix}",
            kernel_initializer="he_normal",
            kernel_regularizer=_l2(arch),
        )(x)
        if norm:
            x = BatchNormalization(
                momentum=arch.bn_momentum, epsilon=arch.bn_epsilon, name=f"stem_bn{suffix}"
            )(x)
            x = keras.layers.Activation("relu", name=f"stem_relu{suffix}")(x)
    if arch.stem == "imagenet":
        x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    return x


def _l2(arch):
    return keras.regularizers.L2(arch.kernel_l2) if arch.kernel_l2 else None


def block_specs(arch):
    """The keyword arguments of every block, stage by stage: ``[[kwargs, ...], ...]``.

    This is where an :class:`Architecture` becomes layers; it is public so that
    tools (ports, benchmarks) can see exactly which blocks a model holds. It is
    :func:`keras_resblocks.architecture.block_plan` with each block's ``kernel_regularizer``.
    """
    return [
        [dict(spec, kernel_regularizer=_l2(arch)) for spec in stage] for stage in block_plan(arch)
    ]


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResNet(keras.Model):
    """A ResNet built from :class:`ResidualBlock` or :class:`PlainBlock`.

    A functional ``keras.Model`` whose ``get_config()`` holds only
    hyper-parameters, so a saved config rebuilds it. Its architecture is an
    :class:`Architecture` (or the equivalent dict); the remaining arguments are
    the familiar ones of ``keras.applications``.

    Args:
        architecture: an :class:`Architecture` or a dict of its fields.
        include_top: end with global average pooling and a ``Dense`` classifier.
        num_classes: classes of the classifier (default 10 for the CIFAR stem,
            1000 for the ImageNet stem).
        pooling: with ``include_top=False``: ``None`` (4D feature map), ``"avg"``
            or ``"max"`` (global pooling to a vector).
        classifier_activation: activation of the classifier (``None`` for logits).
        input_shape: ``(height, width, channels)``; default 32x32x3 (CIFAR stem)
            or 224x224x3 (ImageNet stem). ``None`` entries allow any size.
        input_tensor: an optional Keras tensor to build the model on.
        preprocessing: ``None`` or ``{"scale": s, "mean": [...], "std": [...]}``:
            the model computes ``(x * s - mean) / std`` itself, so it can take raw
            0..255 pixels.

    The output of the stem and of every stage is available as
    ``model.pyramid_outputs`` (see :func:`feature_extractor`).

    Example:

    >>> from keras_resblocks import ResNet, Architecture
    >>> arch = Architecture(stage_depths=[1, 1], stage_widths=[8, 16], stage_strides=[1, 2])
    >>> model = ResNet(arch, num_classes=3, input_shape=(16, 16, 3))
    >>> model.output_shape
    (None, 3)
    >>> sorted(model.pyramid_outputs)
    ['stage1', 'stage2', 'stem']
    """

    def __init__(
        self,
        architecture,
        include_top=True,
        num_classes=None,
        pooling=None,
        classifier_activation="softmax",
        input_shape=None,
        input_tensor=None,
        preprocessing=None,
        name="resnet",
        **kwargs,
    ):
        arch = Architecture.coerce(architecture)
        defaults = DEFAULT_HEAD[arch.stem]
        if num_classes is None:
            num_classes = defaults["num_classes"]
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
            raise ValueError(
                f"`num_classes` must be a positive integer. Received: num_classes={num_classes!r}"
            )
        if pooling not in POOLINGS:
            raise ValueError(
                f"`pooling` must be one of {list(POOLINGS)}. Received: pooling={pooling!r}"
            )
        if input_tensor is not None and input_shape is None:
            input_shape = tuple(input_tensor.shape[1:])
        if input_shape is None:
            input_shape = defaults["input_shape"]
        input_shape = tuple(input_shape) if input_shape is not None else None
        _check_input_shape(input_shape, arch)
        preprocessing = _check_preprocessing(preprocessing, input_shape[-1])
        specs = block_specs(arch)  # validates shortcuts against the shapes

        if input_tensor is None:
            inputs = keras.Input(shape=input_shape, name="images")
        elif keras.backend.is_keras_tensor(input_tensor):
            inputs = input_tensor
        else:
            inputs = keras.Input(tensor=input_tensor, shape=input_shape, name="images")

        x = inputs
        if preprocessing is not None:
            scale, mean, std = preprocessing["scale"], preprocessing["mean"], preprocessing["std"]
            x = keras.layers.Rescaling(
                scale=[scale / s for s in std],
                offset=[-m / s for m, s in zip(mean, std)],
                name="preprocess",
            )(x)
        x = _stem(x, arch)
        pyramid = {"stem": x}
        block_cls = ResidualBlock if arch.block == "residual" else PlainBlock
        for i, stage in enumerate(specs, start=1):
            for j, kwargs in enumerate(stage, start=1):
                x = block_cls(name=f"stage{i}_block{j}", **kwargs)(x)
            pyramid[f"stage{i}"] = x
        if arch.preact:
            x = BatchNormalization(
                momentum=arch.bn_momentum, epsilon=arch.bn_epsilon, name="post_bn"
            )(x)
            x = keras.layers.Activation("relu", name="post_relu")(x)
        if include_top:
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
            # float32 head: softmax in bfloat16 would lose the small probabilities.
            x = keras.layers.Dense(
                num_classes,
                activation=classifier_activation,
                name="predictions",
                dtype="float32",
                kernel_regularizer=_l2(arch),
            )(x)
        elif pooling == "avg":
            x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        elif pooling == "max":
            x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)

        # Keras walks the graph recursively, a few frames per layer: a net of 1,024 blocks
        # (the limit of a checkpoint's config) needs more than Python's default 1,000.
        with _recursion_limit(1000 + 8 * arch.num_blocks):
            super().__init__(inputs=inputs, outputs=x, name=name, **kwargs)
        self.architecture = arch
        self.include_top = include_top
        self.num_classes = num_classes
        self.pooling = pooling
        self.classifier_activation = classifier_activation
        self.image_shape = input_shape
        self.preprocessing = preprocessing
        self.pyramid_outputs = pyramid

    def get_config(self):
        return {
            "architecture": self.architecture.to_dict(),
            "include_top": self.include_top,
            "num_classes": self.num_classes,
            "pooling": self.pooling,
            "classifier_activation": self.classifier_activation,
            "input_shape": list(self.image_shape),
            "preprocessing": self.preprocessing,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def feature_extractor(model, stages=None):
    """A model returning a dict of the stem's and every stage's output.

    For detection, segmentation or transfer learning. ``stages`` selects some of
    ``model.pyramid_outputs`` (``"stem"``, ``"stage1"``, ...).

    Example:

    >>> import numpy as np
    >>> from keras_resblocks import ResNet20, feature_extractor
    >>> features = feature_extractor(ResNet20(include_top=False))
    >>> sorted((k, tuple(v.shape)) for k, v in features(np.zeros((1, 32, 32, 3))).items())
    [('stage1', (1, 32, 32, 16)), ('stage2', (1, 16, 16, 32)), ('stage3', (1, 8, 8, 64)), ('stem', (1, 32, 32, 16))]
    """
    outputs = model.pyramid_outputs
    if stages is not None:
        missing = [s for s in stages if s not in outputs]
        if missing:
            raise ValueError(
                f"Unknown stage(s) {missing}; this model has {list(outputs)}. "
                f"Received: stages={list(stages)}"
            )
        outputs = {s: outputs[s] for s in stages}
    return keras.Model(model.input, outputs, name=f"{model.name}_features")


# What create_model passes to ResNet: its own arguments and the Keras model's.
_MODEL_ARGUMENTS = (
    set(inspect.signature(ResNet.__init__).parameters) - {"self", "architecture", "kwargs"}
) | {"trainable", "dtype"}


@contextlib.contextmanager
def _recursion_limit(limit):
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def check_overrides(name, **overrides):
    """The :class:`Architecture` and :class:`ResNet` arguments that ``create_model(name,
    **overrides)`` would build, checked without building anything: a known name, no
    unknown argument, every bound of :data:`~keras_resblocks.architecture.LIMITS`.

    Example:

    >>> from keras_resblocks.models import check_overrides
    >>> check_overrides("resnet20", shortcut="projection", num_classes=5)[1]
    {'num_classes': 5}
    """
    if name not in ARCHITECTURES:
        raise ValueError(
            f"Unknown model name {name!r}.{did_you_mean(name, ARCHITECTURES)} The architectures "
            f"are {list_models()}; {SEE_ALL[0].lower()}{SEE_ALL[1:]} Received: name={name!r}"
        )
    arch_fields = {k: v for k, v in overrides.items() if k in _ARCH_FIELDS}
    model_kwargs = {k: v for k, v in overrides.items() if k not in _ARCH_FIELDS}
    unknown = sorted(set(model_kwargs) - _MODEL_ARGUMENTS)
    if unknown:
        raise ValueError(
            f"Unknown argument(s) {unknown}: neither an Architecture field "
            f"{sorted(_ARCH_FIELDS)} nor a ResNet argument {sorted(_MODEL_ARGUMENTS)}. "
            f"Received: {', '.join(f'{k}={model_kwargs[k]!r}' for k in unknown)}"
        )
    arch = Architecture.named(name, **arch_fields)
    defaults = DEFAULT_HEAD[arch.stem]
    check_limits(
        arch,
        num_classes=model_kwargs.get("num_classes") or defaults["num_classes"],
        input_shape=tuple(model_kwargs.get("input_shape") or defaults["input_shape"]),
        include_top=model_kwargs.get("include_top", True),
        source="the arguments",
    )
    return arch, model_kwargs


def create_model(name, **overrides):
    """Build a named architecture; ``overrides`` may change any architecture
    field (``shortcut="projection"``) or model argument (``num_classes=100``).

    Example:

    >>> from keras_resblocks import create_model
    >>> model = create_model("resnet20", num_classes=100)
    >>> model.output_shape, model.count_params()
    ((None, 100), 276948)
    """
    arch, model_kwargs = check_overrides(name, **overrides)
    model_kwargs.setdefault("name", name)
    return ResNet(arch, **model_kwargs)


def _named_constructor(name):
    def constructor(**kwargs):
        return create_model(name, **kwargs)

    cls_name = CONSTRUCTOR_NAMES[name]
    constructor.__name__ = constructor.__qualname__ = cls_name
    constructor.__doc__ = (
        f"The ``{name}`` architecture: ``create_model({name!r}, **kwargs)``.\n\n"
        "Takes the arguments of :class:`ResNet` and any :class:`Architecture` field.\n"
    )
    return constructor


ResNet20 = _named_constructor("resnet20")
ResNet32 = _named_constructor("resnet32")
ResNet44 = _named_constructor("resnet44")
ResNet56 = _named_constructor("resnet56")
ResNet110 = _named_constructor("resnet110")
ResNet1202 = _named_constructor("resnet1202")
Plain20 = _named_constructor("plain20")
Plain32 = _named_constructor("plain32")
Plain44 = _named_constructor("plain44")
Plain56 = _named_constructor("plain56")
Plain110 = _named_constructor("plain110")
ResNet18 = _named_constructor("resnet18")
ResNet34 = _named_constructor("resnet34")
Plain18 = _named_constructor("plain18")
Plain34 = _named_constructor("plain34")
ResNet50 = _named_constructor("resnet50")
ResNet101 = _named_constructor("resnet101")
ResNet152 = _named_constructor("resnet152")
ResNet50V2 = _named_constructor("resnet50v2")
ResNet101V2 = _named_constructor("resnet101v2")
ResNet152V2 = _named_constructor("resnet152v2")
ResNet26 = _named_constructor("resnet26")
ResNet18D = _named_constructor("resnet18d")
ResNet34D = _named_constructor("resnet34d")
ResNet26D = _named_constructor("resnet26d")
ResNet50D = _named_constructor("resnet50d")
ResNet101D = _named_constructor("resnet101d")
ResNet152D = _named_constructor("resnet152d")
