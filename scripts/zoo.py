"""Train the CIFAR-10 zoo in stages that stop before a deadline and resume on any machine.

    python -m scripts.zoo status
    python -m scripts.zoo report     # table, checks and figure 6 into docs/cifar10.md and README
    python -m scripts.zoo register   # enter the finished runs in weights/catalog.json again
    python -m scripts.zoo continue --deadline 17:45 [--data PATH] [--parallel 2] [--foreground]

``zoo/cifar10/plan.json`` lists the runs in order and the training arguments they
share: a model's name (``"resnet20"``: the plan's epochs, checkpoint
``resnet20_cifar10``) or an object for a run of its own length (``{"run":
"resnet20_90epochs", "model": "resnet20", "epochs": 90, "checkpoint":
"resnet20_cifar10_90epochs"}``), which may add training arguments of its own
(``"train_args": ["--validation", "0"]``) and replace the data set's note for its
card (``"note"``). A run with ``"bundle": false`` is evidence, not a product (another
seed of a bundled net: ``{"run": "resnet20_seed1", "model": "resnet20", "seed_of":
"resnet20", "train_args": ["--seed", "1"], "bundle": false}``): its checkpoint is
written inside its folder, and when it ends only its ``metadata.json`` (final metrics,
command, machine) is kept there; ``seed_of`` names the run it repeats, for the report's
spread over seeds. A run's state is kept in the repository, in
``zoo/cifar10/<run>/``:
``history.csv``, ``train.log`` and, while it is unfinished, ``backup/`` (weights,
optimizer and random state after the last whole epoch; overwritten each epoch).
``continue`` starts every unfinished run in turn, ``--parallel`` at a time, each
with one thread and at low priority (``nice``), with ``keras-resblocks train
--resume --deadline``: a run stops at the last epoch boundary that leaves time
for the next epoch, so what it leaves resumes exactly. By default it detaches
and returns at once (its log: ``zoo/cifar10/zoo.log``). When a run ends, its
checkpoint is in ``weights/<checkpoint>/``, it is entered in
``weights/catalog.json`` and its backup is deleted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from keras_resblocks.training.history import read_history  # noqa: E402 (no Keras import)

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent


class Zoo:
    """Where a zoo lives: ``<root>/zoo/cifar10`` (plan and runs) and ``<root>/weights``."""

    def __init__(self, root=REPOSITORY):
        self.root = pathlib.Path(root).resolve()
        self.runs = self.root / "zoo" / "cifar10"
        self.weights = self.root / "weights"
        self.plan = json.loads((self.runs / "plan.json").read_text())


EXIT_UNFINISHED = 75  # keras-resblocks train: stopped at --deadline
KILL_GRACE_S = 600  # a run still going this long after the deadline is killed (it resumes
# from its last epoch backup)


def plan_runs(plan):
    """The plan's runs in order, each a dict of ``run``, ``model``, ``epochs``, ``checkpoint``
    (``None`` for a run that is not bundled), ``bundle``, ``seed_of`` (the run it repeats
    with another seed, or ``None``) and ``train_args`` (the run's own arguments after the
    plan's; default none), and ``note`` where the run replaces the data set's note.

    Example:

    >>> from scripts.zoo import plan_runs
    >>> plan_runs({"epochs": 30, "runs": ["plain20", {"run": "resnet20_90epochs",
    ...     "model": "resnet20", "epochs": 90, "checkpoint": "resnet20_cifar10_90epochs"}]})[0]
    {'run': 'plain20', 'model': 'plain20', 'epochs': 30, 'checkpoint': 'plain20_cifar10', 'bundle': True, 'seed_of': None, 'train_args': []}
    >>> plan_runs({"epochs": 30, "runs": ["plain20", {"run": "plain20_seed1", "model":
    ...     "plain20", "seed_of": "plain20", "train_args": ["--seed", "1"], "bundle": False}]}
    ...     )[1]["checkpoint"] is None
    True
    """
    runs = []
    for entry in plan["runs"]:
        if isinstance(entry, str):
            entry = {"run": entry, "model": entry, "epochs": plan["epochs"]}
            entry["checkpoint"] = f"{entry['model']}_cifar10"
        defaults = {"epochs": plan["epochs"], "bundle": True, "seed_of": None}
        entry = {**entry, **{k: v for k, v in defaults.items() if k not in entry}}
        if not entry["bundle"]:
            entry["checkpoint"] = None
        missing = {"run", "model", "checkpoint"} - set(entry)
        if missing:
            raise ValueError(f"A plan's run needs {sorted(missing)}. Received: {entry}")
        entry = {**entry, "train_args": entry.get("train_args", [])}
        if not all(isinstance(a, str) for a in entry["train_args"]):
            raise ValueError(f"A run's train_args are strings. Received: {entry}")
        runs.append(entry)
    names = [r["run"] for r in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"The plan names a run twice. Received: runs={names}")
    unknown = {r["seed_of"] for r in runs if r["seed_of"]} - set(names)
    if unknown:
        raise ValueError(f"`seed_of` names no run of the plan. Received: {sorted(unknown)}")
    return runs


def output_dir(zoo, run):
    """Where a run's checkpoint is written: ``weights/<checkpoint>`` for a bundled run,
    ``zoo/cifar10/<run>/checkpoint`` (not committed) for evidence."""
    if run["bundle"]:
        return zoo.weights / run["checkpoint"]
    return zoo.runs / run["run"] / "checkpoint"


def run_state(zoo, run):
    """``(state, epochs_done, history rows)``; state is done, finishing, running or new."""
    work = zoo.runs / run["run"]
    history = read_history(work / "history.csv") if (work / "history.csv").exists() else []
    backup = work / "backup" / "training_metadata.json"
    done_epochs = json.loads(backup.read_text())["epoch"] if backup.exists() else 0
    if not run["bundle"] and (work / "metadata.json").exists():
        return "done", run["epochs"], history
    if (output_dir(zoo, run) / "metadata.json").exists():
        if not run["bundle"] or (work / "backup").exists():
            return "finishing", run["epochs"], history
        return "done", run["epochs"], history
    if backup.exists():
        return "running", done_epochs, history
    return "new", 0, history


def status_rows(zoo):
    rows = []
    for run in plan_runs(zoo.plan):
        state, epochs, history = run_state(zoo, run)
        last = history[-1] if history else {}
        rows.append(
            {
                "run": run["run"],
                "state": state,
                "epoch": f"{epochs}/{run['epochs']}",
                "train_err": last.get("train_error"),
                "val_err": last.get("val_error"),
                "test_err": last.get("test_error"),
                "epoch_min": _epoch_minutes(history),
                "left_h": None
                if not history
                else round(_epoch_minutes(history) * (run["epochs"] - epochs) / 60, 1),
            }
        )
    return rows


def _epoch_minutes(history):
    # Training plus evaluation per epoch: the differences of wall_time after the
    # first epoch (which also compiles), the median of the last three: the speed of the
    # code and machine now, not of earlier stages.
    walls = [row["wall_time"] for row in history]
    steps = [b - a for a, b in zip(walls, walls[1:]) if b > a] or walls[:1]
    return round(statistics.median(steps[-3:]) / 60, 2) if steps else None


def print_status(zoo):
    rows = status_rows(zoo)
    header = list(rows[0])
    width = max(9, *(len(row["run"]) for row in rows))
    print("  ".join(f"{h:>{width if h == 'run' else 9}}" for h in header))
    for row in rows:
        cells = []
        for h in header:
            v = row[h]
            text = (
                "-"
                if v is None
                else (f"{v:.4f}" if isinstance(v, float) and h.endswith("err") else str(v))
            )
            cells.append(f"{text:>{width if h == 'run' else 9}}")
        print("  ".join(cells))


def finalize(zoo, run):
    """Enter a finished run's checkpoint in the catalogue and delete its backup; of a run
    that is not bundled, keep the checkpoint's ``metadata.json`` beside its history and
    delete the rest."""
    work = zoo.runs / run["run"]
    if not run["bundle"]:
        shutil.copyfile(output_dir(zoo, run) / "metadata.json", work / "metadata.json")
        shutil.rmtree(output_dir(zoo, run))
        shutil.rmtree(work / "backup", ignore_errors=True)
        _log(f"{run['run']}: finished; metadata kept, checkpoint and backup deleted")
        return
    name, model = run["checkpoint"], run["model"]
    from keras_resblocks.checkpoints.io import record_file_hashes

    card = zoo.weights / name / "README.md"
    text = card.read_text(encoding="utf-8")
    card.write_text(text.replace(f"\n# {model}\n", f"\n# {name}\n", 1), encoding="utf-8")
    record_file_hashes(zoo.weights / name)  # the card changed (and 0.1.0 recorded no file hashes)
    register(zoo, [run])
    shutil.rmtree(work / "backup", ignore_errors=True)
    _log(f"{run['run']}: finished; {name} registered, backup deleted")


def describe(plan, run, meta):
    """The catalogue's one sentence about a zoo checkpoint, from its own metadata."""
    from keras_resblocks.checkpoints.format import metadata_detail

    metrics = meta.get("metrics") or {}
    trained_on = metadata_detail(meta, "data").get("train")
    images = f", {trained_on:,} training images" if trained_on else ""
    return (
        f"Trained by keras-resblocks on {plan['dataset']['description']} "
        f"({run['epochs']} epochs, recipe {plan['recipe']}{images}); test accuracy "
        f"{100 * metrics.get('test_accuracy', float('nan')):.2f}% on its 10,000 test images."
    )


def seed_spread(zoo, run, meta):
    """The test accuracy of a bundled run and of its finished runs with other seeds
    (``seed_of``): ``{"metric", "seeds", "accuracies", "min", "max", "mean"}``, or ``None``
    where it has no such runs. A run of the same seed (on another machine) is left out.

    Example:

    >>> import json, pathlib, tempfile
    >>> from scripts.zoo import Zoo, seed_spread
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "zoo" / "cifar10" / "r_seed1").mkdir(parents=True)
    >>> plan = {"epochs": 1, "runs": ["r", {"run": "r_seed1", "model": "r", "seed_of": "r",
    ...     "bundle": False}]}
    >>> _ = (root / "zoo" / "cifar10" / "plan.json").write_text(json.dumps(plan))
    >>> seed1 = {"seed": 1, "metrics": {"test_accuracy": 0.8}}
    >>> _ = (root / "zoo" / "cifar10" / "r_seed1" / "metadata.json").write_text(json.dumps(seed1))
    >>> run = plan_runs(plan)[0]
    >>> seed_spread(Zoo(root), run, {"seed": 0, "metrics": {"test_accuracy": 0.9}})["mean"]
    0.85
    """
    seeds = {meta.get("seed"): meta["metrics"]["test_accuracy"]}
    for other in plan_runs(zoo.plan):
        path = zoo.runs / other["run"] / "metadata.json"
        if other["seed_of"] != run["run"] or not path.is_file():
            continue
        other_meta = json.loads(path.read_text())
        seeds.setdefault(other_meta.get("seed"), other_meta["metrics"]["test_accuracy"])
    if len(seeds) < 2:
        return None
    order = sorted(seeds)
    accuracies = [seeds[s] for s in order]
    return {
        "metric": "test_accuracy",
        "seeds": order,
        "accuracies": accuracies,
        "min": min(accuracies),
        "max": max(accuracies),
        "mean": round(statistics.fmean(accuracies), 6),
    }


def note_spread_on_card(card, spread):
    """Write (or rewrite) the card's paragraph on the spread over seeds, before its
    "Measured with" command; nothing for no spread."""
    if not spread:
        return
    start, end = "<!-- seeds -->", "<!-- /seeds -->"
    seeds = spread["seeds"]
    paragraph = (
        f"{start}\n## Spread over seeds\n\nThe same recipe and data with seeds "
        f"{', '.join(map(str, seeds[:-1]))} and {seeds[-1]} (this checkpoint is seed "
        f"{seeds[0]}; the others' weights do not ship): test accuracy "
        f"{100 * spread['min']:.2f}% to {100 * spread['max']:.2f}%, mean "
        f"{100 * spread['mean']:.2f}%. Rerunning the command below on the same data lands "
        "within about this range, not on the same digits: the seed fixes the initial "
        "weights, the order of the images and the augmentation, but floating-point sums "
        f"differ between machines, threads and backends.\n{end}\n\n"
    )
    text = card.read_text(encoding="utf-8")
    if start in text:
        head, rest = text.split(start, 1)
        text = head + paragraph + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.replace("\nMeasured with:", "\n" + paragraph + "Measured with:", 1)
    card.write_text(text, encoding="utf-8")


def register(zoo, runs):
    """Enter (or enter again) finished runs' checkpoints in ``weights/catalog.json`` through
    :func:`scripts.edit_catalog.set_entries`: one write, then one rehash of their cards and
    hashes (the card loads a checkpoint by the name it ships under)."""
    from keras_resblocks.checkpoints.io import read_checkpoint, record_file_hashes
    from scripts.edit_catalog import set_entries

    entries = {}
    for run in runs:
        name = run["checkpoint"]
        directory = zoo.weights / name
        meta = json.loads((directory / "metadata.json").read_text())
        spread = seed_spread(zoo, run, meta)
        if spread:
            read_checkpoint(directory)  # whole and unchanged before its card is changed
            note_spread_on_card(directory / "README.md", spread)
            record_file_hashes(directory)
        entries[name] = {
            "architecture": run["model"],
            "dataset": zoo.plan["dataset"]["name"],
            "description": describe(zoo.plan, run, meta),
            "metrics": meta.get("metrics") or {},
            "sha256": meta["sha256"],
            "files": sorted(p.name for p in directory.iterdir() if p.is_file()),
            "hub": None,
            "bundled": name,
            "keras_applications": None,
            "license": "apache-2.0",
            **({"spread": spread} if spread else {}),
        }
    set_entries(zoo.weights / "catalog.json", entries)


def _log(message):
    print(f"[{datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}] {message}", flush=True)


def _train_command(zoo, run, data, deadline, resume):
    plan = zoo.plan
    command = [
        "nice",
        "-n",
        "10",
        sys.executable,
        "-m",
        "keras_resblocks",
        "train",
        # Relative to the repository, so the recorded command names no machine's folders.
        "--model",
        run["model"],
        "--dataset",
        os.path.relpath(data, zoo.root),
        "--work-dir",
        str((zoo.runs / run["run"]).relative_to(zoo.root)),
        "--output",
        str(output_dir(zoo, run).relative_to(zoo.root)),
        "--deadline",
        datetime.datetime.fromtimestamp(deadline).isoformat(timespec="seconds"),
        "--verbose",
        "2",
        "--recipe",
        plan["recipe"],
        "--epochs",
        str(run["epochs"]),
        *(["--data-note", note] if (note := run.get("note", plan["dataset"].get("note"))) else []),
        *plan["train_args"],
        *run["train_args"],
    ]
    return command + (["--resume"] if resume else [])


def run_queue(zoo, data, deadline, parallel, start_margin_s=600):
    """Run the unfinished runs, ``parallel`` at a time, until done or the deadline.

    No run starts later than ``start_margin_s`` before the deadline.
    """
    plan = zoo.plan
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if parallel > 1:  # measured: one thread per run beats two runs sharing two threads
        env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS="1")
    pending = []
    for run in plan_runs(plan):
        state, _, _ = run_state(zoo, run)
        if state == "finishing":
            finalize(zoo, run)
        elif state != "done":
            pending.append(run)
    active, out_of_time = {}, False
    while pending or active:
        while (
            pending
            and len(active) < parallel
            and not out_of_time
            and time.time() < deadline - start_margin_s
        ):
            run = pending.pop(0)
            state, epochs, _ = run_state(zoo, run)
            command = _train_command(zoo, run, data, deadline, resume=state == "running")
            work = zoo.runs / run["run"]
            work.mkdir(parents=True, exist_ok=True)
            log = open(work / "train.log", "a")
            log.write(
                f"\n# {datetime.datetime.now().isoformat(timespec='seconds')} "
                f"{' '.join(command[4:])}\n"
            )
            log.flush()
            active[run["run"]] = (
                subprocess.Popen(
                    command, cwd=zoo.root, env=env, stdout=log, stderr=subprocess.STDOUT
                ),
                log,
                run,
            )
            _log(f"{run['run']}: started at epoch {epochs}/{run['epochs']}")
        if not active:
            break
        time.sleep(5)
        for name, (process, log, run) in list(active.items()):
            code = process.poll()
            if code is None:
                if time.time() > deadline + KILL_GRACE_S:
                    process.kill()
                    _log(f"{name}: killed {KILL_GRACE_S} s after the deadline")
                continue
            log.close()
            del active[name]
            state, epochs, _ = run_state(zoo, run)
            if code == 0:
                finalize(zoo, run)
            elif code == EXIT_UNFINISHED:
                out_of_time = True
                _log(f"{name}: stopped before the deadline at epoch {epochs}/{run['epochs']}")
            else:
                _log(
                    f"{name}: failed with exit status {code} (see {zoo.runs / name / 'train.log'})"
                )
    _log("queue: nothing more to run before the deadline" if pending else "queue: empty")


