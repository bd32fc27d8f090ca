"""A stranger's checkpoint cannot make loading build, allocate, hang or read what it likes: each
case is a checkpoint written by the package and then damaged (config.json edited, or a file
replaced), met through from_pretrained and through the command, refused in one line before
any model is built. docs/checkpoints.md's table of these cases is checked against CASES and
FILE_CASES."""

import contextlib
import json
import os
import pathlib
import re
import signal
import time

import numpy as np
import pytest

from tests._helpers import rehash
from keras_resblocks import Architecture, ResNet, from_pretrained, save_pretrained
from keras_resblocks.checkpoints import CheckpointError
from keras_resblocks.cli import main
from tests._docs import ROOT


class Hung(Exception):
    """The call under test ran past its time limit (it would have hung CI)."""


@contextlib.contextmanager
def _time_limit(seconds):
    """Raise :class:`Hung` in the test if its body runs longer than ``seconds``: a blocking
    ``open`` of a FIFO or an endless read of ``/dev/zero`` fails the test instead of hanging."""

    def hung(signum, frame):
        raise Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _architecture(**changes):
    return lambda config: config["architecture"].update(changes)


def _model(**changes):
    return lambda config: config["model"].update(changes)


def _preprocessing(value):
    return lambda config: config.__setitem__("preprocessing", value)


# (case as the docs table names it, the edit of config.json, what the one-line error says)
CASES = [
    (
        "100,000 blocks in a stage",
        _architecture(stage_depths=[100000, 1]),
        "100,001 blocks, beyond the limit of 1,024",
    ),
    (
        "a stage width of 1e9",
        _architecture(stage_widths=[1_000_000_000, 8]),
        "a width of 1,000,000,000, beyond the limit of 8,192",
    ),
    ("a billion classes", _model(num_classes=1_000_000_000), "beyond the limit of 100,000"),
    (
        "a 100000x100000 input",
        _model(input_shape=[100000, 100000, 3]),
        "images of 100000x100000, beyond the limit of 4,096",
    ),
    (
        "60 billion parameters within every other limit",
        _architecture(stage_depths=[400, 400], stage_widths=[2048, 2048]),
        "parameters, beyond the limit of 1,000,000,000",
    ),
    (
        "bn_momentum as a string",
        _architecture(bn_momentum="0.9"),
        "`bn_momentum` must be a finite number. Received: bn_momentum='0.9'",
    ),
    ("bn_epsilon true", _architecture(bn_epsilon=True), "`bn_epsilon` must be a finite number"),
    (
        "bn_epsilon Infinity",
        _architecture(bn_epsilon=float("inf")),
        "`bn_epsilon` must be a finite number",
    ),
    (
        "a NaN preprocessing scale",
        _preprocessing({"scale": float("nan")}),
        "Invalid `preprocessing`",
    ),
    (
        "a preprocessing mean that is not a list",
        _preprocessing({"mean": 5}),
        "Invalid `preprocessing`",
    ),
    (
        "fewer labels than classes",
        lambda config: config.__setitem__("labels", ["a"]),
        "`labels` must name each of the 3 classes",
    ),
    (
        "a label given twice",
        lambda config: config.__setitem__("labels", ["cat", "dog", "cat"]),
        "`labels` must name each class once; 1 label(s) appear more than once: ['cat']",
    ),
    (
        "a label of 300 characters",
        lambda config: config.__setitem__("labels", ["cat", "dog", "x" * 300]),
        "A label may have at most 256 characters",
    ),
    (
        "a preprocessing scale of 1e300",
        _preprocessing({"scale": 1e300, "mean": [0.5] * 3, "std": [0.25] * 3}),
        "`preprocessing` out of range",
    ),
    (
        "600 million parameters beside a small weights file",
        _architecture(stage_widths=[4096, 4096]),
        "float32 values where the architecture in config.json has 453,734,899 parameters",
    ),
]


def _replace(name, make):
    def damage(directory):
        (directory / name).unlink()
        make(directory / name)

    return damage


