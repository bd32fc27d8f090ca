"""from_pretrained against a real HTTP server on 127.0.0.1, through the real huggingface_hub client."""

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from tests._hubserver import fake_hub, tiny_model  # noqa: F401  (fake_hub is a fixture)

from keras_resblocks import (
    CheckpointError,
    CheckpointNotFoundError,
    ChecksumError,
    HubUnavailableError,
    MissingFileError,
    Pretrained,
    create_model,
    from_pretrained,
    list_pretrained,
    parameter_count,
    save_pretrained,
)
from keras_resblocks.checkpoints import catalog as registry_module
from keras_resblocks import verify_reference
from keras_resblocks.checkpoints import REFERENCE_FILE, sha256_of

REPO = "owner/tiny"


def _checkpoint(tmp_path, name="ckpt", seed=0, **kwargs):
    model = tiny_model(**kwargs)
    rng = np.random.default_rng(seed)
    for v in model.variables:
        v.assign(rng.uniform(0.5, 1.5, v.shape).astype(v.dtype))
    return model, save_pretrained(model, tmp_path / name)


def _kernel(model):
    return keras.ops.convert_to_numpy(model.get_layer("stem_conv").kernel)


def _files(directory):
    return {p.name: p.read_bytes() for p in Path(directory).iterdir()}


def test_download_and_load(fake_hub, tmp_path):
    model, path = _checkpoint(tmp_path)
    commit = fake_hub.commit_dir(REPO, path)
    loaded = from_pretrained(f"hf://{REPO}")
    np.testing.assert_array_equal(_kernel(loaded), _kernel(model))
    # The default cache is HF_HOME/hub, and everything was fetched at the resolved commit.
    assert (
        Path(loaded.load_report.source)
        == tmp_path / "hf_home" / "hub" / "models--owner--tiny" / "snapshots" / commit
    )
    resolves = [p for m, p in fake_hub.requests if "/resolve/" in p]
    assert resolves and all(f"/resolve/{commit}/" in p for p in resolves)
    # No reference batch recorded: none is asked for, and the model loads without it.
    assert not any(p.endswith(REFERENCE_FILE) for p in resolves)
    assert loaded.load_report.reference_sha256 is None


def test_second_load_offline_makes_no_request(fake_hub, tmp_path):
    _, path = _checkpoint(tmp_path)
    fake_hub.commit_dir(REPO, path)
    from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")
    before = fake_hub.count()
    fake_hub.set_env(HF_HUB_OFFLINE=1)
    loaded = from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")
    assert fake_hub.count() == before
    assert loaded.load_report.complete


def test_reference_batch_is_downloaded_verified_and_cached(fake_hub, tmp_path):
    from tests.test_reference import write_reference_checkpoint

    path = write_reference_checkpoint(tmp_path / "ckpt")
    fake_hub.commit_dir(REPO, path)
    report = verify_reference(f"hf://{REPO}")
    assert report.allclose and report.source == f"hf://{REPO}" and report.num_inputs == 4
    loaded = from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")
    assert (Path(loaded.load_report.source) / REFERENCE_FILE).read_bytes() == (
        path / REFERENCE_FILE
    ).read_bytes()
    assert loaded.load_report.reference_sha256 == sha256_of(path / REFERENCE_FILE)
    # Cached with the rest: checked again offline, without a request.
    before = fake_hub.count()
    fake_hub.set_env(HF_HUB_OFFLINE=1)
    offline = from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")
    assert verify_reference(offline).allclose and fake_hub.count() == before


def test_reference_batch_tampered_on_the_hub_or_missing(fake_hub, tmp_path, caplog):
    from tests.test_reference import write_reference_checkpoint

    path = write_reference_checkpoint(tmp_path / "ckpt")
    files = _files(path)
    reference = bytearray(files[REFERENCE_FILE])
    reference[-1] ^= 0xFF
    fake_hub.commit(REPO, dict(files, **{REFERENCE_FILE: bytes(reference)}))
    with pytest.raises(ChecksumError, match=f"{REFERENCE_FILE}.*force_download=True"):
        from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")
    # metadata.json records a reference the repo lacks: the model still loads, and says so.
    del files[REFERENCE_FILE]
    fake_hub.commit(REPO, files)
    with caplog.at_level("WARNING", logger="keras_resblocks"):
        loaded = from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")
    assert loaded.load_report.complete and loaded.load_report.reference_sha256 is None
    assert REFERENCE_FILE in caplog.text and "loads without it" in caplog.text
    with pytest.raises(MissingFileError, match=f"has no {REFERENCE_FILE}"):
        verify_reference(loaded)


