"""The CIFAR-10 zoo's table and degradation figure, generated from the runs themselves.

``python scripts/zoo_report.py runs/`` reads every checkpoint directory under
``runs/`` (``<model>-<dataset>/metadata.json`` and its ``history.csv``), draws
He et al. 2015's figure 6 with :func:`keras_resblocks.plotting.plot_degradation`,
and writes the table, the figure link and the degradation checks between
``<!-- zoo:<dataset> -->`` and ``<!-- /zoo:<dataset> -->`` in ``docs/cifar10.md``
and the README. Every number comes from a file a run wrote; nothing is typed in
except the paper's own figures, which are labelled as such.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import sys

from keras_resblocks.checkpoints.format import METADATA_FILE, WEIGHTS_FILE

# He et al. 2015, table 6: CIFAR-10 test error (%) of the residual nets (110: best of 5
# runs; the mean was 6.61 +- 0.16). The paper gives no table figures for the plain nets.
PAPER_TEST_ERROR = {"resnet20": 8.75, "resnet32": 7.51, "resnet44": 7.17, "resnet56": 6.97,
                    "resnet110": 6.43, "resnet1202": 7.93}

COLUMNS = ("model", "parameters", "train error %", "test error %", "paper test error %",
           "epochs", "iterations", "wall time (min)", "images/s")


def _history_path(checkpoint, model):
    for candidate in (checkpoint.parent / f"{checkpoint.name}.work" / "history.csv",
                      checkpoint.parent / f"{model}.work" / "history.csv"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"No history.csv for {checkpoint}: looked in {checkpoint.name}.work/ and {model}.work/"
    )


def _parameters(weights):
    from safetensors import safe_open

    with safe_open(str(weights), "np") as f:
        return sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())


def load_runs(runs_dir, dataset=None):
    """One dict per finished run under ``runs_dir``, sorted plain before residual, by depth.

    A run is a checkpoint directory ``<model>-<dataset>`` (``metadata.json``,
    ``model.safetensors``) with a ``history.csv`` in ``<model>-<dataset>.work/``
    or ``<model>.work/`` beside it. ``dataset`` keeps only runs on that dataset.
    """
    runs = []
    for meta_path in sorted(pathlib.Path(runs_dir).glob(f"*/{METADATA_FILE}")):
        checkpoint = meta_path.parent
        model, _, suffix = checkpoint.name.partition("-")
        if dataset is not None and suffix != dataset:
            continue
        runs.append(load_run(model, checkpoint, _history_path(checkpoint, model)))
    if not runs:
        raise FileNotFoundError(f"No finished run (a <model>-<dataset>/{METADATA_FILE}) under {runs_dir}")
    return sorted(runs, key=_order)


def load_run(model, checkpoint, history_path):
    """One finished run: its checkpoint directory and the history.csv its training wrote.

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
        "model": model, "dataset": meta.get("dataset"), "checkpoint": checkpoint,
        "history": history, "metadata": meta,
        "parameters": _parameters(checkpoint / WEIGHTS_FILE),
        "train_error": 100 * last["train_error"],
        "test_error": None if last.get("test_error") is None else 100 * last["test_error"],
        "paper_test_error": PAPER_TEST_ERROR.get(model),
        "epochs": int(last["epoch"]), "iterations": int(last["iterations"]),
        "wall_minutes": float(last["wall_time"]) / 60,
        "images_per_second": meta.get("images_per_second"),
    }