def _rewrite_weights(transform):
    def damage(directory):
        import hashlib

        import safetensors.numpy

        tensors = safetensors.numpy.load_file(str(directory / "model.safetensors"))
        safetensors.numpy.save_file(transform(tensors), str(directory / "model.safetensors"))
        meta = json.loads((directory / "metadata.json").read_text())
        meta["sha256"] = hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()
        (directory / "metadata.json").write_text(json.dumps(meta))

    return damage


def _nested(depth):
    return "[" * depth + "]" * depth


def _edit_text(name, change):
    def damage(directory):
        (directory / name).write_text(change((directory / name).read_text()))

    return damage


def _rehashed(damage):
    def rehashed(directory):
        damage(directory)
        rehash(directory)

    return rehashed


def _forge_labels(text):
    config = json.loads(text)
    config["labels"] = ["EVIL0", "EVIL1", "EVIL2"]
    return json.dumps(config)


# (case as the docs table names it, the damage done to the directory, what the error says)
FILE_CASES = [
    (
        "model.safetensors is a FIFO",
        _replace("model.safetensors", os.mkfifo),
        "model.safetensors is a FIFO, not a regular file",
    ),
    (
        "config.json is a link to /dev/zero",
        _replace("config.json", lambda p: p.symlink_to("/dev/zero")),
        "config.json is a link to '/dev/zero', outside its checkpoint directory",
    ),
    (
        "model.safetensors is a link to a file outside the directory",
        _replace("model.safetensors", lambda p: p.symlink_to(p.parent.parent / "elsewhere.bin")),
        "outside its checkpoint directory",
    ),
    (
        "model.safetensors is a directory",
        _replace("model.safetensors", lambda p: p.mkdir()),
        "model.safetensors is a directory, not a regular file",
    ),
    (
        "config.json of 200 MB",
        _replace("config.json", lambda p: p.write_bytes(b" " * (200 << 20))),
        "beyond the limit of 33,554,432",
    ),
    (
        "metadata.json nested 2,000 deep",
        _replace("metadata.json", lambda p: p.write_text('{"sha256": ' + _nested(2000) + "}")),
        "metadata.json is nested too deeply",
    ),
    (
        "float16 weights",
        _rewrite_weights(lambda t: {k: v.astype("float16") for k, v in t.items()}),
        "must hold finite float32 tensors; 'predictions/bias' is of dtype float16",
    ),
    (
        "a NaN weight",
        _rewrite_weights(
            lambda t: {k: (v * np.nan if k == "stem_conv/kernel" else v) for k, v in t.items()}
        ),
        "must hold finite float32 tensors; 'stem_conv/kernel' is not finite",
    ),
    (
        "a BatchNorm variance below 0",
        _rewrite_weights(
            lambda t: {
                k: (-v if k.endswith("stem_bn/moving_variance") else v) for k, v in t.items()
            }
        ),
        "the BatchNorm variance 'stem_bn/moving_variance' has values below 0",
    ),
    (
        "model.safetensors of 2 GiB for a small config",
        _replace("model.safetensors", lambda p: open(p, "wb").truncate(2 << 30)),
        "model.safetensors is 2,147,483,648 bytes, more than the 2,347 parameters",
    ),
    (
        "a key given twice in config.json",
        _rehashed(
            _edit_text(
                "config.json", lambda t: t.replace('"labels":', '"labels": [], "labels":', 1)
            )
        ),
        "a key appears twice in one object: ['labels']",
    ),
    (
        "labels edited in config.json after it was written",
        _edit_text("config.json", _forge_labels),
        "sha256 mismatch for config.json",
    ),
    (
        "README.md edited after it was written",
        _edit_text("README.md", lambda t: t + "forged\n"),
        "sha256 mismatch for README.md",
    ),
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    arch = Architecture(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2])
    model = ResNet(
        arch,
        num_classes=3,
        input_shape=(16, 16, 3),
        preprocessing={"scale": 1 / 255, "mean": [0.5] * 3, "std": [0.25] * 3},
    )
    return save_pretrained(
        model, tmp_path_factory.mktemp("good") / "tiny", labels=["cat", "dog", "fish"]
    )


def _damaged(checkpoint, tmp_path, edit):
    import shutil

    target = tmp_path / "damaged"
    shutil.copytree(checkpoint, target)
    config = json.loads((target / "config.json").read_text())
    edit(config)
    (target / "config.json").write_text(json.dumps(config))
    rehash(target)
    return target