def test_pinned_revision_keeps_the_old_bytes_after_main_moved(fake_hub, tmp_path):
    old_model, old = _checkpoint(tmp_path, "old", seed=0)
    new_model, new = _checkpoint(tmp_path, "new", seed=1)
    old_commit = fake_hub.commit_dir(REPO, old)
    fake_hub.commit_dir(REPO, old, branch="v1")
    fake_hub.commit_dir(REPO, new)  # main moves
    for source, revision in [(f"hf://{REPO}@{old_commit}", None), (f"hf://{REPO}", "v1")]:
        pinned = from_pretrained(source, revision=revision, cache_dir=tmp_path / "cache")
        np.testing.assert_array_equal(_kernel(pinned), _kernel(old_model))
    latest = from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(_kernel(latest), _kernel(new_model))


def test_truncated_file_in_the_repo(fake_hub, tmp_path):
    _, path = _checkpoint(tmp_path)
    files = _files(path)
    files["model.safetensors"] = files["model.safetensors"][:-100]
    fake_hub.commit(REPO, files)
    with pytest.raises(ChecksumError, match="model.safetensors"):
        from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")


def test_right_size_wrong_sha256(fake_hub, tmp_path):
    _, path = _checkpoint(tmp_path)
    files = _files(path)
    weights = bytearray(files["model.safetensors"])
    weights[-1] ^= 0xFF
    files["model.safetensors"] = bytes(weights)
    fake_hub.commit(REPO, files)
    with pytest.raises(ChecksumError) as info:
        from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert json.loads(files["metadata.json"])["sha256"] in message
    import hashlib

    assert hashlib.sha256(files["model.safetensors"]).hexdigest() in message
    assert "force_download=True" in message


def test_file_corrupted_in_the_cache_is_caught_and_force_download_recovers(fake_hub, tmp_path):
    model, path = _checkpoint(tmp_path)
    fake_hub.commit_dir(REPO, path)
    loaded = from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")
    cached = Path(loaded.load_report.source) / "model.safetensors"
    blob = cached.resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="force_download=True"):
        from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")
    repaired = from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache", force_download=True)
    np.testing.assert_array_equal(_kernel(repaired), _kernel(model))
    assert sha256_of(cached) == json.loads((path / "metadata.json").read_text())["sha256"]


def test_missing_file(fake_hub, tmp_path):
    _, path = _checkpoint(tmp_path)
    files = _files(path)
    del files["metadata.json"]
    fake_hub.commit(REPO, files)
    with pytest.raises(MissingFileError) as info:
        from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")
    assert "no metadata.json" in str(info.value)
    assert "'config.json', 'model.safetensors', 'metadata.json'" in str(info.value)


def test_unknown_repo_and_unknown_revision(fake_hub, tmp_path):
    _, path = _checkpoint(tmp_path)
    fake_hub.commit_dir(REPO, path)
    with pytest.raises(CheckpointNotFoundError, match="No model repo 'owner/nope'"):
        from_pretrained("hf://owner/nope", cache_dir=tmp_path / "cache")
    with pytest.raises(CheckpointNotFoundError, match="no revision 'v9'"):
        from_pretrained(f"hf://{REPO}@v9", cache_dir=tmp_path / "cache")


def test_server_down_warm_cache_loads_cold_cache_fails_fast(fake_hub, tmp_path):
    _, path = _checkpoint(tmp_path)
    fake_hub.commit_dir(REPO, path)
    from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "warm")
    fake_hub.stop()
    assert from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "warm").load_report.complete
    start = time.monotonic()
    with pytest.raises(HubUnavailableError, match="cannot be reached"):
        from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cold")
    assert time.monotonic() - start < 5


def test_offline_with_cold_cache_says_offline(fake_hub, tmp_path):
    fake_hub.set_env(HF_HUB_OFFLINE=1)
    with pytest.raises(HubUnavailableError, match="offline mode"):
        from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cold")
    assert fake_hub.count() == 0


def test_pickle_and_hdf5_repo_is_refused(fake_hub, tmp_path):
    fake_hub.commit(
        REPO,
        {
            "pytorch_model.bin": b"\x80\x04pickle",
            "tf_model.h5": b"\x89HDF",
            "README.md": b"# not ours",
        },
    )
    with pytest.raises(CheckpointError) as info:
        from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "pytorch_model.bin" in message and "tf_model.h5" in message
    assert "model.safetensors" in message


def test_config_naming_code_is_refused_over_the_hub(fake_hub, tmp_path):
    _, path = _checkpoint(tmp_path)
    files = _files(path)
    sentinel = tmp_path / "code_ran.txt"
    config = json.loads(files["config.json"])
    config["architecture"]["block"] = f"__import__('os').system('touch {sentinel}')"
    files["config.json"] = json.dumps(config).encode()
    # A crafted repo records the matching hash: the schema itself must refuse the config.
    metadata = json.loads(files["metadata.json"])
    metadata["files"]["config.json"] = hashlib.sha256(files["config.json"]).hexdigest()
    files["metadata.json"] = json.dumps(metadata).encode()
    fake_hub.commit(REPO, files)
    with pytest.raises(CheckpointError, match="block"):
        from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")
    assert not sentinel.exists()


