"""scripts/zoo.py: a zoo of runs that stop before a deadline and continue where they stopped."""

import hashlib
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import tarfile

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(stage_depths=[1, 1, 1], stage_widths=[4, 4, 8], stem_width=4)


def _image_archive(path, classes=3, train=20, test=4):
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        for split, count in (("train", train), ("test", test)):
            for c in range(classes):
                for i in range(count):
                    buffer = io.BytesIO()
                    pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(buffer, format="PNG")
                    info = tarfile.TarInfo(f"tiny/{split}/class{c}/{i}.png")
                    info.size = buffer.tell()
                    buffer.seek(0)
                    tar.addfile(info, buffer)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _zoo(tmp_path):
    root = tmp_path / "repo"
    (root / "zoo" / "cifar10").mkdir(parents=True)
    (root / "weights").mkdir()
    (root / "weights" / "catalog.json").write_text('{"format_version": 1, "checkpoints": {}}')
    sha256 = _image_archive(tmp_path / "tiny.tar.gz")
    plan = {
        "dataset": {
            "name": "tiny",
            "description": "random images",
            "sha256": sha256,
            "default_path": "../tiny.tar.gz",
        },
        "recipe": "quick",
        "epochs": 2,
        "train_args": ["--seed", "0", "--batch-size", "16", "--model-overrides", json.dumps(TINY)],
        "runs": ["resnet20"],
    }
    (root / "zoo" / "cifar10" / "plan.json").write_text(json.dumps(plan))
    return root


