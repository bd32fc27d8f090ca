"""timm's ResNets (torchvision's among them, as timm publishes them) as models of this package.

A timm checkpoint on the Hugging Face Hub is a ``config.json`` (``architecture``,
``num_classes`` and a ``pretrained_cfg`` with the input size, interpolation, crop
fraction, mean, std and licence) beside a state dict keyed by timm's module names
(``conv1.weight``, ``layer1.0.bn1.running_var``, ``layer2.0.downsample.1.weight``,
``fc.bias``). :func:`convert_timm` turns the two into a :class:`keras_resblocks.ResNet`
that computes the same logits from raw 0..255 RGB, plus what a checkpoint records about
how to feed it (:class:`TimmConversion`).

It is strict: every tensor is consumed, every name and shape is checked against the
architecture the config names, and anything else (an architecture outside
:data:`SUPPORTED`, a missing or unknown tensor, a shape, dtype or value that does not
fit) is refused in one line before a single weight is assigned. Only the
``num_batches_tracked`` counters, which inference does not read, are dropped.

This module needs NumPy and Keras only (no torch, no timm); the proof that it is exact is
``tests/test_convert_timm.py`` (an independent float64 NumPy forward pass written from
timm's layout) and ``benchmarks/timm_parity.py`` (timm's own models).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from keras_resblocks.architecture import (
    Architecture,
    block_plan,
    plan_stride,
    resolve_shortcut,
    spec_plan,
    stem_plan,
)
from keras_resblocks.variants import TIMM_BOTTLENECK_CHANGES

# timm's architecture name -> (this package's named architecture, changes to it).
SUPPORTED = {
    "resnet18": ("resnet18", {}),
    "resnet34": ("resnet34", {}),
    "resnet26": ("resnet26", {}),
    "resnet50": ("resnet50", TIMM_BOTTLENECK_CHANGES),
    "resnet101": ("resnet101", TIMM_BOTTLENECK_CHANGES),
    "resnet152": ("resnet152", TIMM_BOTTLENECK_CHANGES),
    "resnet18d": ("resnet18d", {}),
    "resnet34d": ("resnet34d", {}),
    "resnet26d": ("resnet26d", {}),
    "resnet50d": ("resnet50d", {}),
    "resnet101d": ("resnet101d", {}),
    "resnet152d": ("resnet152d", {}),
}
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
MAX_NUM_CLASSES = 100_000  # as checkpoints.format.LIMITS
MAX_INPUT_SIZE = 4096
_BN_FIELDS = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}
_IGNORED_SUFFIX = ".num_batches_tracked"


class TimmConversionError(ValueError):
    """A timm config or state dict that does not hold a supported ResNet exactly."""


def _names(names, shown=5):
    names = sorted(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def timm_architecture(name):
    """The :class:`~keras_resblocks.Architecture` that computes timm's ``name`` exactly.

    Example:

    >>> from keras_resblocks.convert_timm import timm_architecture
    >>> arch = timm_architecture("resnet50d")
    >>> arch.deep_stem, arch.avg_down, arch.stride_in_1x1, arch.use_bias
    (True, True, False, False)
    >>> timm_architecture("resnet50").stride_in_1x1  # keras.applications' resnet50 has True
    False
    """
    if name not in SUPPORTED:
        raise TimmConversionError(
            f"timm architecture {name!r} is not supported; the supported ones are "
            f"{list(SUPPORTED)}. Received: architecture={name!r}"
        )
    base, changes = SUPPORTED[name]
    return Architecture.named(base, **changes)


@dataclasses.dataclass(frozen=True)
class TimmConversion:
    """What :func:`convert_timm` returns: the model and what its checkpoint records.

    ``input_shape`` is ``(height, width, channels)`` of the weights' ``input_size``;
    ``crop_fraction`` is timm's ``crop_pct``; ``licence`` is the config's ``license``
    (``None`` when it names none); ``labels`` its ``label_names`` (``None`` when absent).
    """

    model: object
    architecture: str
    tag: Optional[str]
    num_classes: int
    input_shape: tuple
    interpolation: str
    crop_fraction: float
    crop_mode: str
    mean: tuple
    std: tuple
    licence: Optional[str]
    labels: Optional[list]

    @property
    def preprocessing(self):
        """The model's preprocessing: raw 0..255 RGB, scaled and normalized as timm feeds it."""
        return {"scale": 1 / 255, "mean": list(self.mean), "std": list(self.std)}