def test_two_processes_load_the_same_checkpoint_at_once(fake_hub, tmp_path):
    """Two processes fetch and verify one checkpoint into one cold cache at the same time.

    The children stop short of building the model: the shared state is the
    download cache (building is per process), and on JAX each fresh process
    would spend seconds compiling initializers.
    """
    _, path = _checkpoint(tmp_path)
    fake_hub.commit_dir(REPO, path)
    fake_hub.delay[(REPO, "model.safetensors")] = 0.5  # make the two downloads overlap
    script = (
        "import sys, safetensors.numpy\n"
        "from keras_resblocks import hub\n"
        "from keras_resblocks.checkpoints import io\n"
        "d = hub.download(sys.argv[1])\n"
        "sha = io.read_metadata(d).sha256\n"
        "io.verify_sha256(d / 'model.safetensors', sha)\n"
        "io.read_config(d)\n"
        "print(len(safetensors.numpy.load_file(str(d / 'model.safetensors'))), sha)\n"
    )
    # HF_ENDPOINT and HF_HOME reach the children as real environment variables.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="jax")
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, REPO],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=120) for child in children]
    expected = f"{len(tiny_model().variables)} {sha256_of(path / 'model.safetensors')}"
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err[-2000:]
        assert out.strip().splitlines()[-1] == expected
    assert (
        1 <= sum(p.endswith("/model.safetensors") for m, p in fake_hub.requests if m == "GET") <= 2
    )
    assert from_pretrained(f"hf://{REPO}").load_report.complete


def test_hf_source_syntax():
    for bad in ["hf://", "hf://just-a-name", "hf://a/b/c", "hf://a/b@"]:
        with pytest.raises(ValueError, match="hf://owner/repo"):
            from_pretrained(bad)
    with pytest.raises(ValueError, match="Two revisions"):
        from_pretrained("hf://a/b@v1", revision="v2")
    with pytest.raises(ValueError, match="Unknown checkpoint 'resnet20_nowhere'"):
        from_pretrained("resnet20_nowhere")


# -- built-in names --------------------------------------------------------------------
def test_the_catalog_is_valid():
    entries = {name: pretrained.entry for name, pretrained in list_pretrained().items()}
    for name in [
        "resnet50_imagenet",
        "resnet101_imagenet",
        "resnet152_imagenet",
        "resnet50v2_imagenet",
        "resnet101v2_imagenet",
        "resnet152v2_imagenet",
    ]:
        assert entries[name]["keras_applications"] and entries[name]["architecture"] in name
    root = registry_module.weights_root()
    for name, entry in entries.items():
        if entry.get("bundled"):
            directory = root / entry["bundled"]
            assert sha256_of(directory / "model.safetensors") == entry["sha256"], name
        if entry.get("hub"):
            assert set(entry["hub"]) == {"repo_id", "revision"}
            # Weights converted from timm's repos wait, unpinned, for `edit_catalog pin-upstream`.
            unpinned = entry["hub"]["revision"] is None and entry["sha256"] is None
            assert len(entry["sha256"] or "") == 64 or (unpinned and entry.get("ported_from")), name


@pytest.fixture
def private_registry(tmp_path, monkeypatch):
    """A registry with one bundled and one published checkpoint, in place of the package's."""
    root = tmp_path / "weights"
    model, bundled = _checkpoint(root, "tiny_bundled")
    registry = {
        "format_version": 1,
        "checkpoints": {
            "resnet20_bundled": {
                "architecture": "resnet20",
                "dataset": "cifar10",
                "metrics": None,
                "sha256": sha256_of(bundled / "model.safetensors"),
                "files": ["config.json", "model.safetensors", "metadata.json"],
                "hub": None,
                "bundled": "tiny_bundled",
            },
            "resnet20_published": {
                "architecture": "resnet20",
                "dataset": "cifar10",
                "metrics": None,
                "sha256": None,
                "files": [],
                "bundled": None,
                "hub": {"repo_id": REPO, "revision": None},
            },
        },
    }
    (root / "catalog.json").write_text(json.dumps(registry))
    monkeypatch.setattr(registry_module, "weights_root", lambda: root)
    return model, registry


def test_the_registry_is_read_and_validated_once(private_registry):
    _, registry = private_registry
    path = registry_module.weights_root() / "catalog.json"
    first = list_pretrained()
    path.write_text("not json")  # a second read would fail
    assert list_pretrained() == first
    registry_module.clear_cache()
    with pytest.raises(ValueError):
        list_pretrained()
    registry["checkpoints"]["resnet20_bundled"]["bogus"] = 1
    path.write_text(json.dumps(registry))
    with pytest.raises(CheckpointError, match="Invalid catalogue entry 'resnet20_bundled'"):
        list_pretrained()


