"""Training on this CPU: the package's trainer against PyTorch eager, where a trainer step's
time goes, and how much of the machine's peak arithmetic it reaches.

    python benchmarks/cpu_training.py --quick                  # smoke run, well under a minute
    python benchmarks/cpu_training.py --json cpu-training.json --into docs/benchmarks.md

Sections (``--section``, repeatable; default all):

* ``contest``: whole runs, each in a fresh process, taking turns: ``keras-resblocks
  train --recipe budget`` on a folder of
  random 32x32 PNGs, in float32 and mixed bfloat16, against the same network in PyTorch
  eager mode (``benchmarks/torch_resnet.py``, run by ``--torch-python``; skipped, with the
  reason, where torch is missing).
* ``breakdown``: one trainer step taken apart by subtraction, on the package's model
  inside ``tf.function``s (TensorFlow backend).
* ``peak``: the machine's theoretical peak (cores x measured clock x FLOP per cycle) and
  a measured practical one (large matmuls), and the fraction each contender reaches.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks import flops as flops_lib  # noqa: E402
from benchmarks import trainer_runs  # noqa: E402
from benchmarks.report import published  # noqa: E402
from benchmarks.run import run_sections  # noqa: E402
from benchmarks.sections import _section, skipped_section  # noqa: E402
from benchmarks.timing import interleaved  # noqa: E402

TORCH_SCRIPT = REPO / "benchmarks" / "torch_resnet.py"
# A Python with torch, from --torch-python or $TORCH_PYTHON (torch is never a package dependency).
DEFAULT_TORCH_PYTHON = os.environ.get("TORCH_PYTHON")
TRAINER = "trainer (keras-resblocks train --recipe budget)"
TORCH = "pytorch eager"
MARKER = "cpu-training"  # docs/benchmarks.md's block for these tables


@dataclasses.dataclass
class Settings:
    """What one run measures; the defaults are the full run, :meth:`quick` the smoke run."""

    models: tuple = ("resnet20", "resnet56")
    dtypes: tuple = ("float32", "bfloat16")
    batch: int = 128
    images: int = 12_800  # training images per epoch of the trainer runs
    test_images: int = 128  # evaluated after each epoch, outside the timed part
    epochs: int = 3  # the first compiles; images/s is taken over the others
    turns: int = 3
    torch_steps: int = 60
    torch_warmup: int = 10
    torch_python: Path = None
    breakdown_repeats: int = 5
    breakdown_min_time: float = 1.0
    matmul_size: int = 4096
    clock_adds: int = 20_000_000  # loop iterations of 32 dependent adds

    @classmethod
    def quick(cls, **changes):
        return cls(
            **{
                **dict(
                    models=("resnet20",),
                    batch=16,
                    images=64,
                    test_images=16,
                    dtypes=("float32",),
                    epochs=2,
                    turns=1,
                    torch_steps=3,
                    torch_warmup=1,
                    breakdown_repeats=1,
                    breakdown_min_time=0.01,
                    matmul_size=512,
                    clock_adds=1_000_000,
                ),
                **changes,
            }
        )


# -- 1. the trainer against PyTorch eager ---------------------------------------------------
def torch_python_or_reason(python):
    """``(python, None)`` if ``python`` can import torch, else ``(None, reason)``."""
    if python is None or not Path(python).exists():
        return None, (
            f"no Python with torch at {python} (install torch in a separate "
            "environment and pass --torch-python)"
        )
    done = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"{python} cannot import torch: {done.stderr.strip()[-300:]}"
    return python, None


def run_torch(python, model, dtype, settings):
    """One ``benchmarks/torch_resnet.py`` run in a fresh process; its JSON result."""
    cmd = [
        str(python),
        str(TORCH_SCRIPT),
        "--model",
        model,
        "--dtype",
        dtype,
        "--batch",
        str(settings.batch),
        "--steps",
        str(settings.torch_steps),
        "--warmup",
        str(settings.torch_warmup),
        "--json",
    ]
    done, wall = trainer_runs._run(cmd)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(process_s=wall, command=trainer_runs.shown(cmd))
    return result


def trainer_threads():
    """The thread settings the trainer process gets (TensorFlow's, on its backend)."""
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        return {
            "contender": TRAINER,
            "library": f"keras {keras.__version__}, {backend}",
            "intra_op_threads": f"{backend} default",
            "inter_op_threads": f"{backend} default",
        }
    import tensorflow as tf

    def described(n):
        return str(n) if n else f"default (0: one per core, {os.cpu_count()} here)"

    return {
        "contender": TRAINER,
        "library": f"tensorflow {tf.__version__}",
        "intra_op_threads": described(tf.config.threading.get_intra_op_parallelism_threads()),
        "inter_op_threads": described(tf.config.threading.get_inter_op_parallelism_threads()),
    }


def run_contest(settings):
    """Trainer and PyTorch runs, each in a fresh process, taking turns (A..D, then D..A)."""
    with tempfile.TemporaryDirectory(prefix="bench-cpu-training-") as tmp:
        return _contest(settings, Path(tmp))


def _contest(settings, tmp):
    folder = trainer_runs.write_image_folder(tmp / "images", settings.images, settings.test_images)
    python, torch_reason = torch_python_or_reason(settings.torch_python)
    contenders = [(TRAINER, dtype) for dtype in settings.dtypes]
    skipped = []
    if python:
        contenders += [(TORCH, dtype) for dtype in settings.dtypes]
    else:
        skipped.append({"what": "PyTorch eager", "reason": torch_reason})
    runs = {(m, who, dtype): [] for m in settings.models for who, dtype in contenders}
    for turn in range(settings.turns):
        for model in settings.models:
            for who, dtype in contenders if turn % 2 == 0 else contenders[::-1]:
                print(
                    f"[cpu_training] turn {turn + 1}: {model} {who} {dtype}",
                    file=sys.stderr,
                    flush=True,
                )
                if who == TRAINER:
                    result = trainer_runs.run_trainer(
                        folder,
                        model,
                        settings.batch,
                        dtype,
                        settings.epochs,
                        tmp,
                        tmp / "cache",
                        recipe="budget",
                    )
                else:
                    result = run_torch(python, model, dtype, settings)
                runs[model, who, dtype].append(result)

    rows, threads, commands = [], [trainer_threads()], {}
    for model in settings.models:
        model_rows = []
        for who, dtype in contenders:
            results = runs[model, who, dtype]
            rates = [r["images_per_second"] for r in results]
            commands[who] = published(results[-1]["command"], tmp)
            model_rows.append(
                {
                    "model": model,
                    "contender": who,
                    "precision": dtype,
                    "img_s": float(np.median(rates)),
                    "img_s_min": min(rates),
                    "img_s_max": max(rates),
                    "turns": len(rates),
                    "process_s": float(np.median([r["process_s"] for r in results])),
                }
            )
        torch_best = max((r["img_s"] for r in model_rows if r["contender"] == TORCH), default=None)
        for row in model_rows:
            row["ratio_to_pytorch_best"] = row["img_s"] / torch_best if torch_best else None
        rows += model_rows
    if python:
        last = runs[settings.models[-1], TORCH, settings.dtypes[-1]][-1]
        threads.append(
            {
                "contender": TORCH,
                "library": f"torch {last['torch']}",
                "intra_op_threads": str(last["threads"]),
                "inter_op_threads": str(last["interop_threads"]),
            }
        )
    notes = [
        f"Whole runs, each in a fresh process, taking turns (turns: {settings.turns}; the "
        "order reverses every turn); images/s: median over the turns (img_s_min/max: the "
        "spread). ratio_to_pytorch_best: images/s over the faster PyTorch precision's "
        "images/s, for the same model. process_s: the whole process (imports, decoding, "
        "compilation, evaluation).",
        f"trainer: {settings.epochs} epochs of {settings.images:,} random 32x32 PNG images "
        f"(batch {settings.batch}, recipe budget: SGD Nesterov 0.9, lr schedule, weight decay "
        "5e-4 as L2 in the loss, cross-entropy) with its whole input pipeline: uint8 "
        "images held in a variable, an index gather, pad-4 crop and flip in the compiled "
        "step. images/s is the checkpoint's `images_per_second`: epochs after the first "
        "(which compiles), the per-epoch evaluation left out. Command: "
        + commands.get(TRAINER, ""),
        f"pytorch eager: the same network (option A shortcuts) trained on random tensors "
        f"already in memory, no input pipeline and no augmentation; timed steps: "
        f"{settings.torch_steps}, after warm-up steps: {settings.torch_warmup}; bfloat16 through "
        "torch.autocast. Command: " + commands.get(TORCH, "(skipped)"),
    ]
    return _section(
        tables={
            "images_per_second": {
                "columns": [
                    "model",
                    "contender",
                    "precision",
                    "img_s",
                    "img_s_min",
                    "img_s_max",
                    "ratio_to_pytorch_best",
                    "turns",
                    "process_s",
                ],
                "rows": rows,
            },
            "threads": {
                "columns": ["contender", "library", "intra_op_threads", "inter_op_threads"],
                "rows": threads,
            },
        },
        skipped=skipped,
        notes=notes,
    )


# -- 2. where a trainer step's time goes ----------------------------------------------------
PARTS = (
    "forward, inference mode",
    "forward, training mode (BatchNorm batch statistics)",
    "+ loss and backward (gradients)",
    "+ SGD update (a whole step on float images)",
    "+ uint8 gather, crop and flip (the trainer's step)",
)
KERAS_STEP = "Keras train_on_batch of the trainer model (metrics, Python per call)"


def trainer_parts(model_name, dtype, batch, rng):
    """The trainer's model built as ``keras_resblocks.training.train`` builds it, and its
    step cut into cumulative parts: a dict of zero-argument callables, ``PARTS`` order,
    then ``KERAS_STEP``."""
    import keras
    import tensorflow as tf

    from keras_resblocks import create_model
    from keras_resblocks.training import get_recipe, learning_rate_schedule
    from keras_resblocks.training.augment import RandomCropFlip, ResidentImages
    from keras_resblocks.training.losses import SmoothedSparseCrossentropy
    from keras_resblocks.training.trainer import channel_statistics

    images = rng.integers(0, 256, (8 * batch, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 8 * batch).astype("int32")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if dtype == "bfloat16" else "float32")
    try:
        recipe = get_recipe("budget", batch_size=batch)
        net = create_model(
            model_name,
            num_classes=10,
            input_shape=(32, 32, 3),
            classifier_activation=None,
            preprocessing=channel_statistics(images),
            kernel_l2=recipe.weight_decay / 2,
        )
        recipe = recipe.resolve(net.architecture.depth, steps_per_epoch=8)
        augment = RandomCropFlip(recipe.crop_padding, recipe.flip, seed=0, name="augment")
        resident = ResidentImages(images, name="train_images")
        indices = keras.Input(shape=(), dtype="int32", name="indices")
        trainer = keras.Model(indices, net(augment(resident(indices))), name="trainer")
        loss_fn = SmoothedSparseCrossentropy(10, recipe.label_smoothing)

        def sgd():
            return keras.optimizers.SGD(
                learning_rate_schedule(recipe), momentum=recipe.momentum, nesterov=recipe.nesterov
            )

        trainer.compile(
            sgd(), loss_fn, metrics=[keras.metrics.SparseCategoricalAccuracy("accuracy")]
        )
    finally:
        keras.config.set_dtype_policy(previous)
    optimizer = sgd()
    variables = net.trainable_variables
    optimizer.build(variables)
    index_batch = tf.constant(np.arange(batch, dtype="int32"))
    pixels = tf.constant(images[:batch].astype("float32"))  # the net normalizes
    y = tf.constant(labels[:batch])

    def gradients(x):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, net(x, training=True)) + tf.add_n(net.losses)
        return tape.gradient(loss, variables)

    def update(x):
        optimizer.apply(gradients(x), variables)
        return optimizer.iterations

    parts = dict(
        zip(
            PARTS,
            (
                tf.function(lambda: net(pixels, training=False)),
                tf.function(lambda: net(pixels, training=True)),
                tf.function(lambda: gradients(pixels)),
                tf.function(lambda: update(pixels)),
                tf.function(lambda: update(augment(resident(index_batch), training=True))),
            ),
        )
    )
    parts[KERAS_STEP] = lambda: trainer.train_on_batch(index_batch.numpy(), labels[:batch])
    return parts


