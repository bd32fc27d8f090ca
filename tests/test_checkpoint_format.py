"""The checkpoint format is frozen: a checkpoint written by earlier code loads and saves to the
same bytes, the bundled checkpoints load unchanged, and a config without a hash is refused."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from keras_resblocks import (
    from_pretrained,
    list_pretrained,
    load_checkpoint,
    save_pretrained,
    verify_reference,
)
from keras_resblocks.checkpoints import catalog as registry_module

# Written by the code of 19cc804 (tests/fixtures/make_resnet8.py); its config.json and
# model.safetensors are kept byte for byte.
OLD = Path(__file__).parent / "fixtures" / "resnet8"


def _hashes(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_a_checkpoint_written_by_the_old_code_loads_and_reproduces_its_outputs():
    before = _hashes(OLD)
    model = load_checkpoint(OLD)
    assert model.load_report.complete and model.labels == ["cat", "dog", "eel"]
    assert model.output_shape == (None, 3) and model.architecture.stage_widths == (4, 8, 16)
    assert model.preprocessing["mean"] == [0.5, 0.5, 0.5]
    report = verify_reference(str(OLD))  # the outputs the old code recorded
    assert (
        report.allclose and report.num_inputs == 2 and sorted(report.diffs) == ["logits", "outputs"]
    )
    features = from_pretrained(OLD, include_top=False, pooling="avg")
    assert features.output_shape == (None, 16)
    assert _hashes(OLD) == before  # loading writes nothing


def test_saving_it_again_writes_the_same_files(tmp_path):
    from safetensors.numpy import load_file

    model = load_checkpoint(OLD)
    images = load_file(str(OLD / "reference.safetensors"))["inputs"]
    new = save_pretrained(
        model,
        tmp_path / "resnet8_v1",
        labels=model.labels,
        dataset="synthetic",
        metrics={"accuracy": 0.5},
        command="keras-resblocks evaluate resnet8_v1",
        recipe={"epochs": 1},
        reference_inputs=images,
        model_name="resnet8_v1",
        seed=7,
    )
    for name in ["config.json", "model.safetensors"]:
        assert (new / name).read_bytes() == (OLD / name).read_bytes(), name
    # What depends on where it runs: the Keras version, the backend, and the reference
    # outputs computed on that backend (equal to rounding; verify_reference checks them).
    old, now = (json.loads((d / "metadata.json").read_text()) for d in (OLD, new))
    for key in ["keras_version", "backend"]:
        old.pop(key), now.pop(key)
    for key in ["sha256", "backend", "keras_version"]:
        old["reference"].pop(key), now["reference"].pop(key)
    assert now.pop("files")["config.json"] == old.pop("files")["config.json"]
    assert list(now) == list(old) and now == old  # the same keys, in the same order
    assert sorted(p.name for p in new.iterdir()) == sorted(p.name for p in OLD.iterdir())


def test_its_files_are_what_the_old_code_wrote():
    metadata = json.loads((OLD / "metadata.json").read_text())
    assert (
        hashlib.sha256((OLD / "model.safetensors").read_bytes()).hexdigest() == metadata["sha256"]
    )
    assert metadata["sha256"] == "5a5c9f5ad79b67fadbdb9f4f5590727b87e12beaac41fc65c0aaaf580d9f0c23"


@pytest.mark.parametrize(
    "name", sorted(n for n, e in list_pretrained().items() if e.source == "bundled")
)
def test_the_bundled_checkpoints_load_unchanged(name):
    directory = Path(str(registry_module.weights_root() / list_pretrained()[name].entry["bundled"]))
    before = _hashes(directory)
    model = from_pretrained(name)
    assert model.load_report.complete and model.load_report.provenance.kind == "bundled"
    assert model.load_report.sha256 == list_pretrained()[name].entry["sha256"]
    assert _hashes(directory) == before


def test_a_checkpoint_whose_config_has_no_hash_is_refused(tmp_path):
    import shutil

    from keras_resblocks import ChecksumError

    copy = tmp_path / "resnet8"
    shutil.copytree(OLD, copy)
    metadata = json.loads((copy / "metadata.json").read_text())
    del metadata["files"]["config.json"]
    (copy / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ChecksumError, match="records no sha256 for config.json"):
        load_checkpoint(copy)


def test_the_modules_that_only_re_exported_are_gone():
    import importlib

    from keras_resblocks import hub

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("keras_resblocks.checkpoint")
    assert not hasattr(hub, "from_pretrained")


def test_the_public_api_is_unchanged():
    import keras_resblocks

    for name in [
        "from_pretrained",
        "save_pretrained",
        "load_checkpoint",
        "verify_reference",
        "list_pretrained",
        "push_to_hub",
        "validate_checkpoint_dir",
        "import_keras_applications",
        "port_keras_applications",
        "CheckpointError",
        "ChecksumError",
        "MissingFileError",
        "ReferenceMismatchError",
        "CheckpointNotFoundError",
        "HubUnavailableError",
        "LoadReport",
        "ReferenceReport",
        "resolve",
    ]:
        assert hasattr(keras_resblocks, name), name
    np.testing.assert_equal(issubclass(keras_resblocks.HubUnavailableError, ConnectionError), True)
