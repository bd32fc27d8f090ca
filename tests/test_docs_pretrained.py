"""docs/pretrained.md runs as written; its tables agree with the registry."""

import re

import pytest

from keras_resblocks import list_pretrained
from tests._docs import DATA, ROOT, code_blocks

DOC = ROOT / "docs" / "pretrained.md"
JPEG_DATA = DATA / "cifar10-jpeg.tar.gz"


def _run(workdir, with_data):
    """Run the doc's Python blocks in order in one namespace (those that need data only if asked)."""
    import os

    namespace = {"__name__": "__main__"}
    previous = os.getcwd()
    os.chdir(workdir)
    try:
        for index, (lang, code, note) in enumerate(code_blocks(DOC), start=1):
            if note.startswith("not run by tests"):
                continue
            if lang == "python" and (with_data or "fine_tuning_runs" not in note):
                exec(compile(code, f"pretrained.md[block {index}]", "exec"), namespace)
    finally:
        os.chdir(previous)
    return namespace


def test_pretrained_doc_runs_offline(tmp_path):
    namespace = _run(tmp_path, with_data=False)
    assert namespace["probabilities"].shape == (2, 10)
    assert namespace["model"].load_report.reinitialized == (
        "predictions/bias",
        "predictions/kernel",
    )
    assert not namespace["model"].get_layer("stage2_block3").trainable
    assert namespace["model"].get_layer("stage3_block1").trainable


def test_pretrained_doc_quotes_the_registry():
    rows = re.findall(r"^\| `(\w+_akamaster)` \|.*\| ([\d.]+)% \|$", DOC.read_text(), re.MULTILINE)
    assert len(rows) == 4
    for name, accuracy in rows:
        assert f"{100 * list_pretrained()[name].accuracy:.2f}" == accuracy


def test_pretrained_doc_quotes_upstream_accuracy_as_the_catalogue_records_it():
    rows = re.findall(
        r"^\| `(\w+_imagenet_tv2?)` \| `(timm/[\w.]+)` \| ([\d.]+)% \|$",
        DOC.read_text(),
        re.MULTILINE,
    )
    assert len(rows) == 5
    for name, repo, accuracy in rows:
        entry = list_pretrained()[name].entry
        assert entry["hub"]["repo_id"] == repo
        assert f"{100 * entry['reported']['top1_accuracy']:.2f}" == accuracy


@pytest.mark.large
def test_pretrained_doc_fine_tuning_runs(tmp_path):
    if not JPEG_DATA.exists():
        pytest.skip(f"{JPEG_DATA} is not here")
    (tmp_path / "cifar10-jpeg.tar.gz").symlink_to(JPEG_DATA)
    namespace = _run(tmp_path, with_data=True)
    # The doc quotes 0.9591 (TensorFlow, seeded); animals are 60% of the test set.
    assert 0.9 < namespace["accuracy"] <= 1.0