def run_breakdown(settings):
    """Milliseconds per step of each cumulative part, and each increment's share."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return skipped_section(
            "the breakdown times tf.functions: TensorFlow backend only "
            f"(this run: {keras.backend.backend()})"
        )
    rng = np.random.default_rng(0)
    rows = []
    for model_name in settings.models:
        for dtype in settings.dtypes:
            print(f"[cpu_training] breakdown {model_name} {dtype}", file=sys.stderr, flush=True)
            timings = interleaved(
                trainer_parts(model_name, dtype, settings.batch, rng),
                repeats=settings.breakdown_repeats,
                min_time=settings.breakdown_min_time,
            )
            whole = timings[PARTS[-1]]["median_s"]
            before = 0.0
            for part, t in timings.items():
                ms = 1e3 * t["median_s"]
                rows.append(
                    {
                        "model": model_name,
                        "precision": dtype,
                        "part": part,
                        "step_ms": ms,
                        "added_ms": ms - before,
                        "share": (ms - before) / (1e3 * whole) if part in PARTS else None,
                    }
                )
                before = ms
    return _section(
        tables={
            "step_breakdown": {
                "columns": ["model", "precision", "part", "step_ms", "added_ms", "share"],
                "rows": rows,
            }
        },
        notes=[
            f"Batch {settings.batch}. Each part is a tf.function (no XLA, as the trainer "
            "on a CPU) over the package's model built as the trainer builds it "
            "(create_model with the data's normalization and L2, RandomCropFlip, "
            "ResidentImages, budget recipe's SGD and loss); each part adds "
            "work to the one above. step_ms: median over interleaved turns; added_ms: "
            "the difference to the row above (noise can make a small one negative); "
            "share: added_ms over the trainer's step. The last row is Keras's own "
            "compiled step of the same trainer model, called through train_on_batch."
        ],
    )


# -- 3. the machine's peak -------------------------------------------------------------------
_CLOCK_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define A "add %1, %0\n\t"
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    unsigned long x = 0, y = 1;
    struct timespec a, b;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    for (long i = 0; i < n; i++)  /* 32 dependent adds: 32 cycles */
        __asm__ volatile(A A A A A A A A A A A A A A A A A A A A A A A A A A A A A A A A
                         : "+r"(x) : "r"(y));
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    printf("%.9f %lu\n", (b.tv_sec - a.tv_sec) + 1e-9 * (b.tv_nsec - a.tv_nsec), x);
    return 0;
}
"""


