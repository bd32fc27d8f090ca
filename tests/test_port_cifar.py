"""scripts/convert_pytorch_cifar.py: pytorch_resnet_cifar10's weights, converted exactly.

The proof of exactness is an independent float64 NumPy implementation of upstream's
forward pass (written from their resnet.py), run on the original, unpermuted tensors:
the converted Keras model must give the same logits within 1e-4. By default it runs on
small files this module writes itself, in the same old torch.save format with random
weights and BatchNorm statistics; with ``--large``, on the four real files.
"""

import collections
import contextlib
import hashlib
import json
import os
import pickle
import sys
import types

import keras
import numpy as np
import pytest

from keras_resblocks import from_pretrained, list_pretrained, verify_reference
from keras_resblocks.checkpoints import sha256_of
from keras_resblocks.checkpoints import catalog

from tests._docs import DATA  # noqa: E402
from scripts import convert_pytorch_cifar as converter


UPSTREAM = DATA / "pytorch_resnet_cifar10"
JPEG_DATA = DATA / "cifar10-jpeg.tar.gz"
REAL_FILES = {
    20: "resnet20-12fca82f.th",
    32: "resnet32-d509ac18.th",
    44: "resnet44-014dd654.th",
    56: "resnet56-4bfd9763.th",
}
PORTED = [f"resnet{depth}_cifar10_akamaster" for depth in REAL_FILES]
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


# -- upstream's forward pass, in float64 NumPy (from their resnet.py) ----------------------
def _conv3x3(x, weight, stride):
    """nn.Conv2d(kernel_size=3, stride=stride, padding=1, bias=False) on NCHW."""
    n, _, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out_h, out_w = (h - 1) // stride + 1, (w - 1) // stride + 1
    out = np.zeros((n, weight.shape[0], out_h, out_w))
    for i in range(3):
        for j in range(3):
            patch = padded[
                :,
                :,
                i : i + stride * (out_h - 1) + 1 : stride,
                j : j + stride * (out_w - 1) + 1 : stride,
            ]
            out += np.einsum("nchw,oc->nohw", patch, weight[:, :, i, j], optimize=True)
    return out


def _batch_norm(x, sd, prefix):
    """nn.BatchNorm2d in eval mode, eps 1e-5."""
    shape = (1, -1, 1, 1)
    mean, var = (
        sd[f"{prefix}.running_mean"].reshape(shape),
        sd[f"{prefix}.running_var"].reshape(shape),
    )
    gamma, beta = sd[f"{prefix}.weight"].reshape(shape), sd[f"{prefix}.bias"].reshape(shape)
    return (x - mean) / np.sqrt(var + 1e-5) * gamma + beta


