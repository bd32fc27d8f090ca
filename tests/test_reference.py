"""The reference batch: every checkpoint proves, on any backend, that it computes what it did.

The CI check is ``test_bundled_checkpoint_reproduces_its_reference``: each bundled
checkpoint of ``weights/catalog.json`` that has a ``reference.safetensors`` is loaded
on the backend the suite runs on (CI runs it on TensorFlow and on JAX) and must
reproduce the outputs stored when it was written. The other tests exercise the
mechanism on tiny checkpoints, across backends in a subprocess.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import safetensors.numpy

from keras_resblocks import (
    Architecture,
    ChecksumError,
    MissingFileError,
    ReferenceMismatchError,
    ResNet,
    from_pretrained,
    load_checkpoint,
    save_pretrained,
    verify_reference,
)
from keras_resblocks.checkpoints import catalog as registry_module
from keras_resblocks.checkpoints import REFERENCE_FILE, read_reference, sha256_of
from tests._helpers import rewrite_reference

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2], stem_width=4)
PREPROCESSING = {"scale": 1 / 255, "mean": [0.5, 0.4, 0.3], "std": [0.25, 0.25, 0.2]}
OTHER_BACKEND = {"tensorflow": "jax", "jax": "tensorflow"}


# -- the CI check over the bundled checkpoints -------------------------------------------
def bundled_with_reference(root=None):
    """Registry names whose bundled checkpoint directory holds a reference batch."""
    root = root if root is not None else registry_module.weights_root()
    return sorted(
        name
        for name, entry in registry_module.entries().items()
        if entry.get("bundled") and (root / entry["bundled"] / REFERENCE_FILE).is_file()
    )


_BUNDLED = bundled_with_reference()


@pytest.mark.parametrize("name", _BUNDLED or ["(none)"])
def test_bundled_checkpoint_reproduces_its_reference(name):
    if not _BUNDLED:
        pytest.skip(
            "no entry of weights/catalog.json has a bundled checkpoint with a "
            f"{REFERENCE_FILE} yet, so there is nothing to check on "
            f"{keras.backend.backend()}"
        )
    # The batches were recorded on another machine. Verified on a 2-core AMD EPYC (Zen 4)
    # with TensorFlow's oneDNN kernels, without them (TF_ENABLE_ONEDNN_OPTS=0) and on JAX,
    # every bundled checkpoint's logits differ by at most 1.1e-5, 90 times under the default
    # tolerance (atol=rtol=1e-3, docs/checkpoints.md).
    report = verify_reference(name)  # raises, naming the checkpoint, beyond tolerance
    assert report.allclose and report.backend == keras.backend.backend()


def test_the_ci_check_finds_and_verifies_a_bundled_reference(tmp_path, monkeypatch):
    """The check above, on a private registry that does have such an entry."""
    root = tmp_path / "weights"
    bundled = write_reference_checkpoint(root / "tiny_ref")
    save_pretrained(_tiny(), root / "tiny_plain")  # bundled, without a reference
    entry = {"architecture": "resnet20", "dataset": "synthetic", "metrics": None, "hub": None}
    registry = {
        "format_version": 1,
        "checkpoints": {
            "tiny_ref": dict(
                entry, bundled="tiny_ref", sha256=sha256_of(bundled / "model.safetensors")
            ),
            "tiny_plain": dict(
                entry,
                bundled="tiny_plain",
                sha256=sha256_of(root / "tiny_plain" / "model.safetensors"),
            ),
        },
    }
    (root / "catalog.json").write_text(json.dumps(registry))
    monkeypatch.setattr(registry_module, "weights_root", lambda: root)
    assert bundled_with_reference() == ["tiny_ref"]
    report = verify_reference("tiny_ref")
    assert report.allclose and report.source == "tiny_ref" and report.num_inputs == 4


# -- a tiny checkpoint with a reference batch --------------------------------------------
def _tiny(**kwargs):
    return ResNet(
        Architecture(**TINY),
        num_classes=3,
        input_shape=(8, 8, 3),
        preprocessing=PREPROCESSING,
        **kwargs,
    )


def _set_weights(model, seed):
    """Trained-looking weights from a numpy generator: the same on every backend."""
    rng = np.random.default_rng(seed)
    for v in sorted(model.variables, key=lambda v: v.path):
        shape, leaf = tuple(v.shape), v.path.rsplit("/", 1)[-1]
        if leaf == "kernel":
            value = rng.normal(0, np.sqrt(2 / np.prod(shape[:-1])), shape)
        elif leaf in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        else:  # beta, bias, moving_mean
            value = rng.normal(0, 0.2, shape)
        v.assign(value.astype("float32"))
    return model


def reference_images(count=4):
    return np.random.default_rng(7).integers(0, 256, (count, 8, 8, 3), dtype="uint8")


def write_reference_checkpoint(directory, seed=0):
    """The same tiny checkpoint, with a reference batch, on whatever backend runs this."""
    return save_pretrained(
        _set_weights(_tiny(), seed),
        directory,
        labels=["a", "b", "c"],
        reference_inputs=reference_images(),
    )


@pytest.fixture
def checkpoint(tmp_path):
    return write_reference_checkpoint(tmp_path / "ckpt")


def test_the_reference_file_and_its_record(checkpoint):
    metadata = json.loads((checkpoint / "metadata.json").read_text())
    record = metadata["reference"]
    assert record == {
        "file": REFERENCE_FILE,
        "sha256": sha256_of(checkpoint / REFERENCE_FILE),
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "num_inputs": 4,
        "tensors": ["inputs", "logits", "outputs"],
    }
    tensors = safetensors.numpy.load_file(str(checkpoint / REFERENCE_FILE))
    assert tensors["inputs"].dtype == np.uint8
    np.testing.assert_array_equal(tensors["inputs"], reference_images())
    assert tensors["outputs"].dtype == tensors["logits"].dtype == np.float32
    # The stored outputs are the head's activation (softmax) of the stored logits.
    logits = tensors["logits"].astype("float64")
    softmax = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(
        tensors["outputs"], softmax / softmax.sum(-1, keepdims=True), atol=1e-6
    )
    assert "## Reference batch" in (checkpoint / "README.md").read_text()
    loaded = load_checkpoint(checkpoint)
    assert loaded.load_report.reference_sha256 == record["sha256"]
    np.testing.assert_allclose(
        loaded.predict(tensors["inputs"].astype("float32"), verbose=0),
        tensors["outputs"],
        atol=1e-6,
    )


def test_verify_on_the_same_backend(checkpoint):
    report = verify_reference(checkpoint)
    assert report.allclose and report.max_abs_diff < 1e-6
    assert set(report.diffs) == {"outputs", "logits"}
    assert report.backend == report.recorded_backend == keras.backend.backend()
    # A model already loaded (whole, in float32) is checked as it is.
    assert verify_reference(load_checkpoint(checkpoint)).allclose
    with pytest.raises(ValueError, match="loaded whole"):
        verify_reference(load_checkpoint(checkpoint, num_classes=5))
    with pytest.raises(ValueError, match=r"shaped like the model input \(None, 16, 16, 3\)"):
        verify_reference(load_checkpoint(checkpoint, input_shape=(16, 16, 3)))


def test_a_mixed_precision_model_gets_a_float32_reference(tmp_path):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = _set_weights(_tiny(), 0)  # as the trainer builds it for bfloat16 runs
        bf16_outputs = keras.ops.convert_to_numpy(model(reference_images().astype("float32")))
        path = save_pretrained(model, tmp_path / "ckpt", reference_inputs=reference_images())
        assert keras.config.dtype_policy().name == "mixed_bfloat16"  # left as it was
        report = verify_reference(path)  # loaded in float32 whatever the global policy
        with pytest.raises(ValueError, match="bfloat16"):
            verify_reference(load_checkpoint(path))
    finally:
        keras.config.set_dtype_policy(previous)
    assert report.allclose and report.max_abs_diff < 1e-6
    outputs = safetensors.numpy.load_file(str(path / REFERENCE_FILE))["outputs"]
    assert np.abs(outputs - bf16_outputs).max() > 1e-4  # not the bfloat16 model's outputs


def test_across_backends(tmp_path):
    """Written here and verified on the other backend (in a subprocess), and the reverse."""
    here, there = keras.backend.backend(), OTHER_BACKEND.get(keras.backend.backend())
    if there is None:
        pytest.skip(f"no other backend to compare {here} with")
    ours = write_reference_checkpoint(tmp_path / f"written_on_{here}")
    theirs = tmp_path / f"written_on_{there}"
    script = (
        "import dataclasses, json, sys\n"
        "from tests.test_reference import write_reference_checkpoint\n"
        "from keras_resblocks import verify_reference\n"
        "write_reference_checkpoint(sys.argv[2])\n"
        "print(json.dumps(dataclasses.asdict(verify_reference(sys.argv[1]))))\n"
    )
    env = dict(os.environ, KERAS_BACKEND=there, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", script, str(ours), str(theirs)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    verified_there = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (verified_there["recorded_backend"], verified_there["backend"]) == (here, there)
    assert verified_there["allclose"], verified_there

    verified_here = verify_reference(theirs)
    assert (verified_here.recorded_backend, verified_here.backend) == (there, here)
    assert verified_here.allclose, dataclasses.asdict(verified_here)
    # Same weights, byte for byte: the two backends computed from identical checkpoints.
    assert sha256_of(ours / "model.safetensors") == sha256_of(theirs / "model.safetensors")
    print(f"max |difference| {here} vs {there}: {verified_here.diffs} / {verified_there['diffs']}")


# -- tampering and absence ---------------------------------------------------------------
def test_changed_outputs_are_a_clear_error(checkpoint):
    def nudge(tensors):
        tensors["logits"][2, 1] += 0.05

    rewrite_reference(checkpoint, nudge)
    assert load_checkpoint(checkpoint).load_report.complete  # the weights are fine
    with pytest.raises(ReferenceMismatchError) as info:
        verify_reference(checkpoint)
    message = str(info.value)
    assert str(checkpoint) in message and "`logits` differ by up to 0.05" in message
    assert f"on the {keras.backend.backend()} backend" in message
    report = verify_reference(checkpoint, raise_on_mismatch=False)
    assert not report.allclose and report.diffs["logits"] == pytest.approx(0.05, abs=1e-5)
    assert report.diffs["outputs"] < 1e-6
    assert verify_reference(checkpoint, atol=0.1).allclose  # the tolerance is the caller's


def test_the_error_names_the_output_out_of_tolerance_not_the_largest_difference(checkpoint):
    def nudge(tensors):
        logits = tensors["logits"]
        row, col = np.unravel_index(np.abs(logits).argmax(), logits.shape)
        # Within atol + rtol * |logit| for the largest logit, yet larger than the change below.
        logits[row, col] += 0.9 * (1e-3 + 1e-3 * abs(float(logits[row, col])))
        tensors["outputs"][0, 1] += 0.003

    rewrite_reference(checkpoint, nudge)
    report = verify_reference(checkpoint, raise_on_mismatch=False)
    assert report.diffs["logits"] > report.diffs["outputs"] > 0.0029 and not report.allclose
    assert report.max_abs_diff == report.diffs["logits"]
    with pytest.raises(ReferenceMismatchError, match=r"`outputs` differ by up to 0\.003 "):
        verify_reference(checkpoint)


def test_changed_bytes_are_a_checksum_error(checkpoint):
    data = bytearray((checkpoint / REFERENCE_FILE).read_bytes())
    data[-1] ^= 0xFF
    (checkpoint / REFERENCE_FILE).write_bytes(bytes(data))
    expected = json.loads((checkpoint / "metadata.json").read_text())["reference"]["sha256"]
    for check in (load_checkpoint, verify_reference):
        with pytest.raises(ChecksumError, match=f"{REFERENCE_FILE}: expected {expected}"):
            check(checkpoint)


def test_a_checkpoint_without_reference_loads_and_says_it_has_none(tmp_path, checkpoint):
    plain = save_pretrained(_tiny(), tmp_path / "plain")
    assert not (plain / REFERENCE_FILE).exists()
    assert "reference" not in json.loads((plain / "metadata.json").read_text())
    assert from_pretrained(str(plain)).load_report.reference_sha256 is None
    with pytest.raises(MissingFileError, match="records none. Write one"):
        verify_reference(plain)
    # A reference file that metadata.json does not record is not trusted...
    (plain / REFERENCE_FILE).write_bytes((checkpoint / REFERENCE_FILE).read_bytes())
    assert load_checkpoint(plain).load_report.reference_sha256 is None
    with pytest.raises(MissingFileError, match="not recorded"):
        verify_reference(plain)
    # ...and a recorded one that was not copied leaves the model loadable.
    (checkpoint / REFERENCE_FILE).unlink()
    assert load_checkpoint(checkpoint).load_report.complete
    with pytest.raises(MissingFileError, match=f"has no {REFERENCE_FILE}, though"):
        read_reference(checkpoint)


@pytest.mark.parametrize(
    "inputs, message",
    [
        (np.zeros((2, 16, 16, 3), "uint8"), r"shaped like the model input \(None, 8, 8, 3\)"),
        (np.zeros((0, 8, 8, 3), "uint8"), "1 to 64 images"),
        (np.zeros((65, 8, 8, 3), "uint8"), "1 to 64 images"),
        (np.zeros((2, 8, 8, 3), "int64"), "uint8 or floating-point"),
        (np.full((2, 8, 8, 3), np.nan, "float32"), "finite"),
    ],
)
def test_bad_reference_inputs_are_refused_before_writing(tmp_path, inputs, message):
    with pytest.raises(ValueError, match=message):
        save_pretrained(_tiny(), tmp_path / "ckpt", reference_inputs=inputs)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_reference_leaves_the_old_checkpoint_intact(checkpoint):
    before = {p.name: p.read_bytes() for p in checkpoint.iterdir()}
    # Finite weights whose outputs overflow: the reference batch cannot be computed.
    broken = _set_weights(_tiny(), 1)
    kernel = broken.get_layer("predictions").kernel
    kernel.assign(np.full(kernel.shape, 3e38, "float32"))
    with pytest.raises(ValueError, match="on `reference_inputs` are not all finite"):
        save_pretrained(broken, checkpoint, reference_inputs=reference_images(), overwrite=True)
    assert {p.name: p.read_bytes() for p in checkpoint.iterdir()} == before
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["ckpt"]  # no staging left
    assert verify_reference(checkpoint).allclose
