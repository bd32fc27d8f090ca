"""The benchmark sections. Each takes a :class:`Settings` and returns a section dict:

``{"status": "ok" | "skipped", "reason": str, "tables": {name: {"columns": [...],
"rows": [...]}}, "skipped": [{"what": str, "reason": str}], "notes": [str]}``

Hardware (a GPU) and data (the CIFAR-10 JPEG copy) are looked up when a section
runs; what is missing is reported as skipped with the reason, never silently left out.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import flops as flops_lib
from benchmarks.handwritten import copy_weights, twin_of
from benchmarks.report import published
from benchmarks.timing import interleaved, paired_ratios

CIFAR_TRAIN_SIZE = 50_000
DEFAULT_DATA = Path("/work/shared/data/cifar10-jpeg.tar.gz")


@dataclasses.dataclass
class Settings:
    quick: bool
    layer_models: tuple
    training_models: tuple
    flops_models: tuple
    dtypes: tuple
    batch: int
    repeats: int
    min_time: float
    cold_repeats: int
    warm_repeats: int
    data: Path = DEFAULT_DATA
    # None: 128 and 512 on a GPU, `batch` on a CPU (batch 512 steps take seconds there).
    training_batches: tuple = None
    # Whole training runs (keras-resblocks train against the hand-written model).
    trainer_epochs: int = 3
    trainer_repeats: int = 2
    trainer_images: int = None  # None: 50,000 on a GPU, 8 batches on a CPU
    tta_target: float = 0.88

    @classmethod
    def make(
        cls,
        quick,
        with_110=False,
        data=None,
        training_batches=None,
        trainer_images=None,
        trainer_repeats=None,
    ):
        if quick:
            s = cls(
                True,
                ("resnet20",),
                ("resnet20",),
                ("resnet20",),
                ("float32",),
                batch=8,
                repeats=3,
                min_time=0.02,
                cold_repeats=1,
                warm_repeats=2,
                trainer_epochs=2,
                trainer_repeats=1,
                trainer_images=32,
            )
        else:
            extra = ("resnet110",) if with_110 else ()
            s = cls(
                False,
                ("resnet20", "plain20", "resnet56") + extra,
                ("resnet20", "resnet56") + extra,
                ("resnet20", "resnet56", "resnet110"),
                ("float32", "bfloat16"),
                batch=128,
                repeats=7,
                min_time=0.5,
                cold_repeats=3,
                warm_repeats=5,
            )
        if data is not None:
            s.data = Path(data)
        if training_batches:
            s.training_batches = tuple(training_batches)
        if trainer_images:
            s.trainer_images = trainer_images
        if trainer_repeats:
            s.trainer_repeats = trainer_repeats
        return s


def _section(tables=None, skipped=None, notes=None):
    return {
        "status": "ok",
        "reason": "",
        "tables": tables or {},
        "skipped": skipped or [],
        "notes": notes or [],
    }


def skipped_section(reason):
    return {"status": "skipped", "reason": reason, "tables": {}, "skipped": [], "notes": []}


def accelerator():
    """A description of the GPU the current backend sees, or None."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        return gpus[0].device_kind if gpus else None
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return None


_PAIRS = {}


def build_pair(name):
    """The package's model and its hand-written twin, with identical weights, compiled.

    Built once per (name, dtype policy) and shared by the sections, so a run compiles
    each step function once.
    """
    import keras

    from keras_resblocks import create_model

    key = (name, keras.config.dtype_policy().name)
    if key not in _PAIRS:
        package = create_model(name)
        handwritten = twin_of(name)
        copy_weights(package, handwritten)
        _compile(package)
        _compile(handwritten)
        _PAIRS[key] = package, handwritten
    return _PAIRS[key]


