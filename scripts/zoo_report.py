"""The zoo's table and degradation figure, generated from the runs themselves.

``python -m scripts.zoo report`` calls :func:`write_report` with every finished run
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

from keras_resblocks._cli_common import reproduction_command
from keras_resblocks.checkpoints.format import WEIGHTS_FILE, metadata_detail
from keras_resblocks.plotting import is_plain
from scripts.splice import splice_between

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

    checkpoint = pathlib.Path(checkpoint)
    meta = read_metadata(checkpoint).to_json()
    parameters = _parameters(checkpoint / WEIGHTS_FILE)
    return _run(model, label, meta, history_path, parameters, checkpoint=checkpoint)


def load_seed(model, metadata_path, history_path, parameters, label=None):
    """A finished run that was not bundled (another seed): the ``metadata.json`` its
    checkpoint had, kept beside its ``history.csv``; ``parameters`` from the bundled run it
    repeats. Returns the same dict as :func:`load_run`, ``checkpoint`` ``None``."""
    import json

    meta = json.loads(pathlib.Path(metadata_path).read_text(encoding="utf-8"))
    return _run(model, label, meta, history_path, parameters, checkpoint=None)


def _run(model, label, meta, history_path, parameters, checkpoint):
    from keras_resblocks.training.history import read_history

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
        "parameters": parameters,
        "train_error": 100 * last["train_error"],
        "test_error": None if last.get("test_error") is None else 100 * last["test_error"],
        "paper_test_error": PAPER_TEST_ERROR.get(model),
        "train_images": metadata_detail(meta, "data").get("train"),
        "epochs": int(last["epoch"]),
        "iterations": int(last["iterations"]),
        "wall_minutes": float(last["wall_time"]) / 60,
        "images_per_second": meta.get("images_per_second"),
    }


def machine(run):
    """Where a run trained, in a few words, from its metadata's ``hardware``.

    Example:

    >>> from scripts.zoo_report import machine
    >>> machine({"metadata": {"hardware": {"backend": "jax", "devices": ["gpu:NVIDIA H200"],
    ...     "cpu_count": 16}}})
    'NVIDIA H200 GPU (JAX)'
    >>> machine({"metadata": {"hardware": {"backend": "tensorflow", "devices": ["CPU:/x"],
    ...     "cpu_count": 2}}})
    '2-core CPU (TensorFlow)'
    """
    hardware = run["metadata"].get("hardware") or {}
    backend = {"jax": "JAX", "tensorflow": "TensorFlow"}.get(hardware.get("backend"), "?")
    gpus = [d.split(":", 1)[1] for d in hardware.get("devices", []) if d.lower().startswith("gpu")]
    if gpus:
        return f"{gpus[0]} GPU ({backend})"
    return f"{hardware.get('cpu_count', '?')}-core CPU ({backend})"


def spread(values):
    """``(mean, min, max)`` of a list of numbers.

    Example:

    >>> from scripts.zoo_report import spread
    >>> spread([13.51, 13.93, 13.47])
    (13.636666666666665, 13.47, 13.93)
    """
    return sum(values) / len(values), min(values), max(values)


def seed_table(seeds):
    """The markdown table of the nets trained with several seeds: mean and range of the
    final training and test error, and each seed's test error.

    ``seeds`` maps a net's label to its runs, one per seed, seed 0 (the bundled
    checkpoint) first.

    Example:

    >>> from scripts.zoo_report import seed_table
    >>> runs = [{"train_error": 6.65, "test_error": 13.51, "metadata": {"seed": 0}},
    ...         {"train_error": 6.68, "test_error": 13.93, "metadata": {"seed": 1}}]
    >>> print(seed_table({"resnet20": runs}).splitlines()[2])
    | resnet20 | 0, 1 | 6.67 (6.65-6.68) | 13.72 (13.51-13.93) | 13.51, 13.93 |
    """
    lines = [
        "| model | seeds | train error % mean (min-max) | test error % mean (min-max) "
        "| test error % of each seed |",
        "|---|---|---|---|---|",
    ]
    for label, runs in seeds.items():
        cells = [label, ", ".join(str(r["metadata"].get("seed")) for r in runs)]
        for key in ("train_error", "test_error"):
            mean, low, high = spread([r[key] for r in runs])
            cells.append(f"{mean:.2f} ({low:.2f}-{high:.2f})")
        cells.append(", ".join(f"{r['test_error']:.2f}" for r in runs))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _order(run):
    return (not is_plain(run["model"]), run["parameters"], run["model"])


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(runs):
    """The markdown table of :data:`COLUMNS`, one row per run.

    Example:

    >>> from scripts.zoo_report import table
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