def measured_clock_ghz(adds, repeats=5):
    """``(GHz, how)``: the core clock from a chain of dependent integer adds (one per
    cycle), compiled with gcc, best of ``repeats`` runs timed in thread CPU time; without
    gcc, /proc/cpuinfo's "cpu MHz"."""
    if shutil.which("gcc") is None:
        mhz = cpu_description()["mhz"]
        if mhz is None:
            raise RuntimeError("no gcc to measure the clock and no 'cpu MHz' in /proc/cpuinfo")
        return mhz / 1e3, "/proc/cpuinfo cpu MHz (no gcc to measure it)"
    best = None
    with tempfile.TemporaryDirectory(prefix="bench-clock-") as tmp:
        source, program = Path(tmp) / "clock.c", Path(tmp) / "clock"
        source.write_text(_CLOCK_C)
        subprocess.run(
            ["gcc", "-O1", "-o", str(program), str(source)], check=True, capture_output=True
        )
        for _ in range(repeats):
            out = subprocess.run(
                [str(program), str(adds)], check=True, capture_output=True, text=True
            ).stdout.split()
            ghz = 32 * adds / float(out[0]) / 1e9
            best = ghz if best is None else max(best, ghz)
    return best, (f"a chain of dependent adds in C (gcc -O1), best of {repeats}, thread CPU time")