# -- the config ---------------------------------------------------------------------------
def _number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _bad_config(field, value, expected):
    raise TimmConversionError(
        f"timm config.json: `{field}` must be {expected}. Received: {field}={value!r}"
    )


def read_timm_config(config):
    """Check timm's ``config.json`` (parsed): the fields of :class:`TimmConversion` but the model.

    Example:

    >>> from keras_resblocks.convert_timm import read_timm_config
    >>> info = read_timm_config({"architecture": "resnet18", "num_classes": 10,
    ...     "pretrained_cfg": {"input_size": [3, 64, 64], "mean": [0.5] * 3, "std": [0.25] * 3,
    ...                        "interpolation": "bicubic", "crop_pct": 0.95}})
    >>> info["input_shape"], info["crop_fraction"], info["licence"]
    ((64, 64, 3), 0.95, None)
    """
    if not isinstance(config, dict):
        _bad_config("config", type(config).__name__, "a JSON object")
    name = config.get("architecture")
    if not isinstance(name, str):
        _bad_config("architecture", name, "a string naming a timm model")
    timm_architecture(name)  # refuses what is not supported
    num_classes = config.get("num_classes")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        _bad_config("num_classes", num_classes, "an integer")
    if not 0 < num_classes <= MAX_NUM_CLASSES:
        _bad_config("num_classes", num_classes, f"between 1 and {MAX_NUM_CLASSES:,} (a classifier)")
    if config.get("global_pool", "avg") != "avg":
        _bad_config("global_pool", config.get("global_pool"), "'avg' (timm's ResNet default)")
    cfg = config.get("pretrained_cfg")
    if not isinstance(cfg, dict):
        _bad_config("pretrained_cfg", cfg, "a JSON object")

    size = cfg.get("input_size")
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 3
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in size)
        or not 0 < size[0] <= 16
        or not all(32 <= n <= MAX_INPUT_SIZE for n in size[1:])
    ):
        _bad_config(
            "pretrained_cfg.input_size",
            size,
            f"[channels, height, width] with 1..16 channels and sides of 32..{MAX_INPUT_SIZE}",
        )
    channels = size[0]
    _check_model_args(config.get("model_args"), num_classes, channels)
    stats = {}
    for field in ("mean", "std"):
        value = cfg.get(field)
        if (
            not isinstance(value, (list, tuple))
            or len(value) != channels
            or not all(_number(v) for v in value)
            or (field == "std" and min(value) <= 0)
        ):
            kind = "positive numbers" if field == "std" else "numbers"
            _bad_config(f"pretrained_cfg.{field}", value, f"{channels} finite {kind}")
        stats[field] = tuple(float(v) for v in value)
    interpolation = cfg.get("interpolation", "bilinear")
    if interpolation not in INTERPOLATIONS:
        _bad_config("pretrained_cfg.interpolation", interpolation, f"one of {list(INTERPOLATIONS)}")
    crop = cfg.get("crop_pct", 0.875)
    if not _number(crop) or not 0 < crop <= 1:
        _bad_config("pretrained_cfg.crop_pct", crop, "a number in (0, 1]")
    crop_mode = cfg.get("crop_mode", "center")
    if not isinstance(crop_mode, str):
        _bad_config("pretrained_cfg.crop_mode", crop_mode, "a string")
    licence = cfg.get("license")
    if licence is not None and not isinstance(licence, str):
        _bad_config("pretrained_cfg.license", licence, "a string")
    tag = cfg.get("tag")
    if tag is not None and not isinstance(tag, str):
        _bad_config("pretrained_cfg.tag", tag, "a string")
    return dict(
        architecture=name,
        tag=tag,
        num_classes=num_classes,
        input_shape=(size[1], size[2], channels),
        interpolation=interpolation,
        crop_fraction=float(crop),
        crop_mode=crop_mode,
        mean=stats["mean"],
        std=stats["std"],
        licence=licence,
        labels=_labels(config.get("label_names"), num_classes),
        num_features=config.get("num_features"),
    )


# The model_args timm records that leave the inference graph as the architecture's name says
# (timm >= 1.0 writes in_chans, num_classes and global_pool); the drop rates act in training only.
_HARMLESS_MODEL_ARGS = ("in_chans", "num_classes", "global_pool", "drop_rate", "drop_path_rate")


