"""The zoo's table and degradation figure, generated from the runs themselves.

``python scripts/zoo.py report`` calls :func:`write_report` with every finished run
(its checkpoint's ``metadata.json`` and its ``history.csv``): it draws He et al.
2015's figure 6 with :func:`keras_resblocks.plotting.plot_degradation` and writes the
table, the figure link and the degradation checks between ``<!-- zoo:cifar10 -->``
and ``<!-- /zoo:cifar10 -->`` in ``docs/cifar10.md`` and the README. Every number
comes from a file a run wrote; nothing is typed in except the paper's own figures,
which are labelled as such.
"""

from __future__ import annotations

import math
import os
import pathlib
import shlex
import sys

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))

from benchmarks.report import splice_between  # noqa: E402
from keras_resblocks.checkpoints.format import WEIGHTS_FILE  # noqa: E402
from keras_resblocks.plotting import is_plain  # noqa: E402

# He et al. 2015, table 6: CIFAR-10 test error (%) of the residual nets (110: best of 5
# runs; the mean was 6.61 +- 0.16). The paper gives no table figures for the plain nets.
PAPER_TEST_ERROR = {
    "resnet20": 8.75,
    "resnet32": 7.51,
    "resnet44": 7.17,
    "resnet56": 6.97,
    "resnet110": 6.43,
    "resnet1202": 7.93,
}

COLUMNS = (
    "model",
    "parameters",
    "train error %",
    "test error %",
    "paper test error %",
    "training images",
    "epochs",
    "iterations",
    "wall time (min)",
    "images/s",
)


def _parameters(weights):
    from safetensors import safe_open

    with safe_open(str(weights), "np") as f:
        return sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())


def load_run(model, checkpoint, history_path, label=None):
    """One finished run: its checkpoint directory and the history.csv its training wrote.

    ``label`` names the run in tables (default: the model's name).

    Returns the dict :func:`table`, :func:`degradation_checks` and :func:`report` read.
    """
    from keras_resblocks.checkpoints.io import read_metadata
    from keras_resblocks.training.history import read_history

    checkpoint = pathlib.Path(checkpoint)
    meta = read_metadata(checkpoint).to_json()
    history = read_history(history_path)
    if not history:
        raise ValueError(f"{history_path}: no epochs. Received: a history of {checkpoint}")
    last = history[-1]
    return {
        "model": model,
        "label": label or model,
        "dataset": meta.get("dataset"),
        "checkpoint": checkpoint,
        "history": history,
        "metadata": meta,
        "parameters": _parameters(checkpoint / WEIGHTS_FILE),
        "train_error": 100 * last["train_error"],
        "test_error": None if last.get("test_error") is None else 100 * last["test_error"],
        "paper_test_error": PAPER_TEST_ERROR.get(model),
        "train_images": (meta.get("data") or {}).get("train"),
        "epochs": int(last["epoch"]),
        "iterations": int(last["iterations"]),
        "wall_minutes": float(last["wall_time"]) / 60,
        "images_per_second": meta.get("images_per_second"),
    }