@pytest.mark.parametrize("case,edit,message", CASES, ids=[c[0] for c in CASES])
def test_a_config_beyond_its_bounds_is_refused_before_anything_is_built(
    case, edit, message, checkpoint, tmp_path, capsys
):
    damaged = _damaged(checkpoint, tmp_path, edit)
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as error, _time_limit(60):
        from_pretrained(str(damaged))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert time.perf_counter() - start < 5, "refused only after building or allocating"

    with _time_limit(60):
        assert main(["predict", str(damaged), str(tmp_path / "any.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("case,damage,message", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_a_damaged_file_is_refused_without_hanging_or_reading_it_whole(
    case, damage, message, checkpoint, tmp_path, capsys
):
    import shutil

    target = tmp_path / "damaged"
    shutil.copytree(checkpoint, target)
    (tmp_path / "elsewhere.bin").write_bytes((checkpoint / "model.safetensors").read_bytes())
    damage(target)
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as error, _time_limit(60):
        from_pretrained(str(target))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert time.perf_counter() - start < 5

    with _time_limit(60):
        assert main(["predict", str(target), str(tmp_path / "any.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_the_time_limit_fails_a_call_that_would_hang(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(Hung), _time_limit(0.5):
        open(fifo, "rb")  # blocks until a writer opens it: never
    with pytest.raises(Hung), _time_limit(0.5):
        with open("/dev/zero", "rb") as f:
            while True:
                f.read(1 << 16)


def test_the_docs_table_lists_every_case():
    text = (ROOT / "docs" / "checkpoints.md").read_text()
    rows = re.findall(r"^\| (?:config\.json: )?(.+?) \| refused: (.+?) \|$", text, re.MULTILINE)
    cases = CASES + FILE_CASES
    assert [case for case, _ in rows] == [case for case, _, _ in cases]
    assert all(message in said for (_, said), (_, _, message) in zip(rows, cases))


def test_a_bundled_checkpoint_rewritten_whole_is_refused_by_the_registry_pin(
    checkpoint, tmp_path, monkeypatch
):
    # config.json forged and every hash in metadata.json redone to match: only the registry,
    # which pins metadata.json's own hash, can tell.
    import shutil

    from keras_resblocks.checkpoints import catalog
    from keras_resblocks.checkpoints.io import sha256_of

    weights = tmp_path / "weights"
    shutil.copytree(checkpoint, weights / "tiny")
    entry = {
        "architecture": "resnet20",
        "bundled": "tiny",
        "sha256": sha256_of(weights / "tiny" / "model.safetensors"),
        "metadata_sha256": sha256_of(weights / "tiny" / "metadata.json"),
    }
    (weights / "catalog.json").write_text(json.dumps({"checkpoints": {"tiny_bundled": entry}}))
    monkeypatch.setattr(catalog, "weights_root", lambda: weights)
    catalog.clear_cache()
    try:
        assert from_pretrained("tiny_bundled").labels == ["cat", "dog", "fish"]
        _edit_text("config.json", _forge_labels)(weights / "tiny")
        rehash(weights / "tiny")
        assert from_pretrained(str(weights / "tiny")).labels[0] == "EVIL0"  # consistent alone
        with pytest.raises(CheckpointError, match="sha256 mismatch for metadata.json"):
            from_pretrained("tiny_bundled")
    finally:
        catalog.clear_cache()


def test_every_registry_entry_pins_its_metadata():
    from keras_resblocks.checkpoints import catalog
    from keras_resblocks.checkpoints.io import sha256_of

    for name, entry in catalog.entries().items():
        if entry.get("bundled"):
            directory = pathlib.Path(str(catalog.weights_root() / entry["bundled"]))
            assert entry.get("metadata_sha256") == sha256_of(directory / "metadata.json"), name


def test_a_directory_that_is_not_a_checkpoint_is_named_without_listing_all_of_it(tmp_path):
    for i in range(500):
        (tmp_path / f"file{i:03d}.txt").write_text("x")
    with pytest.raises(CheckpointError) as error:
        from_pretrained(str(tmp_path))
    message = str(error.value)
    assert "and 488 more" in message and "file499" not in message and len(message) < 1000
