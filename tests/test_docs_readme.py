"""The README's code runs as written: its main job command, then its Python blocks."""

import re
import subprocess
import sys

import pytest

from tests._docs import ROOT, run_python_blocks

README = ROOT / "README.md"


def _main_job_command():
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^keras-resblocks train [^\n#]*", text, re.MULTILINE)
    assert match, "README lost its main job command"
    return match.group(0).split()


def test_readme_main_job_then_python_blocks(tmp_path):
    # The console script's module, run with this interpreter, is the command the README shows.
    command = [sys.executable, "-m", "keras_resblocks.cli"] + _main_job_command()[1:]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"test_accuracy"' in done.stdout
    assert (tmp_path / "runs" / "resnet20-digits" / "model.safetensors").is_file()

    namespace = run_python_blocks(README, tmp_path)
    assert namespace["probabilities"].shape == (2, 10)
    assert 0.6 < namespace["model"].evaluate(
        namespace["x"][1500:], namespace["odd"][1500:], verbose=0, return_dict=True)["accuracy"]


def test_readme_commands_exist():
    text = README.read_text(encoding="utf-8")
    for sub in re.findall(r"^keras-resblocks (\w+)", text, re.MULTILINE):
        assert sub in {"train", "info", "evaluate", "predict", "list", "publish", "plot"}
    assert 'pip install -e ".[dev]"' in text and "python -m pytest -n 2" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[dev]"' in ci and "python -m pytest -n 2" in ci