def test_list_pretrained_describes_each_checkpoint_for_a_reader(private_registry):
    entries = list_pretrained()
    bundled, published = entries["resnet20_bundled"], entries["resnet20_published"]
    assert isinstance(bundled, Pretrained) and bundled.name == "resnet20_bundled"
    assert (bundled.source, bundled.location) == ("bundled", "keras_resblocks/weights/tiny_bundled")
    # The bundled checkpoint's own config.json gives its head (3 classes, not CIFAR's 10).
    assert bundled.parameters == parameter_count(
        create_model("resnet20").architecture, num_classes=3
    )
    assert bundled.size_mb == round(4 * bundled.parameters / 1e6, 1)
    assert (published.source, published.location) == ("hub", f"hf://{REPO}@main")
    assert published.accuracy is None and published.measured_on is None
    # The raw catalogue entry is there too, as data.
    assert bundled.entry == private_registry[1]["checkpoints"]["resnet20_bundled"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        bundled.accuracy = 1.0
    assert "resnet20, 0.27M parameters" in bundled.summary()


def test_bundled_name_loads_without_network(private_registry, fake_hub):
    model, _ = private_registry
    fake_hub.stop()
    loaded = from_pretrained("resnet20_bundled", num_classes=4)
    assert loaded.output_shape == (None, 4)
    np.testing.assert_array_equal(_kernel(loaded), _kernel(model))


def test_published_name_is_checked_against_the_registry_sha256(
    private_registry, fake_hub, tmp_path
):
    _, registry = private_registry
    _, path = _checkpoint(tmp_path, "published", seed=5)
    commit = fake_hub.commit_dir(REPO, path)
    entry = registry["checkpoints"]["resnet20_published"]
    entry["hub"]["revision"] = commit
    entry["sha256"] = "f" * 64  # the registry disagrees with the (self-consistent) repo
    (tmp_path / "weights" / "catalog.json").write_text(json.dumps(registry))
    with pytest.raises(ChecksumError, match="f" * 64):
        from_pretrained("resnet20_published", cache_dir=tmp_path / "cache")
    entry["sha256"] = sha256_of(path / "model.safetensors")
    (tmp_path / "weights" / "catalog.json").write_text(json.dumps(registry))
    registry_module.clear_cache()  # the registry is read once per process
    assert from_pretrained("resnet20_published", cache_dir=tmp_path / "cache").load_report.complete


# Building ResNet-50 three times is quick on TensorFlow, but on JAX every new weight
# shape compiles its initializer (about 40 s on the 2-core CI machine): there it is
# a `large` test. The code path is backend-independent.
_LARGE_ON_JAX = pytest.mark.large if keras.backend.backend() == "jax" else (lambda test: test)


@_LARGE_ON_JAX
def test_imagenet_name_is_ported_from_keras_applications_once(tmp_path, monkeypatch):
    from keras_resblocks import import_keras_applications

    source = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3))
    weights_path = tmp_path / "random_resnet50.weights.h5"
    source.save_weights(weights_path)
    directory = import_keras_applications(
        "resnet50_imagenet", weights_path=weights_path, cache_dir=tmp_path, input_shape=(32, 32, 3)
    )
    assert directory == tmp_path / "resnet50_imagenet"
    # Porting it again replaces it only when asked, and is refused before any work.
    monkeypatch.setattr(keras.applications, "ResNet50", None)
    with pytest.raises(ValueError, match=r"already holds a checkpoint.*overwrite=True"):
        import_keras_applications(
            "resnet50_imagenet", weights_path=weights_path, cache_dir=tmp_path
        )
    # The next load is local: keras.applications is not asked again.
    model = from_pretrained("resnet50_imagenet", cache_dir=tmp_path)
    assert model.output_shape == (None, 1000) and model.load_report.complete
    for ours, theirs in [("stem_conv", "conv1_conv"), ("stage4_block3", "conv5_block3_3_bn")]:
        ours = model.get_layer(ours).weights[-1]
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(ours), source.get_layer(theirs).get_weights()[-1]
        )


def test_labels_edited_in_the_hub_cache_are_caught_by_their_hash(fake_hub, tmp_path):
    _, path = _checkpoint(tmp_path)
    fake_hub.commit(REPO, _files(path))
    model = from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")
    snapshot = model.load_report.provenance.directory
    cached = (snapshot / "config.json").resolve()  # the blob the snapshot links to
    config = json.loads(cached.read_text())
    config["labels"] = [f"EVIL{i}" for i in range(config["model"]["num_classes"])]
    cached.write_text(json.dumps(config))
    with pytest.raises(ChecksumError, match="sha256 mismatch for config.json"):
        from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")
