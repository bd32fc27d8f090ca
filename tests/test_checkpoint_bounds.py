"""A stranger's config.json cannot make loading build, allocate or compute what it likes: each
case is a checkpoint written by the package and then edited, met through from_pretrained and
through the command, refused in one line before any model is built. docs/checkpoints.md's table
of these cases is checked against CASES."""

import json
import re
import time

import pytest

from keras_resblocks import Architecture, ResNet, from_pretrained, save_pretrained
from keras_resblocks.checkpoints import CheckpointError
from keras_resblocks.cli import main
from tests._docs import ROOT


def _architecture(**changes):
    return lambda config: config["architecture"].update(changes)


def _model(**changes):
    return lambda config: config["model"].update(changes)


def _preprocessing(value):
    return lambda config: config.__setitem__("preprocessing", value)


# (case as the docs table names it, the edit of config.json, what the one-line error says)
CASES = [
    ("100,000 blocks in a stage", _architecture(stage_depths=[100000, 1]),
     "100,001 blocks, beyond the limit of 1,024"),
    ("a stage width of 1e9", _architecture(stage_widths=[1_000_000_000, 8]),
     "a width of 1,000,000,000, beyond the limit of 8,192"),
    ("a billion classes", _model(num_classes=1_000_000_000), "beyond the limit of 100,000"),
    ("a 100000x100000 input", _model(input_shape=[100000, 100000, 3]),
     "images of 100000x100000, beyond the limit of 4,096"),
    ("60 billion parameters within every other limit",
     _architecture(stage_depths=[400, 400], stage_widths=[2048, 2048]),
     "parameters, beyond the limit of 1,000,000,000"),
    ("bn_momentum as a string", _architecture(bn_momentum="0.9"),
     "`bn_momentum` must be a finite number. Received: bn_momentum='0.9'"),
    ("bn_epsilon true", _architecture(bn_epsilon=True), "`bn_epsilon` must be a finite number"),
    ("bn_epsilon Infinity", _architecture(bn_epsilon=float("inf")),
     "`bn_epsilon` must be a finite number"),
    ("a NaN preprocessing scale", _preprocessing({"scale": float("nan")}),
     "Invalid `preprocessing`"),
    ("a preprocessing mean that is not a list", _preprocessing({"mean": 5}),
     "Invalid `preprocessing`"),
    ("fewer labels than classes", lambda config: config.__setitem__("labels", ["a"]),
     "`labels` must name each of the 3 classes"),
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    arch = Architecture(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2])
    model = ResNet(arch, num_classes=3, input_shape=(16, 16, 3),
                   preprocessing={"scale": 1 / 255, "mean": [0.5] * 3, "std": [0.25] * 3})
    return save_pretrained(model, tmp_path_factory.mktemp("good") / "tiny",
                           labels=["cat", "dog", "fish"])


def _damaged(checkpoint, tmp_path, edit):
    import shutil

    target = tmp_path / "damaged"
    shutil.copytree(checkpoint, target)
    config = json.loads((target / "config.json").read_text())
    edit(config)
    (target / "config.json").write_text(json.dumps(config))
    return target


@pytest.mark.parametrize("case,edit,message", CASES, ids=[c[0] for c in CASES])
def test_a_config_beyond_its_bounds_is_refused_before_anything_is_built(
        case, edit, message, checkpoint, tmp_path, capsys):
    damaged = _damaged(checkpoint, tmp_path, edit)
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as error:
        from_pretrained(str(damaged))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert time.perf_counter() - start < 5, "refused only after building or allocating"

    assert main(["predict", str(damaged), str(tmp_path / "any.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_the_docs_table_lists_every_case():
    text = (ROOT / "docs" / "checkpoints.md").read_text()
    rows = re.findall(r"^\| config\.json: (.+?) \| refused: (.+?) \|$", text, re.MULTILINE)
    assert [case for case, _ in rows] == [case for case, _, _ in CASES]
    assert all(message in said for (_, said), (_, _, message) in zip(rows, CASES))