def cpu_description():
    """Cores, the vector-unit flags that matter and the FLOP per cycle assumed."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    vector = [
        f
        for f in ("fma", "avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")
        if f in flags
    ]
    zen5 = fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") == "26"
    if "avx512f" in flags and zen5:
        fp32 = 64
        assumption = (
            "AMD Zen 5 (cpu family 26): two 512-bit FMA pipes per core, "
            "2 x 16 lanes x 2 FLOP = 64 FP32 FLOP/cycle/core"
        )
    elif "avx512f" in flags:
        fp32 = 64
        assumption = "AVX-512 with two FMA units per core assumed: 64 FP32 FLOP/cycle/core"
    elif "fma" in flags:
        fp32 = 32
        assumption = "AVX2: two 256-bit FMA units per core assumed: 32 FP32 FLOP/cycle/core"
    else:
        fp32 = 8
        assumption = "no FMA: 8 FP32 FLOP/cycle/core assumed"
    bf16 = 2 * fp32 if {"avx512_bf16", "amx_bf16"} & flags else fp32
    assumption += (
        "; bfloat16: VDPBF16PS does two products per FP32 lane at the FMA rate, "
        "twice the FP32 figure"
        if bf16 > fp32
        else "; no bfloat16 instructions"
    )
    mhz = fields.get("cpu MHz")
    return {
        "cpu": fields.get("model name"),
        "cores": os.cpu_count(),
        "vector_flags": vector,
        "mhz": float(mhz) if mhz else None,
        "fp32_flop_per_cycle": fp32,
        "bf16_flop_per_cycle": bf16,
        "assumption": assumption,
    }


def best_seconds(fn, repeats=3):
    """The fastest of ``repeats`` calls of ``fn``, in seconds, after one untimed call."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_gflops(n):
    """GFLOP/s of an n x n matmul: numpy float32, TensorFlow float32 and bfloat16."""
    import tensorflow as tf

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    flop = 2 * n**3
    out = {"numpy float32": flop / best_seconds(lambda: a @ a) / 1e9}
    for dtype in ("float32", "bfloat16"):
        t = tf.constant(a, dtype=dtype)
        out[f"tensorflow {dtype}"] = flop / best_seconds(lambda: tf.linalg.matmul(t, t)) / 1e9
    return out


