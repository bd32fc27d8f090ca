"""The training loop's callbacks: stop on a non-finite loss, after an exact number of
iterations or before a deadline, and record each epoch's errors in history.csv."""

from __future__ import annotations

import json
import math
import os
import pathlib
import time

import keras
import numpy as np
from keras import ops

from keras_resblocks.checkpoints.io import sha256_of
from keras_resblocks.training.history import read_history, write_history


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises :class:`NonFiniteLossError` naming the iteration where the loss
    stopped being finite, before any later callback can save that state.

    Unlike ``keras.callbacks.TerminateOnNaN`` it fails the run (non-zero exit)
    and says where.
    """

    def __init__(self, steps_per_epoch):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            iteration = self._epoch * self.steps_per_epoch + batch + 1
            raise NonFiniteLossError(
                f"The training loss became {loss} at iteration {iteration} (epoch "
                f"{self._epoch + 1}, batch {batch + 1}); stopped without saving. The last "
                "good backup is kept; lower the learning rate and --resume, or start over."
            )


class StopAtIteration(keras.callbacks.Callback):
    """Ends training after exactly ``iterations`` optimizer updates.

    It counts batches itself: on JAX, touching ``self.model`` in a batch
    callback would pull the whole training state back to the model every step.
    """

    def __init__(self, iterations, steps_per_epoch):
        super().__init__()
        self.iterations = iterations
        self.steps_per_epoch = steps_per_epoch
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch * self.steps_per_epoch + batch + 1 >= self.iterations:
            self.model.stop_training = True


class StopBeforeDeadline(keras.callbacks.Callback):
    """Ends training at an epoch boundary when the next epoch would not finish
    before ``deadline`` (seconds since the epoch, as ``time.time()``).

    The estimate is the last epoch's duration (training and evaluation) with a
    15% margin, half as much again before the last epoch (its closing clean
    evaluation of the training split and the checkpoint). The epoch's backup
    is written either way, so the run resumes exactly where it stopped.
    ``stopped`` tells whether it did.
    """

    def __init__(self, deadline, epochs):
        super().__init__()
        self.deadline = float(deadline)
        self.epochs = epochs
        self.stopped = False

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.epochs:
            return
        needed = 1.15 * (time.time() - self._start)
        if epoch + 2 == self.epochs:
            needed *= 1.5
        if time.time() + needed > self.deadline:
            self.stopped = True
            self.model.stop_training = True


class EpochRecorder(keras.callbacks.Callback):
    """Evaluates on the held-out sets after each epoch and appends a row to history.csv.

    ``train_error`` is the running mean over the epoch's batches, measured
    under augmentation with BatchNorm in training mode (what the paper's
    figure shows); ``val_error`` and ``test_error`` are clean evaluations of
    the weights at the end of the epoch. ``subsets`` maps a set's name to the
    indices evaluated after every epoch before ``final_epoch`` (a fixed subset
    keeps the per-epoch evaluation cheap); the final epoch evaluates every
    image. ``<name>_images`` records how many images each error was measured on.
    Rows of epochs that a resumed run repeats are dropped first, so the file
    never holds an epoch twice.
    """

    def __init__(
        self,
        path,
        eval_model,
        eval_sets,
        batch_size,
        initial_epoch,
        replicas=1,
        subsets=None,
        final_epoch=None,
    ):
        super().__init__()
        self.initial_epoch = initial_epoch
        self.replicas = replicas
        self.path = pathlib.Path(path)
        self.eval_model = eval_model
        self.eval_sets = eval_sets  # {"val": (x, y), "test": (x, y)}
        self.final_epoch = final_epoch
        # The per-epoch copies, sliced once: {"test": (x[indices], y[indices])}.
        self.epoch_sets = {
            name: (eval_sets[name][0][indices], eval_sets[name][1][indices])
            for name, indices in (subsets or {}).items()
            if indices is not None and len(indices) < len(eval_sets[name][0])
        }
        self.batch_size = batch_size
        self.rows = []
        self.train_seconds = []  # this process's epochs, without evaluation

    def on_train_begin(self, logs=None):
        rows = read_history(self.path) if self.path.exists() else []
        self.rows = [r for r in rows if int(r["epoch"]) <= self.initial_epoch]
        self._write()
        self._wall_offset = float(self.rows[-1]["wall_time"]) if self.rows else 0.0
        self._start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        self.train_seconds.append(time.perf_counter() - self._epoch_start)
        eval_start = time.perf_counter()
        row = {
            "epoch": epoch + 1,
            "iterations": int(self.model.optimizer.iterations.numpy()),
            "train_loss": float(logs["loss"]),
            "train_error": 1.0 - float(logs["accuracy"]),
            "lr": float(ops.convert_to_numpy(self.model.optimizer.learning_rate)),
        }
        last = self.final_epoch is not None and epoch + 1 >= self.final_epoch
        for name, (x, y) in self.eval_sets.items():
            if name in self.epoch_sets and not last:
                x, y = self.epoch_sets[name]
            row[f"{name}_images"] = len(x)
            error = ""
            if len(x):
                error = 1.0 - evaluate_accuracy(
                    self.eval_model, x, y, self.batch_size, self.replicas
                )
                logs[f"{name}_error"] = error
            row[f"{name}_error"] = error
        row["wall_time"] = self._wall_offset + time.perf_counter() - self._start
        row["train_seconds"] = round(self.train_seconds[-1], 2)
        row["eval_seconds"] = round(time.perf_counter() - eval_start, 2)
        self.rows.append(row)
        self._write()

    def _write(self):
        write_history(self.path, self.rows)


def fixed_subset(labels, size):
    """Indices (ascending) of a fixed class-balanced subset of ``size`` of ``labels``.

    The first image of every class, then the second of every class, and so
    on, in the order of ``labels``: the same subset on every machine and run.
    ``None`` (or a ``size`` not smaller than ``labels``) selects everything.

    Example:

    >>> from keras_resblocks.training.callbacks import fixed_subset
    >>> fixed_subset([0, 0, 0, 1, 1, 2], 4).tolist()
    [0, 1, 3, 5]
    """
    labels = np.asarray(labels)
    if size is None or size >= len(labels):
        return np.arange(len(labels))
    if size < 1:
        raise ValueError(f"The subset must hold at least one image. Received: size={size}")
    rank = np.empty(len(labels), np.int64)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        rank[where] = np.arange(len(where))
    return np.sort(np.lexsort((labels, rank))[:size])


def evaluate_accuracy(model, x, y, batch_size, replicas=1, verbose=0):
    """``model``'s accuracy on ``(x, y)``, in batches of one size.

    The last batch is padded with images that weigh nothing, so a compiled
    evaluation step serves every set (JAX compiles once per shape) and
    data-parallel steps get equal shards.
    """
    batch_size = -(-batch_size // replicas) * replicas
    pad = -len(x) % batch_size
    weights = np.concatenate([np.ones(len(x), "float32"), np.zeros(pad, "float32")])
    x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
    y = np.concatenate([y, np.zeros(pad, y.dtype)])
    result = model.evaluate(
        x, y, sample_weight=weights, batch_size=batch_size, verbose=verbose, return_dict=True
    )
    return float(result["accuracy"])


class BackupError(OSError):
    """A training backup that could not be written, or that is damaged."""


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's ``BackupAndRestore`` (each epoch's weights, optimizer and random state,
    resumed by the next ``fit``), written so that a kill or a full disk at any instant
    leaves a whole backup: each epoch's weights go to a file of their own
    (``weights-EPOCH.weights.h5``), and only once it is complete does
    ``training_metadata.json``, replaced atomically, name it with its sha256 and its
    epoch, as one record; the previous file is deleted after that. On resuming, the
    weights must have the recorded hash. A backup written by an earlier version of this
    trainer (``latest.weights.h5``, no hash) resumes as before."""

    def _record(self):
        path = pathlib.Path(self._training_metadata_path)
        return json.loads(path.read_text()) if path.exists() else {}

    def _load_model(self):
        record = self._record()
        name = record.get("weights")
        if name is not None:
            weights = pathlib.Path(self.backup_dir) / name
            if not weights.is_file() or sha256_of(weights) != record.get("weights_sha256"):
                raise BackupError(
                    f"The backup in {self.backup_dir} is damaged: {name} is missing or not the "
                    f"file its record names (sha256). Received: backup_dir={self.backup_dir!r}"
                )
            self._weights_path = str(weights)
        super()._load_model()

    def _save_model(self):
        backup = pathlib.Path(self.backup_dir)
        backup.mkdir(parents=True, exist_ok=True)
        previous = self._record()
        weights = backup / f"weights-{self._current_epoch}.weights.h5"
        try:
            self.model.save_weights(filepath=str(weights), overwrite=True)
            record = {
                "epoch": self._current_epoch,
                "batch": self._last_batch_seen,
                "weights": weights.name,
                "weights_sha256": sha256_of(weights),
            }
            temporary = backup / f".{pathlib.Path(self._training_metadata_path).name}.tmp"
            temporary.write_text(json.dumps(record))
            os.replace(temporary, self._training_metadata_path)
        except Exception as error:
            weights.unlink(missing_ok=True)
            kept = f"epoch {previous['epoch']}" if previous else "none"
            raise BackupError(
                f"Could not write the backup of epoch {self._current_epoch} in {backup} "
                f"({type(error).__name__}: {error}); the previous backup ({kept}) is kept, "
                "resume from it (--resume) once the cause is mended."
            ) from None
        for stale in backup.glob("*.weights.h5"):
            if stale.name != weights.name:
                stale.unlink(missing_ok=True)
