"""keras_resblocks.convert_timm: timm's ResNets, converted exactly, without torch.

The proof of exactness is an independent float64 NumPy forward pass written from timm's
``timm/models/resnet.py`` (its module names, its BasicBlock / Bottleneck, its deep stem and
``downsample_avg``, PyTorch's symmetric padding, ``MaxPool2d(3, 2, padding=1)`` and
``AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)``), run on random weights
under timm's exact names and shapes, which this file also writes from timm's model
definitions rather than from the converter's key map. The converted Keras model must give
the same logits, on even and odd image sizes (odd ones pin the padding and the average
pool's windows that overhang the border).

The classifier's random weights are scaled to give logits of a few units (2 to 9 here), so
the bound is absolute: |difference| <= 1e-4. Measured on a CPU, TensorFlow and JAX alike:
at most 7.6e-6 (about 1e-6 of the largest logit), float32 against float64.
"""

import math

import keras
import numpy as np
import pytest

from keras_resblocks.convert_timm import (
    SUPPORTED,
    TimmConversionError,
    convert_timm,
    timm_architecture,
    timm_key_map,
)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# timm's model definitions (timm/models/resnet.py): block, layers, deep stem, avg_down.
TIMM_DEFS = {
    "resnet18": ("basic", (2, 2, 2, 2), False, False),
    "resnet34": ("basic", (3, 4, 6, 3), False, False),
    "resnet26": ("bottleneck", (2, 2, 2, 2), False, False),
    "resnet50": ("bottleneck", (3, 4, 6, 3), False, False),
    "resnet101": ("bottleneck", (3, 4, 23, 3), False, False),
    "resnet152": ("bottleneck", (3, 8, 36, 3), False, False),
    "resnet18d": ("basic", (2, 2, 2, 2), True, True),
    "resnet34d": ("basic", (3, 4, 6, 3), True, True),
    "resnet26d": ("bottleneck", (2, 2, 2, 2), True, True),
    "resnet50d": ("bottleneck", (3, 4, 6, 3), True, True),
    "resnet101d": ("bottleneck", (3, 4, 23, 3), True, True),
    "resnet152d": ("bottleneck", (3, 8, 36, 3), True, True),
}


