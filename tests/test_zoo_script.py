"""scripts/run_zoo_gpu.sh packs what a GPU lease produced into files that come back
(at most 8, each under 16 MiB) and unpacks them here, byte for byte."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "run_zoo_gpu.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("split") is None,
                                reason="needs bash and coreutils")


def _script(*args, **env):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env={**os.environ, **{k: str(v) for k, v in env.items()}})


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_collect_then_unpack_restores_histories_checkpoints_and_unfinished_backups(tmp_path):
    runs, out, back = tmp_path / "runs", tmp_path / "out", tmp_path / "back"
    out.mkdir()
    rng = np.random.default_rng(0)
    # resnet20 finished: checkpoint written (incompressible weights over one part's size).
    (runs / "resnet20-cifar10").mkdir(parents=True)
    (runs / "resnet20-cifar10" / "model.safetensors").write_bytes(rng.bytes(150_000))
    (runs / "resnet20.work" / "backup").mkdir(parents=True)
    (runs / "resnet20.work" / "backup" / "latest.weights.h5").write_bytes(b"finished, not needed")
    # plain20 unfinished: its backup must come back so the next lease can resume it.
    (runs / "plain20.work" / "backup").mkdir(parents=True)
    (runs / "plain20.work" / "backup" / "latest.weights.h5").write_bytes(rng.bytes(1000))
    for model in ("resnet20", "plain20"):
        (runs / f"{model}.work" / "history.csv").write_text("epoch,iterations\n1,351\n")
        (runs / f"{model}.log").write_text(f"{model} log\n")
        (runs / f"{model}.pid").write_text("123\n")

    done = _script("collect", RUNS=runs, OUT=out, MODELS="resnet20 plain20", PART_BYTES=100_000)
    assert done.returncode == 0, done.stderr
    parts = sorted(p.name for p in out.iterdir())
    assert parts == ["backups.tgz.part00", "results.tgz.part00", "results.tgz.part01"]
    assert all(p.stat().st_size <= 100_000 for p in out.iterdir())

    done = _script("unpack", str(out), RUNS=back)
    assert done.returncode == 0, done.stderr
    expected = _tree(runs)
    del expected["resnet20.work/backup/latest.weights.h5"], expected["resnet20.pid"]
    del expected["plain20.pid"]
    assert _tree(back) == expected


def test_parts_stay_under_the_16_mib_limit_by_default():
    assert "PART_BYTES:-$((15 * 1024 * 1024))" in SCRIPT.read_text()


def test_collect_refuses_to_leave_more_than_eight_files(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    out.mkdir()
    (runs / "resnet20-cifar10").mkdir(parents=True)
    (runs / "resnet20-cifar10" / "model.safetensors").write_bytes(
        np.random.default_rng(1).bytes(9 * 10_000))
    done = _script("collect", RUNS=runs, OUT=out, MODELS="resnet20", PART_BYTES=10_000)
    assert done.returncode == 1 and "more than the 8 that come back" in done.stderr


def test_usage_without_a_verb():
    done = _script()
    assert done.returncode == 2 and "prepare" in done.stdout and "collect" in done.stdout
