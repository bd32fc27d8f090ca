"""Checkpoints written before the checkpoint package still load, and the old imports still work."""

import hashlib
import json
import subprocess
import sys
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
from keras_resblocks.checkpoints import registry as registry_module

# Written by the code of main at 19cc804 (tests/fixtures/make_resnet8_v1.py), before
# the format had one owner; kept byte for byte.
OLD = Path(__file__).parent / "fixtures" / "resnet8_v1"


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
    # Newer: the sha256 of config.json and README.md, appended after the old keys.
    assert set(now.pop("files")) == {"config.json", "README.md"} and "files" not in old
    assert list(now) == list(old) and now == old  # the same keys, in the same order
    assert sorted(p.name for p in new.iterdir()) == sorted(p.name for p in OLD.iterdir())


def test_its_files_are_what_the_old_code_wrote():
    metadata = json.loads((OLD / "metadata.json").read_text())
    assert (
        hashlib.sha256((OLD / "model.safetensors").read_bytes()).hexdigest() == metadata["sha256"]
    )
    assert metadata["sha256"] == "5a5c9f5ad79b67fadbdb9f4f5590727b87e12beaac41fc65c0aaaf580d9f0c23"


@pytest.mark.parametrize(
    "name", sorted(n for n, e in list_pretrained().items() if e.get("bundled"))
)
def test_the_bundled_checkpoints_load_unchanged(name):
    directory = Path(str(registry_module.weights_root() / list_pretrained()[name]["bundled"]))
    before = _hashes(directory)
    model = from_pretrained(name)
    assert model.load_report.complete and model.load_report.provenance.kind == "bundled"
    assert model.load_report.sha256 == list_pretrained()[name]["sha256"]
    assert _hashes(directory) == before


def test_the_old_import_paths_still_work_and_say_where_the_names_went():
    # A fresh interpreter: the deprecation warnings are given on first import only.
    script = (
        "import warnings\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "import keras_resblocks\n"
        "try:\n"
        "    import keras_resblocks.checkpoint\n"
        "except DeprecationWarning as w:\n"
        "    print('checkpoint:', w)\n"
        "warnings.simplefilter('ignore', DeprecationWarning)\n"
        "from keras_resblocks.checkpoint import (CHECKPOINT_FILES, CheckpointError, LoadReport,\n"
        "    load_checkpoint, read_config, read_metadata, read_reference, save_pretrained,\n"
        "    sha256_of, verify_reference, verify_sha256)\n"
        "assert load_checkpoint is keras_resblocks.load_checkpoint\n"
        "assert verify_reference is keras_resblocks.verify_reference\n"
        f"arch, kwargs, labels = read_config({str(OLD / 'config.json')!r})\n"
        "assert labels == ['cat', 'dog', 'eel'] and kwargs['input_shape'] == (8, 8, 3)\n"
        f"assert read_metadata({str(OLD / 'metadata.json')!r})['seed'] == 7\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "from keras_resblocks import hub\n"
        "try:\n"
        "    hub.from_pretrained\n"
        "except DeprecationWarning as w:\n"
        "    print('hub:', w)\n"
        "warnings.simplefilter('ignore', DeprecationWarning)\n"
        "assert hub.from_pretrained is keras_resblocks.from_pretrained\n"
        "assert hub.import_keras_applications is keras_resblocks.import_keras_applications\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("checkpoint:") and "keras_resblocks.checkpoints" in line for line in lines
    ), lines
    assert any(
        line.startswith("hub:") and "keras_resblocks.pretrained.from_pretrained" in line
        for line in lines
    ), lines


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