def _check_model_args(model_args, num_classes, channels):
    if model_args is None:
        return
    expected = {"in_chans": channels, "num_classes": num_classes, "global_pool": "avg"}
    if not isinstance(model_args, dict) or any(
        key not in _HARMLESS_MODEL_ARGS or model_args[key] != expected.get(key, model_args[key])
        for key in model_args
    ):
        _bad_config(
            "model_args",
            model_args,
            f"at most {list(_HARMLESS_MODEL_ARGS)} with in_chans={channels}, "
            f"num_classes={num_classes}, global_pool='avg' (others change the model)",
        )


def _labels(names, num_classes):
    """timm's ``label_names`` (a list, or a dict of class index -> name) as a list, or None."""
    if names is None:
        return None
    if isinstance(names, dict):
        try:
            by_index = {int(k): v for k, v in names.items()}
        except (TypeError, ValueError):
            by_index = {}
        names = [by_index.get(i) for i in range(num_classes)] if len(by_index) == len(names) else 0
    if not isinstance(names, (list, tuple)) or len(names) != num_classes:
        _bad_config("label_names", _short(names), f"one name for each of the {num_classes} classes")
    if not all(isinstance(n, str) for n in names):
        _bad_config("label_names", _short(names), "strings")
    return list(names)


def imagenet_class_names():
    """The 1,000 ImageNet-1k class names in class-index order, as torchvision names them.

    They ship with the package in ``imagenet_classes.json``, copied from torchvision's
    ``_IMAGENET_CATEGORIES`` (BSD-3-Clause; the file keeps torchvision's licence notice), and
    label converted ImageNet-1k weights whose timm config has no ``label_names``.

    Example:

    >>> from keras_resblocks.convert_timm import imagenet_class_names
    >>> names = imagenet_class_names()
    >>> len(names), names[0], names[207], names[999]
    (1000, 'tench', 'golden retriever', 'toilet tissue')
    """
    import json
    from importlib import resources

    text = resources.files("keras_resblocks").joinpath("imagenet_classes.json").read_text("utf-8")
    return list(json.loads(text)["names"])


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- the state dict -----------------------------------------------------------------------
def timm_key_map(arch, num_classes, channels=3):
    """timm's name of every tensor of ``arch`` -> ``(variable path here, timm's shape)``.

    Keras-free: derived from the same :func:`stem_plan` and :func:`block_plan` that build
    the model, with timm's module names (``conv1.0`` ... ``conv1.6`` for the deep stem,
    ``downsample.1``/``.2`` after the average pool of ``avg_down``).

    Example:

    >>> from keras_resblocks.convert_timm import timm_architecture, timm_key_map
    >>> keys = timm_key_map(timm_architecture("resnet26d"), 1000)
    >>> keys["conv1.3.weight"], keys["layer1.0.downsample.1.weight"]
    (('stem_conv2/kernel', (32, 32, 3, 3)), ('stage1_block1/shortcut_conv/kernel', (256, 64, 1, 1)))
    >>> keys["fc.weight"]
    ('predictions/kernel', (1000, 2048))
    """
    mapping = {}

    def conv(timm_name, path, cout, cin, k):
        mapping[f"{timm_name}.weight"] = (f"{path}/kernel", (cout, cin, k, k))

    def batch_norm(timm_name, path, units):
        for field, variable in _BN_FIELDS.items():
            mapping[f"{timm_name}.{field}"] = (f"{path}/{variable}", (units,))

    stem = stem_plan(arch)
    cin = channels
    for i, (units, k, _, use_bias, norm) in enumerate(stem):
        if use_bias or not norm:  # no timm ResNet has these; SUPPORTED holds none
            raise AssertionError("timm's stems are bias-free and normalized")
        last = i == len(stem) - 1
        ours = f"stem_conv{i + 1}" if len(stem) > 1 else "stem_conv"
        ours_bn = f"stem_bn{i + 1}" if len(stem) > 1 else "stem_bn"
        # timm's deep stem is nn.Sequential(conv, bn, relu, conv, bn, relu, conv); bn1 after it.
        conv(f"conv1.{3 * i}" if len(stem) > 1 else "conv1", ours, units, cin, k)
        batch_norm("bn1" if last else f"conv1.{3 * i + 1}", ours_bn, units)
        cin = units
    for s, stage in enumerate(block_plan(arch), start=1):
        for b, spec in enumerate(stage):
            theirs, ours = f"layer{s}.{b}", f"stage{s}_block{b + 1}"
            plan = spec_plan(spec)
            c = cin
            for n, (units, k, _) in enumerate(plan, start=1):
                conv(f"{theirs}.conv{n}", f"{ours}/conv{n}", units, c, k)
                batch_norm(f"{theirs}.bn{n}", f"{ours}/bn{n}", units)
                c = units
            if resolve_shortcut(spec["shortcut"], cin, c, plan_stride(plan)) == "projection":
                first = 1 if arch.avg_down else 0  # downsample.0 is the pool (or Identity)
                conv(f"{theirs}.downsample.{first}", f"{ours}/shortcut_conv", c, cin, 1)
                batch_norm(f"{theirs}.downsample.{first + 1}", f"{ours}/shortcut_bn", c)
            cin = c
    mapping["fc.weight"] = ("predictions/kernel", (num_classes, cin))
    mapping["fc.bias"] = ("predictions/bias", (num_classes,))
    return mapping


