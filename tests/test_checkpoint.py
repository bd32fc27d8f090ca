"""The checkpoint format: save_pretrained / load_checkpoint on real files."""

import json
import logging
import os
import stat

import keras
import numpy as np
import pytest
import safetensors.numpy
from tests._hubserver import tiny_model

from tests._helpers import rehash
from keras_resblocks import (
    CheckpointError,
    ChecksumError,
    MissingFileError,
    load_checkpoint,
    save_pretrained,
)
from keras_resblocks import checkpoints as checkpoint_module

IMAGES = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 3)).astype("float32")


def _weights(model):
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.variables}


def _randomize(model, seed=1):
    # Fresh BN statistics are 0/1: give every variable distinct values so a
    # load that skips one (or mixes two) shows up.
    rng = np.random.default_rng(seed)
    for v in model.variables:
        v.assign(rng.uniform(0.5, 1.5, v.shape).astype(v.dtype))
    return model


@pytest.fixture
def saved(tmp_path):
    model = _randomize(tiny_model())
    path = save_pretrained(
        model,
        tmp_path / "ckpt",
        labels=["cat", "dog", "eel"],
        dataset="cifar10",
        metrics={"accuracy": 0.5},
        command="python -m keras_resblocks.cli evaluate ckpt",
        recipe={"epochs": 1},
        seed=7,
    )
    return model, path


def test_round_trip_files_and_predictions(saved):
    model, path = saved
    assert sorted(p.name for p in path.iterdir()) == sorted(checkpoint_module.CHECKPOINT_FILES)
    config = json.loads((path / "config.json").read_text())
    assert config["format"] == "keras-resblocks" and config["format_version"] == 1
    assert config["model"] == {
        "include_top": True,
        "num_classes": 3,
        "pooling": None,
        "classifier_activation": "softmax",
        "input_shape": [8, 8, 3],
    }
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["sha256"] == checkpoint_module.sha256_of(path / "model.safetensors")
    assert metadata["backend"] == keras.backend.backend() and metadata["seed"] == 7
    tensors = safetensors.numpy.load_file(str(path / "model.safetensors"))
    assert sorted(tensors) == sorted(v.path for v in model.variables)  # trainable and not

    loaded = load_checkpoint(path)
    assert loaded.labels == ["cat", "dog", "eel"] and loaded.load_report.complete
    for name, value in _weights(model).items():
        np.testing.assert_array_equal(_weights(loaded)[name], value)
    np.testing.assert_allclose(
        loaded.predict(IMAGES, verbose=0), model.predict(IMAGES, verbose=0), rtol=1e-6
    )


def test_model_card(saved):
    from huggingface_hub import ModelCard

    _, path = saved
    card = ModelCard.load(path / "README.md")
    assert card.data.library_name == "keras-resblocks"
    assert card.data.datasets == ["cifar10"] and card.data.license == "apache-2.0"
    (result,) = card.data.eval_results
    assert (result.metric_type, result.metric_value, result.dataset_split) == (
        "accuracy",
        0.5,
        "test",
    )
    assert "python -m keras_resblocks.cli evaluate ckpt" in card.text
    assert "| accuracy | 0.5 |" in card.text and "`train` split of `cifar10`" in card.text


def test_metrics_need_the_command_that_measured_them(tmp_path):
    with pytest.raises(ValueError, match="command"):
        save_pretrained(tiny_model(), tmp_path / "x", metrics={"accuracy": 0.9})


@pytest.mark.parametrize("value", [None, float("nan"), "0.9", True])
def test_metrics_must_be_finite_numbers(tmp_path, value):
    with pytest.raises(ValueError, match=r"Metric 'val_accuracy' must be a finite number"):
        save_pretrained(
            tiny_model(), tmp_path / "x", metrics={"val_accuracy": value}, command="train.py"
        )
    assert not (tmp_path / "x").exists()


def test_card_names_the_split_each_metric_was_measured_on(tmp_path):
    from huggingface_hub import ModelCard

    path = save_pretrained(
        tiny_model(),
        tmp_path / "ckpt",
        dataset="cifar10",
        command="train.py",
        metrics={"train_accuracy": 0.99, "val_accuracy": 0.93, "test_accuracy": 0.92},
    )
    results = ModelCard.load(path / "README.md").data.eval_results
    assert {(r.metric_type, r.dataset_split) for r in results} == {
        ("train_accuracy", "train"),
        ("val_accuracy", "validation"),
        ("test_accuracy", "test"),
    }


