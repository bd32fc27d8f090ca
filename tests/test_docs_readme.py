"""The README's code runs as written: its main job command, then its Python blocks."""

import json
import re
import shlex
import subprocess
import sys

import numpy as np

from tests._docs import ROOT, code_blocks, run_python_blocks

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
    trained = json.loads(done.stdout.strip().splitlines()[-1])["metrics"]["test_accuracy"]
    assert (tmp_path / "runs" / "resnet20-digits" / "model.safetensors").is_file()

    # "Then:" the block of commands on the checkpoint, as written (my_image.png: a digit).
    from PIL import Image
    from sklearn.datasets import load_digits

    digit = np.kron(load_digits().images[0], np.ones((4, 4))) * 16
    Image.fromarray(digit.astype("uint8")).save(tmp_path / "my_image.png")
    (then,) = [
        code
        for lang, code, _ in code_blocks(README)
        if lang == "bash" and code.startswith("keras-resblocks info")
    ]
    outputs = {}
    for line in then.strip().splitlines():
        words = shlex.split(line, comments=True)
        done = subprocess.run(
            [sys.executable, "-m", "keras_resblocks.cli", *words[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, (line, done.stderr[-2000:])
        outputs[words[1]] = done.stdout
    assert set(outputs) == {"info", "evaluate", "predict", "list", "verify"}
    assert "reproduces its reference batch" in outputs["verify"]
    assert "resnet20" in outputs["list"]
    # evaluate measures the checkpoint's test accuracy again: the trainer's number, to the digit.
    assert f"top-1 accuracy {100 * trained:.2f}%" in outputs["evaluate"], outputs["evaluate"]
    assert "my_image.png" in outputs["predict"] and "0" in outputs["predict"]

    namespace = run_python_blocks(README, tmp_path)
    assert namespace["probabilities"].shape == (2, 10)
    assert (
        0.6
        < namespace["model"].evaluate(
            namespace["x"][1500:], namespace["odd"][1500:], verbose=0, return_dict=True
        )["accuracy"]
    )


def test_readme_commands_exist():
    from keras_resblocks.cli import build_parser

    text = README.read_text(encoding="utf-8")
    (commands,) = [a.choices for a in build_parser()._actions if a.dest == "command"]
    used = re.findall(r"^keras-resblocks (\w+)", text, re.MULTILINE)
    assert used and set(used) <= set(commands), set(used) - set(commands)
    assert 'pip install -e ".[dev]"' in text and "python -m pytest -n 2" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[dev]"' in ci and "python -m pytest -n 2" in ci