# -- timm's state dict, written from its model definition -----------------------------------
def timm_shapes(name, num_classes, in_chans=3):
    """``{key: shape}`` of timm's ``ResNet(...).state_dict()`` (num_batches_tracked included)."""
    block, layers, deep, avg_down = TIMM_DEFS[name]
    shapes = {}

    def bn(prefix, c):
        for field in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{field}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    if deep:  # stem_width=32: conv(3->32, s2), bn, relu, conv(32->32), bn, relu, conv(32->64)
        shapes["conv1.0.weight"] = (32, in_chans, 3, 3)
        bn("conv1.1", 32)
        shapes["conv1.3.weight"] = (32, 32, 3, 3)
        bn("conv1.4", 32)
        shapes["conv1.6.weight"] = (64, 32, 3, 3)
    else:
        shapes["conv1.weight"] = (64, in_chans, 7, 7)
    bn("bn1", 64)
    expansion = 1 if block == "basic" else 4
    inplanes = 64
    for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        stride = 1 if i == 1 else 2
        for j in range(blocks):
            p = f"layer{i}.{j}"
            if block == "basic":
                shapes[f"{p}.conv1.weight"] = (planes, inplanes, 3, 3)
                bn(f"{p}.bn1", planes)
                shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                bn(f"{p}.bn2", planes)
            else:
                shapes[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
                bn(f"{p}.bn1", planes)
                shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                bn(f"{p}.bn2", planes)
                shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
                bn(f"{p}.bn3", planes * 4)
            if j == 0 and (stride != 1 or inplanes != planes * expansion):
                first = 1 if avg_down else 0  # downsample_avg: [pool or Identity, conv, bn]
                shapes[f"{p}.downsample.{first}.weight"] = (planes * expansion, inplanes, 1, 1)
                bn(f"{p}.downsample.{first + 1}", planes * expansion)
            inplanes = planes * expansion
    shapes["fc.weight"] = (num_classes, inplanes)
    shapes["fc.bias"] = (num_classes,)
    return shapes


def random_state_dict(name, num_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in timm_shapes(name, num_classes).items():
        if key.endswith("num_batches_tracked"):
            state[key] = np.array(rng.integers(0, 1000), dtype="int64")
        elif key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 2.0, shape)
        elif key.endswith("running_mean") or (key.endswith(".bias") and len(shape) == 1):
            state[key] = rng.normal(0, 0.2, shape)
        elif len(shape) == 1:  # BatchNorm gamma
            state[key] = rng.uniform(0.5, 1.5, shape)
        elif key == "fc.weight":  # logits of a few units, like a trained classifier's
            state[key] = rng.normal(0, 0.1 / math.sqrt(shape[1]), shape)
        else:  # conv (out, in, kh, kw): He's initialization
            state[key] = rng.normal(0, math.sqrt(2 / math.prod(shape[1:])), shape)
    return {k: v.astype("float32") if v.dtype == "float64" else v for k, v in state.items()}


def timm_config(name, num_classes=10, size=64, **pretrained_cfg):
    """config.json as timm's save_config_for_hf writes it (timm/models/_hub.py)."""
    block, _, _, _ = TIMM_DEFS[name]
    return {
        "architecture": name,
        "num_classes": num_classes,
        "num_features": 512 if block == "basic" else 2048,
        "global_pool": "avg",
        "model_args": {"in_chans": 3, "num_classes": num_classes, "global_pool": "avg"},
        "pretrained_cfg": {
            "tag": "test_in1k",
            "custom_load": False,
            "input_size": [3, size, size],
            "fixed_input_size": False,
            "interpolation": "bicubic",
            "crop_pct": 0.95,
            "crop_mode": "center",
            "mean": list(MEAN),
            "std": list(STD),
            "num_classes": num_classes,
            "pool_size": [size // 32, size // 32],
            "first_conv": "conv1.0" if name.endswith("d") else "conv1",
            "classifier": "fc",
            "license": "apache-2.0",
            **pretrained_cfg,
        },
    }


# -- timm's forward pass, float64 NumPy, NCHW -----------------------------------------------
def conv2d(x, weight, stride):
    """nn.Conv2d(bias=False, padding=k // 2): PyTorch pads k // 2 on every side."""
    n, _, h, w = x.shape
    k = weight.shape[-1]
    p = k // 2
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    out_h, out_w = (h + 2 * p - k) // stride + 1, (w + 2 * p - k) // stride + 1
    out = np.zeros((n, weight.shape[0], out_h, out_w))
    for i in range(k):
        for j in range(k):
            patch = padded[
                :,
                :,
                i : i + stride * (out_h - 1) + 1 : stride,
                j : j + stride * (out_w - 1) + 1 : stride,
            ]
            out += np.einsum("nchw,oc->nohw", patch, weight[:, :, i, j], optimize=True)
    return out


def batch_norm(x, sd, prefix):
    """nn.BatchNorm2d in eval mode, eps 1e-5."""
    shape = (1, -1, 1, 1)
    mean, var = sd[f"{prefix}.running_mean"], sd[f"{prefix}.running_var"]
    gamma, beta = sd[f"{prefix}.weight"], sd[f"{prefix}.bias"]
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + 1e-5) * gamma.reshape(
        shape
    ) + beta.reshape(shape)


def relu(x):
    return np.maximum(x, 0)


def max_pool_3x3_s2_p1(x):
    """nn.MaxPool2d(kernel_size=3, stride=2, padding=1): padding never wins."""
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    out_h, out_w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    out = np.full((n, c, out_h, out_w), -np.inf)
    for i in range(3):
        for j in range(3):
            out = np.maximum(
                out, padded[:, :, i : i + 2 * out_h - 1 : 2, j : j + 2 * out_w - 1 : 2]
            )
    return out


def avg_pool_2_ceil_exclusive(x, stride):
    """nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False), window by window."""
    n, c, h, w = x.shape

    def size(length):
        out = -(-(length - 2) // stride) + 1  # ceil_mode
        return out - 1 if (out - 1) * stride >= length else out  # the last window starts inside

    out = np.zeros((n, c, size(h), size(w)))
    for a in range(out.shape[2]):
        for b in range(out.shape[3]):
            window = x[:, :, a * stride : a * stride + 2, b * stride : b * stride + 2]
            out[:, :, a, b] = window.sum(axis=(2, 3)) / (window.shape[2] * window.shape[3])
    return out


def timm_block(x, sd, p, stride):
    bottleneck = f"{p}.conv3.weight" in sd
    if bottleneck:  # Bottleneck: 1x1, 3x3 (stride), 1x1
        y = relu(batch_norm(conv2d(x, sd[f"{p}.conv1.weight"], 1), sd, f"{p}.bn1"))
        y = relu(batch_norm(conv2d(y, sd[f"{p}.conv2.weight"], stride), sd, f"{p}.bn2"))
        y = batch_norm(conv2d(y, sd[f"{p}.conv3.weight"], 1), sd, f"{p}.bn3")
    else:  # BasicBlock: 3x3 (stride), 3x3
        y = relu(batch_norm(conv2d(x, sd[f"{p}.conv1.weight"], stride), sd, f"{p}.bn1"))
        y = batch_norm(conv2d(y, sd[f"{p}.conv2.weight"], 1), sd, f"{p}.bn2")
    if f"{p}.downsample.0.weight" in sd:  # downsample_conv: strided 1x1 conv, bn
        shortcut = batch_norm(
            conv2d(x, sd[f"{p}.downsample.0.weight"], stride), sd, f"{p}.downsample.1"
        )
    elif f"{p}.downsample.1.weight" in sd:  # downsample_avg: pool (Identity at stride 1), conv, bn
        pooled = avg_pool_2_ceil_exclusive(x, stride) if stride > 1 else x
        shortcut = batch_norm(
            conv2d(pooled, sd[f"{p}.downsample.1.weight"], 1), sd, f"{p}.downsample.2"
        )
    else:
        shortcut = x
    return relu(y + shortcut)


def timm_logits(state_dict, images):
    """timm's ResNet.forward (eval) on uint8 NHWC images after its transform's normalization."""
    sd = {k: np.asarray(v, "float64") for k, v in state_dict.items()}
    x = ((images / 255.0 - np.array(MEAN)) / np.array(STD)).transpose(0, 3, 1, 2)
    if "conv1.0.weight" in sd:  # stem_type='deep'
        x = relu(batch_norm(conv2d(x, sd["conv1.0.weight"], 2), sd, "conv1.1"))
        x = relu(batch_norm(conv2d(x, sd["conv1.3.weight"], 1), sd, "conv1.4"))
        x = conv2d(x, sd["conv1.6.weight"], 1)
    else:
        x = conv2d(x, sd["conv1.weight"], 2)
    x = max_pool_3x3_s2_p1(relu(batch_norm(x, sd, "bn1")))
    for layer in range(1, 5):
        j = 0
        while f"layer{layer}.{j}.conv1.weight" in sd:
            stride = 2 if layer > 1 and j == 0 else 1
            x = timm_block(x, sd, f"layer{layer}.{j}", stride)
            j += 1
    features = x.mean(axis=(2, 3))
    return features @ sd["fc.weight"].T + sd["fc.bias"]


def keras_logits(model, images):
    """The converted model's float32 logits (its classifier without the softmax)."""
    head = model.get_layer("predictions")
    features = keras.Model(model.input, head.input)(images.astype("float32"), training=False)
    logits = keras.ops.add(keras.ops.matmul(features, head.kernel), head.bias)
    return keras.ops.convert_to_numpy(logits).astype("float64")


# -- exactness -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, size",
    [
        ("resnet18", 64),  # basic blocks, strided 1x1 projections
        ("resnet18", 65),  # odd: every strided layer's padding
        ("resnet26", 64),  # bottleneck, stride on the 3x3 conv
        ("resnet18d", 65),  # deep stem, average-pool shortcuts over odd sizes
        ("resnet26d", 64),
        ("resnet26d", 71),  # odd at every stage: 71 -> 36 -> 18 -> 9 -> 5 -> 3
    ],
)
def test_converted_logits_equal_timms_forward_pass(name, size):
    state = random_state_dict(name, seed=size)
    images = np.random.default_rng(1).integers(0, 256, (2, size, size, 3)).astype("float64")
    result = convert_timm(state, timm_config(name, size=size))
    expected = timm_logits({k: v for k, v in state.items() if "num_batches" not in k}, images)
    received = keras_logits(result.model, images)
    assert 1 < np.abs(expected).max() < 20  # logits of a trained classifier's size
    np.testing.assert_allclose(received, expected, rtol=0, atol=1e-4)
    # The softmax head the checkpoint carries agrees too.
    probabilities = keras.ops.convert_to_numpy(result.model(images.astype("float32")))
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_every_supported_architecture_has_timms_names_shapes_and_parameter_count(name):
    """The converter's key map is timm's state dict, key for key and shape for shape, and the
    Keras-free parameter count equals timm's (its tensors, num_batches_tracked aside)."""
    from keras_resblocks import parameter_count

    expected = {k: v for k, v in timm_shapes(name, 1000).items() if "num_batches" not in k}
    key_map = timm_key_map(timm_architecture(name), 1000)
    assert {k: shape for k, (_, shape) in key_map.items()} == expected
    assert parameter_count(timm_architecture(name)) == sum(math.prod(s) for s in expected.values())
    assert len({path for path, _ in key_map.values()}) == len(key_map)


def test_what_the_checkpoint_writer_needs():
    labels = [f"class {i}" for i in range(10)]
    config = timm_config("resnet18", size=64, license="bsd-3-clause")
    config["label_names"] = labels
    result = convert_timm(random_state_dict("resnet18"), config)
    assert result.architecture == "resnet18" and result.tag == "test_in1k"
    assert result.input_shape == (64, 64, 3) and result.model.image_shape == (64, 64, 3)
    assert (result.interpolation, result.crop_fraction, result.crop_mode) == (
        "bicubic",
        0.95,
        "center",
    )
    assert result.licence == "bsd-3-clause" and result.labels == labels
    assert result.model.preprocessing == {"scale": 1 / 255, "mean": list(MEAN), "std": list(STD)}
    assert result.model.architecture == timm_architecture("resnet18")
    # label_names as a dict of class index -> name, as timm allows
    config["label_names"] = {str(i): n for i, n in enumerate(labels)}
    assert convert_timm(random_state_dict("resnet18"), config).labels == labels
    # any input size, as the model is fully convolutional; the record keeps the weights' size
    flexible = convert_timm(random_state_dict("resnet18"), config, input_shape=(None, None, 3))
    assert flexible.model.image_shape == (None, None, 3) and flexible.input_shape == (64, 64, 3)
    with pytest.raises(TimmConversionError, match="3 channels"):
        convert_timm(random_state_dict("resnet18"), config, input_shape=(64, 64, 1))
    # no licence, no labels
    del config["label_names"], config["pretrained_cfg"]["license"]
    result = convert_timm(random_state_dict("resnet18"), config)
    assert result.labels is None and result.licence is None


# -- refusals, each in one line --------------------------------------------------------------
def _refused(state, config, *fragments):
    with pytest.raises(TimmConversionError) as info:
        convert_timm(state, config)
    message = str(info.value)
    assert "\n" not in message and "Received" in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture(scope="module")
def state():
    return random_state_dict("resnet18")


CONFIG = timm_config("resnet18", size=64)


def test_an_unsupported_architecture_is_named_with_the_supported_list(state):
    _refused(state, dict(CONFIG, architecture="resnext50_32x4d"), "'resnext50_32x4d'", "resnet50d")
    _refused(state, dict(CONFIG, architecture="resnet10t"), "'resnet10t'", "'resnet152d'")


def test_missing_and_unknown_tensors_are_named_with_their_count(state):
    lacking = {k: v for k, v in state.items() if not k.startswith("layer4.")}
    message = _refused(lacking, CONFIG, "lacks", "layer4.0.bn1.bias")
    assert " more" in message
    extra = dict(state, **{"head.fc.weight": np.zeros((2, 2), "float32")})
    _refused(extra, CONFIG, "holds 1", "head.fc.weight")
    # a resnet18d state dict under a resnet18 config (a config that lies about the weights)
    _refused(random_state_dict("resnet18d"), CONFIG, "conv1.0.weight", "conv1.weight")


def test_shapes_dtypes_and_values_are_checked(state):
    _refused(dict(state, **{"fc.weight": state["fc.weight"].T}), CONFIG, "fc.weight (512, 10)")
    wrong_classes = timm_config("resnet18", num_classes=11, size=64)
    _refused(state, wrong_classes, "fc.bias (10,)", "has (11,)", "fc.weight")
    huge = dict(state, **{"layer1.0.conv1.weight": np.zeros((1, 1, 1, 1), "float32")})
    _refused(huge, CONFIG, "layer1.0.conv1.weight (1, 1, 1, 1)")
    ints = dict(state, **{"bn1.weight": np.ones(64, "int64")})
    _refused(ints, CONFIG, "not floating point", "bn1.weight", "int64")
    objects = dict(state, **{"bn1.weight": np.array([None] * 64)})
    _refused(objects, CONFIG, "not floating point")
    _refused(dict(state, **{"bn1.weight": [1.0] * 64}), CONFIG, "not NumPy arrays", "list")
    nan = dict(state, **{"fc.bias": np.full(10, np.nan, "float32")})
    _refused(nan, CONFIG, "NaN or infinite", "fc.bias")
    overflow = dict(state, **{"fc.bias": np.full(10, 1e300)})  # finite in float64, not float32
    _refused(overflow, CONFIG, "NaN or infinite")
    negative = dict(state, **{"bn1.running_var": -np.ones(64, "float32")})
    _refused(negative, CONFIG, "variances below zero", "bn1.running_var")
    _refused([("fc.bias", state["fc.bias"])], CONFIG, "dict of named arrays")
    # float16 and float64 tensors are accepted (converted to float32)
    halves = {k: v.astype("float16") if v.dtype == "float32" else v for k, v in state.items()}
    assert convert_timm(halves, CONFIG).model.get_layer("predictions").kernel.dtype == "float32"


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda c: c.update(num_classes=0), "num_classes=0"),
        (lambda c: c.update(num_classes=10**9), "num_classes=1000000000"),
        (lambda c: c.update(num_classes="10"), "num_classes='10'"),
        (lambda c: c.update(global_pool="max"), "global_pool='max'"),
        (lambda c: c.update(model_args={"stem_width": 64}), "model_args="),
        (lambda c: c.update(model_args={"num_classes": 5}), "num_classes=10"),
        (lambda c: c.update(num_features=2048), "num_features=2048"),
        (lambda c: c.update(label_names=["a"]), "label_names="),
        (lambda c: c.pop("pretrained_cfg"), "pretrained_cfg=None"),
        (lambda c: c["pretrained_cfg"].update(input_size=[3, 10**6, 224]), "input_size="),
        (lambda c: c["pretrained_cfg"].update(input_size=[3, 16, 16]), "input_size="),
        (lambda c: c["pretrained_cfg"].update(mean=[0.5, 0.5]), "mean=[0.5, 0.5]"),
        (lambda c: c["pretrained_cfg"].update(std=[0.2, 0.0, 0.2]), "std="),
        (lambda c: c["pretrained_cfg"].update(std=[0.2, float("nan"), 0.2]), "std="),
        (lambda c: c["pretrained_cfg"].update(interpolation="magic"), "interpolation='magic'"),
        (lambda c: c["pretrained_cfg"].update(crop_pct=1.5), "crop_pct=1.5"),
        (lambda c: c["pretrained_cfg"].update(license=["mit"]), "license=['mit']"),
    ],
)
def test_a_config_that_does_not_fit_is_refused_in_one_line(state, change, fragment):
    import copy

    config = copy.deepcopy(CONFIG)
    change(config)
    _refused(state, config, fragment)


def test_a_config_that_is_not_an_object_is_refused(state):
    _refused(state, ["resnet18"], "config=")
    _refused(state, dict(CONFIG, architecture=None), "architecture=None")