def test_failed_save_leaves_the_old_checkpoint_intact(saved, monkeypatch):
    _, path = saved
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    def broken_writer(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", broken_writer)
    # One line (safetensors raises its own error type on a full disk; OSError here).
    with pytest.raises(CheckpointError, match=r"\(OSError: disk full\); nothing at its path"):
        save_pretrained(_randomize(tiny_model(), seed=2), path, overwrite=True)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt"]  # no temp dir left behind
    load_checkpoint(path)


def test_save_replaces_a_checkpoint_only_when_asked_and_never_other_directories(saved, tmp_path):
    _, path = saved
    new = _randomize(tiny_model(), seed=3)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    with pytest.raises(ValueError, match=r"already holds a checkpoint.*overwrite=True.*Received"):
        save_pretrained(new, path)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    save_pretrained(new, path, overwrite=True)
    np.testing.assert_array_equal(
        _weights(load_checkpoint(path))["stem_conv/kernel"], _weights(new)["stem_conv/kernel"]
    )
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"jpeg")
    with pytest.raises(ValueError, match="not a keras-resblocks checkpoint.*refusing to replace"):
        save_pretrained(new, other, overwrite=True)
    assert (other / "holiday.jpg").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert save_pretrained(new, empty) == empty


def test_new_num_classes_loads_all_but_the_head_and_says_so(saved, caplog):
    model, path = saved
    with caplog.at_level(logging.WARNING, logger="keras_resblocks"):
        loaded = load_checkpoint(path, num_classes=5)
    assert loaded.output_shape == (None, 5)
    report = loaded.load_report
    assert report.skipped == ("predictions/bias", "predictions/kernel") and not report.complete
    assert report.reinitialized == ("predictions/bias", "predictions/kernel")
    assert "predictions/kernel" in caplog.text and "num_classes=5" in caplog.text
    assert loaded.labels is None
    original, new = _weights(model), _weights(loaded)
    assert all(np.array_equal(new[k], original[k]) for k in report.loaded)
    assert len(report.loaded) == len(original) - 2


def test_feature_extractor_and_input_shape(saved):
    model, path = saved
    features = load_checkpoint(path, include_top=False, pooling="avg", input_shape=(16, 16, 3))
    assert features.output_shape == (None, 8)
    assert features.load_report.skipped == ("predictions/bias", "predictions/kernel")
    assert features.load_report.reinitialized == ()
    np.testing.assert_array_equal(
        _weights(features)["stage2_block1/conv2/kernel"],
        _weights(model)["stage2_block1/conv2/kernel"],
    )


def test_weight_keys_are_frozen(saved):
    # Renaming a layer would break every published checkpoint.
    _, path = saved
    keys = set(safetensors.numpy.load_file(str(path / "model.safetensors")))
    assert {
        "stem_conv/kernel",
        "stem_bn/moving_variance",
        "stage1_block1/conv1/kernel",
        "stage1_block1/bn2/gamma",
        "stage2_block1/shortcut_conv/kernel",
        "stage2_block1/shortcut_bn/moving_mean",
        "predictions/kernel",
    } <= keys


def test_shape_mismatch_names_the_first_mismatches_and_loads_nothing(saved):
    _, path = saved
    config = json.loads((path / "config.json").read_text())
    config["architecture"]["stage_widths"] = [4, 16]
    (path / "config.json").write_text(json.dumps(config))
    rehash(path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "stage2_block1/conv1/kernel: checkpoint (3,3,4,8) vs model (3,3,4,16)" in message
    assert "nothing was loaded" in message


def test_depth_mismatch_names_missing_weights(saved):
    _, path = saved
    config = json.loads((path / "config.json").read_text())
    config["architecture"]["stage_depths"] = [1, 2]
    (path / "config.json").write_text(json.dumps(config))
    rehash(path)
    with pytest.raises(
        CheckpointError, match="stage2_block2/conv1/kernel: missing from the checkpoint"
    ):
        load_checkpoint(path)


def test_bad_sha256_names_the_file_and_both_hashes(saved):
    _, path = saved
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    weights.write_bytes(bytes(data))
    expected = json.loads((path / "metadata.json").read_text())["sha256"]
    with pytest.raises(ChecksumError) as info:
        load_checkpoint(path)
    assert "model.safetensors" in str(info.value) and expected in str(info.value)
    assert checkpoint_module.sha256_of(weights) in str(info.value)
    with pytest.raises(ChecksumError, match="0" * 64):
        load_checkpoint(path, expected_sha256="0" * 64)


@pytest.mark.parametrize(
    "files", [["pytorch_model.bin"], ["tf_model.h5", "config.json"], ["model.keras"]]
)
def test_pickle_and_hdf5_are_refused(tmp_path, files):
    for name in files:
        (tmp_path / name).write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path)
    message = str(info.value)
    assert files[0] in message and "model.safetensors" in message and "config.json" in message