def run_peak(settings, contest=None):
    """The machine's peaks and, given the contest section, the fraction of them reached."""
    from keras_resblocks import create_model

    cpu = cpu_description()
    ghz, clock_how = measured_clock_ghz(settings.clock_adds)
    peak = {p: cpu["cores"] * ghz * cpu[f"{p}_flop_per_cycle"] for p in ("fp32", "bf16")}
    matmul = matmul_gflops(settings.matmul_size)
    practical = {
        "float32": max(v for k, v in matmul.items() if k.endswith("float32")),
        "bfloat16": matmul["tensorflow bfloat16"],
    }
    machine = [
        {"quantity": "cores", "value": cpu["cores"], "how": "os.cpu_count()"},
        {
            "quantity": "vector units",
            "value": " ".join(cpu["vector_flags"]),
            "how": "/proc/cpuinfo flags",
        },
        {"quantity": "clock (GHz)", "value": ghz, "how": clock_how},
        {
            "quantity": "theoretical peak fp32 (GFLOP/s)",
            "value": peak["fp32"],
            "how": f"cores x clock x {cpu['fp32_flop_per_cycle']} FLOP/cycle",
        },
        {
            "quantity": "theoretical peak bf16 (GFLOP/s)",
            "value": peak["bf16"],
            "how": f"cores x clock x {cpu['bf16_flop_per_cycle']} FLOP/cycle",
        },
    ] + [
        {
            "quantity": f"matmul {name} (GFLOP/s)",
            "value": value,
            "how": f"{settings.matmul_size}x{settings.matmul_size}, all threads, best of 3",
        }
        for name, value in matmul.items()
    ]
    tables = {"machine": {"columns": ["quantity", "value", "how"], "rows": machine}}
    notes = [
        "FLOP per cycle: " + cpu["assumption"] + ".",
        "Fractions: analytic training FLOPs per image (benchmarks/flops.py: Conv2D and "
        "Dense multiply-accumulates from the layer shapes, x2 FLOP per MAC, x3 for "
        "forward + backward; BatchNorm, activations, additions, augmentation and the "
        "update not counted) times images/s, over the theoretical peak and over the "
        "best measured matmul of the same precision.",
    ]
    if contest and contest["status"] == "ok":
        per_image = {
            m: flops_lib.training_flops_per_image(create_model(m)) for m in settings.models
        }
        rows = []
        for row in contest["tables"]["images_per_second"]["rows"]:
            achieved = row["img_s"] * per_image[row["model"]] / 1e9
            short = "fp32" if row["precision"] == "float32" else "bf16"
            rows.append(
                {
                    "model": row["model"],
                    "contender": row["contender"],
                    "precision": row["precision"],
                    "img_s": row["img_s"],
                    "gflop_per_image": per_image[row["model"]] / 1e9,
                    "achieved_gflop_s": achieved,
                    "fraction_of_peak": achieved / peak[short],
                    "fraction_of_matmul": achieved / practical[row["precision"]],
                }
            )
        tables["fraction_of_peak"] = {
            "columns": [
                "model",
                "contender",
                "precision",
                "img_s",
                "gflop_per_image",
                "achieved_gflop_s",
                "fraction_of_peak",
                "fraction_of_matmul",
            ],
            "rows": rows,
        }
    else:
        notes.append("No fractions: the contest section did not run.")
    return _section(tables=tables, notes=notes)