def degradation_checks(runs, seeds=None):
    """The statements the zoo exists to show, each with whether the runs bear it out.

    Returns ``(statement, holds, evidence)`` triples for the pairs present in
    ``runs``: plain-deep trains worse than plain-shallow, ResNet-deep trains
    better than ResNet-shallow, and ResNet-n beats plain-n on test. Where
    ``seeds`` (see :func:`seed_table`) has runs of both nets, the statement is
    checked for each seed, pairing the runs of equal seed, and holds only if it
    holds for every one.

    Example:

    >>> from scripts.zoo_report import degradation_checks
    >>> runs = [{"model": "plain20", "train_error": 5.0, "test_error": 9.0},
    ...         {"model": "plain56", "train_error": 8.0, "test_error": 12.0}]
    >>> degradation_checks(runs)
    [('final training error of plain56 above plain20', True, '8.00% vs 5.00%')]
    >>> seeds = {"plain20": [{"train_error": 5.0, "metadata": {"seed": 0}},
    ...                      {"train_error": 7.0, "metadata": {"seed": 1}}],
    ...          "plain56": [{"train_error": 8.0, "metadata": {"seed": 0}},
    ...                      {"train_error": 6.0, "metadata": {"seed": 1}}]}
    >>> degradation_checks(runs, seeds)[0][1:]
    (False, 'for 1 of 2 seeds: seed 0 8.00% vs 5.00%, seed 1 6.00% vs 7.00%')
    """
    by = {r["model"]: r for r in runs}
    seeds = seeds or {}
    checks = []

    def compare(statement, a, b, key, higher):
        def holds(x, y):
            return x > y if higher else x < y

        if a in seeds and b in seeds:
            b_by_seed = {r["metadata"].get("seed"): r for r in seeds[b]}
            pairs = [
                (r["metadata"].get("seed"), r[key], b_by_seed[r["metadata"].get("seed")][key])
                for r in seeds[a]
                if r["metadata"].get("seed") in b_by_seed
            ]
            good = sum(holds(x, y) for _, x, y in pairs)
            evidence = ", ".join(f"seed {s} {x:.2f}% vs {y:.2f}%" for s, x, y in pairs)
            checks.append(
                (statement, good == len(pairs), f"for {good} of {len(pairs)} seeds: {evidence}")
            )
        elif a in by and b in by and by[a][key] is not None and by[b][key] is not None:
            x, y = by[a][key], by[b][key]
            checks.append((statement, holds(x, y), f"{x:.2f}% vs {y:.2f}%"))

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


def _seed_section(seeds, replicates, checks):
    where = {}
    for label, group in seeds.items():
        by_machine = {}
        for r in group:
            by_machine.setdefault(machine(r), []).append(str(r["metadata"].get("seed")))
        text = "; ".join(
            f"seed{'s' if len(s) > 1 else ''} {', '.join(s)} on the {m}"
            for m, s in by_machine.items()
        )
        where.setdefault(text, []).append(label)
    trained_on = (
        [next(iter(where))]
        if len(where) == 1
        else [f"{', '.join(labels)}: {text}" for text, labels in where.items()]
    )
    lines = [
        "",
        "The same recipe again with other seeds (the seed sets the initial weights, the order "
        "of the training images and the augmentation); seed 0 is the checkpoint of the table "
        "above. Trained with " + "; ".join(trained_on) + ":",
        "",
        seed_table(seeds),
        "",
    ]
    lines += [f"- {'yes' if holds else '**no**'}: {s} ({e})" for s, holds, e in checks]
    if replicates:
        lines += [
            "",
            "The same seed on another machine (floating-point sums in another order, so "
            "another run: the difference is of the size of the spread between seeds):",
            "",
            "| model | seed | trained on | train error % | test error % |",
            "|---|---|---|---|---|",
        ]
        for original, replicate in replicates:
            for r in (original, replicate):
                lines.append(
                    f"| {r['model']} | {r['metadata'].get('seed')} | {machine(r)} "
                    f"| {r['train_error']:.2f} | {r['test_error']:.2f} |"
                )
    return lines


