"""Run the keras-resblocks benchmarks.

    python benchmarks/run.py --quick                 # CI smoke run, < 2 minutes
    python benchmarks/run.py --json results.json     # the full run behind docs/benchmarks.md
    KERAS_BACKEND=jax python benchmarks/run.py --section layers --section training

Every section's contenders are timed in this one process, taking turns, and every
ratio comes from the same run. What cannot run here (no GPU, no trainer, no data)
is reported as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _git_commit():
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def environment(argv):
    import keras

    from benchmarks.sections import accelerator
    from keras_resblocks.training.environment import hardware_description, software_versions

    hardware = hardware_description()
    from keras_resblocks._cli_common import command_line

    # As typed, without this machine's folders (an output under /tmp becomes .../name).
    command = command_line(["run.py", *argv], program="python benchmarks/run.py")
    if hardware["backend"] != "tensorflow":
        command = f"KERAS_BACKEND={hardware['backend']} " + command
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": platform.platform(),
        "cpu": hardware["cpu"],
        "cpu_count": hardware["cpu_count"],
        "accelerator": accelerator() or "none",
        "backend": keras.backend.backend(),
        **software_versions(),
        "git_commit": _git_commit(),
        "command": command.strip(),
    }


def run_sections(results, sections, names=None):
    """Run ``sections`` (name -> no-argument function) named in ``names`` (default all) into
    ``results["sections"]``, timing each; one that fails is recorded as an error and the
    others still run. Sets ``results["meta"]["wall_s"]``."""
    from benchmarks.sections import skipped_section

    start = time.perf_counter()
    for name in names or list(sections):
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        section_start = time.perf_counter()
        try:
            results["sections"][name] = sections[name]()
        except Exception as error:  # keep the other sections' figures
            traceback.print_exc()
            results["sections"][name] = {
                **skipped_section(f"failed: {type(error).__name__}: {error}"),
                "status": "error",
            }
        results["sections"][name]["wall_s"] = time.perf_counter() - section_start
    results["meta"]["wall_s"] = round(time.perf_counter() - start, 1)


def main(argv=None):
    from benchmarks.report import to_markdown
    from benchmarks.sections import SECTIONS, Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny CI run: ResNet-20 only, batch 8, 3 turns"
    )
    parser.add_argument("--json", metavar="OUT", help="write the results here")
    parser.add_argument("--markdown", metavar="OUT", help="write markdown tables here")
    parser.add_argument(
        "--section",
        action="append",
        choices=sorted(SECTIONS),
        help="run only these sections (repeatable; default: all)",
    )
    parser.add_argument(
        "--with-110", action="store_true", help="add ResNet-110 to the layers and training sections"
    )
    parser.add_argument(
        "--batch",
        action="append",
        type=int,
        metavar="N",
        help="training-section batch size (repeatable; default 128 and "
        "512 on a GPU, 128 on a CPU, 8 with --quick)",
    )
    parser.add_argument("--data", help="CIFAR-10 JPEG archive for time to accuracy")
    parser.add_argument(
        "--trainer-images",
        type=int,
        metavar="N",
        help="images per epoch of the keras-resblocks train runs (default 50,000 "
        "on a GPU, 8 batches on a CPU)",
    )
    parser.add_argument(
        "--trainer-repeats",
        type=int,
        metavar="N",
        help="keras-resblocks train and hand-written runs per configuration "
        "(default 2, 1 with --quick)",
    )
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv

    settings = Settings.make(
        args.quick,
        with_110=args.with_110,
        data=args.data,
        training_batches=args.batch,
        trainer_images=args.trainer_images,
        trainer_repeats=args.trainer_repeats,
    )
    results = {"meta": environment(argv), "sections": {}}
    run_sections(
        results, {name: lambda run=SECTIONS[name]: run(settings) for name in SECTIONS}, args.section
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    markdown = to_markdown(results)
    if args.markdown:
        Path(args.markdown).write_text(markdown + "\n")
    print(markdown)
    return 1 if any(s["status"] == "error" for s in results["sections"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