# -- the program -----------------------------------------------------------------------------
def environment(argv, settings):
    from benchmarks.run import environment as run_environment

    meta = run_environment(argv)
    meta["command"] = meta["command"].replace("benchmarks/run.py", "benchmarks/cpu_training.py")
    meta["torch_python"] = str(settings.torch_python)
    return meta


def main(argv=None):
    from benchmarks.report import to_markdown

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: ResNet-20, float32, batch 16, 64 images per epoch, "
        "one turn, 3 PyTorch steps",
    )
    parser.add_argument(
        "--section",
        action="append",
        choices=("contest", "breakdown", "peak"),
        help="run only these sections (repeatable; default: all)",
    )
    parser.add_argument(
        "--model",
        action="append",
        metavar="NAME",
        help="CIFAR ResNet (repeatable; default resnet20 and resnet56)",
    )
    parser.add_argument(
        "--images",
        type=int,
        metavar="N",
        help="training images per epoch of a trainer run (default 12,800)",
    )
    parser.add_argument("--epochs", type=int, help="epochs per trainer run (default 3)")
    parser.add_argument("--turns", type=int, help="runs of each contender (default 3)")
    parser.add_argument(
        "--torch-steps", type=int, help="timed PyTorch steps (default 60, after 10 warm-up steps)"
    )
    parser.add_argument(
        "--torch-python",
        type=Path,
        default=DEFAULT_TORCH_PYTHON,
        help="a Python with torch installed (default: $TORCH_PYTHON; the "
        "PyTorch part is skipped without one)",
    )
    parser.add_argument("--json", metavar="OUT", help="write the results here")
    parser.add_argument("--markdown", metavar="OUT", help="write markdown tables here")
    parser.add_argument(
        "--into",
        metavar="DOC",
        help="also put the tables into this markdown document, between "
        f"<!-- {MARKER} --> and <!-- /{MARKER} -->",
    )
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv

    changes = {
        k: v
        for k, v in dict(
            models=tuple(args.model) if args.model else None,
            images=args.images,
            epochs=args.epochs,
            turns=args.turns,
            torch_steps=args.torch_steps,
            torch_python=args.torch_python,
        ).items()
        if v is not None
    }
    settings = Settings.quick(**changes) if args.quick else Settings(**changes)
    results = {"meta": environment(argv, settings), "sections": {}}
    sections = {
        "contest": lambda: run_contest(settings),
        "breakdown": lambda: run_breakdown(settings),
        "peak": lambda: run_peak(settings, results["sections"].get("contest")),
    }
    run_sections(results, sections, args.section)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    markdown = to_markdown(results)
    if args.markdown:
        Path(args.markdown).write_text(markdown + "\n")
    if args.into:
        from scripts.splice import splice_between

        doc = Path(args.into)
        doc.write_text(splice_between(doc.read_text(), MARKER, markdown))
    print(markdown)
    return 1 if any(s["status"] == "error" for s in results["sections"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