def report(runs, figure_link, longer=(), seeds=None, replicates=()):
    """The markdown that goes between the markers: table, checks, figure, command.

    ``longer``: runs of the same recipe for more epochs, in a table of their own (the
    checks and the figure compare nets trained for equally many epochs). ``seeds`` (see
    :func:`seed_table`): nets trained with several seeds, reported with their spread
    and checked seed by seed. ``replicates``: ``(run, same seed elsewhere)`` pairs.
    """
    seeds = seeds or {}
    datasets = sorted({str(r["dataset"]) for r in runs})
    lines = [
        f"Trained and measured by keras-resblocks on {', '.join(datasets)} (final epoch, top-1; train "
        "error is the running mean of the last epoch under augmentation, as in the paper's "
        "figure 6). Paper: He et al. 2015, table 6, on the lossless originals. One run each "
        "(seed 0), the checkpoints that ship with the package:",
        "",
        table(runs),
        "",
    ]
    checks = degradation_checks(runs)
    for statement, holds, evidence in checks:
        lines.append(f"- {'yes' if holds else '**no**'}: {statement} ({evidence})")
    if seeds:
        seeded = [c for c in degradation_checks(runs, seeds) if c[2].startswith("for ")]
        lines += _seed_section(seeds, replicates, seeded)
    if longer:
        lines += [
            "",
            "Other runs of the same recipe, longer or on more training images (not in the "
            "checks or the figure, which compare nets trained alike):",
            "",
            table(longer),
        ]
    bundled = [r for r in [*runs, *longer] if r.get("checkpoint") is not None]
    every = [*bundled, *(r for group in seeds.values() for r in group), *(r for _, r in replicates)]
    commands = sorted(
        {
            reproduction_command(r["metadata"]["command"])
            for r in every
            if r["metadata"].get("command")
        }
    )
    names = ", ".join(f"`{r['checkpoint'].name}`" for r in bundled)
    band = "; the shaded bands are the range over the seeds" if seeds else ""
    lines += [
        "",
        f"![training error (dashed) and test error (bold) against iterations]({figure_link})",
        "",
        f"Training error dashed, test error bold{band}.",
        "",
        f"The checkpoints that ship with the package ({names}): "
        "`from_pretrained(NAME)`, `keras-resblocks info NAME`. Trained by (the runs of "
        "other seeds too, whose weights do not ship):",
        "",
        "<!-- not run by tests: the training runs behind the table, hours each on a CPU -->",
        "```bash",
        *commands,
        "```",
    ]
    return "\n".join(lines)


def write_report(
    runs, figure, documents, marker="zoo:cifar10", ymax=20.0, longer=(), seeds=None, replicates=()
):
    """Draw the figure of ``runs`` (from :func:`load_run`) and splice the report into each
    document between its ``marker`` comments (``longer``, ``seeds``, ``replicates``: see
    :func:`report`); returns the runs in the table's order."""
    from keras_resblocks.plotting import plot_degradation

    seeds = seeds or {}
    runs = sorted(runs, key=_order)
    plain = {r["model"]: r["history"] for r in runs if is_plain(r["model"])}
    residual = {r["model"]: r["history"] for r in runs if not is_plain(r["model"])}
    bands = {label: [r["history"] for r in group] for label, group in seeds.items()}
    plot_degradation(plain, residual, output=figure, ylim=(0, ymax), bands=bands)
    for doc in documents:
        doc = pathlib.Path(doc)
        link = os.path.relpath(pathlib.Path(figure).resolve(), doc.resolve().parent)
        text = doc.read_text(encoding="utf-8")
        markdown = report(runs, link, sorted(longer, key=_order), seeds, replicates)
        doc.write_text(splice_between(text, marker, markdown), encoding="utf-8")
    return runs