def check_equivalent(package, handwritten, rng, batch, training_mode=True):
    """Assert the twins compute the same function; returns the evidence.

    BatchNorm statistics and affine parameters are randomized first (fresh ones are
    0/1, which would hide a mix-up), then copied over. Inference is compared through
    ``predict_on_batch`` at ``batch`` (the compiled function the timings use);
    ``training_mode`` also compares an eager training-mode call (batch statistics).
    """
    for v in package.weights:
        leaf = v.path.rsplit("/", 1)[-1]
        shape = tuple(v.shape)
        if leaf in ("gamma", "moving_variance"):
            v.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
        elif leaf in ("beta", "moving_mean"):
            v.assign(rng.normal(0.0, 0.1, shape).astype("float32"))
    copy_weights(package, handwritten)
    if package.count_params() != handwritten.count_params():
        raise AssertionError(
            f"{package.name}: {package.count_params()} vs {handwritten.count_params()} params"
        )
    x = rng.uniform(-1, 1, (batch, 32, 32, 3)).astype("float32")
    outputs = {False: (package.predict_on_batch(x), handwritten.predict_on_batch(x))}
    if training_mode:
        x = x[:4]
        outputs[True] = (package(x, training=True), handwritten(x, training=True))
    diffs = {True: None}
    for training, (a, b) in outputs.items():
        a, b = np.asarray(a), np.asarray(b)
        diffs[training] = float(np.max(np.abs(a - b)))
        if not np.allclose(a, b, atol=1e-5, rtol=1e-4):
            raise AssertionError(
                f"{package.name}: outputs differ (training={training}), max |diff| "
                f"{diffs[training]}"
            )
    return {
        "params": package.count_params(),
        "max_abs_diff_inference": diffs[False],
        "max_abs_diff_training": diffs[True],
    }


def _compile(model):
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss="sparse_categorical_crossentropy",
    )


def _images(rng, n):
    return rng.uniform(-1, 1, (n, 32, 32, 3)).astype("float32")


# -- layers cost nothing ---------------------------------------------------------------
def run_layers(settings):
    import keras

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    gpu = accelerator()
    b = settings.batch
    cases = [
        ("predict_on_batch", 1),
        ("predict_on_batch", b),
        ("eager call", 1),
        ("train_on_batch", b),
    ]
    if settings.quick:
        cases = [("predict_on_batch", b), ("train_on_batch", b)]
    rows, equivalence, skipped = [], [], []
    for name in settings.layer_models:
        package, handwritten = build_pair(name)
        equivalence.append(
            {
                "model": name,
                **check_equivalent(package, handwritten, rng, b, training_mode=not settings.quick),
            }
        )
        for kind, batch in cases:
            x = _images(rng, batch)
            y = rng.integers(0, 10, batch)
            if kind == "predict_on_batch":
                make = lambda m: lambda: m.predict_on_batch(x)  # noqa: E731
            elif kind == "eager call":
                make = lambda m: lambda: np.asarray(m(x, training=False))  # noqa: E731
            else:
                make = lambda m: lambda: m.train_on_batch(x, y)  # noqa: E731
            t = interleaved(
                {"package": make(package), "handwritten": make(handwritten)},
                repeats=settings.repeats,
                min_time=settings.min_time,
            )
            ratio, low, high = paired_ratios(t, "package", "handwritten")
            rows.append(
                {
                    "model": name,
                    "benchmark": kind,
                    "device": gpu or "cpu",
                    "batch": batch,
                    "package_ms": 1e3 * t["package"]["median_s"],
                    "handwritten_ms": 1e3 * t["handwritten"]["median_s"],
                    "ratio": ratio,
                    "ratio_min": low,
                    "ratio_max": high,
                    "calls": t["package"]["calls_per_turn"] * settings.repeats,
                }
            )
        if gpu:
            rows.append(_epoch_row(name, package, handwritten, settings, rng, gpu))
        else:
            skipped.append(
                {
                    "what": f"{name}: training epoch (fit, 50,000 images) on the GPU",
                    "reason": "no GPU visible to the backend",
                }
            )
    return _section(
        tables={
            "timings": {
                "columns": [
                    "model",
                    "benchmark",
                    "device",
                    "batch",
                    "package_ms",
                    "handwritten_ms",
                    "ratio",
                    "ratio_min",
                    "ratio_max",
                    "calls",
                ],
                "rows": rows,
            },
            "equivalence": {
                "columns": ["model", "params", "max_abs_diff_inference", "max_abs_diff_training"],
                "rows": equivalence,
            },
        },
        skipped=skipped,
        notes=[
            "ratio = package time / hand-written time, medians over interleaved turns "
            "(A,B then B,A); ratio_min/ratio_max: spread of the turn-by-turn ratios. "
            "Goal: ratio <= 1.03."
        ],
    )