def write_report(zoo, figure, documents, ymax=40.0):
    """The zoo's table, degradation checks and figure (He et al. 2015, figure 6) from the
    finished runs' checkpoints and histories, spliced into ``documents``; the runs of other
    seeds (``seed_of``) give the spread of the nets they repeat."""
    from scripts.zoo_report import load_run, load_seed, write_report as write

    runs, longer, loaded = [], [], {}
    plan = plan_runs(zoo.plan)
    for run in plan:
        if run_state(zoo, run)[0] != "done" or not run["bundle"]:
            continue
        # The checks and the figure compare the runs trained alike: the plan's epochs, no
        # arguments of their own. The others (longer, more images) get a table of their own.
        alike = run["epochs"] == zoo.plan["epochs"] and not run["train_args"]
        loaded[run["run"]] = load_run(
            run["model"],
            zoo.weights / run["checkpoint"],
            zoo.runs / run["run"] / "history.csv",
            label=run["model"] if alike else run["checkpoint"],
        )
        (runs if alike else longer).append(loaded[run["run"]])
    if not runs and not longer:
        raise FileNotFoundError(f"No finished run in {zoo.runs}")
    seeds, replicates = {}, []
    for run in plan:
        original = loaded.get(run["seed_of"])
        if original is None or run_state(zoo, run)[0] != "done":
            continue
        work = zoo.runs / run["run"]
        other = load_seed(
            run["model"], work / "metadata.json", work / "history.csv", original["parameters"]
        )
        if other["metadata"].get("seed") == original["metadata"].get("seed"):
            replicates.append((original, other))
        else:
            seeds.setdefault(original["label"], [original]).append(other)
    return write(
        runs, figure, documents, ymax=ymax, longer=longer, seeds=seeds, replicates=replicates
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="where each run stands")
    sub.add_parser(
        "register", help="enter every finished run in the catalogue again (its description)"
    )
    p = sub.add_parser("report", help="the table and figure of the finished runs, into the docs")
    p.add_argument("--figure", default="docs/cifar10-degradation.png")
    p.add_argument(
        "--doc",
        action="append",
        default=None,
        help="markdown file with the zoo:cifar10 markers (default docs/cifar10.md, README.md)",
    )
    p.add_argument(
        "--ymax",
        type=float,
        default=40.0,
        help="top of the error axis, %% (default 40: short runs start high)",
    )
    p = sub.add_parser("continue", help="continue every unfinished run until --deadline")
    p.add_argument(
        "--deadline",
        required=True,
        help="HH:MM (local), an ISO date-time or +2h: runs stop before it",
    )
    p.add_argument("--data", default=None, help="the CIFAR-10 archive (default: the plan's path)")
    p.add_argument("--parallel", type=int, default=2, help="runs at a time (default 2)")
    p.add_argument("--foreground", action="store_true", help="do not detach")
    p.add_argument(
        "--start-margin",
        type=float,
        default=10.0,
        help="start no run later than this many minutes before the deadline",
    )
    parser.add_argument("--root", default=REPOSITORY, help="the repository (default: this one)")
    args = parser.parse_args(argv)
    zoo = Zoo(args.root)
    plan = zoo.plan
    if args.command == "status":
        print_status(zoo)
        return 0
    if args.command == "register":
        done = [
            run for run in plan_runs(plan) if run["bundle"] and run_state(zoo, run)[0] == "done"
        ]
        register(zoo, done)
        print(f"registered {len(done)}: {', '.join(run['checkpoint'] for run in done)}")
        return 0
    if args.command == "report":
        documents = [zoo.root / d for d in (args.doc or ["docs/cifar10.md", "README.md"])]
        runs = write_report(zoo, zoo.root / args.figure, documents, ymax=args.ymax)
        print(f"{len(runs)} runs: {', '.join(r['model'] for r in runs)}; figure {args.figure}")
        return 0

    from keras_resblocks.training.command import parse_deadline
    from keras_resblocks.checkpoints.io import sha256_of

    deadline = parse_deadline(args.deadline)
    data = pathlib.Path(args.data or zoo.root / plan["dataset"]["default_path"])
    if not data.is_file() or sha256_of(data) != plan["dataset"]["sha256"]:
        print(
            f"error: {data} is not the plan's data set (sha256 "
            f"{plan['dataset']['sha256']}); pass --data PATH. Received: --data {args.data}",
            file=sys.stderr,
        )
        return 2
    if not args.foreground:
        log = open(zoo.runs / "zoo.log", "a")
        command = [
            sys.executable,
            "-m",
            "scripts.zoo",
            "--root",
            str(zoo.root),
            "continue",
            "--deadline",
            datetime.datetime.fromtimestamp(deadline).isoformat(timespec="seconds"),
            "--data",
            str(data.resolve()),
            "--parallel",
            str(args.parallel),
            "--start-margin",
            str(args.start_margin),
            "--foreground",
        ]
        process = subprocess.Popen(
            command, cwd=REPOSITORY, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        print(
            f"continuing in the background (pid {process.pid}, log {zoo.runs / 'zoo.log'}), "
            f"stopping before {datetime.datetime.fromtimestamp(deadline):%Y-%m-%d %H:%M}"
        )
        print_status(zoo)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    _log(
        f"continue until {datetime.datetime.fromtimestamp(deadline).isoformat()} "
        f"with {args.parallel} at a time"
    )
    run_queue(zoo, data, deadline, args.parallel, start_margin_s=60 * args.start_margin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
