"""docs/checkpoints.md runs as written."""

from tests._docs import ROOT, run_python_blocks


def test_checkpoints_doc_runs(tmp_path):
    namespace = run_python_blocks(ROOT / "docs" / "checkpoints.md", tmp_path)
    assert namespace["model"].load_report.skipped == ("predictions/bias", "predictions/kernel")
    assert 0.0 <= namespace["accuracy"] <= 1.0