def _epoch_row(name, package, handwritten, settings, rng, gpu):
    n = CIFAR_TRAIN_SIZE if not settings.quick else 4 * settings.batch
    x = rng.integers(0, 256, (n, 32, 32, 3)).astype("float32") / 255.0
    y = rng.integers(0, 10, n)
    fit = lambda m: lambda: m.fit(x, y, batch_size=settings.batch, epochs=1, verbose=0)  # noqa: E731
    t = interleaved(
        {"package": fit(package), "handwritten": fit(handwritten)},
        repeats=max(2, settings.repeats // 2),
        min_time=0,
    )
    ratio, low, high = paired_ratios(t, "package", "handwritten")
    return {
        "model": name,
        "benchmark": f"fit epoch ({n} images)",
        "device": gpu,
        "batch": settings.batch,
        "package_ms": 1e3 * t["package"]["median_s"],
        "handwritten_ms": 1e3 * t["handwritten"]["median_s"],
        "ratio": ratio,
        "ratio_min": low,
        "ratio_max": high,
        "calls": max(2, settings.repeats // 2),
    }


# -- training speed ----------------------------------------------------------------------
class NumpyPipeline:
    """The plain input pipeline: a fresh permutation per epoch, slices, a normalization."""

    def __init__(self, images, labels, batch, seed=0):
        self.images, self.labels, self.batch = images, labels, batch
        self.rng = np.random.default_rng(seed)
        self.mean = images.mean(axis=(0, 1, 2))
        self.std = images.std(axis=(0, 1, 2))
        self._order, self._at = self.rng.permutation(len(images)), 0

    def next(self):
        if self._at + self.batch > len(self._order):
            self._order, self._at = self.rng.permutation(len(self.images)), 0
        idx = self._order[self._at : self._at + self.batch]
        self._at += self.batch
        x = (self.images[idx].astype("float32") - self.mean) / self.std
        return x, self.labels[idx]


def flops_table(settings):
    from keras_resblocks import create_model

    rows = []
    for name in settings.flops_models:
        macs = flops_lib.forward_macs(create_model(name))
        hand_macs = flops_lib.forward_macs(twin_of(name))
        if macs != hand_macs:
            raise AssertionError(f"{name}: package {macs} MACs vs hand-written {hand_macs}")
        train = 6 * macs
        rows.append(
            {
                "model": name,
                "forward_mmac_per_image": macs / 1e6,
                "train_gflop_per_image": train / 1e9,
                "train_tflop_per_epoch": train * CIFAR_TRAIN_SIZE / 1e12,
                "peak_fraction_at_50k_img_s_bf16": train
                * 50_000
                / flops_lib.H100_SXM_PEAK["bfloat16"],
            }
        )
    return {
        "columns": [
            "model",
            "forward_mmac_per_image",
            "train_gflop_per_image",
            "train_tflop_per_epoch",
            "peak_fraction_at_50k_img_s_bf16",
        ],
        "rows": rows,
    }


def _throughput_rows(settings, rng, gpu):
    batches = settings.training_batches or ((128, 512) if gpu else (settings.batch,))
    rows, skipped = [], []
    for batch in batches:
        n = 8 * batch
        images = rng.integers(0, 256, (n, 32, 32, 3)).astype("uint8")
        labels = rng.integers(0, 10, n)
        for dtype in settings.dtypes:
            for name in settings.training_models:
                row, reason = _throughput_row(name, dtype, batch, images, labels, settings, gpu)
                if row:
                    rows.append(row)
                else:
                    skipped.append(
                        {"what": f"{name} {dtype} batch {batch} train steps", "reason": reason}
                    )
    return rows, skipped


def _throughput_row(name, dtype, batch, images, labels, settings, gpu):
    import keras

    keras.config.set_dtype_policy("mixed_bfloat16" if dtype == "bfloat16" else "float32")
    try:
        package, handwritten = build_pair(name)

        def step(model):
            pipeline = NumpyPipeline(images, labels, batch)
            return lambda: model.train_on_batch(*pipeline.next())

        t = interleaved(
            {"package": step(package), "handwritten": step(handwritten)},
            repeats=settings.repeats,
            min_time=settings.min_time,
        )
    except Exception as error:  # e.g. bf16 kernels missing from a CPU build
        return None, f"{type(error).__name__}: {error}"[:300]
    finally:
        keras.config.set_dtype_policy("float32")
    ratio, low, high = paired_ratios(t, "package", "handwritten")
    flop = flops_lib.training_flops_per_image(package)
    row = {
        "model": name,
        "dtype": dtype,
        "device": gpu or "cpu",
        "batch": batch,
        "package_img_s": batch / t["package"]["median_s"],
        "handwritten_img_s": batch / t["handwritten"]["median_s"],
        "ratio": ratio,
        "ratio_min": low,
        "ratio_max": high,
    }
    row["package_s_per_epoch"] = CIFAR_TRAIN_SIZE / row["package_img_s"]
    row["package_tflop_s"] = row["package_img_s"] * flop / 1e12
    peak = flops_lib.H100_SXM_PEAK.get(dtype) if gpu and "H100" in gpu else None
    row["peak_fraction"] = row["package_tflop_s"] * 1e12 / peak if peak else None
    return row, None


def trainer_throughput(settings, gpu):
    """``keras-resblocks train`` against the hand-written model on a plain numpy pipeline.

    Whole runs in fresh processes (see ``benchmarks/trainer_runs.py``), taking turns
    (trainer, hand-written, then hand-written, trainer, ...): each run trains
    ``settings.trainer_epochs`` epochs of an image folder of random PNGs and reports
    steady-state images/s (the epochs after the first, evaluation left out).
    Returns (rows, notes).
    """
    from benchmarks import trainer_runs

    batches = settings.training_batches or ((128, 512) if gpu else (settings.batch,))
    tmp = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    cache = tmp / "cache"
    # FLOPs do not depend on the batch or the precision: count them once per model,
    # on the package model the training section has already built.
    flops = {
        name: flops_lib.training_flops_per_image(build_pair(name)[0])
        for name in settings.training_models
    }
    rows, commands, folders = [], {}, {}
    for batch in batches:
        n_train = settings.trainer_images or (CIFAR_TRAIN_SIZE if gpu else 8 * batch)
        if n_train not in folders:  # one folder per size, shared by the batch sizes
            folders[n_train] = trainer_runs.write_image_folder(
                tmp / f"images-{n_train}", n_train, 10
            )
        folder = folders[n_train]
        for dtype in settings.dtypes:
            for name in settings.training_models:
                runs = {"trainer": [], "handwritten": []}
                for r in range(settings.trainer_repeats):
                    order = ("trainer", "handwritten") if r % 2 == 0 else ("handwritten", "trainer")
                    for who in order:
                        if who == "trainer":
                            result = trainer_runs.run_trainer(
                                folder, name, batch, dtype, settings.trainer_epochs, tmp, cache
                            )
                        else:
                            result = trainer_runs.run_handwritten(
                                folder, name, batch, dtype, settings.trainer_epochs, cache
                            )
                        runs[who].append(result)
                        commands[who] = published(result["command"], tmp)
                median = lambda who, key: float(np.median([x[key] for x in runs[who]]))  # noqa: E731
                pairs = [
                    a["images_per_second"] / b["images_per_second"]
                    for a, b in zip(runs["handwritten"], runs["trainer"])
                ]
                package_img_s = median("trainer", "images_per_second")
                handwritten_img_s = median("handwritten", "images_per_second")
                flop = flops[name]
                peak = flops_lib.H100_SXM_PEAK.get(dtype) if gpu and "H100" in gpu else None
                rows.append(
                    {
                        "model": name,
                        "dtype": dtype,
                        "device": gpu or "cpu",
                        "batch": batch,
                        "train_py_img_s": package_img_s,
                        "handwritten_img_s": handwritten_img_s,
                        # time ratio: trainer time per image / hand-written time per image
                        "ratio": handwritten_img_s / package_img_s,
                        "ratio_min": min(pairs),
                        "ratio_max": max(pairs),
                        "train_py_s_per_epoch": CIFAR_TRAIN_SIZE / package_img_s,
                        "train_py_process_s": median("trainer", "process_s"),
                        "handwritten_process_s": median("handwritten", "process_s"),
                        "train_py_tflop_s": package_img_s * flop / 1e12,
                        "peak_fraction": package_img_s * flop / peak if peak else None,
                        "images_per_epoch": n_train,
                    }
                )
    notes = [
        f"Whole runs in fresh processes, taking turns ({settings.trainer_repeats} each): "
        f"{settings.trainer_epochs} epochs of an image folder of random 32x32 PNGs "
        "(images_per_epoch); images/s over the epochs after the first (which compiles), "
        "evaluation left out. ratio = trainer time per image / hand-written time per "
        "image (medians); ratio_min/max: run-by-run. *_process_s: the whole process, "
        "imports, data decoding, compilation and (trainer) per-epoch evaluation included.",
        "trainer command: " + commands.get("trainer", ""),
        "hand-written command: " + commands.get("handwritten", ""),
    ]
    return rows, notes


def run_training(settings):
    rng = np.random.default_rng(1)
    gpu = accelerator()
    rows, skipped = _throughput_rows(settings, rng, gpu)
    notes = [
        "images/s over interleaved single train_on_batch steps fed by the same numpy "
        "pipeline (synthetic uint8 images, per-epoch permutation, normalization); "
        "ratio = package step time / hand-written step time; package_s_per_epoch = "
        "50,000 images at the measured images/s (the fit-epoch rows of the layers "
        "section time whole epochs on a GPU).",
        "Analytic FLOPs: Conv2D and Dense multiply-accumulates from the layer shapes, "
        "x2 FLOPs per MAC, x3 for forward + backward. Peak used: H100 SXM5 dense "
        f"bf16 {flops_lib.H100_SXM_PEAK['bfloat16'] / 1e12:.1f} TFLOP/s, fp32 (no tensor "
        f"cores) {flops_lib.H100_SXM_PEAK['float32'] / 1e12:.1f} TFLOP/s.",
    ]
    if not gpu:
        notes.append(
            "No GPU: these are CPU figures. The GPU figures (H100, JAX backend, "
            "batch 128 and 512, fp32 and bf16, seconds per epoch) are pending a "
            "session with the H100."
        )
        skipped.append(
            {
                "what": "seconds per epoch and fraction of peak on the GPU",
                "reason": "no GPU visible to the backend",
            }
        )
    trainer_rows, trainer_notes = trainer_throughput(settings, gpu)
    return _section(
        tables={
            "throughput": {
                "columns": [
                    "model",
                    "dtype",
                    "device",
                    "batch",
                    "package_img_s",
                    "handwritten_img_s",
                    "ratio",
                    "ratio_min",
                    "ratio_max",
                    "package_s_per_epoch",
                    "package_tflop_s",
                    "peak_fraction",
                ],
                "rows": rows,
            },
            "trainer": {
                "columns": [
                    "model",
                    "dtype",
                    "device",
                    "batch",
                    "train_py_img_s",
                    "handwritten_img_s",
                    "ratio",
                    "ratio_min",
                    "ratio_max",
                    "train_py_s_per_epoch",
                    "train_py_tflop_s",
                    "peak_fraction",
                    "train_py_process_s",
                    "handwritten_process_s",
                    "images_per_epoch",
                ],
                "rows": trainer_rows,
            },
            "flops": flops_table(settings),
        },
        skipped=skipped,
        notes=notes + trainer_notes,
    )


# -- loading -------------------------------------------------------------------------------
_COLD = """
import json, sys, time
start = time.perf_counter()
import keras, keras_resblocks
imported = time.perf_counter()
if sys.argv[1] == "keras":
    model = keras.saving.load_model(sys.argv[2], safe_mode=True)
else:
    model = keras_resblocks.from_pretrained(sys.argv[2])
loaded = time.perf_counter()
print(json.dumps({"import_s": imported - start, "load_s": loaded - imported}))
"""


def _cold(kind, path):
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _COLD, kind, str(path)],
        check=True,
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start
    return result


def run_loading(settings):
    import keras

    import keras_resblocks

    model = keras_resblocks.create_model("resnet20")
    tmp = Path(tempfile.mkdtemp(prefix="bench-loading-"))
    contenders = {"keras.saving.load_model (.keras)": ("keras", tmp / "resnet20.keras")}
    model.save(contenders["keras.saving.load_model (.keras)"][1])
    keras_resblocks.save_pretrained(model, tmp / "resnet20-checkpoint")
    contenders["from_pretrained (checkpoint dir)"] = ("pretrained", tmp / "resnet20-checkpoint")
    names = list(contenders)
    cold = {name: [] for name in names}
    for r in range(settings.cold_repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            cold[name].append(_cold(*contenders[name]))

    def load(kind, path):
        if kind == "keras":
            return lambda: keras.saving.load_model(path, safe_mode=True)
        return lambda: keras_resblocks.from_pretrained(str(path))

    warm = interleaved(
        {n: load(*contenders[n]) for n in names}, repeats=settings.warm_repeats, min_time=0
    )
    rows = []
    median = lambda xs: float(np.median(xs))  # noqa: E731
    reference = names[0]
    for name in names:
        rows.append(
            {
                "loader": name,
                "cold_process_s": median([c["process_s"] for c in cold[name]]),
                "cold_import_s": median([c["import_s"] for c in cold[name]]),
                "cold_load_s": median([c["load_s"] for c in cold[name]]),
                "warm_load_s": warm[name]["median_s"],
                "warm_ratio_vs_keras": warm[name]["median_s"] / warm[reference]["median_s"],
                "cold_ratio_vs_keras": median([c["load_s"] for c in cold[name]])
                / median([c["load_s"] for c in cold[reference]]),
            }
        )
    return _section(
        tables={
            "loading": {
                "columns": [
                    "loader",
                    "cold_process_s",
                    "cold_import_s",
                    "cold_load_s",
                    "warm_load_s",
                    "cold_ratio_vs_keras",
                    "warm_ratio_vs_keras",
                ],
                "rows": rows,
            }
        },
        notes=[
            f"ResNet-20. Cold: a fresh `python -c` process per load (median of "
            f"{settings.cold_repeats}), timing `import keras, keras_resblocks` and the load "
            f"inside it; cold_process_s is the whole process seen from outside. Warm: "
            f"repeated loads in this process (median of {settings.warm_repeats})."
        ],
    )


# -- time to accuracy ------------------------------------------------------------------------
def run_time_to_accuracy(settings):
    """ResNet-20 to ``settings.tta_target`` test accuracy on the JPEG CIFAR-10 copy."""
    from benchmarks import trainer_runs

    reasons = []
    gpu = accelerator()
    if not gpu:
        reasons.append(
            "no GPU visible to the backend (on 2 CPU cores one ResNet-20 epoch "
            "takes about 220 s, so reaching 88% would take hours)"
        )
    if not settings.data.exists():
        reasons.append(f"no CIFAR-10 JPEG copy at {settings.data} (--data)")
    if settings.quick:
        reasons.append("not part of --quick")
    if reasons:
        return skipped_section("; ".join(reasons))
    tmp = Path(tempfile.mkdtemp(prefix="bench-tta-"))
    result = trainer_runs.time_to_accuracy(
        settings.data,
        settings.tta_target,
        tmp,
        model="resnet20",
        recipe="cosine",
        extra_args=("--mixed-precision", "bfloat16", "--data-cache", str(tmp / "cache")),
    )
    return _section(
        tables={
            "time_to_accuracy": {
                "columns": [
                    "model",
                    "device",
                    "target",
                    "reached",
                    "seconds",
                    "epoch",
                    "iterations",
                    "test_accuracy",
                ],
                "rows": [
                    {
                        "model": "resnet20",
                        "device": gpu,
                        **{
                            k: result[k]
                            for k in (
                                "target",
                                "reached",
                                "seconds",
                                "epoch",
                                "iterations",
                                "test_accuracy",
                            )
                        },
                    }
                ],
            }
        },
        notes=[
            "Wall time from launching the command to the end of the first epoch whose "
            "test accuracy (evaluated after every epoch) reaches the target; the run is "
            "stopped there. Includes imports, JPEG decoding (a cold cache) and "
            "compilation. Command: " + published(result["command"], tmp)
        ],
    )


SECTIONS = {
    "layers": run_layers,
    "training": run_training,
    "loading": run_loading,
    "time_to_accuracy": run_time_to_accuracy,
}
