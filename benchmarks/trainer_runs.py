"""Whole training runs for the benchmarks, each in a fresh process.

* :func:`run_trainer`: ``keras-resblocks train`` (the package's trainer), as a user runs it.
* :func:`run_handwritten`: the hand-written twin (``benchmarks/handwritten.py``) trained by
  ``model.fit`` on a plain numpy pipeline (``keras.utils.PyDataset``: a permutation per
  epoch, slicing, the same pad-4 crop and flip in numpy, normalization) with the same
  optimizer, batch size and precision. ``python -m benchmarks.trainer_runs handwritten
  --help`` runs it alone.
* :func:`time_to_accuracy`: launches ``keras-resblocks train`` and watches its history.csv for
  the first epoch whose test accuracy reaches a target.

Both contenders of the speed comparison read the same image folder
(:func:`write_image_folder`: real PNG files of random pixels) through the package's
loader, and both report *steady-state* images/s: the training time of the epochs
after the first (which compiles), without the per-epoch evaluation the trainer runs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np

REPO = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, "-m", "keras_resblocks", "train"]  # what `keras-resblocks train` runs


def write_image_folder(root, n_train, n_test, num_classes=10, size=32, seed=0):
    """Write ``train/<class>/*.png`` and ``test/<class>/*.png`` of random pixels.

    ``n_train``/``n_test`` images in all, dealt round-robin over the classes.
    Returns ``root``.

    Example:

    >>> import tempfile
    >>> from benchmarks.trainer_runs import write_image_folder
    >>> root = write_image_folder(tempfile.mkdtemp(), 4, 2, num_classes=2, size=8)
    >>> sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))[:3]
    ['test/class0/0.png', 'test/class1/1.png', 'train/class0/0.png']
    """
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            folder = root / split / f"class{i % num_classes}"
            folder.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def shown(cmd):
    """A command as a reader would type it (``keras-resblocks train ...``)."""
    words = [str(w) for w in cmd[1:]]
    if words[:3] == ["-m", "keras_resblocks", "train"]:
        words = ["keras-resblocks"] + words[2:]
    else:
        words = ["python"] + words
    return " ".join(w[len(str(REPO)) + 1 :] if w.startswith(str(REPO) + "/") else w for w in words)


def _run(cmd):
    """Run ``cmd``; returns (completed process, wall seconds). Raises with its stderr."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{done.stderr[-3000:]}"
        )
    return done, wall


def trainer_command(folder, model, batch, dtype, epochs, output, cache, recipe="cosine"):
    """The ``keras-resblocks train`` command line one trainer run uses."""
    return [
        *TRAIN,
        "--dataset",
        str(folder),
        "--model",
        model,
        "--recipe",
        recipe,
        "--epochs",
        str(epochs),
        "--batch-size",
        str(batch),
        "--validation",
        "0",
        "--mixed-precision",
        dtype,
        "--output",
        str(output),
        "--data-cache",
        str(cache),
        "--verbose",
        "0",
    ]


def run_trainer(folder, model, batch, dtype, epochs, workdir, cache, recipe="cosine"):
    """One ``keras-resblocks train`` run; images/s as the checkpoint's metadata records it."""
    output = Path(workdir) / f"trainer-{model}-{dtype}-{batch}-{time.time_ns()}"
    cmd = trainer_command(folder, model, batch, dtype, epochs, output, cache, recipe)
    _, wall = _run(cmd)
    meta = json.loads((output / "metadata.json").read_text())
    return {
        "images_per_second": meta["images_per_second"],
        "process_s": wall,
        "epochs": meta["epochs"],
        "command": shown(cmd),
    }


def handwritten_command(folder, model, batch, dtype, epochs, cache):
    return [
        sys.executable,
        "-m",
        "benchmarks.trainer_runs",
        "handwritten",
        "--dataset",
        str(folder),
        "--model",
        model,
        "--epochs",
        str(epochs),
        "--batch-size",
        str(batch),
        "--mixed-precision",
        dtype,
        "--data-cache",
        str(cache),
    ]


def run_handwritten(folder, model, batch, dtype, epochs, cache):
    """One run of the hand-written model on the numpy pipeline, in a fresh process."""
    cmd = handwritten_command(folder, model, batch, dtype, epochs, cache)
    done, wall = _run(cmd)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(process_s=wall, command=shown(cmd))
    return result


# -- the hand-written contender ------------------------------------------------------------
class NumpyCifarPipeline(keras.utils.PyDataset):
    """Batches of normalized float32 images, pad-4 cropped and flipped in numpy."""

    def __init__(self, images, labels, batch, seed=0, padding=4):
        super().__init__()
        self.images, self.labels, self.batch = images, labels, batch
        self.padding = padding
        self.rng = np.random.default_rng(seed)
        x = images.reshape(-1, images.shape[-1]).astype("float64") / 255.0
        self.mean, self.std = x.mean(0).astype("float32"), x.std(0).astype("float32")
        self.on_epoch_end()

    def __len__(self):
        return len(self.images) // self.batch

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.images))

    def __getitem__(self, i):
        idx = self.order[i * self.batch : (i + 1) * self.batch]
        x, p = self.images[idx], self.padding
        n, h, w, _ = x.shape
        padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        dy, dx = self.rng.integers(0, 2 * p + 1, (2, n))
        rows = dy[:, None] + np.arange(h)[None, :]
        cols = dx[:, None] + np.arange(w)[None, :]
        x = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
        flip = self.rng.random(n) < 0.5
        x[flip] = x[flip, :, ::-1]
        x = (x.astype("float32") / 255.0 - self.mean) / self.std
        return x, self.labels[idx]


def handwritten_main(argv=None):
    """Train the hand-written twin for a few epochs; prints one JSON line of timings."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.trainer_runs handwritten", description=handwritten_main.__doc__
    )
    parser.add_argument("--dataset", required=True, help="image folder (train/, test/)")
    parser.add_argument("--model", default="resnet20", help="resnetN or plainN (CIFAR)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--mixed-precision", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--data-cache", default=None)
    args = parser.parse_args(argv)

    from benchmarks.handwritten import twin_of
    from keras_resblocks.training.data import load_image_folder

    if args.mixed_precision == "bfloat16":
        keras.config.set_dtype_policy("mixed_bfloat16")
    keras.utils.set_random_seed(0)
    x_train, y_train, _, _, labels = load_image_folder(args.dataset, cache_dir=args.data_cache)
    model = twin_of(args.model, num_classes=len(labels))
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    pipeline = NumpyCifarPipeline(x_train, y_train, args.batch_size)
    times = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(pipeline, epochs=args.epochs, verbose=0, callbacks=[EpochTimer()])
    steady = times[1:] or times
    images = len(pipeline) * args.batch_size
    print(
        json.dumps(
            {
                "images_per_second": len(steady) * images / sum(steady),
                "epoch_seconds": times,
                "epochs": len(times),
            }
        )
    )
    return 0


# -- time to accuracy ---------------------------------------------------------------------
def time_to_accuracy(
    dataset,
    target,
    workdir,
    *,
    model="resnet20",
    recipe="cosine",
    extra_args=(),
    timeout=None,
    poll=0.5,
):
    """Launch ``keras-resblocks train`` and time it until test accuracy first reaches ``target``.

    The clock starts before the process is launched (imports, data loading and
    compilation count) and stops when history.csv shows an epoch whose
    ``test_error <= 1 - target``; the run is then stopped. Returns a dict with
    ``reached`` (bool), ``seconds``, ``epoch``, ``iterations``, ``test_accuracy``
    (of that epoch, or the best seen) and ``command``.
    """
    from keras_resblocks.training import read_history

    work = Path(workdir) / f"tta-{time.time_ns()}"
    cmd = [
        *TRAIN,
        "--dataset",
        str(dataset),
        "--model",
        model,
        "--recipe",
        recipe,
        "--work-dir",
        str(work),
        "--verbose",
        "0",
        *extra_args,
    ]
    history = work / "history.csv"
    start = time.perf_counter()
    process = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    best = {"test_accuracy": None, "epoch": None, "iterations": None}
    reached = False
    try:
        while True:
            finished = process.poll() is not None
            rows = read_history(history) if history.exists() else []
            for row in rows:
                if row.get("test_error") is None:
                    continue
                accuracy = 1.0 - row["test_error"]
                if best["test_accuracy"] is None or accuracy > best["test_accuracy"]:
                    best = {
                        "test_accuracy": accuracy,
                        "epoch": int(row["epoch"]),
                        "iterations": int(row["iterations"]),
                    }
                if accuracy >= target:
                    reached = True
                    break
            if finished and not reached and process.returncode != 0:
                raise RuntimeError(
                    f"{' '.join(cmd)} exited {process.returncode}:\n{process.stderr.read()[-3000:]}"
                )
            timed_out = timeout is not None and time.perf_counter() - start > timeout
            if reached or finished or timed_out:
                break
            time.sleep(poll)
        seconds = time.perf_counter() - start
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
    return {"reached": reached, "target": target, "seconds": seconds, **best, "command": shown(cmd)}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "handwritten":
        sys.exit(handwritten_main(sys.argv[2:]))
    print("usage: python -m benchmarks.trainer_runs handwritten --help", file=sys.stderr)
    sys.exit(2)
