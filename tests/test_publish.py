"""Publishing: the real huggingface_hub client against a loopback Hub (tests/_upload_server.py)."""

import dataclasses
import hashlib
import json
import pathlib
import re
import shutil
import subprocess
import sys

from huggingface_hub import constants as hub_constants
import keras
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import keras_resblocks
from tests._helpers import rewrite_reference
from tests._hubserver import fake_hub  # noqa: F401  (a fixture: the Hub's download side)
from tests._upload_server import TOKEN, FakeHub
from keras_resblocks import (
    Architecture,
    ResNet,
    from_pretrained,
    push_to_hub,
    validate_checkpoint_dir,
    verify_reference,
)
from keras_resblocks.checkpoints import (
    REFERENCE_FILE,
    CheckpointMetadata,
    ChecksumError,
    read_checkpoint,
)
from keras_resblocks.checkpoints.reference import write_reference
from keras_resblocks.cli import main as cli_main
from keras_resblocks.publish import (
    CHECKPOINT_FILES,
    PublishConflictError,
    PublishError,
)

REPO = "alice/resnet-tiny"
ROOT = pathlib.Path(__file__).resolve().parents[1]


def main(argv):
    """``keras-resblocks publish ARGV``."""
    return cli_main(["publish", *argv])


# -- checkpoints -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model():
    arch = Architecture(stage_depths=(1,), stage_widths=(4,), stage_strides=(1,), stem_width=4)
    return ResNet(arch, num_classes=3, input_shape=(8, 8, 3))


def write_checkpoint(directory, model, metrics=None):
    """The four files of a checkpoint, per the format contract in notes/COMMON.md."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}
    save_file(weights, str(directory / "model.safetensors"))
    config = {
        "format": "keras-resblocks",
        "format_version": 1,
        "architecture": model.architecture.to_dict(),
        "model": {
            "include_top": True,
            "num_classes": 3,
            "pooling": None,
            "classifier_activation": "softmax",
            "input_shape": [8, 8, 3],
        },
        "preprocessing": None,
        "labels": ["a", "b", "c"],
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    (directory / "README.md").write_text(
        "---\nlibrary_name: keras-resblocks\nlicense: apache-2.0\ntags:\n- image-classification\n"
        "---\n\n# resnet-tiny\n\ntop1 0.5 (synthetic)\n\n"
        'model = from_pretrained("path/to/resnet-tiny")\n'
    )
    _write_metadata(directory, metrics={"top1": 0.5} if metrics is None else metrics)
    return directory


def _write_metadata(directory, **fields):
    sha = hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()
    metadata = {
        "sha256": sha,
        "package_version": keras_resblocks.__version__,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "dataset": "synthetic",
        "recipe": None,
        "files": {
            name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
            for name in ("config.json", "README.md")
            if (directory / name).exists()
        },
        **fields,
    }
    (directory / "metadata.json").write_text(json.dumps(metadata, indent=2))


def _rewrite_weights(directory, change):
    """Edit the weights and keep metadata's sha256 consistent, so only `change` is wrong."""
    tensors = load_file(str(directory / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(directory / "model.safetensors"))
    _write_metadata(directory, metrics={"top1": 0.5})


def _contents(directory):
    return {name: (directory / name).read_bytes() for name in CHECKPOINT_FILES}


def _as_published(directory, names=CHECKPOINT_FILES):
    """What publishing ``directory`` to REPO sends: its files, but a card that loads the
    checkpoint from hf://REPO and metadata.json recording the hashes of that card and the
    config (as the schema reads it: the file is written again)."""
    sent = {name: (directory / name).read_bytes() for name in names}
    card = sent["README.md"].decode()
    local = 'from_pretrained("path/to/resnet-tiny")'
    assert local in card
    sent["README.md"] = card.replace(local, f'from_pretrained("hf://{REPO}")').encode()
    metadata = CheckpointMetadata.from_json(json.loads(sent["metadata.json"]))
    hashes = {name: hashlib.sha256(sent[name]).hexdigest() for name in ("config.json", "README.md")}
    sent["metadata.json"] = dataclasses.replace(metadata, files=hashes)
    return sent


def _assert_sent(commit, directory, names=CHECKPOINT_FILES):
    expected = _as_published(directory, names)
    changed = dict(commit.changed)
    metadata = CheckpointMetadata.from_json(json.loads(changed.pop("metadata.json")))
    assert metadata == expected.pop("metadata.json")
    assert changed == expected


def _hashes(directory):
    """The sha256 of every file in ``directory`` and below, hidden ones included."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def checkpoint(tmp_path, tiny_model):
    return write_checkpoint(tmp_path / "ckpt", tiny_model)


def _add_reference(directory):
    """Add the optional reference batch with the package's own writer, and record it."""
    metadata = json.loads((directory / "metadata.json").read_text())
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype="uint8")
    metadata["reference"] = write_reference(directory, images, metadata["sha256"])
    (directory / "metadata.json").write_text(json.dumps(metadata, indent=2))
    return directory