def _order(run):
    digits = "".join(c for c in run["model"] if c.isdigit())
    return (not run["model"].startswith("plain"), int(digits or 0), run["model"])


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(runs):
    """The markdown table of :data:`COLUMNS`, one row per run.

    Example:

    >>> from keras_resblocks.zoo_report import table
    >>> run = {"model": "resnet20", "parameters": 272474, "train_error": 1.2,
    ...        "test_error": 8.1, "paper_test_error": 8.75, "epochs": 182,
    ...        "iterations": 64000, "wall_minutes": 12.5, "images_per_second": 31000.0}
    >>> print(table([run]).splitlines()[2])
    | resnet20 | 272,474 | 1.20 | 8.10 | 8.75 | 182 | 64,000 | 12.5 | 31,000 |
    """
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in runs:
        cells = [r["model"], f"{r['parameters']:,}", _fmt(r["train_error"], ".2f"),
                 _fmt(r["test_error"], ".2f"), _fmt(r["paper_test_error"], ".2f"),
                 str(r["epochs"]), f"{r['iterations']:,}", _fmt(r["wall_minutes"], ".1f"),
                 _fmt(r["images_per_second"], ",.0f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def degradation_checks(runs):
    """The statements the zoo exists to show, each with whether the runs bear it out.

    Returns ``(statement, holds, evidence)`` triples for the pairs present in
    ``runs``: plain-deep trains worse than plain-shallow, ResNet-deep trains
    better than ResNet-shallow, and ResNet-n beats plain-n on test.

    Example:

    >>> from keras_resblocks.zoo_report import degradation_checks
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
        compare(f"final training error of {deep} above {shallow}", deep, shallow,
                "train_error", True)
    compare("final training error of resnet56 below resnet20", "resnet56", "resnet20",
            "train_error", False)
    for depth in (20, 32, 44, 56, 110):
        compare(f"resnet{depth} more accurate than plain{depth} on test", f"resnet{depth}",
                f"plain{depth}", "test_error", False)
    return checks


def splice(document, marker, markdown):
    """``document`` with the text between ``<!-- marker -->`` and ``<!-- /marker -->`` replaced.

    Example:

    >>> from keras_resblocks.zoo_report import splice
    >>> splice("a\\n<!-- zoo:x -->\\nold\\n<!-- /zoo:x -->\\nb", "zoo:x", "new")
    'a\\n<!-- zoo:x -->\\nnew\\n<!-- /zoo:x -->\\nb'
    """
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    if start not in document or end not in document:
        raise ValueError(f"The document has no {start} ... {end} block. Received: marker={marker!r}")
    head, rest = document.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{markdown}\n{end}{tail}"


def report(runs, figure_link, command):
    """The markdown that goes between the markers: table, checks, figure, command."""
    datasets = sorted({str(r["dataset"]) for r in runs})
    lines = [
        f"Measured by this project's own runs on {', '.join(datasets)} (final epoch, top-1; train "
        "error is the running mean of the last epoch under augmentation, as in the paper's "
        "figure 6). Paper: He et al. 2015, table 6, on the lossless originals.",
        "",
        table(runs),
        "",
    ]
    for statement, holds, evidence in degradation_checks(runs):
        lines.append(f"- {'yes' if holds else '**no**'}: {statement} ({evidence})")
    commands = sorted({r["metadata"].get("command") or "" for r in runs} - {""})
    lines += ["", f"![training error (dashed) and test error (bold) against iterations]({figure_link})",
              "", "Generated by:", "",
              "<!-- not run by tests: regenerates this section from the runs' own files -->",
              "```text", command, "```", "",
              "from runs trained by:", "",
              "<!-- not run by tests: the training runs behind the table, hours each on a CPU -->",
              "```text", *commands, "```"]
    return "\n".join(lines)


def write_report(runs_dir, figure, documents, marker="zoo:cifar10", dataset=None, ymax=20.0,
                 command=None, runs=None):
    """Draw the figure and splice the report into each document; returns the runs.

    ``runs`` (from :func:`load_run`) replaces reading ``runs_dir``.
    """
    from keras_resblocks.plotting import plot_degradation

    runs = sorted(runs, key=_order) if runs is not None else load_runs(runs_dir, dataset=dataset)
    plain = {r["model"]: r["history"] for r in runs if r["model"].startswith("plain")}
    residual = {r["model"]: r["history"] for r in runs if not r["model"].startswith("plain")}
    plot_degradation(plain, residual, output=figure, ylim=(0, ymax))
    command = command or "python scripts/zoo_report.py " + " ".join(sys.argv[1:])
    for doc in documents:
        doc = pathlib.Path(doc)
        link = os.path.relpath(pathlib.Path(figure).resolve(), doc.resolve().parent)
        text = doc.read_text(encoding="utf-8")
        doc.write_text(splice(text, marker, report(runs, link, command)), encoding="utf-8")
    return runs


def main(argv=None):
    """``python scripts/zoo_report.py RUNS_DIR [--figure PNG] [--doc MD ...]``; returns 0.

    Example:

    >>> from keras_resblocks.zoo_report import main
    >>> main(["/nonexistent-runs"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    parser = argparse.ArgumentParser(prog="zoo_report", description=__doc__.split("\n")[0])
    parser.add_argument("runs", help="folder of <model>-<dataset> checkpoints and their .work folders")
    parser.add_argument("--figure", default="docs/cifar10-degradation.png", help="PNG to draw")
    parser.add_argument("--doc", action="append", default=None,
                        help="markdown file holding the markers (repeatable; default "
                             "docs/cifar10.md and README.md)")
    parser.add_argument("--marker", default="zoo:cifar10")
    parser.add_argument("--dataset", default=None, help="only runs on this dataset (folder suffix)")
    parser.add_argument("--ymax", type=float, default=20.0, help="top of the error axis (%%)")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        runs = write_report(args.runs, args.figure, args.doc or ["docs/cifar10.md", "README.md"],
                            marker=args.marker, dataset=args.dataset, ymax=args.ymax,
                            command="python scripts/zoo_report.py " + " ".join(argv))
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    print(f"{len(runs)} runs: {', '.join(r['model'] for r in runs)}; figure {args.figure}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