def _order(run):
    return (not is_plain(run["model"]), run["parameters"], run["model"])


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(runs):
    """The markdown table of :data:`COLUMNS`, one row per run.

    Example:

    >>> from zoo_report import table
    >>> run = {"model": "resnet20", "parameters": 272474, "train_error": 1.2,
    ...        "test_error": 8.1, "paper_test_error": 8.75, "epochs": 182,
    ...        "iterations": 64000, "wall_minutes": 12.5, "images_per_second": 31000.0}
    >>> print(table([run]).splitlines()[2])
    | resnet20 | 272,474 | 1.20 | 8.10 | 8.75 | - | 182 | 64,000 | 12.5 | 31,000 |
    """
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in runs:
        cells = [
            r.get("label", r["model"]),
            f"{r['parameters']:,}",
            _fmt(r["train_error"], ".2f"),
            _fmt(r["test_error"], ".2f"),
            _fmt(r["paper_test_error"], ".2f"),
            _fmt(r.get("train_images"), ","),
            str(r["epochs"]),
            f"{r['iterations']:,}",
            _fmt(r["wall_minutes"], ".1f"),
            _fmt(r["images_per_second"], ",.0f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def degradation_checks(runs):
    """The statements the zoo exists to show, each with whether the runs bear it out.

    Returns ``(statement, holds, evidence)`` triples for the pairs present in
    ``runs``: plain-deep trains worse than plain-shallow, ResNet-deep trains
    better than ResNet-shallow, and ResNet-n beats plain-n on test.

    Example:

    >>> from zoo_report import degradation_checks
    >>> runs = [{"model": "plain20", "train_error": 5.0, "test_error": 9.0},
    ...         {"model": "plain56", "train_error": 8.0, "test_error": 12.0}]
    >>> degradation_checks(runs)
    [('final training error of plain56 above plain20', True, '8.00% vs 5.00%')]
    """
    by = {r["model"]: r for r in runs}
    checks = []

    def compare(statement, a, b, key, higher):
        if a in by and b in by and by[a][key] is not None and by[b][key] is not None:
            x, y = by[a][key], by[b][key]
            checks.append((statement, x > y if higher else x < y, f"{x:.2f}% vs {y:.2f}%"))

    for shallow, deep in (("plain20", "plain56"), ("plain32", "plain44")):
        compare(
            f"final training error of {deep} above {shallow}", deep, shallow, "train_error", True
        )
    for shallow, deep in (("resnet20", "resnet56"), ("resnet56", "resnet110")):
        compare(
            f"final training error of {deep} below {shallow}", deep, shallow, "train_error", False
        )
    for depth in (20, 32, 44, 56, 110):
        compare(
            f"resnet{depth} more accurate than plain{depth} on test",
            f"resnet{depth}",
            f"plain{depth}",
            "test_error",
            False,
        )
    return checks


# Options of a recorded training command that concern only the machine it ran on.
_LOCAL_OPTIONS = {"--work-dir", "--deadline", "--verbose", "--data-note", "--data-cache"}


def user_command(command):
    """A run's recorded command as a user would retype it on their own copy of the data.

    The program becomes ``keras-resblocks``; options that only say where and how this
    run kept its state (``--work-dir``, ``--deadline``, ``--resume``, ``--verbose``,
    ``--data-note``, ``--data-cache``) are left out; the data set and the output keep
    their file names only.

    Example:

    >>> from zoo_report import user_command
    >>> user_command("python -m keras_resblocks train --model resnet20 --dataset "
    ...              "../data/cifar10-jpeg.tar.gz --work-dir zoo/cifar10/resnet20 --output "
    ...              "weights/resnet20_cifar10 --deadline 2026-12-01T17:49:00 --recipe budget "
    ...              "--data-note 'JPEG copy' --seed 0 --resume")
    'keras-resblocks train --model resnet20 --dataset cifar10-jpeg.tar.gz --output resnet20_cifar10 --recipe budget --seed 0'
    """
    words = shlex.split(command)
    if words[:3] == ["python", "-m", "keras_resblocks"]:
        words = ["keras-resblocks"] + words[3:]
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
            continue
        option = word.split("=", 1)[0]
        if option in _LOCAL_OPTIONS:
            skip = "=" not in word
            continue
        if word == "--resume":
            continue
        if kept and kept[-1] in ("--dataset", "--output"):
            word = os.path.basename(word.rstrip("/"))
        kept.append(word)
    return shlex.join(kept)


def report(runs, figure_link, longer=()):
    """The markdown that goes between the markers: table, checks, figure, command.

    ``longer``: runs of the same recipe for more epochs, in a table of their own (the
    checks and the figure compare nets trained for equally many epochs).
    """
    datasets = sorted({str(r["dataset"]) for r in runs})
    lines = [
        f"Trained and measured by keras-resblocks on {', '.join(datasets)} (final epoch, top-1; train "
        "error is the running mean of the last epoch under augmentation, as in the paper's "
        "figure 6). Paper: He et al. 2015, table 6, on the lossless originals.",
        "",
        table(runs),
        "",
    ]
    for statement, holds, evidence in degradation_checks(runs):
        lines.append(f"- {'yes' if holds else '**no**'}: {statement} ({evidence})")
    if longer:
        lines += [
            "",
            "Other runs of the same recipe, longer or on more training images (not in the "
            "checks or the figure, which compare nets trained alike):",
            "",
            table(longer),
        ]
    every = [*runs, *longer]
    commands = sorted(
        {user_command(r["metadata"]["command"]) for r in every if r["metadata"].get("command")}
    )
    names = ", ".join(f"`{r['checkpoint'].name}`" for r in every)
    lines += [
        "",
        f"![training error (dashed) and test error (bold) against iterations]({figure_link})",
        "",
        f"Each run is a checkpoint that ships with the package ({names}): "
        "`from_pretrained(NAME)`, `keras-resblocks info NAME`. Trained by:",
        "",
        "<!-- not run by tests: the training runs behind the table, hours each on a CPU -->",
        "```bash",
        *commands,
        "```",
    ]
    return "\n".join(lines)


def write_report(runs, figure, documents, marker="zoo:cifar10", ymax=20.0, longer=()):
    """Draw the figure of ``runs`` (from :func:`load_run`) and splice the report into each
    document between its ``marker`` comments (``longer``: see :func:`report`); returns the
    runs in the table's order."""
    from keras_resblocks.plotting import plot_degradation

    runs = sorted(runs, key=_order)
    plain = {r["model"]: r["history"] for r in runs if is_plain(r["model"])}
    residual = {r["model"]: r["history"] for r in runs if not is_plain(r["model"])}
    plot_degradation(plain, residual, output=figure, ylim=(0, ymax))
    for doc in documents:
        doc = pathlib.Path(doc)
        link = os.path.relpath(pathlib.Path(figure).resolve(), doc.resolve().parent)
        text = doc.read_text(encoding="utf-8")
        doc.write_text(
            splice_between(text, marker, report(runs, link, sorted(longer, key=_order))),
            encoding="utf-8",
        )
    return runs
