"""hf://timm/...: timm's repositories converted on first load, through the real huggingface_hub
client against the loopback Hub, with timm's exact files (random weights under timm's names)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
from tests._hubserver import fake_hub  # noqa: F401  (a fixture)
from tests.test_convert_timm import random_state_dict, timm_config

from keras_resblocks import (
    ChecksumError,
    HubUnavailableError,
    from_pretrained,
    verify_reference,
)
from keras_resblocks import hub_timm
from keras_resblocks.checkpoints import sha256_of
from keras_resblocks.convert_timm import convert_timm

REPO = "timm/resnet18.test_in1k"
SIZE = 32  # the smallest input timm's config may name; resnet18 then runs in milliseconds


def timm_files(name="resnet18", seed=0, config=None, num_classes=10):
    """A timm repository's files, as timm's push_to_hf_hub writes them."""
    state = random_state_dict(name, num_classes=num_classes, seed=seed)
    config = config or timm_config(name, size=SIZE, license="apache-2.0")
    weights = safetensors.numpy.save(
        {k: np.ascontiguousarray(v) for k, v in state.items()}, metadata={"format": "pt"}
    )
    files = {
        "config.json": json.dumps(config, indent=2).encode(),
        "model.safetensors": weights,
        "README.md": b"---\ntags:\n- image-classification\n- timm\n---\n# resnet18\n",
    }
    return files, state, config


def images(n=2):
    return np.random.default_rng(1).integers(0, 256, (n, SIZE, SIZE, 3)).astype("float32")


def expected_outputs(state, config):
    return np.asarray(convert_timm(state, config).model.predict(images(), verbose=0))


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def _no_conversion(*args, **kwargs):
    raise AssertionError("converted again")


def test_loads_converts_once_and_predicts(fake_hub, cache, monkeypatch):
    files, state, config = timm_files()
    commit = fake_hub.commit(REPO, files)
    model = from_pretrained(f"hf://{REPO}", cache_dir=cache)
    np.testing.assert_allclose(
        model.predict(images(), verbose=0), expected_outputs(state, config), atol=1e-6
    )
    provenance = model.load_report.provenance
    assert provenance.kind == "timm" and provenance.revision == commit
    directory = Path(model.load_report.source)
    assert directory == hub_timm.converted_dir(REPO, commit, cache)
    meta = json.loads((directory / "metadata.json").read_text())
    sha256 = sha256_of(
        Path(cache)
        / "models--timm--resnet18.test_in1k"
        / "snapshots"
        / commit
        / "model.safetensors"
    )
    assert meta["upstream"] == {
        "repo_id": REPO,
        "revision": commit,
        "file": "model.safetensors",
        "sha256": sha256,
        "architecture": "resnet18",
        "tag": "test_in1k",
        "license": "apache-2.0",
    }
    assert (meta["input_size"], meta["interpolation"], meta["crop_fraction"]) == (
        [SIZE, SIZE],
        "bicubic",
        0.95,
    )
    card = (directory / "README.md").read_text()
    assert f"`{REPO}` at commit `{commit}`" in card and sha256 in card
    assert "license: apache-2.0" in card
    assert f'from_pretrained("hf://{REPO}@{commit}")' in card
    assert not list(directory.parent.glob("*.converting"))
    assert verify_reference(model).allclose
    assert not any(p.endswith("README.md") for _, p in fake_hub.requests)  # only what it needs

    # The second load, online and offline, reads the converted checkpoint: no download.
    monkeypatch.setattr(hub_timm, "write_converted", _no_conversion)
    before = [p for _, p in fake_hub.requests if "/resolve/" in p]
    again = from_pretrained(f"hf://{REPO}", cache_dir=cache)
    assert [p for _, p in fake_hub.requests if "/resolve/" in p] == before
    fake_hub.set_env(HF_HUB_OFFLINE=1)
    count = fake_hub.count()
    offline = from_pretrained(f"hf://{REPO}", cache_dir=cache)
    assert fake_hub.count() == count
    for loaded in (again, offline):
        np.testing.assert_array_equal(
            loaded.predict(images(), verbose=0), model.predict(images(), verbose=0)
        )


def test_a_revision_pin_is_honoured_after_main_moved(fake_hub, cache):
    old_files, old_state, config = timm_files(seed=0)
    new_files, new_state, _ = timm_files(seed=1)
    old = fake_hub.commit(REPO, old_files)
    new = fake_hub.commit(REPO, new_files)
    pinned = from_pretrained(f"hf://{REPO}@{old}", cache_dir=cache)
    latest = from_pretrained(f"hf://{REPO}", cache_dir=cache)
    np.testing.assert_allclose(
        pinned.predict(images(), verbose=0), expected_outputs(old_state, config), atol=1e-6
    )
    np.testing.assert_allclose(
        latest.predict(images(), verbose=0), expected_outputs(new_state, config), atol=1e-6
    )
    assert (pinned.load_report.provenance.revision, latest.load_report.provenance.revision) == (
        old,
        new,
    )


def test_a_tampered_cache_is_refused_offline_too(fake_hub, cache):
    files, _, _ = timm_files()
    commit = fake_hub.commit(REPO, files)
    model = from_pretrained(f"hf://{REPO}", cache_dir=cache)
    converted = Path(model.load_report.source) / "model.safetensors"
    data = bytearray(converted.read_bytes())
    data[-1] ^= 0xFF
    converted.write_bytes(bytes(data))
    fake_hub.set_env(HF_HUB_OFFLINE=1)
    with pytest.raises(ChecksumError, match="model.safetensors.*convert it again.*force_download"):
        from_pretrained(f"hf://{REPO}", cache_dir=cache)

    # No conversion cached, and the upstream file changed in the cache: refused before
    # anything is converted from it.
    shutil.rmtree(converted.parent)
    source = cache / "models--timm--resnet18.test_in1k" / "snapshots" / commit / "model.safetensors"
    blob = source.resolve()
    blob.write_bytes(blob.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ChecksumError, match=f"hf://{REPO}@{commit} has sha256 .* the Hub reported"):
        from_pretrained(f"hf://{REPO}", cache_dir=cache)
    assert not converted.parent.exists()

    fake_hub.set_env(HF_HUB_OFFLINE=None)
    repaired = from_pretrained(f"hf://{REPO}", cache_dir=cache, force_download=True)
    assert repaired.load_report.complete and sha256_of(source) == blob.name


def test_a_truncated_download_or_a_hub_record_that_disagrees_is_refused(fake_hub, cache):
    files, _, _ = timm_files()
    commit = fake_hub.commit(REPO, files)
    fake_hub.truncate[(REPO, "model.safetensors")] = 1000
    with pytest.raises(HubUnavailableError, match="Downloading model.safetensors of .* failed"):
        from_pretrained(f"hf://{REPO}", cache_dir=cache)
    assert not hub_timm.converted_dir(REPO, commit, cache).exists()

    del fake_hub.truncate[(REPO, "model.safetensors")]
    fake_hub.etag[(REPO, "model.safetensors")] = "0" * 64
    with pytest.raises(ChecksumError, match=f"but the Hub reported {'0' * 64}"):
        from_pretrained(f"hf://{REPO}", cache_dir=cache)
    assert not hub_timm.converted_dir(REPO, commit, cache).exists()


def test_an_unsupported_architecture_is_refused_in_one_line(fake_hub, cache):
    files, _, config = timm_files()
    config = dict(config, architecture="vit_base_patch16_224")
    fake_hub.commit(
        "timm/vit_base_patch16_224.augreg_in1k",
        dict(files, **{"config.json": json.dumps(config).encode()}),
    )
    with pytest.raises(hub_timm.TimmSourceError) as info:
        from_pretrained("hf://timm/vit_base_patch16_224.augreg_in1k", cache_dir=cache)
    message = str(info.value)
    assert "\n" not in message and "'vit_base_patch16_224' is not supported" in message
    assert "'resnet18', 'resnet34'" in message and "'resnet152d'" in message
    assert not any(p.endswith("model.safetensors") for _, p in fake_hub.requests)


def test_a_config_that_lies_about_the_weights_is_refused(fake_hub, cache):
    files, _, _ = timm_files("resnet18")
    config = timm_config("resnet34", size=SIZE)
    commit = fake_hub.commit(REPO, dict(files, **{"config.json": json.dumps(config).encode()}))
    with pytest.raises(hub_timm.TimmSourceError) as info:
        from_pretrained(f"hf://{REPO}", cache_dir=cache)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"hf://{REPO}: The state dict lacks")
    assert "lacks 80 tensor(s) of timm's resnet34: layer1.2.bn1.bias" in message
    assert not hub_timm.converted_dir(REPO, commit, cache).exists()

    config = timm_config("resnet18", num_classes=100, size=SIZE)
    fake_hub.commit(REPO, dict(files, **{"config.json": json.dumps(config).encode()}))
    with pytest.raises(hub_timm.TimmSourceError, match=r"fc.bias \(10,\) where .* has \(100,\)"):
        from_pretrained(f"hf://{REPO}", cache_dir=cache)


def test_offline_with_nothing_cached_names_the_repo_and_the_way(fake_hub, cache):
    files, _, _ = timm_files()
    fake_hub.commit(REPO, files)
    fake_hub.set_env(HF_HUB_OFFLINE=1)
    with pytest.raises(HubUnavailableError) as info:
        from_pretrained(f"hf://{REPO}", cache_dir=cache)
    message = str(info.value)
    assert "\n" not in message and REPO in message
    assert "HF_HUB_OFFLINE" in message and "Connect once" in message
    assert fake_hub.count() == 0


def test_the_command_line_takes_a_timm_repository(fake_hub, tmp_path, monkeypatch, capsys):
    from keras_resblocks.cli import main

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    files, _, config = timm_files()
    commit = fake_hub.commit(REPO, files)
    assert main(["info", f"hf://{REPO}"]) == 0
    out = capsys.readouterr().out
    assert f"Converted from the Hugging Face Hub repository `{REPO}` at commit `{commit}`" in out
    assert "resized (bicubic) so that a centre crop of 0.95 of the side is 32x32" in out
    assert main(["verify", f"hf://{REPO}"]) == 0
    assert f"hf://{REPO} reproduces its reference batch" in capsys.readouterr().out
    assert (tmp_path / "keras_home" / "keras_resblocks" / "timm").is_dir()

    config = dict(config, architecture="resnext50_32x4d")
    fake_hub.commit(REPO, dict(files, **{"config.json": json.dumps(config).encode()}))
    assert main(["info", f"hf://{REPO}"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'resnext50_32x4d' is not supported" in err


def test_imagenet_1k_weights_are_labelled_with_the_shipped_class_names(fake_hub, cache):
    from keras_resblocks.convert_timm import imagenet_class_names

    config = timm_config("resnet18", num_classes=1000, size=SIZE)
    files, _, _ = timm_files(config=config, num_classes=1000)
    fake_hub.commit(REPO, files)
    model = from_pretrained(f"hf://{REPO}", cache_dir=cache)
    assert model.labels == imagenet_class_names() and model.labels[1] == "goldfish"

    # timm's own label_names win; weights that are not ImageNet-1k's get none.
    named = dict(config, label_names=[f"class {i}" for i in range(1000)])
    fake_hub.commit(REPO, dict(files, **{"config.json": json.dumps(named).encode()}))
    assert from_pretrained(f"hf://{REPO}", cache_dir=cache).labels[1] == "class 1"
    other = dict(config, pretrained_cfg=dict(config["pretrained_cfg"], tag="in21k"))
    fake_hub.commit(REPO, dict(files, **{"config.json": json.dumps(other).encode()}))
    assert from_pretrained(f"hf://{REPO}", cache_dir=cache).labels is None


def test_a_catalogue_name_loads_the_timm_repo_and_pin_upstream_pins_it(
    fake_hub, tmp_path, monkeypatch
):
    import hashlib

    from keras_resblocks.checkpoints import catalog
    from scripts import edit_catalog

    root = tmp_path / "weights"
    root.mkdir()
    entry = {
        "architecture": "resnet18",
        "dataset": "imagenet-1k",
        "metrics": None,
        "reported": {"top1_accuracy": 0.5, "image_size": SIZE, "source": "a test"},
        "sha256": None,
        "files": [],
        "bundled": None,
        "hub": {"repo_id": REPO, "revision": None},
        "license": "apache-2.0",
        "ported_from": REPO,
    }
    path = root / "catalog.json"
    path.write_text(json.dumps({"format_version": 1, "checkpoints": {"resnet18_test": entry}}))
    monkeypatch.setattr(catalog, "weights_root", lambda: root)
    catalog.clear_cache()
    files, state, config = timm_files(seed=0)
    old = fake_hub.commit(REPO, files)
    cache = tmp_path / "cache"
    assert from_pretrained("resnet18_test", cache_dir=cache).load_report.provenance.kind == "timm"

    pinned = edit_catalog.pin_upstream(path, "resnet18_test")
    assert pinned["hub"] == {"repo_id": REPO, "revision": old}
    assert pinned["sha256"] == hashlib.sha256(files["model.safetensors"]).hexdigest()
    catalog.clear_cache()
    fake_hub.commit(REPO, timm_files(seed=1)[0])  # main moves on
    model = from_pretrained("resnet18_test", cache_dir=cache)
    assert model.load_report.provenance.revision == old
    np.testing.assert_allclose(
        model.predict(images(), verbose=0), expected_outputs(state, config), atol=1e-6
    )

    # A pin the weights do not match is refused, for the cached conversion and a new one.
    data = json.loads(path.read_text())
    data["checkpoints"]["resnet18_test"]["sha256"] = "f" * 64
    path.write_text(json.dumps(data))
    catalog.clear_cache()
    for force in (False, True):
        with pytest.raises(ChecksumError, match=f"but the catalogue pins {'f' * 64}"):
            from_pretrained("resnet18_test", cache_dir=cache, force_download=force)
    catalog.clear_cache()