def test_missing_file_is_named_with_the_expected_ones(saved):
    _, path = saved
    (path / "metadata.json").unlink()
    with pytest.raises(MissingFileError) as info:
        load_checkpoint(path)
    assert "no metadata.json" in str(info.value)
    assert "['config.json', 'model.safetensors', 'metadata.json', 'README.md']" in str(info.value)


def _malicious_configs(sentinel):
    payload = f"open({str(sentinel)!r}, 'w').write('ran')"
    lambda_layer = keras.layers.Lambda(lambda x: exec(payload) or x, name="evil")
    keras_config = keras.saving.serialize_keras_object(lambda_layer)  # real marshalled bytecode
    return {
        "a keras Lambda config": keras_config,
        "a Lambda as the architecture": {
            "format": "keras-resblocks",
            "format_version": 1,
            "architecture": keras_config,
            "model": {},
            "preprocessing": None,
            "labels": None,
        },
        "an unknown class and module": {
            "format": "keras-resblocks",
            "format_version": 1,
            "class_name": "Lambda",
            "module": "os",
            "config": {"function": payload},
        },
        "code in an architecture field": {
            "format": "keras-resblocks",
            "format_version": 1,
            "architecture": dict(
                stage_depths=[1, 1],
                stage_widths=[4, 8],
                stage_strides=[1, 2],
                block=f"__import__('builtins').exec({payload!r})",
            ),
            "model": {
                "include_top": True,
                "num_classes": 3,
                "pooling": None,
                "classifier_activation": "softmax",
                "input_shape": [8, 8, 3],
            },
            "preprocessing": None,
            "labels": None,
        },
        "an activation naming a module": {
            "format": "keras-resblocks",
            "format_version": 1,
            "architecture": dict(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2]),
            "model": {
                "include_top": True,
                "num_classes": 3,
                "pooling": None,
                "classifier_activation": "os.system",
                "input_shape": [8, 8, 3],
            },
            "preprocessing": None,
            "labels": None,
        },
    }


def test_configs_that_name_code_are_refused_and_nothing_runs(saved, tmp_path, monkeypatch):
    _, path = saved
    # Positive control: unsafe Keras deserialization of the Lambda config does run
    # the payload, so the sentinel below would exist had the loader done that.
    control = tmp_path / "control.txt"
    layer = keras.saving.deserialize_keras_object(
        _malicious_configs(control)["a keras Lambda config"], safe_mode=False
    )
    layer(np.zeros((1, 2)))
    assert control.exists()

    deserialized = []
    monkeypatch.setattr(
        keras.saving, "deserialize_keras_object", lambda *a, **k: deserialized.append(a)
    )
    sentinel = tmp_path / "code_ran.txt"
    for case, config in _malicious_configs(sentinel).items():
        (path / "config.json").write_text(json.dumps(config))
        rehash(path)
        with pytest.raises(CheckpointError):
            load_checkpoint(path)
        assert not sentinel.exists(), case
    assert deserialized == []


