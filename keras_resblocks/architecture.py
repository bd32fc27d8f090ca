"""One small, validated, JSON-able description of a ResNet architecture."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Optional, Tuple

from keras_resblocks.variants import ARCHITECTURES, DEFAULT_HEAD

SHORTCUTS = ("auto", "projection", "zero_pad", "identity")
POOLINGS = (None, "avg", "max")
BLOCKS = ("residual", "plain")
STEMS = ("cifar", "imagenet")
DOWNSAMPLE = ("first", "last")
# Fields added after checkpoints existed; written only when true (see Architecture).
OMITTED_WHILE_FALSE = ("deep_stem", "avg_down")


def _fail(field, value, expected):
    raise ValueError(f"`{field}` must be {expected}. Received: {field}={value!r}")


def _int_tuple(field, value, minimum=1):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        _fail(field, value, f"a list of integers >= {minimum}")
    items = tuple(value)
    if not items:
        _fail(field, value, "a non-empty list")
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            _fail(field, value, f"a list of integers >= {minimum}")
    return items


@dataclasses.dataclass(frozen=True)
class Architecture:
    """The hyper-parameters of a ResNet body, validated on construction.

    Every field is plain JSON, so ``Architecture.from_dict(json.loads(text))``
    is the only way a configuration read from disk or the network becomes a
    model: no Keras deserialization is involved.

    Fields:
        stage_depths: blocks per stage, e.g. ``(3, 3, 3)`` for ResNet-20.
        stage_widths: filters of each stage's blocks (before bottleneck expansion).
        stage_strides: stride of each stage (applied in one block of the stage).
        block: ``"residual"`` or ``"plain"``.
        bottleneck: 1x1 -> 3x3 -> 1x1 blocks with ``expansion`` times the width.
        preact: pre-activation blocks (He et al. 2016); adds a final BN + ReLU.
        shortcut: ``"auto"``, ``"projection"``, ``"zero_pad"`` or ``"identity"``
            (see :class:`keras_resblocks.ResidualBlock`).
        stem: ``"cifar"`` (one 3x3 conv) or ``"imagenet"`` (7x7/2 conv + 3x3/2 max-pool).
        stem_width: filters of the stem conv.
        downsample: ``"first"`` (the stride sits in a stage's first block, as in the
            paper) or ``"last"`` (in its last block, as keras.applications' ResNetV2;
            there the strided block keeps its width and its shortcut is a
            parameter-free subsample).
        stride_in_1x1: put a bottleneck's stride on its first 1x1 conv
            (keras.applications' ResNet v1) instead of the 3x3 conv.
        use_bias: biases on convs that a BatchNorm follows (keras.applications v1).
        bn_momentum, bn_epsilon: BatchNorm settings.
        zero_init_last: start each residual block's last BN gamma at zero.
        kernel_l2: L2 penalty on every conv and dense kernel (0 for none; the
            paper's weight decay of 1e-4 is ``kernel_l2=5e-5``).
        deep_stem: with the ``"imagenet"`` stem, three 3x3 convs (the first of stride 2;
            widths ``stem_width // 2``, ``stem_width // 2``, ``stem_width``), each followed
            by BN + ReLU, instead of the 7x7 conv (ResNet-C/D of Bag of Tricks, timm's
            ``stem_type="deep"``).
        avg_down: a projection shortcut of a strided block average-pools (2x2, the
            block's stride, windows that overhang the border averaged over the pixels
            they cover) and then applies a stride-1 1x1 conv + BN, instead of a strided
            1x1 conv that skips three pixels in four (ResNet-D, timm's ``avg_down=True``).

    ``deep_stem`` and ``avg_down`` came after the first checkpoints were written:
    :meth:`to_dict` leaves them out while they are false, so the configs of every
    architecture without them stay byte for byte what they were.
    """

    stage_depths: Tuple[int, ...]
    stage_widths: Tuple[int, ...]
    stage_strides: Tuple[int, ...]
    block: str = "residual"
    bottleneck: bool = False
    expansion: int = 4
    preact: bool = False
    shortcut: str = "auto"
    stem: str = "cifar"
    stem_width: int = 16
    downsample: str = "first"
    stride_in_1x1: bool = False
    use_bias: bool = False
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    zero_init_last: bool = False
    kernel_l2: float = 0.0
    deep_stem: bool = False
    avg_down: bool = False

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("stage_depths", _int_tuple("stage_depths", self.stage_depths))
        set_("stage_widths", _int_tuple("stage_widths", self.stage_widths))
        set_("stage_strides", _int_tuple("stage_strides", self.stage_strides))
        n = len(self.stage_depths)
        for field in ("stage_widths", "stage_strides"):
            if len(getattr(self, field)) != n:
                raise ValueError(
                    f"`{field}` must have one entry per stage ({n}, like "
                    f"stage_depths={list(self.stage_depths)}). Received: "
                    f"{field}={list(getattr(self, field))}"
                )
        for field, choices in (
            ("block", BLOCKS),
            ("shortcut", SHORTCUTS),
            ("stem", STEMS),
            ("downsample", DOWNSAMPLE),
        ):
            if getattr(self, field) not in choices:
                _fail(field, getattr(self, field), f"one of {list(choices)}")
        for field in (
            "bottleneck",
            "preact",
            "stride_in_1x1",
            "use_bias",
            "zero_init_last",
            "deep_stem",
            "avg_down",
        ):
            if not isinstance(getattr(self, field), bool):
                _fail(field, getattr(self, field), "true or false")
        for field in ("expansion", "stem_width"):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                _fail(field, v, "a positive integer")
        for field in ("bn_momentum", "bn_epsilon", "kernel_l2"):
            v = getattr(self, field)
            # A number, not a string or a boolean that float() would quietly accept.
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                _fail(field, v, "a finite number")
        if not 0.0 <= self.bn_momentum < 1.0:
            _fail("bn_momentum", self.bn_momentum, "in [0, 1)")
        if not self.bn_epsilon > 0:
            _fail("bn_epsilon", self.bn_epsilon, "positive")
        if not self.kernel_l2 >= 0:
            _fail("kernel_l2", self.kernel_l2, "zero or positive")
        if self.block == "plain" and self.zero_init_last:
            _fail("zero_init_last", True, "false for plain blocks (it would zero their output)")
        if self.block == "plain" and self.shortcut != "auto":
            _fail("shortcut", self.shortcut, "'auto' for plain blocks, which have none")
        if self.block == "plain" and self.avg_down:
            _fail("avg_down", True, "false for plain blocks, which have no shortcut")
        if self.deep_stem and self.stem != "imagenet":
            _fail("deep_stem", True, "false unless stem='imagenet' (it replaces the 7x7 conv)")
        if self.deep_stem and self.stem_width % 2:
            _fail("stem_width", self.stem_width, "even with deep_stem (its first convs have half)")

    # -- derived -------------------------------------------------------------------
    @property
    def num_blocks(self):
        return sum(self.stage_depths)

    @property
    def depth(self):
        """Weighted layers: convs on the main path plus the classifier."""
        per_block = 3 if self.bottleneck else 2
        return (3 if self.deep_stem else 1) + per_block * self.num_blocks + 1

    @property
    def min_input_size(self):
        """The smallest spatial input every stride can still divide."""
        return math.prod(self.stage_strides) * (4 if self.stem == "imagenet" else 1)

    # -- (de)serialization -----------------------------------------------------------
    def to_dict(self):
        d = dataclasses.asdict(self)
        for key in ("stage_depths", "stage_widths", "stage_strides"):
            d[key] = list(d[key])
        for key in OMITTED_WHILE_FALSE:
            if not d[key]:
                del d[key]
        return d

    def to_json(self, **kwargs):
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Architecture":
        if not isinstance(data, dict):
            raise ValueError(
                f"An architecture must be a JSON object. Received: {type(data).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"Unknown architecture field(s) {unknown}; expected some of "
                f"{sorted(known)}. Received: {data!r}"
            )
        return cls(**data)

    @classmethod
    def named(cls, name, **changes):
        """The architecture of a built-in name (:func:`list_models`), with ``changes``.

        Example:

        >>> from keras_resblocks import Architecture
        >>> Architecture.named("resnet56").stage_depths, Architecture.named("plain20").block
        ((9, 9, 9), 'plain')
        """
        if name not in ARCHITECTURES:
            from keras_resblocks._suggest import did_you_mean

            raise ValueError(
                f"Unknown architecture {name!r}.{did_you_mean(name, ARCHITECTURES)} "
                f"The architectures are {list_models()}. Received: name={name!r}"
            )
        return cls(**dict(ARCHITECTURES[name], **changes))

    @classmethod
    def coerce(cls, value: Optional["Architecture | dict"]) -> "Architecture":
        if isinstance(value, cls):
            return value
        return cls.from_dict(value)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# -- what an architecture holds, computed without Keras ---------------------------------
PREPROCESSING_RANGE = (1e-6, 1e3)


def check_preprocessing(preprocessing, channels):
    """``preprocessing`` (``None`` or ``{"scale", "mean", "std"}``) checked and filled in for
    ``channels`` input channels: finite numbers, one mean and one positive std per channel.

    Example:

    >>> from keras_resblocks.architecture import check_preprocessing
    >>> check_preprocessing({"scale": 0.5}, 2)
    {'scale': 0.5, 'mean': [0.0, 0.0], 'std': [1.0, 1.0]}
    """
    if preprocessing is None:
        return None
    if not isinstance(preprocessing, dict):
        raise ValueError(
            "`preprocessing` must be None or a dict with 'scale', 'mean' and 'std'. "
            f"Received: preprocessing={preprocessing!r}"
        )
    unknown = set(preprocessing) - {"scale", "mean", "std"}
    if unknown:
        raise ValueError(
            f"Unknown preprocessing key(s) {sorted(unknown)}; expected 'scale', "
            f"'mean', 'std'. Received: preprocessing={preprocessing!r}"
        )

    def number(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise TypeError(v)
        return float(v)

    try:
        scale = number(preprocessing.get("scale", 1.0))
        mean = [number(v) for v in preprocessing.get("mean", [0.0] * channels)]
        std = [number(v) for v in preprocessing.get("std", [1.0] * channels)]
    except TypeError:
        mean = std = []
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise ValueError(
            f"`preprocessing` needs a finite number `scale` and lists of one finite mean and "
            f"one positive std per channel ({channels}). Received: preprocessing={preprocessing!r}"
        )
    # Bounds that keep (pixels * scale - mean) / std of 0..255 pixels far inside float32.
    low, high = PREPROCESSING_RANGE
    if not (low <= abs(scale) <= high and all(abs(m) <= high for m in mean)) or not all(
        low <= s <= high for s in std
    ):
        raise ValueError(
            f"`preprocessing` out of range: |scale| and std between {low:g} and {high:g}, "
            f"|mean| at most {high:g}. Received: preprocessing={preprocessing!r}"
        )
    return {"scale": scale, "mean": mean, "std": std}


def list_models():
    """Names of the built-in architectures, for :func:`create_model`.

    Example:

    >>> from keras_resblocks import list_models
    >>> "resnet56" in list_models() and "plain56" in list_models()
    True
    """
    return sorted(ARCHITECTURES, key=lambda n: (n.rstrip("0123456789v"), len(n), n))


KERNEL_SIZE = 3  # the spatial convolutions of every named architecture


def stem_plan(arch):
    """The stem's convolutions, in order: ``[(units, kernel_size, strides, use_bias, norm)]``.

    ``norm``: a BatchNorm + ReLU follows (every conv but a pre-activation net's last);
    ``use_bias``: a bias where ``arch.use_bias`` asks for one or no BatchNorm follows. The
    ``"imagenet"`` stem then max-pools (3x3, stride 2). The builder makes its layers from
    it and :func:`parameter_count` and :func:`multiply_accumulates` count them from it.

    Example:

    >>> from keras_resblocks import Architecture
    >>> from keras_resblocks.architecture import stem_plan
    >>> stem_plan(Architecture.named("resnet18"))
    [(64, 7, 2, False, True)]
    >>> [step[:3] for step in stem_plan(Architecture.named("resnet50d"))]
    [(32, 3, 2), (32, 3, 1), (64, 3, 1)]
    """
    width = arch.stem_width
    if arch.deep_stem:
        convs = [(width // 2, 3, 2), (width // 2, 3, 1), (width, 3, 1)]
    elif arch.stem == "imagenet":
        convs = [(width, 7, 2)]
    else:
        convs = [(width, 3, 1)]
    plan = []
    for i, (units, kernel_size, strides) in enumerate(convs, start=1):
        norm = not (arch.preact and i == len(convs))  # a pre-activation stem ends in a conv
        plan.append((units, kernel_size, strides, bool(arch.use_bias or not norm), norm))
    return plan


def branch_plan(
    filters, kernel_size=KERNEL_SIZE, strides=1, bottleneck=False, expansion=4, stride_in_1x1=False
):
    """The linear steps of a convolutional block's branch: ``[(units, kernel_size, strides)]``.

    :class:`keras_resblocks.ResidualBlock` and :class:`keras_resblocks.PlainBlock` build
    their convolutions from it, and :func:`parameter_count` counts them from it.

    Example:

    >>> from keras_resblocks.architecture import branch_plan
    >>> branch_plan(16, strides=2)
    [(16, 3, 2), (16, 3, 1)]
    >>> branch_plan(64, strides=2, bottleneck=True, stride_in_1x1=True)
    [(64, 1, 2), (64, 3, 1), (256, 1, 1)]
    """
    f, k, s = filters, kernel_size, strides
    if not bottleneck:
        return [(f, k, s), (f, k, 1)]
    if stride_in_1x1:  # Caffe / keras.applications ResNet v1
        return [(f, 1, s), (f, k, 1), (f * expansion, 1, 1)]
    return [(f, 1, 1), (f, k, s), (f * expansion, 1, 1)]


def branch_steps(plan, *, preact, normalization, use_bias, residual, zero_init_last):
    """Each linear step of a branch with its bias, its normalization and what starts at zero.

    One dict per ``(units, kernel_size, strides)`` of ``plan``: those three, ``use_bias``
    (a bias right before a normalization is redundant; a step that no normalization
    follows, a pre-activation block's last, keeps one), ``norm`` (a normalization
    follows), ``zero_kernel`` and ``zero_gamma`` (``zero_init_last``: the last step's
    normalization gamma, or its kernel where no normalization follows).

    Example:

    >>> from keras_resblocks.architecture import branch_steps
    >>> steps = branch_steps([(16, 3, 1), (16, 3, 1)], preact=True, normalization="batch",
    ...                      use_bias=False, residual=True, zero_init_last=True)
    >>> [(s["use_bias"], s["norm"], s["zero_kernel"]) for s in steps]
    [(False, True, False), (True, False, True)]
    """
    steps = []
    for i, (units, kernel_size, strides) in enumerate(plan, start=1):
        last = i == len(plan)
        norm = normalization is not None and not (preact and last)
        zero = bool(zero_init_last and residual and last)
        steps.append(
            dict(
                units=units,
                kernel_size=kernel_size,
                strides=strides,
                use_bias=bool(use_bias or not norm),
                norm=norm,
                zero_kernel=zero and not norm,
                zero_gamma=zero and norm,
            )
        )
    return steps


def spec_plan(spec):
    """:func:`branch_plan` of one block of :func:`block_plan` (a dict of a block's arguments).

    Example:

    >>> from keras_resblocks.architecture import Architecture, block_plan, spec_plan
    >>> spec_plan(block_plan(Architecture.named("resnet50"))[1][0])
    [(128, 1, 2), (128, 3, 1), (512, 1, 1)]
    """
    return branch_plan(
        spec["filters"],
        spec["kernel_size"],
        spec["strides"],
        spec["bottleneck"],
        spec["expansion"],
        spec["stride_in_1x1"],
    )


def plan_stride(plan):
    """The stride of a whole branch: the product of its steps' strides.

    >>> from keras_resblocks.architecture import plan_stride
    >>> plan_stride([(64, 1, 2), (64, 3, 1), (256, 1, 1)])
    2
    """
    return math.prod(strides for _, _, strides in plan)


def resolve_shortcut(shortcut, in_channels, out_channels, strides):
    """The shortcut a residual block takes for its shapes: identity, projection or zero_pad.

    ``"auto"`` is the identity when the shapes match, else a projection.

    Example:

    >>> from keras_resblocks.architecture import resolve_shortcut
    >>> resolve_shortcut("auto", 16, 16, 1), resolve_shortcut("auto", 16, 32, 2)
    ('identity', 'projection')
    >>> resolve_shortcut("zero_pad", 16, 32, 2)
    'zero_pad'
    """
    same_shape = in_channels == out_channels and strides == 1
    if shortcut == "identity":
        if not same_shape:
            raise ValueError(
                "`shortcut='identity'` needs the block's input and output shapes "
                "to match; use 'auto', 'projection' or 'zero_pad'. Received: "
                f"input channels={in_channels}, output channels={out_channels}, "
                f"strides={strides}"
            )
        return "identity"
    if shortcut == "projection":
        return "projection"
    if same_shape:
        return "identity"
    if shortcut == "zero_pad":
        if out_channels < in_channels:
            raise ValueError(
                "`shortcut='zero_pad'` can only add channels, not remove them. "
                f"Received: input channels={in_channels}, output channels="
                f"{out_channels}"
            )
        return "zero_pad"
    return "projection"


def projection_step(*, preact, normalization, use_bias):
    """A projection shortcut's 1x1 step: ``{"use_bias", "norm"}`` (no normalization in a
    pre-activation block, whose branch input is already normalized).

    >>> from keras_resblocks.architecture import projection_step
    >>> projection_step(preact=False, normalization="batch", use_bias=False)
    {'use_bias': False, 'norm': True}
    """
    return {
        "use_bias": bool(use_bias or preact or normalization is None),
        "norm": not preact and normalization is not None,
    }


def block_plan(arch):
    """The blocks of an architecture, stage by stage: ``[[kwargs, ...], ...]``, without Keras.

    The keyword arguments of each block but its ``kernel_regularizer`` (a Keras
    object, which :func:`keras_resblocks.block_specs` adds); :func:`parameter_count`
    counts from it, so listing sizes needs no deep-learning backend.

    Example:

    >>> from keras_resblocks.architecture import Architecture, block_plan
    >>> arch = Architecture(stage_depths=[1, 2], stage_widths=[4, 8], stage_strides=[1, 2])
    >>> [[spec["strides"] for spec in stage] for stage in block_plan(arch)]
    [[1], [2, 1]]
    """
    stages = []
    channels = arch.stem_width
    for depth, width, stride in zip(arch.stage_depths, arch.stage_widths, arch.stage_strides):
        out_channels = width * arch.expansion if arch.bottleneck else width
        blocks = []
        for j in range(depth):
            strided = j == (0 if arch.downsample == "first" else depth - 1)
            strides = stride if strided else 1
            kwargs = dict(
                filters=width,
                kernel_size=KERNEL_SIZE,
                strides=strides,
                bottleneck=arch.bottleneck,
                expansion=arch.expansion,
                stride_in_1x1=arch.stride_in_1x1,
                preact=arch.preact,
                use_bias=arch.use_bias,
                norm_momentum=arch.bn_momentum,
                norm_epsilon=arch.bn_epsilon,
            )
            if arch.block == "residual":
                shortcut = arch.shortcut
                if shortcut == "auto" and strides > 1 and channels == out_channels:
                    # keras.applications' V2 layout: a strided block that keeps
                    # its width has a parameter-free (subsampling) shortcut.
                    shortcut = "zero_pad"
                plan = branch_plan(
                    width, KERNEL_SIZE, strides, arch.bottleneck, arch.expansion, arch.stride_in_1x1
                )
                try:
                    resolve_shortcut(shortcut, channels, out_channels, plan_stride(plan))
                except ValueError as error:
                    raise ValueError(f"Stage {len(stages) + 1} block {j + 1}: {error}") from None
                kwargs.update(shortcut=shortcut, zero_init_last=arch.zero_init_last)
                # Only when set, so that older architectures' specs stay as they were.
                if arch.avg_down:
                    kwargs.update(avg_down=True)
            blocks.append(kwargs)
            channels = out_channels
        stages.append(blocks)
    return stages


def parameter_count(architecture, num_classes=None, include_top=True, channels=3):
    """Weights of the model an architecture builds (as ``count_params()``), without building it.

    Counts every variable, BatchNorm's moving statistics included, from the same
    :func:`block_plan` the builder uses (no Keras needed); the tests hold it equal to
    ``count_params()`` of every named model.

    Example:

    >>> from keras_resblocks import create_model, parameter_count
    >>> arch = create_model("resnet20").architecture
    >>> parameter_count(arch) == create_model("resnet20").count_params() == 271098
    True
    """
    arch = Architecture.coerce(architecture)
    bn = 4  # gamma, beta, moving mean, moving variance

    def conv(k, cin, cout, bias):
        return k * k * cin * cout + (cout if bias else 0)

    total, cin = 0, channels
    for units, kernel_size, _, use_bias, norm in stem_plan(arch):
        total += conv(kernel_size, cin, units, use_bias) + (bn * units if norm else 0)
        cin = units
    for stage in block_plan(arch):
        for spec in stage:
            plan = spec_plan(spec)
            residual = "shortcut" in spec
            if arch.preact:
                total += bn * cin
            c = cin
            for step in branch_steps(
                plan,
                preact=arch.preact,
                normalization="batch",
                use_bias=arch.use_bias,
                residual=residual,
                zero_init_last=arch.zero_init_last,
            ):
                total += conv(step["kernel_size"], c, step["units"], step["use_bias"])
                total += bn * step["units"] if step["norm"] else 0
                c = step["units"]
            if (
                residual
                and resolve_shortcut(spec["shortcut"], cin, c, plan_stride(plan)) == "projection"
            ):
                step = projection_step(
                    preact=arch.preact, normalization="batch", use_bias=arch.use_bias
                )
                total += conv(1, cin, c, step["use_bias"]) + (bn * c if step["norm"] else 0)
            cin = c
    if arch.preact:
        total += bn * cin
    if include_top:
        if num_classes is None:
            num_classes = DEFAULT_HEAD[arch.stem]["num_classes"]
        total += cin * num_classes + num_classes
    return total


# What a model may ask for, from a checkpoint's config, --model-overrides or Python arguments. Generous: every published ResNet fits with room to
# spare (ResNet-1202: 600 blocks, 19.4M parameters; ResNet-152: widths up to 512 x 4; the
# largest class count in common use is ImageNet-21k's 21,841). A config beyond them is refused
# before anything is built or allocated.
LIMITS = {
    "stages": 16,
    "blocks": 1024,  # all stages together
    "width": 8192,  # stage widths and the stem's
    "expansion": 16,
    "stride": 8,
    "num_classes": 100_000,
    "input_size": 4096,  # height and width
    "channels": 16,
    "parameters": 1_000_000_000,  # counted from the config, without building the model
    "label_chars": 256,  # one label's length: 100,000 of them fit config.json's 32 MiB
}


def check_limits(
    arch, num_classes, input_shape, include_top=True, source="the arguments", error=ValueError
):
    """Raise ``error`` naming the first field beyond :data:`LIMITS`: the same bounds for a
    checkpoint's ``config.json`` (``source``), ``--model-overrides`` and Python arguments.

    Example:

    >>> from keras_resblocks.architecture import Architecture, check_limits
    >>> arch = Architecture.named("resnet20", stage_depths=[100000, 3, 3])
    >>> check_limits(arch, 10, (32, 32, 3))
    Traceback (most recent call last):
    ...
    ValueError: `stage_depths` in the arguments asks for 100,006 blocks, beyond the limit of 1,024 that every real ResNet fits. Received: stage_depths=[100000, 3, 3]
    """
    in_config = source.endswith(".json")

    def refuse(field, value, limit, what):
        name = field if in_config else field.rsplit(".", 1)[-1]
        raise error(
            f"`{name}` in {source} asks for {what}, beyond the limit of {limit:,} that "
            f"every real ResNet fits. Received: {field.rsplit('.', 1)[-1]}={value!r}"
        )

    if len(arch.stage_depths) > LIMITS["stages"]:
        refuse(
            "architecture.stage_depths",
            list(arch.stage_depths),
            LIMITS["stages"],
            f"{len(arch.stage_depths):,} stages",
        )
    if arch.num_blocks > LIMITS["blocks"]:
        refuse(
            "architecture.stage_depths",
            list(arch.stage_depths),
            LIMITS["blocks"],
            f"{arch.num_blocks:,} blocks",
        )
    for field, values in (("stage_widths", arch.stage_widths), ("stem_width", [arch.stem_width])):
        if max(values) > LIMITS["width"]:
            refuse(
                f"architecture.{field}",
                list(values) if field == "stage_widths" else values[0],
                LIMITS["width"],
                f"a width of {max(values):,}",
            )
    if arch.expansion > LIMITS["expansion"]:
        refuse(
            "architecture.expansion",
            arch.expansion,
            LIMITS["expansion"],
            f"an expansion of {arch.expansion:,}",
        )
    if max(arch.stage_strides) > LIMITS["stride"]:
        refuse(
            "architecture.stage_strides",
            list(arch.stage_strides),
            LIMITS["stride"],
            f"a stride of {max(arch.stage_strides):,}",
        )
    if num_classes > LIMITS["num_classes"]:
        refuse(
            "model.num_classes",
            num_classes,
            LIMITS["num_classes"],
            f"{num_classes:,} classes",
        )
    # A shape of another length is the model builder's to refuse, with its own message.
    height, width, channels = tuple(input_shape) if len(input_shape) == 3 else (0, 0, 3)
    if max(n or 0 for n in (height, width)) > LIMITS["input_size"]:
        refuse(
            "model.input_shape",
            list(input_shape),
            LIMITS["input_size"],
            f"images of {height}x{width}",
        )
    if (channels or 0) > LIMITS["channels"]:
        refuse(
            "model.input_shape",
            list(input_shape),
            LIMITS["channels"],
            f"{channels:,} channels",
        )
    count = parameter_count(
        arch, num_classes=num_classes, include_top=include_top, channels=channels or 3
    )
    if count > LIMITS["parameters"]:
        refuse("architecture", arch.to_dict(), LIMITS["parameters"], f"{count:,} parameters")


def multiply_accumulates(architecture, input_shape=None, num_classes=None, include_top=True):
    """Multiply-accumulates of one image's forward pass, without building the model.

    Counts the convolutions and the classifier (BatchNorm, activations, additions and
    pooling are a few percent of a ResNet's arithmetic), from the same
    :func:`block_plan` the builder uses; every strided layer maps ``n`` positions to
    ``ceil(n / stride)``, as the builder's padding does. ``input_shape`` defaults to the
    stem's (32x32x3 CIFAR, 224x224x3 ImageNet). The tests hold it equal to a count
    over the built Keras model's layers.

    Example:

    >>> from keras_resblocks import Architecture
    >>> from keras_resblocks.architecture import multiply_accumulates
    >>> round(multiply_accumulates(Architecture.named("resnet20")) / 1e6, 1)
    40.6
    >>> round(multiply_accumulates(Architecture.named("resnet50")) / 1e9, 2)
    3.86
    """
    arch = Architecture.coerce(architecture)
    height, width, channels = tuple(input_shape or DEFAULT_HEAD[arch.stem]["input_shape"])

    def conv(k, cin, cout, stride):
        nonlocal height, width
        height, width = -(-height // stride), -(-width // stride)
        return height * width * k * k * cin * cout

    total, cin = 0, channels
    for units, kernel_size, strides, _, _ in stem_plan(arch):
        total += conv(kernel_size, cin, units, strides)
        cin = units
    if arch.stem == "imagenet":
        height, width = -(-height // 2), -(-width // 2)  # the stem's max pooling
    for stage in block_plan(arch):
        for spec in stage:
            plan = spec_plan(spec)
            c = cin
            for units, kernel_size, strides in plan:
                total += conv(kernel_size, c, units, strides)
                c = units
            if (
                "shortcut" in spec
                and resolve_shortcut(spec["shortcut"], cin, c, plan_stride(plan)) == "projection"
            ):
                # a 1x1 convolution at the output's size (with avg_down: after the pooling)
                total += height * width * cin * c
            cin = c
    if include_top:
        if num_classes is None:
            num_classes = DEFAULT_HEAD[arch.stem]["num_classes"]
        total += cin * num_classes
    return total
