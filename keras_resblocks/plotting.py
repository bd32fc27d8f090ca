"""Training curves from history.csv files, and He et al. 2015's figure 6.

Drawn by ``keras-resblocks plot``. matplotlib
is imported lazily and drawn with the Agg backend, so no display is needed.
"""

from __future__ import annotations

import pathlib


def _pyplot():
    from keras_resblocks._extras import require

    matplotlib = require("matplotlib", "Plotting")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run_label(path):
    """A run's name from its history file: the folder name, less ``.work``.

    Example:

    >>> from keras_resblocks.plotting import run_label
    >>> run_label("runs/plain20.work/history.csv"), run_label("resnet56.csv")
    ('plain20', 'resnet56')
    """
    path = pathlib.Path(path)
    name = path.parent.name if path.name == "history.csv" and path.parent.name else path.stem
    return name[: -len(".work")] if name.endswith(".work") else name


def is_plain(label):
    """Whether a run's label starts with the name of a plain architecture (``plain20``,
    ``plain20-digits``, ``plain56_cifar10``), by the description of that
    architecture, not by its spelling.

    Example:

    >>> from keras_resblocks.plotting import is_plain
    >>> is_plain("plain56"), is_plain("plain20-digits"), is_plain("resnet56"), is_plain("plainish")
    (True, True, False, False)
    """
    import re

    from keras_resblocks.variants import ARCHITECTURES

    name = re.split(r"[-_.]", label, maxsplit=1)[0]
    return ARCHITECTURES.get(name, {}).get("block", "residual") == "plain"


def plot_history(history, ax=None, label=None, color=None, band=None):
    """Draw one run: training error thin and dashed, test error bold, in %
    against iterations (x 10^4, as in the paper).

    ``history`` is a path to a history.csv or its rows (see
    :func:`keras_resblocks.training.read_history`); ``band``, the rows of runs
    of the same net with other seeds, shades the range of their errors at each
    iteration that they all measured. Returns the axes.

    Example:

    >>> from keras_resblocks.plotting import plot_history
    >>> rows = [{"iterations": 100, "train_error": 0.5, "test_error": 0.6},
    ...         {"iterations": 200, "train_error": 0.3, "test_error": 0.4}]
    >>> ax = plot_history(rows, label="resnet20")
    >>> [line.get_label() for line in ax.get_lines()]
    ['_resnet20 train', 'resnet20']
    """
    from keras_resblocks.training.history import read_history

    if not isinstance(history, (list, tuple)):
        label = label or run_label(history)
        history = read_history(history)
    if ax is None:
        ax = _pyplot().figure().add_subplot()
    x = [row["iterations"] / 1e4 for row in history]
    train = [100 * row["train_error"] for row in history]
    (line,) = ax.plot(x, train, "--", linewidth=0.8, color=color, label=f"_{label} train")
    test = [
        (xi, 100 * row["test_error"])
        for xi, row in zip(x, history)
        if row.get("test_error") is not None
    ]
    if test:
        ax.plot(*zip(*test), "-", linewidth=2.0, color=line.get_color(), label=label)
    for key in ("train_error", "test_error") if band else ():
        x_band, low, high = _range_over_runs([history, *band], key)
        ax.fill_between(x_band, low, high, color=line.get_color(), alpha=0.18, linewidth=0)
    ax.set_xlabel("iter. (1e4)")
    ax.set_ylabel("error (%)")
    return ax


def _range_over_runs(histories, key):
    # The iterations every run measured, with the lowest and highest error there, in %.
    from keras_resblocks.training.history import read_history

    rows = [h if isinstance(h, (list, tuple)) else read_history(h) for h in histories]
    by_run = [{r["iterations"]: r[key] for r in run if r.get(key) is not None} for run in rows]
    common = sorted(set.intersection(*(set(run) for run in by_run)))
    low = [100 * min(run[i] for run in by_run) for i in common]
    high = [100 * max(run[i] for run in by_run) for i in common]
    return [i / 1e4 for i in common], low, high


def plot_degradation(plain, residual, output=None, ylim=(0, 20), bands=None):
    """The paper's figure 6: plain nets on the left, residual nets on the right.

    ``plain`` and ``residual`` map a label to a history (path or rows), or are
    lists of history.csv paths (labelled by :func:`run_label`); ``bands`` maps a
    label to the histories of its runs with other seeds, drawn as a shaded
    range (see :func:`plot_history`). Writes a PNG to ``output`` if given;
    returns the figure.

    Example:

    >>> import tempfile
    >>> from keras_resblocks.plotting import plot_degradation
    >>> rows = [{"iterations": 100, "train_error": 0.5, "test_error": 0.6}]
    >>> fig = plot_degradation({"plain20": rows}, {"resnet20": rows},
    ...                        output=tempfile.mkdtemp() + "/fig6.png")
    >>> [ax.get_title() for ax in fig.axes]
    ['plain', 'ResNet']
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, runs, title in ((axes[0], plain, "plain"), (axes[1], residual, "ResNet")):
        if not isinstance(runs, dict):
            runs = {run_label(p): p for p in runs}
        for label, history in sorted(runs.items(), key=lambda kv: _depth_key(kv[0])):
            plot_history(history, ax=ax, label=label, band=(bands or {}).get(label))
        ax.set_title(title)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
        if runs:
            ax.legend(loc="upper right", fontsize="small")
    axes[1].set_ylabel("")
    fig.tight_layout()
    if output is not None:
        pathlib.Path(output).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(output, dpi=120)
    plt.close(fig)
    return fig


def _depth_key(label):
    digits = "".join(c for c in label if c.isdigit())
    return (int(digits) if digits else 0, label)


def add_plot_arguments(parser):
    """The options of the degradation plot, for scripts and the ``plot`` CLI command.

    Example:

    >>> import argparse
    >>> from keras_resblocks.plotting import add_plot_arguments
    >>> add_plot_arguments(argparse.ArgumentParser()).parse_args(["a.csv"]).output
    'degradation.png'
    """
    parser.add_argument(
        "histories",
        nargs="*",
        help="history.csv files; runs named after a plain "
        "architecture (a folder or file name that starts with plain20, plain56, "
        "...) go left, the others right",
    )
    parser.add_argument("--plain", nargs="*", default=[], help="history files of plain nets")
    parser.add_argument("--residual", nargs="*", default=[], help="history files of residual nets")
    parser.add_argument("--output", default="degradation.png", help="PNG to write")
    parser.add_argument("--ymax", type=float, default=20.0, help="top of the error axis (%%)")
    return parser


def run_plot(args):
    """Draw the figure for parsed :func:`add_plot_arguments` options; returns 0."""
    from keras_resblocks._cli_common import CommandError, UsageError

    _pyplot()  # a missing matplotlib is named before any history is read

    plain = list(args.plain) + [p for p in args.histories if is_plain(run_label(p))]
    residual = list(args.residual) + [p for p in args.histories if not is_plain(run_label(p))]
    if not plain and not residual:
        raise UsageError("give at least one history.csv")
    missing = [p for p in plain + residual if not pathlib.Path(p).is_file()]
    if missing:
        raise CommandError(f"history file(s) not found: {missing}")
    from keras_resblocks.training.history import read_history

    for path in plain + residual:
        rows = read_history(path)
        lacking = sorted({"iterations", "train_error"} - set(rows[0] if rows else {}))
        if not rows or lacking:
            raise CommandError(
                f"{path}: not a training history (no rows, or no column {lacking}); "
                "plot takes the history.csv that keras-resblocks train writes"
            )
    plot_degradation(plain, residual, output=args.output, ylim=(0, args.ymax))
    print(args.output)
    return 0