def upstream_logits(state_dict, images):
    """ResNet.forward of upstream's resnet.py on uint8 NHWC images, after their transform."""
    sd = {k.removeprefix("module."): np.asarray(v, "float64") for k, v in state_dict.items()}
    relu = lambda t: np.maximum(t, 0)  # noqa: E731
    x = ((images / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2)  # ToTensor + Normalize, NCHW
    out = relu(_batch_norm(_conv3x3(x, sd["conv1.weight"], 1), sd, "bn1"))
    in_planes = 16
    for layer, stride in ((1, 1), (2, 2), (3, 2)):
        blocks = sorted({int(k.split(".")[1]) for k in sd if k.startswith(f"layer{layer}.")})
        for block in blocks:
            p = f"layer{layer}.{block}"
            s = stride if block == 0 else 1
            planes = sd[f"{p}.conv1.weight"].shape[0]
            h = relu(_batch_norm(_conv3x3(out, sd[f"{p}.conv1.weight"], s), sd, f"{p}.bn1"))
            h = _batch_norm(_conv3x3(h, sd[f"{p}.conv2.weight"], 1), sd, f"{p}.bn2")
            if s != 1 or in_planes != planes:  # option A
                shortcut = np.pad(
                    out[:, :, ::2, ::2], ((0, 0), (planes // 4, planes // 4), (0, 0), (0, 0))
                )
            else:
                shortcut = out
            out = relu(h + shortcut)
            in_planes = planes
    out = out.mean(axis=(2, 3))  # F.avg_pool2d over the whole 8x8 map
    return out @ sd["linear.weight"].T + sd["linear.bias"]


def keras_logits(model, images):
    """The converted model's float32 logits (its classifier without the softmax)."""
    head = model.get_layer("predictions")
    features = keras.Model(model.input, head.input)(images.astype("float32"), training=False)
    logits = keras.ops.add(keras.ops.matmul(features, head.kernel), head.bias)
    return keras.ops.convert_to_numpy(logits).astype("float64")


# -- writing files in upstream's format, without torch ---------------------------------------
@contextlib.contextmanager
def _torch_names():
    """Stand-in ``torch`` modules, so pickle can name torch's globals while writing."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    for name in ("FloatStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    for name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
        function = lambda *args: None  # noqa: E731
        function.__module__, function.__name__, function.__qualname__ = "torch._utils", name, name
        setattr(utils, name, function)
    torch._utils = utils
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield torch, utils
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, np.ascontiguousarray(array).reshape(-1)


class _Tensor:
    def __init__(self, rebuild, storage, shape, v2):
        self.rebuild, self.storage, self.shape, self.v2 = rebuild, storage, shape, v2

    def __reduce__(self):
        stride = tuple(int(np.prod(self.shape[i + 1 :])) for i in range(len(self.shape)))
        args = (self.storage, 0, self.shape, stride)
        return self.rebuild, args + ((False, collections.OrderedDict()) if self.v2 else ())


def write_torch_legacy(path, obj, v2=False, tail=None):
    """Write ``obj`` (NumPy arrays as tensors) as old-format torch.save does.

    ``v2`` names ``torch._utils._rebuild_tensor_v2`` (PyTorch >= 0.4) instead of
    ``_rebuild_tensor`` (what the upstream files use). ``tail``, if given, replaces
    the object pickle's bytes (to write hostile pickles).
    """
    with _torch_names() as (torch, utils):
        storages = []
        rebuild = utils._rebuild_tensor_v2 if v2 else utils._rebuild_tensor

        def wrap(value):
            if isinstance(value, np.ndarray):
                storages.append(_Storage(str(1000 + len(storages)), value))
                return _Tensor(rebuild, storages[-1], tuple(value.shape), v2)
            if isinstance(value, dict):
                return type(value)((k, wrap(v)) for k, v in value.items())
            return value

        class Pickler(pickle.Pickler):
            def persistent_id(self, item):
                if isinstance(item, _Storage):
                    kind = (
                        torch.FloatStorage if item.array.dtype == np.float32 else torch.LongStorage
                    )
                    return ("storage", kind, item.key, "cuda:0", item.array.size, None)
                return None

        with open(path, "wb") as f:
            for header in (
                converter._MAGIC,
                converter._PROTOCOL_VERSION,
                {
                    "protocol_version": 1001,
                    "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 4},
                },
            ):
                pickle.dump(header, f, protocol=2)
            if tail is not None:
                f.write(tail)
                return path
            Pickler(f, protocol=2).dump(wrap(obj))
            pickle.dump([s.key for s in storages], f, protocol=2)
            for storage in storages:
                f.write(np.int64(storage.array.size).tobytes())
                f.write(storage.array.astype(storage.array.dtype.newbyteorder("<")).tobytes())
    return path


def random_state_dict(depth=8, widths=(16, 32, 64), seed=0, num_batches_tracked=False):
    """An upstream ``resnet{depth}`` state dict (``module.`` keys) with random weights and
    BatchNorm statistics, named as their nn.Module names them."""
    rng = np.random.default_rng(seed)
    sd = collections.OrderedDict()

    def conv(name, out_c, in_c):
        sd[f"module.{name}.weight"] = rng.normal(0, np.sqrt(2 / (9 * in_c)), (out_c, in_c, 3, 3))

    def bn(name, c):
        sd[f"module.{name}.weight"] = rng.uniform(0.5, 1.5, c)
        sd[f"module.{name}.bias"] = rng.normal(0, 0.2, c)
        sd[f"module.{name}.running_mean"] = rng.normal(0, 0.3, c)
        sd[f"module.{name}.running_var"] = rng.uniform(0.3, 2.0, c)
        if num_batches_tracked:
            sd[f"module.{name}.num_batches_tracked"] = np.array(1234, "int64")

    conv("conv1", widths[0], 3)
    bn("bn1", widths[0])
    in_c = widths[0]
    for layer, width in enumerate(widths, start=1):
        for block in range((depth - 2) // 6):
            conv(f"layer{layer}.{block}.conv1", width, in_c)
            bn(f"layer{layer}.{block}.bn1", width)
            conv(f"layer{layer}.{block}.conv2", width, width)
            bn(f"layer{layer}.{block}.bn2", width)
            in_c = width
    sd["module.linear.weight"] = rng.normal(0, 0.5, (10, in_c))
    sd["module.linear.bias"] = rng.normal(0, 0.5, 10)
    return collections.OrderedDict(
        (k, v if v.dtype == np.int64 else v.astype("float32")) for k, v in sd.items()
    )


def synthetic_file(tmp_path, v2=False):
    """A depth-8 upstream file (one block per stage) with random weights: (path, state dict)."""
    sd = random_state_dict(num_batches_tracked=v2)
    path = write_torch_legacy(
        tmp_path / "resnet8.th", {"best_prec1": 12.5, "state_dict": sd}, v2=v2
    )
    return path, sd


# -- exactness ---------------------------------------------------------------------------
@pytest.mark.parametrize("v2", [False, True], ids=["rebuild_tensor", "rebuild_tensor_v2"])
def test_converted_model_matches_upstream_forward_in_float64(tmp_path, v2):
    source, sd = synthetic_file(tmp_path, v2=v2)
    out = converter.convert(source, 8, tmp_path / "resnet8_cifar10_test")
    model = from_pretrained(str(out))  # as a user loads it: raw 0..255 pixels in
    images = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3)).astype("uint8")
    expected = upstream_logits({k: v for k, v in sd.items() if "num_batches" not in k}, images)
    received = keras_logits(model, images)
    assert np.abs(expected).max() > 1.0  # the comparison sees real signal
    assert np.abs(received - expected).max() < 1e-4
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(images.astype("float32"))), _softmax(expected), atol=1e-5
    )
    assert verify_reference(out).allclose
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["ported_from"]["file_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert metadata["ported_from"]["stored_best_prec1"] == 12.5
    assert metadata["metrics"] is None and "Yerlan Idelbayev" in metadata["license_text"]


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_conversion_permutes_each_stage_stream_consistently():
    # Upstream's stage-2 stream is [8 zeros | stage 1's 16 channels | 8 zeros] on the
    # shortcut, ours [16 channels | 16 zeros]: our channel i is upstream's perm2[i].
    perm2 = np.r_[8:24, 0:8, 24:32]
    perm3 = np.r_[16 + perm2, 0:16, 48:64]
    sd = random_state_dict(depth=8)
    theirs = {k.removeprefix("module."): v for k, v in sd.items()}
    ours = converter.keras_weights(converter.check_state_dict(sd, 8), 8)
    np.testing.assert_array_equal(
        ours["stage2_block1/bn2/moving_mean"], theirs["layer2.0.bn2.running_mean"][perm2]
    )
    np.testing.assert_array_equal(
        ours["stage2_block1/conv2/kernel"],
        theirs["layer2.0.conv2.weight"].transpose(2, 3, 1, 0)[..., perm2],
    )
    np.testing.assert_array_equal(
        ours["stage3_block1/conv1/kernel"],
        theirs["layer3.0.conv1.weight"].transpose(2, 3, 1, 0)[:, :, perm2],
    )
    np.testing.assert_array_equal(ours["stage3_block1/bn1/gamma"], theirs["layer3.0.bn1.weight"])
    np.testing.assert_array_equal(ours["predictions/kernel"], theirs["linear.weight"].T[perm3])


# -- bad input: one clear line, nothing written ---------------------------------------------
def _run_cli(args, capsys):
    code = converter.main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, err


def _refused(tmp_path, capsys, source, depth=8, match=""):
    out = tmp_path / "out" / "resnet8_cifar10_bad"
    code, err = _run_cli([source, "--depth", depth, "--output", out], capsys)
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    assert match in err and "Received: " in err, err
    assert not (tmp_path / "out").exists()  # no partial output
    return err


def test_a_checkpoint_at_the_output_is_replaced_only_with_overwrite(tmp_path, capsys):
    source, _ = synthetic_file(tmp_path)
    out = tmp_path / "resnet8_cifar10_test"
    args = [source, "--depth", 8, "--output", out]
    assert _run_cli(args, capsys)[0] == 0
    written = {p.name: p.read_bytes() for p in out.iterdir()}
    code, err = _run_cli(args, capsys)
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "already holds a checkpoint" in err and "(--overwrite)" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == written
    # The card records the conversion command, which --overwrite does not change.
    assert _run_cli([*args, "--overwrite"], capsys)[0] == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == written


@pytest.mark.parametrize("where", ["in_the_pickle", "in_the_storages"])
def test_truncated_file_is_refused(tmp_path, capsys, where):
    source, _ = synthetic_file(tmp_path)
    data = source.read_bytes()
    source.write_bytes(data[:200] if where == "in_the_pickle" else data[:-1000])
    _refused(tmp_path, capsys, source, match=f"{source} is truncated")


def test_foreign_pickle_global_is_refused_not_executed(tmp_path, capsys, monkeypatch):
    marker = tmp_path / "ran"

    class Hostile:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    # pickle names os.system by its defining module (posix on Linux); name it os.system.
    hostile = pickle.dumps({"state_dict": Hostile()}, protocol=2)
    hostile = hostile.replace(f"c{os.system.__module__}\nsystem\n".encode(), b"cos\nsystem\n")
    assert b"cos\nsystem\n" in hostile
    source = write_torch_legacy(tmp_path / "hostile.th", None, tail=hostile)
    calls = []
    monkeypatch.setattr(os, "system", lambda *args: calls.append(args))
    err = _refused(tmp_path, capsys, source, match="names the Python global os.system")
    assert "refuses" in err and not calls and not marker.exists()


def test_missing_tensor_is_refused(tmp_path, capsys):
    sd = random_state_dict()
    del sd["module.layer2.0.bn1.running_var"]
    source = write_torch_legacy(tmp_path / "missing.th", {"state_dict": sd})
    _refused(tmp_path, capsys, source, match="layer2.0.bn1.running_var")


def test_extra_tensor_is_refused(tmp_path, capsys):
    sd = random_state_dict()
    sd["module.layer1.0.shortcut.0.weight"] = np.ones((16, 16, 1, 1), "float32")
    source = write_torch_legacy(tmp_path / "extra.th", {"state_dict": sd})
    _refused(tmp_path, capsys, source, match="layer1.0.shortcut.0.weight")


@pytest.mark.parametrize(
    "depth, widths, match",
    [
        (20, (16, 32, 64), "holds a depth-8 network"),  # the wrong --depth
        (8, (8, 16, 32), "conv1.weight has shape (8, 3, 3, 3)"),  # shapes that do not fit
        (21, (16, 32, 64), "depth=21"),  # not 6n+2
    ],
)
def test_depth_that_does_not_fit_is_refused(tmp_path, capsys, depth, widths, match):
    source = write_torch_legacy(
        tmp_path / "net.th", {"state_dict": random_state_dict(widths=widths)}
    )
    _refused(tmp_path, capsys, source, depth=depth, match=match)


# -- the bundled checkpoints ------------------------------------------------------------------
def test_ported_checkpoints_are_listed_with_their_provenance(capsys):
    from keras_resblocks.cli import main

    assert main(["list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    for name in PORTED:
        assert " ported " in lines[name], lines[name]
        pretrained = list_pretrained()[name]
        assert pretrained.ported_from.startswith("akamaster/pytorch_resnet_cifar10@")
        assert pretrained.command.startswith("python -m scripts.convert_pytorch_cifar ")
        entry = pretrained.entry
        assert entry["license"] == "bsd-2-clause"
        assert "not trained by this package" in entry["description"]


@pytest.mark.parametrize("name", PORTED)
def test_ported_checkpoint_loads_by_name_offline(name):
    depth = int(name[6:8])
    model = from_pretrained(name)
    assert model.architecture.stage_depths == ((depth - 2) // 6,) * 3
    assert model.preprocessing["mean"] == [0.485, 0.456, 0.406]
    assert model.architecture.bn_epsilon == 1e-5
    assert model.labels[0] == "airplane"
    directory = catalog.weights_root() / list_pretrained()[name].entry["bundled"]
    metadata = json.loads((directory / "metadata.json").read_text())
    card = (directory / "README.md").read_text()
    upstream = metadata["ported_from"]
    assert upstream["commit"] == converter.SOURCE_COMMIT and upstream["file"] == REAL_FILES[depth]
    assert upstream["file_sha256"].startswith(REAL_FILES[depth].split("-")[1][:8])
    assert upstream["readme_test_accuracy_percent"] == converter.UPSTREAM_README_ACCURACY[depth]
    assert metadata["license_text"] == converter.LICENSE_TEXT
    assert converter.LICENSE_TEXT.splitlines()[0] in card and "JPEG q75" in card
    assert (directory / "model.safetensors").stat().st_size < 4_000_000


# -- the real files (opt-in) -------------------------------------------------------------------
@pytest.fixture(scope="module")
def jpeg_test_images():
    if not JPEG_DATA.exists():
        pytest.skip(f"{JPEG_DATA} is not here")
    from keras_resblocks.training.data import load_dataset

    data = load_dataset(str(JPEG_DATA), validation=0)
    return data.x_test[::50]  # 200 images, 20 of each class


@pytest.mark.large
@pytest.mark.parametrize("depth", sorted(REAL_FILES))
def test_real_file_converts_exactly_and_is_the_bundled_checkpoint(
    tmp_path, depth, jpeg_test_images
):
    source = UPSTREAM / REAL_FILES[depth]
    if not source.exists():
        pytest.skip(f"{source} is not here")
    name = f"resnet{depth}_cifar10_akamaster"
    out = converter.convert(source, depth, tmp_path / name)
    sd = converter.read_torch_legacy(source)["state_dict"]
    expected = upstream_logits(sd, jpeg_test_images)
    received = keras_logits(from_pretrained(str(out)), jpeg_test_images)
    difference = np.abs(received - expected).max()
    print(
        f"{name}: max |logit difference| {difference:.3g} over {len(jpeg_test_images)} "
        f"images (largest |logit| {np.abs(expected).max():.3g})"
    )
    assert difference < 1e-4
    assert (expected.argmax(-1) == received.argmax(-1)).all()
    bundled = catalog.weights_root() / list_pretrained()[name].entry["bundled"]
    assert sha256_of(out / "model.safetensors") == sha256_of(bundled / "model.safetensors")