def _script(root, *args):
    env = dict(os.environ, KERAS_RESBLOCKS_CACHE=str(root.parent / "cache"))
    return subprocess.run(
        [sys.executable, "-m", "scripts.zoo", "--root", str(root), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_continue_stops_before_the_deadline_then_finishes_and_registers(tmp_path):
    root = _zoo(tmp_path)
    run = root / "zoo" / "cifar10" / "resnet20"
    assert " new " in _script(root, "status").stdout

    # A deadline already past: the run still trains one epoch, then stops and keeps its backup.
    first = _script(
        root,
        "continue",
        "--deadline",
        "+0s",
        "--start-margin=-5",
        "--foreground",
        "--parallel",
        "1",
    )
    assert first.returncode == 0, first.stdout + first.stderr
    assert "stopped before the deadline at epoch 1/2" in first.stdout
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    assert len((run / "history.csv").read_text().splitlines()) == 2  # header and epoch 1
    assert " running " in _script(root, "status").stdout
    assert not (root / "weights" / "resnet20_cifar10").exists()

    second = _script(
        root,
        "continue",
        "--deadline",
        "+1h",
        "--start-margin",
        "0",
        "--foreground",
        "--parallel",
        "1",
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resnet20: started at epoch 1/2" in second.stdout
    assert not (run / "backup").exists()  # a finished run keeps no backup
    assert [line.split(",")[0] for line in (run / "history.csv").read_text().splitlines()] == [
        "epoch",
        "1",
        "2",
    ]
    log = (run / "train.log").read_text()
    commands = [line for line in log.splitlines() if line.startswith("# ")]
    assert len(commands) == 2 and "--resume" not in commands[0] and "--resume" in commands[1]
    assert "Epoch 2/2" in log
    entry = json.loads((root / "weights" / "catalog.json").read_text())["checkpoints"][
        "resnet20_cifar10"
    ]
    assert entry["bundled"] == "resnet20_cifar10" and entry["architecture"] == "resnet20"
    metadata = json.loads((root / "weights" / "resnet20_cifar10" / "metadata.json").read_text())
    assert entry["sha256"] == metadata["sha256"]
    checkpoint = root / "weights" / "resnet20_cifar10"
    assert (
        entry["metadata_sha256"]
        == hashlib.sha256((checkpoint / "metadata.json").read_bytes()).hexdigest()
    )
    card = (checkpoint / "README.md").read_text()
    assert 'from_pretrained("resnet20_cifar10")' in card and "path/to/" not in card
    assert metadata["files"]["README.md"] == hashlib.sha256(card.encode()).hexdigest()
    assert entry["metrics"] == metadata["metrics"] and 0 <= entry["metrics"]["test_accuracy"] <= 1
    assert metadata["command"].startswith("python -m keras_resblocks train --model resnet20")
    assert " done " in _script(root, "status").stdout

    # The report: table and figure from the finished run's own files.
    (root / "docs").mkdir()
    (root / "docs" / "zoo.md").write_text(
        "# Zoo\n<!-- zoo:cifar10 -->\nold\n<!-- /zoo:cifar10 -->\n"
    )
    report = _script(root, "report", "--doc", "docs/zoo.md", "--figure", "docs/fig6.png")
    assert report.returncode == 0, report.stderr
    document = (root / "docs" / "zoo.md").read_text()
    test_error = 100 * (1 - metadata["metrics"]["test_accuracy"])
    assert "| resnet20 | " in document and f"| {test_error:.2f} |" in document
    assert "\nold\n" not in document and "(fig6.png)" in document
    assert (root / "docs" / "fig6.png").read_bytes()[:4] == b"\x89PNG"

    # Nothing left to do: a third call runs nothing.
    third = _script(root, "continue", "--deadline", "+1h", "--foreground")
    assert "started" not in third.stdout and "queue: empty" in third.stdout


def test_continue_refuses_other_data(tmp_path):
    root = _zoo(tmp_path)
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"not the plan's archive")
    result = _script(root, "continue", "--deadline", "+1h", "--data", str(other), "--foreground")
    assert result.returncode == 2 and "is not the plan's data set" in result.stderr


def test_a_longer_run_of_the_same_recipe_has_its_own_checkpoint_and_table(tmp_path):
    root = _zoo(tmp_path)
    plan_path = root / "zoo" / "cifar10" / "plan.json"
    plan = json.loads(plan_path.read_text())
    longer = {"run": "plain20_3epochs", "model": "plain20", "epochs": 3}
    # ... and on every training image: its own arguments, and its own note for the card.
    own = {"train_args": ["--validation", "0"], "note": "All training images, none held out."}
    plan["runs"] = ["plain20", {**longer, "checkpoint": "plain20_cifar10_3epochs", **own}]
    plan_path.write_text(json.dumps(plan))
    status = _script(root, "status").stdout
    assert re.search(r"plain20_3epochs +new +0/3 ", status), status

    done = _script(root, "continue", "--deadline", "+1h", "--start-margin", "0", "--foreground")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plain20_3epochs: started at epoch 0/3" in done.stdout
    registry = json.loads((root / "weights" / "catalog.json").read_text())["checkpoints"]
    assert sorted(registry) == ["plain20_cifar10", "plain20_cifar10_3epochs"]
    entry = registry["plain20_cifar10_3epochs"]
    assert entry["architecture"] == "plain20" and "(3 epochs, recipe quick" in entry["description"]
    metadata = json.loads(
        (root / "weights" / "plain20_cifar10_3epochs" / "metadata.json").read_text()
    )
    assert metadata["data"]["validation"] == 0 and metadata["recipe"]["validation"] == 0
    assert f"recipe quick, {metadata['data']['train']:,} training images)" in entry["description"]
    assert metadata["data_note"] == own["note"]
    assert (
        metadata["epochs"] == 3 and "--work-dir zoo/cifar10/plain20_3epochs" in metadata["command"]
    )
    card = (root / "weights" / "plain20_cifar10_3epochs" / "README.md").read_text()
    assert 'from_pretrained("plain20_cifar10_3epochs")' in card
    assert re.search(r"plain20_3epochs +done +3/3 ", _script(root, "status").stdout)

    # The report compares equally long runs; the longer one gets a table of its own.
    (root / "docs").mkdir()
    (root / "docs" / "zoo.md").write_text("<!-- zoo:cifar10 -->\n<!-- /zoo:cifar10 -->\n")
    report = _script(root, "report", "--doc", "docs/zoo.md", "--figure", "docs/fig6.png")
    assert report.returncode == 0, report.stderr
    document = (root / "docs" / "zoo.md").read_text()
    first, second = document.split("Other runs of the same recipe")
    assert "| plain20 | " in first and "plain20_cifar10_3epochs" not in first.split("![")[0]
    all_images = f" | {metadata['data']['train']:,} | 3 | "
    assert "| plain20_cifar10_3epochs | " in second and all_images in second
    # Its own arguments alone keep a run of the plan's length out of the comparison too.
    plan["runs"][1]["epochs"] = plan["epochs"]
    plan_path.write_text(json.dumps(plan))
    assert _script(root, "report", "--doc", "docs/zoo.md", "--figure", "docs/f.png").returncode == 0
    document = (root / "docs" / "zoo.md").read_text()
    assert "| plain20_cifar10_3epochs | " in document.split("Other runs of the same recipe")[1]

    # A run without its checkpoint's name, or named twice, is refused with the reason.
    plan["runs"] = ["plain20", longer]
    plan_path.write_text(json.dumps(plan))
    refused = _script(root, "status")
    assert refused.returncode != 0 and "needs ['checkpoint']" in refused.stderr
    plan["runs"] = ["plain20", "plain20"]
    plan_path.write_text(json.dumps(plan))
    assert "names a run twice" in _script(root, "status").stderr


def test_register_enters_the_finished_runs_again_and_leaves_other_entries(tmp_path):
    root = _zoo(tmp_path)
    done = _script(root, "continue", "--deadline", "+1h", "--foreground")
    assert done.returncode == 0, done.stdout + done.stderr
    registry_path = root / "weights" / "catalog.json"
    registry = json.loads(registry_path.read_text())
    entry = dict(registry["checkpoints"]["resnet20_cifar10"])
    metadata = json.loads((root / "weights" / "resnet20_cifar10" / "metadata.json").read_text())
    # Every description names the images it trained on, held-out split or not.
    assert f"recipe quick, {metadata['data']['train']:,} training images)" in entry["description"]
    registry["checkpoints"]["resnet20_cifar10"]["description"] = "stale"
    registry["checkpoints"]["ported"] = {"architecture": "resnet20", "bundled": None}
    registry_path.write_text(json.dumps(registry))

    again = _script(root, "register")
    assert again.returncode == 0 and "registered 1: resnet20_cifar10" in again.stdout, again.stderr
    registry = json.loads(registry_path.read_text())["checkpoints"]
    assert registry["resnet20_cifar10"] == entry
    assert registry["ported"] == {"architecture": "resnet20", "bundled": None}


def test_runs_of_other_seeds_keep_only_their_metadata_and_give_the_report_its_spread(tmp_path):
    root = _zoo(tmp_path)
    plan_path = root / "zoo" / "cifar10" / "plan.json"
    plan = json.loads(plan_path.read_text())
    seed1 = {"run": "resnet20_seed1", "model": "resnet20", "seed_of": "resnet20", "bundle": False}
    plan["runs"] = ["resnet20", "plain20", {**seed1, "train_args": ["--seed", "1"]}]
    plan["runs"].append(
        {
            **seed1,
            "run": "plain20_seed1",
            "model": "plain20",
            "seed_of": "plain20",
            "train_args": ["--seed", "1"],
        }
    )
    plan_path.write_text(json.dumps(plan))

    done = _script(root, "continue", "--deadline", "+1h", "--start-margin", "0", "--foreground")
    assert done.returncode == 0, done.stdout + done.stderr
    work = root / "zoo" / "cifar10" / "resnet20_seed1"
    # Evidence, not a product: no checkpoint, no registry entry, no backup; its metadata stays.
    assert sorted(p.name for p in work.iterdir()) == ["history.csv", "metadata.json", "train.log"]
    assert json.loads((work / "metadata.json").read_text())["seed"] == 1
    registry = json.loads((root / "weights" / "catalog.json").read_text())["checkpoints"]
    assert sorted(registry) == ["plain20_cifar10", "resnet20_cifar10"]
    assert re.search(r"resnet20_seed1 +done +2/2 ", _script(root, "status").stdout)

    (root / "docs").mkdir()
    (root / "docs" / "zoo.md").write_text("<!-- zoo:cifar10 -->\n<!-- /zoo:cifar10 -->\n")
    report = _script(root, "report", "--doc", "docs/zoo.md", "--figure", "docs/fig6.png")
    assert report.returncode == 0, report.stderr
    document = (root / "docs" / "zoo.md").read_text()
    assert re.search(r"\| resnet20 \| 0, 1 \| [\d.]+ \([\d.]+-[\d.]+\) \|", document), document
    # The check is made seed by seed, and says so.
    assert "resnet20 more accurate than plain20 on test (for " in document
    assert "of 2 seeds: seed 0 " in document
    assert "`resnet20_seed1`" not in document  # not listed among the shipped checkpoints

    # seed_of must name a run of the plan.
    plan["runs"][2]["seed_of"] = "resnet32"
    plan_path.write_text(json.dumps(plan))
    refused = _script(root, "status")
    assert refused.returncode != 0 and "`seed_of` names no run" in refused.stderr