@pytest.fixture
def hub(monkeypatch, tmp_path):
    # No real token or Hub may leak into a test: no env token, no saved login,
    # and the default endpoint points at a closed port unless a test says otherwise.
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hub_constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    _set_endpoint(monkeypatch, "http://127.0.0.1:9")
    with FakeHub() as server:
        yield server


def _set_endpoint(monkeypatch, url):
    """What HF_ENDPOINT sets when huggingface_hub is imported: the endpoint and, built from
    it, the file URL template (hf_hub_url, behind HfApi.file_exists, starts from the latter)."""
    monkeypatch.setattr(hub_constants, "ENDPOINT", url)
    monkeypatch.setattr(
        hub_constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        url + "/{repo_id}/resolve/{revision}/{filename}",
    )


def _publish(hub, directory, **kwargs):
    return push_to_hub(directory, REPO, token=TOKEN, endpoint=hub.url, **kwargs)


# -- publishing --------------------------------------------------------------------------
def test_publish_is_one_commit_of_the_exact_files_and_pins_the_registry(hub, checkpoint, tmp_path):
    before = _hashes(tmp_path)
    publication = _publish(hub, checkpoint)

    assert publication.commit_sha == hub.head(REPO)
    commits = [p for p in hub.paths_requested("POST") if "/commit/" in p]
    assert commits == [f"/api/models/{REPO}/commit/main"]
    commit = hub.repos[REPO].commits[publication.commit_sha]
    assert commit.deleted == publication.deleted == ()
    assert commit.parent == publication.parent_commit
    assert hub.repos[REPO].commits[commit.parent].message == "initial commit"
    assert [f.name for f in publication.files] == list(CHECKPOINT_FILES)
    assert {f.name: f.sha256 for f in publication.files} == {
        name: hashlib.sha256(data).hexdigest() for name, data in commit.changed.items()
    }

    # The published card loads the checkpoint from its repo, and its hash follows; the
    # directory published is left as it was.
    card = commit.changed["README.md"].decode()
    assert f'from_pretrained("hf://{REPO}")' in card and "path/to/" not in card
    assert (
        json.loads(commit.changed["metadata.json"])["files"]["README.md"]
        == hashlib.sha256(card.encode()).hexdigest()
    )
    _assert_sent(commit, checkpoint)
    assert _hashes(tmp_path) == before

    # A maintainer pins it in a registry with scripts/edit_catalog.py.
    registry = tmp_path / "catalog.json"
    other = {"architecture": "resnet20", "hub": {"repo_id": "bob/x", "revision": "f" * 40}}
    registry.write_text(
        json.dumps({"checkpoints": {"other": other, "resnet_tiny": {"architecture": "resnet20"}}})
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.edit_catalog",
            "--catalog",
            str(registry),
            "pin",
            "resnet_tiny",
            "--repo-id",
            REPO,
            "--revision",
            publication.commit_sha,
            "--from",
            str(checkpoint),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(registry.read_text()) == {
        "checkpoints": {
            "other": other,
            "resnet_tiny": {
                "architecture": "resnet20",
                "hub": {"repo_id": REPO, "revision": publication.commit_sha},
                "sha256": hashlib.sha256(commit.changed["model.safetensors"]).hexdigest(),
                "metadata_sha256": hashlib.sha256(commit.changed["metadata.json"]).hexdigest(),
            },
        }
    }
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_optional_reference_batch_is_published_with_the_rest(hub, checkpoint):
    _add_reference(checkpoint)
    publication = _publish(hub, checkpoint)
    assert [f.name for f in publication.files] == list(CHECKPOINT_FILES) + [REFERENCE_FILE]
    commit = hub.repos[REPO].commits[publication.commit_sha]
    _assert_sent(commit, checkpoint, list(CHECKPOINT_FILES) + [REFERENCE_FILE])


def test_republishing_without_a_reference_batch_deletes_the_old_one(
    hub, checkpoint, tmp_path, tiny_model
):
    first = _publish(hub, _add_reference(checkpoint))
    assert REFERENCE_FILE in hub.files(REPO)
    # The next checkpoint has new weights and no reference batch: the old batch, computed
    # from the first weights, must not stay beside them.
    second_dir = write_checkpoint(tmp_path / "second", tiny_model, metrics={"top1": 0.75})
    _rewrite_weights(second_dir, lambda t: t.update({k: v + 1 for k, v in t.items()}))
    second = _publish(hub, second_dir)
    commit = hub.repos[REPO].commits[second.commit_sha]
    assert commit.parent == first.commit_sha and second.deleted == (REFERENCE_FILE,)
    assert commit.deleted == (REFERENCE_FILE,)
    _assert_sent(commit, second_dir)
    assert sorted(hub.files(REPO)) == sorted([".gitattributes", *CHECKPOINT_FILES])
    assert (
        f"\n  {REFERENCE_FILE}  deleted (left from the previous checkpoint)\n" in second.describe()
    )
    # Asked at the parent commit, with the real client's HEAD on the file.
    assert ("HEAD", f"/{REPO}/resolve/{first.commit_sha}/{REFERENCE_FILE}") in hub.requests
    # Once gone, a third publication has nothing to delete.
    assert _publish(hub, checkpoint_without_reference(checkpoint)).deleted == ()


def checkpoint_without_reference(directory):
    (directory / REFERENCE_FILE).unlink()
    metadata = json.loads((directory / "metadata.json").read_text())
    del metadata["reference"]
    (directory / "metadata.json").write_text(json.dumps(metadata))
    return directory


def test_cli_publishes_with_env_token_and_endpoint(hub, checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    _set_endpoint(monkeypatch, hub.url)
    code = main([str(checkpoint), "--repo-id", REPO, "--private"])

    assert code == 0
    sha = hub.head(REPO)
    captured = capsys.readouterr()
    assert captured.out == f"{sha}\n"
    assert hub.repos[REPO].private
    assert hub.files(REPO)["model.safetensors"] == (checkpoint / "model.safetensors").read_bytes()


def test_dry_run_lists_the_files_and_sends_nothing(hub, checkpoint, capsys):
    publication = push_to_hub(checkpoint, REPO, dry_run=True, endpoint=hub.url)
    assert publication.commit_sha is None
    for f in publication.files:
        data = (checkpoint / f.name).read_bytes()
        assert (f.size, f.sha256) == (len(data), hashlib.sha256(data).hexdigest())

    assert main([str(checkpoint), "--repo-id", REPO, "--dry-run", "--endpoint", hub.url]) == 0
    out = capsys.readouterr().out
    assert f"{REPO}@main" in out
    for f in publication.files:
        assert f.name in out and f.sha256 in out and f"{f.size:,d} bytes" in out
    assert hub.requests == []


# -- the directory published is only read -----------------------------------------------
BUNDLED = ROOT / "weights" / "resnet20_cifar10"


@pytest.fixture
def bundled(tmp_path):
    """A copy of a bundled checkpoint: every file hashed, a reference batch, real labels."""
    return pathlib.Path(shutil.copytree(BUNDLED, tmp_path / "publish-me" / BUNDLED.name))


@pytest.fixture
def forged(bundled):
    """The bundled checkpoint with one class renamed in config.json (cat -> kitten)."""
    config = json.loads((bundled / "config.json").read_text())
    assert config["labels"][3] == "cat"
    config["labels"][3] = "kitten"
    (bundled / "config.json").write_text(json.dumps(config, indent=2))
    return bundled


def test_a_forged_label_is_refused_by_publish_and_its_dry_run_and_left_as_it_was(
    hub, forged, capsys
):
    before = _hashes(forged.parent)
    with pytest.raises(
        ChecksumError, match=r"sha256 mismatch for config.json.*Refusing to publish"
    ):
        _publish(hub, forged)
    for flags in (["--token", TOKEN], ["--dry-run"]):
        assert main([str(forged), "--repo-id", REPO, "--endpoint", hub.url, *flags]) == 1
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1
        assert captured.err.startswith("error: sha256 mismatch for config.json")
    assert hub.requests == []
    assert _hashes(forged.parent) == before
    with pytest.raises(ChecksumError, match="config.json"):  # still refused by loading
        read_checkpoint(forged)


@pytest.mark.parametrize(
    "flags, fault, message",
    [
        (["--repo-id", REPO, "--endpoint", "{hub}"], None, "Publishing needs a Hugging Face token"),
        (
            ["--repo-id", REPO, "--token", TOKEN, "--endpoint", "http://127.0.0.1:9"],  # closed
            None,
            r"Cannot reach the Hub at http://127.0.0.1:9 .*nothing was committed.*ConnectError",
        ),
        (
            ["--repo-id", "alice/two words", "--token", TOKEN, "--endpoint", "{hub}"],
            None,
            r"`repo_id` must be 'owner/name'.*Received: repo_id='alice/two words'",
        ),
        (
            ["--repo-id", REPO, "--token", "hf_wrong", "--endpoint", "{hub}"],
            None,
            "refused this token",
        ),
        (["--repo-id", REPO, "--token", TOKEN, "--endpoint", "{hub}"], 500, "rejected the commit"),
        (["--repo-id", REPO, "--token", TOKEN, "--endpoint", "{hub}"], "drop", "was interrupted"),
    ],
    ids=[
        "no-token",
        "unreachable",
        "bad-repo-id",
        "rejected-token",
        "commit-500",
        "commit-dropped",
    ],
)
def test_a_failed_publish_changes_nothing_and_says_why_in_one_line(
    hub, bundled, capsys, flags, fault, message
):
    hub.fail_next_commit = fault
    before = _hashes(bundled.parent)
    assert main([str(bundled), *(flag.replace("{hub}", hub.url) for flag in flags)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert re.match(f"error: .*{message}", captured.err), captured.err
    assert _hashes(bundled.parent) == before
    read_checkpoint(bundled)


def test_a_good_publish_changes_nothing_locally_and_what_it_sent_loads_and_verifies(
    hub, fake_hub, bundled, tmp_path
):
    before = _hashes(bundled.parent)
    publication = _publish(hub, bundled)
    assert _hashes(bundled.parent) == before

    sent = dict(hub.files(REPO))
    for name in ("config.json", "model.safetensors", REFERENCE_FILE):
        assert sent[name] == (bundled / name).read_bytes()
    card = sent["README.md"].decode()
    assert f'from_pretrained("hf://{REPO}")' in card
    # Loaded as the card says, from the Hub (its download side), every hash checked.
    fake_hub.commit(REPO, {k: v for k, v in sent.items() if k != ".gitattributes"})
    model = from_pretrained(f"hf://{REPO}", cache_dir=tmp_path / "cache")
    assert (
        model.load_report.sha256
        == {f.name: f.sha256 for f in publication.files}["model.safetensors"]
    )
    assert model.labels == json.loads((bundled / "config.json").read_text())["labels"]
    assert verify_reference(model).allclose


# -- refusals before any request ---------------------------------------------------------
def _set_nan(tensors):
    tensors["stem_conv/kernel"][0, 0, 0, 0] = np.nan


def _set_inf(tensors):
    tensors["predictions/bias"][1] = -np.inf


def _set_nan_output(tensors):
    tensors["outputs"][0, 1] = np.nan


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_json(name, **changes):
    def edit(directory):
        data = json.loads((directory / name).read_text())
        data.update(changes)
        (directory / name).write_text(json.dumps(data))

    return edit


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda d: _rewrite_weights(d, _set_nan), r"'stem_conv/kernel'.*NaN.*Received: \[nan\]"),
        (lambda d: _rewrite_weights(d, _set_inf), r"'predictions/bias'.*Inf.*Received: \[-inf\]"),
        (
            _edit_json("metadata.json", sha256="0" * 64),
            r"model.safetensors does not match the sha256",
        ),
        (lambda d: (d / "metadata.json").unlink(), r"lacks metadata.json\. Received: files="),
        (lambda d: (d / "README.md").unlink(), r"lacks README.md\. Received"),
        (_edit_json("config.json", format="keras"), r"config.json must have \"format\""),
        (
            _edit_json("config.json", architecture={"stage_depths": [1], "bogus": 1}),
            r"config.json has an invalid `architecture`: Unknown architecture field",
        ),
        (
            _edit_json("metadata.json", metrics={"top1": "high"}),
            r"Metric 'top1' must be a finite number",
        ),
        (_edit_json("metadata.json", metrics=None), r"must record the measured `metrics`"),
        (
            lambda d: rewrite_reference(_add_reference(d), _set_nan_output),
            r"'outputs' in reference.safetensors contains NaN.*broken reference outputs",
        ),
        (
            lambda d: _flip_last_byte(_add_reference(d) / REFERENCE_FILE),
            r"sha256 mismatch for reference.safetensors",
        ),
        (
            lambda d: (_add_reference(d) / REFERENCE_FILE).unlink(),
            r"has no reference.safetensors, though metadata.json records one",
        ),
        (
            lambda d: (d / REFERENCE_FILE).write_bytes(b"stray"),
            r"records none; the reference.safetensors there is not recorded",
        ),
    ],
    ids=[
        "nan",
        "inf",
        "sha256",
        "no-metadata",
        "no-readme",
        "format",
        "architecture",
        "metric-type",
        "no-metrics",
        "reference-nan",
        "reference-sha256",
        "reference-missing",
        "reference-unrecorded",
    ],
)
def test_broken_checkpoints_are_refused_before_any_request(hub, checkpoint, corrupt, message):
    corrupt(checkpoint)
    with pytest.raises(ValueError, match=message):
        _publish(hub, checkpoint)
    assert hub.requests == []


def test_no_token_says_how_to_log_in(hub, checkpoint):
    with pytest.raises(PublishError, match=r"hf auth login.*HF_TOKEN.*Received: no token"):
        push_to_hub(checkpoint, REPO, endpoint=hub.url)
    assert hub.requests == []


def test_a_rejected_token_says_how_to_log_in(hub, checkpoint):
    with pytest.raises(PublishError, match=r"refused this token.*hf auth login.*HTTP 401"):
        push_to_hub(checkpoint, REPO, token="hf_wrong", endpoint=hub.url)
    assert REPO not in hub.repos


# -- interruptions and races -------------------------------------------------------------
@pytest.mark.parametrize(
    "failure, message",
    [
        (500, r"rejected the commit.*still at .*Received: .*500"),
        ("drop", r"was interrupted.*either still at"),
    ],
)
def test_an_interrupted_publish_leaves_the_previous_commit(hub, checkpoint, failure, message):
    first = _publish(hub, checkpoint)
    before = dict(hub.files(REPO))
    _rewrite_weights(checkpoint, lambda t: t["stem_conv/kernel"].__imul__(2.0))

    hub.fail_next_commit = failure
    with pytest.raises(PublishError, match=message):
        _publish(hub, checkpoint)

    assert hub.head(REPO) == first.commit_sha
    assert hub.files(REPO) == before
    assert len(hub.repos[REPO].commits) == 2  # the initial commit and `first`
    # Publishing again completes the update on top of `first`.
    second = _publish(hub, checkpoint)
    assert second.parent_commit == first.commit_sha
    assert hub.files(REPO)["model.safetensors"] == (checkpoint / "model.safetensors").read_bytes()


def test_a_racing_publisher_gets_a_conflict(hub, checkpoint):
    first = _publish(hub, checkpoint)

    hub.fail_next_commit = "race"  # someone commits between our head read and our commit
    with pytest.raises(PublishConflictError, match=f"moved past {first.commit_sha}.*HTTP 412"):
        _publish(hub, checkpoint)
    racing_head = hub.head(REPO)
    assert hub.repos[REPO].commits[racing_head].message == "racing commit"

    with pytest.raises(PublishConflictError):
        _publish(hub, checkpoint, parent_commit=first.commit_sha)
    assert hub.head(REPO) == racing_head


def test_validate_returns_files_sizes_and_hashes(checkpoint):
    files = validate_checkpoint_dir(checkpoint)
    assert {f.name: f.sha256 for f in files} == {
        name: hashlib.sha256(data).hexdigest() for name, data in _contents(checkpoint).items()
    }


def test_command_exits_nonzero_with_one_line_error(tmp_path, capsys):
    missing = str(tmp_path / "missing")
    assert main([missing, "--repo-id", REPO, "--dry-run"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"error: `directory` must be a checkpoint directory. Received: directory={missing!r}\n"
    )