# -- save and load share one schema ------------------------------------------------------
def _with_head(activation):
    from tests._hubserver import TINY

    from keras_resblocks import Architecture, ResNet

    return ResNet(
        Architecture(**TINY), num_classes=3, input_shape=(8, 8, 3), classifier_activation=activation
    )


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh"])
def test_save_refuses_a_classifier_activation_that_load_refuses(tmp_path, saved, activation):
    model = _with_head(activation)
    with pytest.raises(
        CheckpointError,
        match=rf"classifier_activation.*Received: classifier_activation='{activation}'",
    ):
        save_pretrained(model, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    # ... and load refuses the same value with the same message
    _, path = saved
    config = json.loads((path / "config.json").read_text())
    config["model"]["classifier_activation"] = activation
    (path / "config.json").write_text(json.dumps(config))
    rehash(path)
    with pytest.raises(CheckpointError, match=rf"Received: classifier_activation='{activation}'"):
        load_checkpoint(path)


def test_save_refuses_a_python_function_as_classifier_activation(tmp_path):
    with pytest.raises(CheckpointError, match="Invalid `model.classifier_activation`"):
        save_pretrained(_with_head(keras.activations.softmax), tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("activation", [None, "softmax", "sigmoid", "linear"])
def test_every_classifier_activation_save_accepts_loads(tmp_path, activation):
    model = _with_head(activation)
    path = save_pretrained(model, tmp_path / "x", metrics={"accuracy": 1.0}, command="test")
    loaded = load_checkpoint(path)
    assert loaded.classifier_activation == activation
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(IMAGES)),
        keras.ops.convert_to_numpy(model(IMAGES)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_load_refuses_metadata_save_would_not_write(saved):
    _, path = saved
    metadata = json.loads((path / "metadata.json").read_text())
    for change, message in [
        ({"metrics": {"accuracy": "high"}}, "Metric 'accuracy' must be a finite"),
        ({"command": ["train.py"]}, "`command` must be null or the command line"),
        ({"sha256": "abc"}, "64 hex digits"),
        ({"reference": {"file": "other.bin"}}, "`reference` in metadata.json"),
    ]:
        (path / "metadata.json").write_text(json.dumps({**metadata, **change}))
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_have_the_usual_permissions_under_the_umask(umask, tmp_path):
    path = save_pretrained(tiny_model(), tmp_path / "tiny", reference_inputs=IMAGES)
    assert _mode(path) == 0o777 & ~umask  # 0755 under 022, not mkdtemp's 0700
    files = sorted(p.name for p in path.iterdir())
    assert "reference.safetensors" in files and "README.md" in files
    assert {name: _mode(path / name) for name in files} == dict.fromkeys(files, 0o666 & ~umask)
    # Replacing an existing checkpoint keeps to the same rule.
    save_pretrained(tiny_model(), path, overwrite=True)
    assert _mode(path) == 0o777 & ~umask and _mode(path / "config.json") == 0o666 & ~umask


def test_a_writer_killed_between_the_two_renames_loses_no_checkpoint(saved, tmp_path):
    """A real process is killed (SIGKILL) right after it moved the old checkpoint aside and
    before the new one took its place; the next load finds the old one at its path, and the
    next write cleans up and replaces it."""
    import shutil
    import subprocess
    import sys

    target = tmp_path / "written" / "run"
    shutil.copytree(saved[1], target)
    before = load_checkpoint(target).get_weights()
    script = f"""
import os, signal
import keras_resblocks.checkpoints.io as io
from keras_resblocks import load_checkpoint, save_pretrained
model = load_checkpoint({str(target)!r})
real = os.replace
calls = []
def replace(a, b):
    calls.append((a, b))
    real(a, b)
    if len(calls) == 1:  # the old checkpoint is aside, the new one not yet in place
        os.kill(os.getpid(), signal.SIGKILL)
io.os.replace = replace
for v in model.weights:
    v.assign(v + 1.0)
save_pretrained(model, {str(target)!r}, overwrite=True)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    assert not target.exists()
    leftovers = sorted(p.name.split("-")[0] for p in target.parent.iterdir())
    assert leftovers == [".run.old", ".run.tmp"]

    model = load_checkpoint(target)  # restored from where the killed writer put it
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in target.parent.iterdir()) == ["run"]  # leftovers deleted
    save_pretrained(model, target, overwrite=True)
    assert sorted(p.name for p in target.parent.iterdir()) == ["run"]


def test_finite_weights_whose_outputs_overflow_are_refused_at_load(tmp_path):
    """Every weight finite, the head's scaled by 1e38: the logits overflow. The checkpoint's
    own reference images, run at load, show that it cannot compute."""
    from keras_resblocks.checkpoints.io import sha256_of

    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype="uint8")
    model = tiny_model()
    path = save_pretrained(model, tmp_path / "ckpt", reference_inputs=images)
    assert load_checkpoint(path).load_report.complete
    tensors = safetensors.numpy.load_file(str(path / "model.safetensors"))
    tensors["predictions/kernel"] = tensors["predictions/kernel"] * np.float32(1e38)
    assert all(np.isfinite(t).all() for t in tensors.values())
    safetensors.numpy.save_file(tensors, str(path / "model.safetensors"))
    metadata = json.loads((path / "metadata.json").read_text())
    metadata["sha256"] = sha256_of(path / "model.safetensors")
    (path / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(CheckpointError, match="outputs on its own reference images are not"):
        load_checkpoint(path)