def check_state_dict(state_dict, key_map, architecture="the architecture"):
    """The float32 tensors of ``state_dict`` checked against ``key_map``.

    Refuses, in one line naming the first few and the count: a non-dict, missing or
    unknown names, arrays that are not floating point, shapes that differ from timm's,
    NaN or infinite values. ``num_batches_tracked`` counters are dropped.

    Example:

    >>> import numpy as np
    >>> from keras_resblocks.convert_timm import check_state_dict
    >>> key_map = {"fc.weight": ("predictions/kernel", (2, 3))}
    >>> check_state_dict({"fc.weight": np.zeros((3, 2), "float32")}, key_map)
    Traceback (most recent call last):
    ...
    keras_resblocks.convert_timm.TimmConversionError: 1 tensor(s) of the state dict do not have the architecture's shapes: fc.weight (3, 2) where the architecture has (2, 3). Received: shapes of fc.weight
    """
    if not isinstance(state_dict, dict) or not all(isinstance(k, str) for k in state_dict):
        raise TimmConversionError(
            f"The state dict must be a dict of named arrays. Received: {type(state_dict).__name__}"
        )
    tensors = {k: v for k, v in state_dict.items() if not k.endswith(_IGNORED_SUFFIX)}
    missing = set(key_map) - set(tensors)
    unknown = set(tensors) - set(key_map)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"lacks {len(missing)} tensor(s) of {architecture}: {_names(missing)}")
        if unknown:
            parts.append(f"holds {len(unknown)} it does not have: {_names(unknown)}")
        raise TimmConversionError(
            f"The state dict {'; it '.join(parts)}. Received: {len(tensors)} tensor(s)"
        )

    def refuse(bad, what, received):
        raise TimmConversionError(
            f"{len(bad)} tensor(s) of the state dict {what}: {_names(bad, 3)}. Received: {received}"
        )

    not_arrays = [k for k, v in tensors.items() if not isinstance(v, np.ndarray)]
    if not_arrays:
        kind = type(tensors[sorted(not_arrays)[0]]).__name__
        refuse(not_arrays, "are not NumPy arrays", f"type {kind}")
    not_float = [k for k, v in tensors.items() if v.dtype.kind != "f"]
    if not_float:
        refuse(not_float, "are not floating point", f"dtype {tensors[sorted(not_float)[0]].dtype}")
    misshapen = [k for k, v in tensors.items() if tuple(v.shape) != key_map[k][1]]
    if misshapen:
        first = sorted(misshapen)[0]
        raise TimmConversionError(
            f"{len(misshapen)} tensor(s) of the state dict do not have {architecture}'s shapes: "
            f"{first} {tuple(tensors[first].shape)} where {architecture} has {key_map[first][1]}"
            + (f" (and {_names([k for k in misshapen if k != first], 3)})" if misshapen[1:] else "")
            + f". Received: shapes of {_names(misshapen, 3)}"
        )
    with np.errstate(over="ignore", invalid="ignore"):  # what overflows is refused below
        converted = {k: v.astype("float32") for k, v in tensors.items()}
    not_finite = [k for k, v in converted.items() if not np.isfinite(v).all()]
    if not_finite:
        refuse(not_finite, "hold NaN or infinite values (in float32)", "non-finite values")
    negative = [k for k, v in converted.items() if k.endswith(".running_var") and v.min() < 0]
    if negative:
        refuse(negative, "are BatchNorm variances below zero", "negative running_var")
    return converted


