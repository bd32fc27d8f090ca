"""The zoo report (scripts/zoo_report.py) is generated from real runs: tiny plain and residual
nets trained on digits by `keras-resblocks train`."""

import json
import re
import shlex
import subprocess
import sys

import pytest

from keras_resblocks.cli import main
from keras_resblocks.training import read_history
from scripts.splice import splice_between
from keras_resblocks._cli_common import reproduction_command
from scripts.zoo_report import degradation_checks, load_run, write_report
from tests._docs import ROOT, code_blocks

TINY = json.dumps({"stage_depths": [1, 1, 1], "stage_widths": [8, 8, 16], "stem_width": 8})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    for model in ("plain20", "resnet20"):
        assert (
            main(
                [
                    "train",
                    "--model",
                    model,
                    "--dataset",
                    "digits",
                    "--recipe",
                    "quick",
                    "--iterations",
                    "40",
                    "--output",
                    str(root / "runs" / f"{model}-digits"),
                    "--verbose",
                    "0",
                    "--model-overrides",
                    TINY,
                ]
            )
            == 0
        )
    return root


def test_report_and_plot_commands_from_real_runs(runs):
    # docs/training.md's figure command, as written (with this interpreter and checkout).
    (plot,) = [
        code
        for lang, code, _ in code_blocks(ROOT / "docs" / "training.md")
        if code.startswith("keras-resblocks plot")
    ]
    words = shlex.split(plot.strip())
    command = (
        [sys.executable, "-m", "keras_resblocks", "plot"]
        + [str(p.relative_to(runs)) for p in sorted(runs.glob(words[2]))]
        + words[3:]
    )
    assert len(command) == 8  # two history files matched the glob
    done = subprocess.run(command, cwd=runs, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (runs / "fig6.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    doc = runs / "doc.md"
    doc.write_text("# Zoo\n\n<!-- zoo:digits -->\nnot measured yet\n<!-- /zoo:digits -->\nend\n")
    loaded = [
        load_run(
            model,
            runs / "runs" / f"{model}-digits",
            runs / "runs" / f"{model}-digits.work" / "history.csv",
        )
        for model in ("resnet20", "plain20")
    ]
    ordered = write_report(
        loaded, runs / "figures" / "zoo.png", [doc], marker="zoo:digits", ymax=100
    )
    assert [r["model"] for r in ordered] == ["plain20", "resnet20"]  # plain first, by the registry
    text = doc.read_text()
    assert "not measured yet" not in text and text.endswith("end\n")
    assert (
        "![training error (dashed) and test error (bold) against iterations](figures/zoo.png)"
        in text
    )
    assert (runs / "figures" / "zoo.png").stat().st_size > 10_000
    # Every figure in a row comes from the files the run wrote.
    for model in ("plain20", "resnet20"):
        history = read_history(runs / "runs" / f"{model}-digits.work" / "history.csv")
        meta = json.loads((runs / "runs" / f"{model}-digits" / "metadata.json").read_text())
        (row,) = [line for line in text.splitlines() if line.startswith(f"| {model} |")]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[2]) == pytest.approx(100 * history[-1]["train_error"], abs=0.005)
        assert float(cells[3]) == pytest.approx(100 * history[-1]["test_error"], abs=0.005)
        assert cells[4] == ("8.75" if model == "resnet20" else "-")
        assert cells[5:8] == [f"{meta['data']['train']:,}", "2", "40"]
        assert int(cells[9].replace(",", "")) == round(meta["images_per_second"])
        # The command a user would retype, without this machine's folders.
        assert reproduction_command(meta["command"]) in text
        assert (
            f"keras-resblocks train --model {model} --dataset digits --recipe quick "
            f"--iterations 40 --output {model}-digits"
        ) in text
    assert str(runs) not in text and ".../" not in text
    assert re.search(
        r"^- (yes|\*\*no\*\*): resnet20 more accurate than plain20 on test", text, re.M
    )


def test_user_command_drops_what_only_concerns_the_machine_it_ran_on():
    recorded = (
        "python -m keras_resblocks train --model plain56 --dataset ../data/cifar.tar.gz "
        "--work-dir=zoo/cifar10/plain56 --output weights/plain56_cifar10 --deadline "
        "2026-12-01T20:55:00 --verbose 2 --recipe budget --epochs 30 --data-note 'a, b' "
        "--seed 0 --mixed-precision bfloat16 --resume"
    )
    assert reproduction_command(recorded) == (
        "keras-resblocks train --model plain56 --dataset cifar.tar.gz --output plain56_cifar10 "
        "--recipe budget --epochs 30 --seed 0 --mixed-precision bfloat16"
    )


def test_degradation_checks_say_no_when_the_runs_do_not_bear_it_out():
    runs = [
        {"model": "resnet20", "train_error": 3.0, "test_error": 9.0},
        {"model": "resnet56", "train_error": 4.0, "test_error": 8.0},
        {"model": "plain56", "train_error": 1.0, "test_error": 12.0},
        {"model": "resnet110", "train_error": 2.0, "test_error": 7.0},
    ]
    assert degradation_checks(runs) == [
        ("final training error of resnet56 below resnet20", False, "4.00% vs 3.00%"),
        ("final training error of resnet110 below resnet56", True, "2.00% vs 4.00%"),
        ("resnet56 more accurate than plain56 on test", True, "8.00% vs 12.00%"),
    ]


def test_a_run_without_epochs_is_an_error_naming_its_history(runs, tmp_path):
    empty = tmp_path / "history.csv"
    empty.write_text("epoch,iterations,train_loss,train_error,val_error,test_error,lr,wall_time\n")
    with pytest.raises(ValueError, match="no epochs"):
        load_run("resnet20", runs / "runs" / "resnet20-digits", empty)


def test_readme_and_cifar10_doc_hold_the_markers_the_report_fills():
    for doc in (ROOT / "README.md", ROOT / "docs" / "cifar10.md"):
        assert "REPORT" in splice_between(doc.read_text(), "zoo:cifar10", "REPORT")