def keras_weights(tensors, key_map):
    """Checked timm tensors as ``{variable path: array}``: conv kernels from (out, in, kh, kw)
    to (kh, kw, in, out), the classifier's (out, in) transposed, BatchNorm as it is."""
    ours = {}
    for name, value in tensors.items():
        path = key_map[name][0]
        if value.ndim == 4:
            value = value.transpose(2, 3, 1, 0)
        elif path == "predictions/kernel":
            value = value.T
        ours[path] = np.ascontiguousarray(value, dtype="float32")
    return ours


def convert_timm(state_dict, config, name=None, input_shape=None):
    """A :class:`keras_resblocks.ResNet` with the weights of a timm checkpoint, and its record.

    ``state_dict``: timm's tensors as NumPy arrays, keyed as timm names them (what
    ``safetensors.numpy.load_file`` reads from a timm ``model.safetensors``). ``config``:
    the parsed ``config.json`` timm publishes beside it. The model takes raw 0..255 RGB
    (its preprocessing scales by 1/255 and normalizes with the config's mean and std) and
    ends in softmax, like every checkpoint of this package; its input shape is
    ``input_shape`` (``(height, width, channels)``, ``None`` entries for any size), by
    default the config's ``input_size`` (which :class:`TimmConversion` records either way).

    Example:

    >>> import numpy as np
    >>> from keras_resblocks.convert_timm import convert_timm, timm_architecture, timm_key_map
    >>> arch = timm_architecture("resnet18")
    >>> rng = np.random.default_rng(0)
    >>> state = {k: rng.uniform(0.5, 1, shape).astype("float32")
    ...          for k, (_, shape) in timm_key_map(arch, 10).items()}
    >>> config = {"architecture": "resnet18", "num_classes": 10, "pretrained_cfg": {
    ...     "input_size": [3, 64, 64], "mean": [0.485, 0.456, 0.406],
    ...     "std": [0.229, 0.224, 0.225], "license": "apache-2.0"}}
    >>> result = convert_timm(state, config)
    >>> result.model.output_shape, result.licence, result.interpolation
    ((None, 10), 'apache-2.0', 'bilinear')
    >>> convert_timm(state, dict(config, architecture="resnext50_32x4d"))
    Traceback (most recent call last):
    ...
    keras_resblocks.convert_timm.TimmConversionError: timm architecture 'resnext50_32x4d' is not supported; the supported ones are ['resnet18', 'resnet34', 'resnet26', 'resnet50', 'resnet101', 'resnet152', 'resnet18d', 'resnet34d', 'resnet26d', 'resnet50d', 'resnet101d', 'resnet152d']. Received: architecture='resnext50_32x4d'
    """
    info = read_timm_config(config)
    arch = timm_architecture(info["architecture"])
    height, width, channels = info["input_shape"]
    key_map = timm_key_map(arch, info["num_classes"], channels)
    tensors = check_state_dict(state_dict, key_map, f"timm's {info['architecture']}")
    features = key_map["fc.weight"][1][1]
    if info["num_features"] not in (None, features):
        _bad_config("num_features", info["num_features"], f"{features}, as the weights hold")
    weights = keras_weights(tensors, key_map)
    result = TimmConversion(model=None, **{k: v for k, v in info.items() if k != "num_features"})
    model = _build(arch, result, name or info["architecture"], input_shape)
    variables = {v.path: v for v in model.variables}
    if set(variables) != set(weights):  # the key map and the builder disagree: a bug here
        raise AssertionError(sorted(set(variables) ^ set(weights))[:5])
    for path, variable in variables.items():
        variable.assign(weights[path])
    return dataclasses.replace(result, model=model)


def _build(arch, result, name, input_shape):
    from keras_resblocks.models import ResNet

    if input_shape is not None and tuple(input_shape)[-1:] != result.input_shape[-1:]:
        raise TimmConversionError(
            f"`input_shape` must keep the weights' {result.input_shape[-1]} channels. "
            f"Received: input_shape={input_shape!r}"
        )
    return ResNet(
        arch,
        num_classes=result.num_classes,
        input_shape=result.input_shape if input_shape is None else tuple(input_shape),
        preprocessing=result.preprocessing,
        name=name,
    )
