"""The training loop: device-resident uint8 data, in-graph augmentation, safe resumption.

``model.fit`` drives everything. The training images live in a non-trainable
uint8 variable of the training model, whose input is a batch of indices, so
each step's host work is slicing an index array; cropping and flipping run
inside the compiled step (keras.ops + keras.random). Epoch ``e`` visits the
training set in a permutation fixed by ``(seed, e)`` and the augmentation's
random state is saved with the weights, so a run resumed from its last
``BackupAndRestore`` backup ends with the same weights as one never stopped.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pathlib
import platform
import sys
import time

import keras
import numpy as np
from keras import ops

from keras_resblocks.blocks import PACKAGE
from keras_resblocks.models import create_model
from keras_resblocks.training.data import load_dataset
from keras_resblocks.training.recipes import Recipe, get_recipe, learning_rate_schedule

HISTORY_FIELDS = (
    "epoch", "iterations", "train_loss", "train_error", "val_error", "test_error",
    "lr", "wall_time", "train_seconds", "eval_seconds",
)
BACKUP_DIR = "backup"
HISTORY_FILE = "history.csv"
REFERENCE_IMAGES = 8  # stored with the checkpoint, see keras_resblocks.verify_reference


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of logits against integer labels with label smoothing.

    Keras's ``SparseCategoricalCrossentropy`` has no ``label_smoothing``; this
    one-hots the labels and uses ``categorical_crossentropy``'s.

    Example:

    >>> import numpy as np
    >>> from keras_resblocks.training.trainer import SmoothedSparseCrossentropy
    >>> loss = SmoothedSparseCrossentropy(num_classes=2, label_smoothing=0.2)
    >>> round(float(loss(np.array([0]), np.array([[0.0, 0.0]]))), 4)  # log 2 whatever the target
    0.6931
    """

    def __init__(self, num_classes, label_smoothing=0.0, name="smoothed_sparse_crossentropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), self.num_classes)
        return keras.losses.categorical_crossentropy(
            labels, y_pred, from_logits=True, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return dict(super().get_config(), num_classes=self.num_classes,
                    label_smoothing=self.label_smoothing)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResidentImages(keras.layers.Layer):
    """Maps a batch of indices to uint8 images held in a non-trainable variable.

    The images are data, not state: they are left out of saved weights
    (``save_own_variables`` stores nothing), so backups stay small.

    Example:

    >>> import numpy as np
    >>> from keras_resblocks.training.trainer import ResidentImages
    >>> images = np.arange(4 * 2 * 2 * 3, dtype="uint8").reshape(4, 2, 2, 3)
    >>> out = ResidentImages(images)(np.array([3, 0]))
    >>> import keras
    >>> tuple(out.shape), keras.backend.standardize_dtype(out.dtype)
    ((2, 2, 2, 3), 'uint8')
    """

    def __init__(self, images, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        images = np.asarray(images)
        self.images = self.add_weight(
            shape=images.shape, dtype=images.dtype.name, initializer="zeros",
            trainable=False, name="images",
        )
        self.images.assign(images)

    def call(self, indices):
        return ops.take(self.images, ops.cast(indices, "int32"), axis=0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + tuple(self.images.shape[1:])

    def save_own_variables(self, store):
        pass

    def load_own_variables(self, store):
        pass


@keras.saving.register_keras_serializable(package=PACKAGE)
class RandomCropFlip(keras.layers.Layer):
    """Casts images to float32 and, in training, pads, crops back at random and flips.

    Zero padding of ``padding`` pixels then a random crop to the input size (He
    et al. 2015's augmentation), written as two one-hot matrix products so it
    runs per sample inside the compiled step on every backend. Outside training
    it only casts. The random state is saved with the weights, so a resumed
    run draws the same crops.

    Example:

    >>> import numpy as np
    >>> from keras_resblocks.training.trainer import RandomCropFlip
    >>> x = np.random.randint(0, 255, (2, 8, 8, 3)).astype("uint8")
    >>> layer = RandomCropFlip(padding=2, flip=True, seed=0)
    >>> y = layer(x, training=True)
    >>> tuple(y.shape), bool((np.asarray(layer(x)) == x).all())
    ((2, 8, 8, 3), True)
    """

    def __init__(self, padding=4, flip=True, seed=None, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.padding = int(padding)
        self.flip = bool(flip)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        x = ops.cast(images, "float32")
        if not training or (self.padding == 0 and not self.flip):
            return x
        batch = ops.shape(x)[0]
        height, width = x.shape[1], x.shape[2]
        if self.padding:
            p = self.padding
            x = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
            rows = self._window(batch, height, 2 * p)
            cols = self._window(batch, width, 2 * p)
            # out[b, i, j] = padded[b, i + dy[b], j + dx[b]]; exact, as the
            # matrices hold only zeros and ones.
            x = ops.einsum("bip,bpqc->biqc", rows, x)
            x = ops.einsum("bjq,biqc->bijc", cols, x)
        if self.flip:
            flip = keras.random.uniform((batch, 1, 1, 1), seed=self.seed_generator) < 0.5
            x = ops.where(flip, ops.flip(x, axis=2), x)
        return x

    def _window(self, batch, size, slack):
        """One-hot ``(batch, size, size + slack)`` matrices selecting a random window."""
        offset = keras.random.randint(
            (batch, 1), 0, slack + 1, seed=self.seed_generator, dtype="int32"
        )
        positions = ops.arange(size, dtype="int32")[None, :] + offset
        return ops.one_hot(positions, size + slack, dtype="float32")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return dict(super().get_config(), padding=self.padding, flip=self.flip, seed=self.seed)

    # The seed generator's state is not a layer weight, so Keras would not save
    # it; a resumed run must continue the same random stream.
    def save_own_variables(self, store):
        store["seed_generator_state"] = ops.convert_to_numpy(self.seed_generator.state.value)

    def load_own_variables(self, store):
        if "seed_generator_state" in store:
            self.seed_generator.state.assign(np.asarray(store["seed_generator_state"]))


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
    the weights at the end of the epoch. Rows of epochs that a resumed run
    repeats are dropped first, so the file never holds an epoch twice.
    """

    def __init__(self, path, eval_model, eval_sets, batch_size, initial_epoch, replicas=1):
        super().__init__()
        self.initial_epoch = initial_epoch
        self.replicas = replicas
        self.path = pathlib.Path(path)
        self.eval_model = eval_model
        self.eval_sets = eval_sets  # {"val": (x, y), "test": (x, y)}
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
        for name, (x, y) in self.eval_sets.items():
            error = ""
            if len(x):
                error = 1.0 - evaluate_accuracy(self.eval_model, x, y, self.batch_size, self.replicas)
                logs[f"{name}_error"] = error
            row[f"{name}_error"] = error
        row["wall_time"] = self._wall_offset + time.perf_counter() - self._start
        row["train_seconds"] = round(self.train_seconds[-1], 2)
        row["eval_seconds"] = round(time.perf_counter() - eval_start, 2)
        self.rows.append(row)
        self._write()

    def _write(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, HISTORY_FIELDS)
            writer.writeheader()
            writer.writerows(
                dict(row, epoch=int(row["epoch"]), iterations=int(row["iterations"]))
                for row in self.rows
            )
        os.replace(tmp, self.path)


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
    result = model.evaluate(x, y, sample_weight=weights, batch_size=batch_size, verbose=verbose,
                            return_dict=True)
    return float(result["accuracy"])


def read_history(path):
    """The rows of a history.csv as dicts of floats (``None`` for empty cells).

    Example:

    >>> import pathlib, tempfile
    >>> from keras_resblocks.training import read_history
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "history.csv"
    >>> _ = p.write_text("epoch,iterations,train_error,test_error\\n1,10,0.5,\\n")
    >>> read_history(p)
    [{'epoch': 1.0, 'iterations': 10.0, 'train_error': 0.5, 'test_error': None}]
    """
    with open(path, newline="") as f:
        return [
            {k: (float(v) if v not in ("", None) else None) for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


def _backup_epoch(backup_dir):
    """The epoch a BackupAndRestore backup will resume from (0 if none)."""
    meta = pathlib.Path(backup_dir) / "training_metadata.json"
    if not meta.exists():
        return 0
    return int(json.loads(meta.read_text())["epoch"])


def epoch_order(seed, epoch, num_images, steps_per_epoch, batch_size):
    """The training images of one epoch, in order: a permutation fixed by ``(seed, epoch)``.

    Example:

    >>> from keras_resblocks.training.trainer import epoch_order
    >>> a = epoch_order(0, 3, 10, 2, 4)
    >>> len(a), bool((a == epoch_order(0, 3, 10, 2, 4)).all()), len(set(a.tolist()))
    (8, True, 8)
    """
    rng = np.random.default_rng([int(seed), int(epoch)])
    return rng.permutation(num_images)[: steps_per_epoch * batch_size].astype("int32")


def channel_statistics(images):
    """Per-channel mean and std of uint8 images on the 0..1 scale, as the
    model's ``preprocessing`` (it then takes raw 0..255 pixels).

    Example:

    >>> import numpy as np
    >>> from keras_resblocks.training.trainer import channel_statistics
    >>> channel_statistics(np.full((2, 4, 4, 3), 255, "uint8"))["mean"]
    [1.0, 1.0, 1.0]
    """
    x = images.reshape(-1, images.shape[-1])
    total = np.zeros(x.shape[-1])
    sq = np.zeros(x.shape[-1])
    for start in range(0, len(x), 1 << 20):  # chunks: no float copy of the whole set
        chunk = x[start : start + (1 << 20)].astype("float64") / 255.0
        total += chunk.sum(0)
        sq += (chunk**2).sum(0)
    mean = total / len(x)
    std = np.sqrt(np.maximum(sq / len(x) - mean**2, 1e-12))
    return {"scale": 1 / 255, "mean": [round(float(m), 6) for m in mean],
            "std": [round(max(float(s), 1e-3), 6) for s in std]}


def hardware_description():
    """A short description of the devices Keras trains on.

    Example:

    >>> from keras_resblocks.training.trainer import hardware_description
    >>> sorted(hardware_description())
    ['backend', 'cpu_count', 'devices', 'machine']
    """
    backend = keras.backend.backend()
    devices = []
    if backend == "jax":
        import jax

        devices = [f"{d.platform}:{d.device_kind}" for d in jax.devices()]
    elif backend == "tensorflow":
        import tensorflow as tf

        devices = [f"{d.device_type}:{d.name}" for d in tf.config.list_logical_devices()]
    return {
        "backend": backend,
        "devices": devices,
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}".strip(),
        "cpu_count": os.cpu_count(),
    }


def software_versions():
    """Versions of the libraries a run used.

    Example:

    >>> from keras_resblocks.training.trainer import software_versions
    >>> {"keras", "numpy", "python", "keras_resblocks"} <= set(software_versions())
    True
    """
    import keras_resblocks

    versions = {
        "keras_resblocks": keras_resblocks.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        versions["jax"] = jax.__version__
    elif backend == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    return versions


class _DistributionScope:
    """Data parallelism over every local device: keras.distribution on JAX,
    tf.distribute.MirroredStrategy on TensorFlow."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.devices = 1
        self._strategy_scope = None

    def __enter__(self):
        if not self.enabled:
            return self
        backend = keras.backend.backend()
        if backend == "jax":
            devices = keras.distribution.list_devices()
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
            self.devices = len(devices)
        elif backend == "tensorflow":
            import tensorflow as tf

            strategy = tf.distribute.MirroredStrategy(
                [d.name for d in tf.config.list_logical_devices(
                    "GPU" if tf.config.list_logical_devices("GPU") else "CPU")]
            )
            self._strategy_scope = strategy.scope()
            self._strategy_scope.__enter__()
            self.devices = strategy.num_replicas_in_sync
        else:
            raise ValueError(
                "`distribute` needs the JAX or TensorFlow backend. "
                f"Received: backend={backend!r}"
            )
        return self

    def __exit__(self, *exc):
        if self._strategy_scope is not None:
            self._strategy_scope.__exit__(*exc)
        if self.enabled and keras.backend.backend() == "jax":
            keras.distribution.set_distribution(None)
        return False


def train(
    model="resnet20",
    dataset="digits",
    recipe="quick",
    output=None,
    work_dir=None,
    resume=False,
    seed=0,
    mixed_precision=None,
    distribute=False,
    data_cache=None,
    eval_batch_size=500,
    model_overrides=None,
    command=None,
    callbacks=None,
    verbose="auto",
    deadline=None,
    data_note=None,
):
    """Train a model of the zoo and write it as a checkpoint directory.

    Args:
        model: a name from :func:`keras_resblocks.list_models`.
        dataset: ``"digits"``, ``"cifar10"``, ``"cifar100"``, or a path to an
            image folder / .tar.gz (see :func:`load_dataset`).
        recipe: a preset name or a :class:`Recipe` (see :func:`get_recipe`).
        output: the checkpoint directory, written atomically at the end
            (``None``: no checkpoint), with a reference batch of the first 8 test
            images (training images without a test split).
        work_dir: where history.csv and the backups for ``resume`` go
            (default ``<output>.work``).
        resume: continue from the backup in ``work_dir``; without it an
            existing backup is an error rather than silently overwritten.
        seed: seeds the weights, the epoch permutations and the augmentation.
        mixed_precision: ``None``/``"float32"`` or ``"bfloat16"``.
        distribute: data parallelism over all local devices.
        model_overrides: Architecture fields or ResNet arguments for
            :func:`keras_resblocks.create_model`.
        command: the command line, recorded with the checkpoint.
        callbacks: extra Keras callbacks, run after the built-in ones.
        deadline: a wall-clock time (``time.time()`` seconds) to stop before: the
            run ends at the last epoch boundary that leaves time for the next
            epoch, keeps its backup and returns unfinished (``finished`` false,
            no checkpoint); ``resume=True`` continues it exactly.
        data_note: a sentence about the data for the model card.

    Returns a dict with ``finished``, ``metrics``, ``recipe`` (resolved),
    ``history`` (rows), ``model`` (the trained model, softmax head) and
    ``output``; an unfinished run (stopped at ``deadline``) has empty
    ``metrics`` and no ``output``.

    Example (``tests/test_training.py`` runs real trainings; a bad argument
    fails before any work):

    >>> from keras_resblocks.training import train
    >>> train("resnet20", "digits", recipe="paper", work_dir="/tmp/unused")
    Traceback (most recent call last):
    ...
    ValueError: Unknown recipe; choose one of ['budget', 'cosine', 'he2015', 'quick']. Received: recipe='paper'
    """
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if not isinstance(recipe, Recipe):
        raise ValueError(f"`recipe` must be a preset name or a Recipe. Received: recipe={recipe!r}")
    if output is None and work_dir is None:
        raise ValueError("Give `output` or `work_dir` (where history and backups go). Received: neither")
    work_dir = pathlib.Path(work_dir if work_dir is not None else f"{output}.work")
    backup_dir = work_dir / BACKUP_DIR
    if resume:
        initial_epoch = _backup_epoch(backup_dir)
    else:
        if backup_dir.exists():
            raise ValueError(
                f"{backup_dir} holds a backup of an earlier run; pass resume=True (--resume) "
                f"to continue it, or choose another work directory. Received: work_dir={work_dir}"
            )
        initial_epoch = 0
    policy = {None: "float32", "float32": "float32", "bfloat16": "mixed_bfloat16",
              "mixed_bfloat16": "mixed_bfloat16"}.get(mixed_precision)
    if policy is None:
        raise ValueError(
            "`mixed_precision` must be None, 'float32' or 'bfloat16'. "
            f"Received: mixed_precision={mixed_precision!r}"
        )

    keras.utils.set_random_seed(seed)
    data = load_dataset(dataset, validation=recipe.validation, cache_dir=data_cache)
    steps_per_epoch = len(data.x_train) // recipe.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"The batch size is larger than the training set ({len(data.x_train)} images). "
            f"Received: batch_size={recipe.batch_size}"
        )
    overrides = dict(model_overrides or {})
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        with _DistributionScope(distribute) as scope:
            if recipe.batch_size % scope.devices:
                raise ValueError(
                    f"The batch size must divide among {scope.devices} devices. "
                    f"Received: batch_size={recipe.batch_size}"
                )
            net = create_model(
                model,
                num_classes=data.num_classes,
                input_shape=data.image_shape,
                classifier_activation=None,
                preprocessing=channel_statistics(data.x_train),
                kernel_l2=recipe.weight_decay / 2,
                **overrides,
            )
            recipe = recipe.resolve(net.architecture.depth, steps_per_epoch)
            augment = RandomCropFlip(recipe.crop_padding, recipe.flip, seed=seed, name="augment")
            indices = keras.Input(shape=(), dtype="int32", name="indices")
            images = ResidentImages(data.x_train, name="train_images")(indices)
            trainer = keras.Model(indices, net(augment(images)), name="trainer")
            pixels = keras.Input(shape=data.image_shape, dtype="uint8", name="pixels")
            evaluator = keras.Model(pixels, net(augment(pixels)), name="evaluator")
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            train_loss = loss if not recipe.label_smoothing else SmoothedSparseCrossentropy(
                data.num_classes, recipe.label_smoothing
            )
            optimizer = keras.optimizers.SGD(
                learning_rate_schedule(recipe), momentum=recipe.momentum, nesterov=recipe.nesterov
            )
            trainer.compile(optimizer, train_loss, metrics=[keras.metrics.SparseCategoricalAccuracy("accuracy")])
            evaluator.compile(loss=loss, weighted_metrics=[keras.metrics.SparseCategoricalAccuracy("accuracy")])

            order = np.concatenate([
                epoch_order(seed, e, len(data.x_train), steps_per_epoch, recipe.batch_size)
                for e in range(initial_epoch, recipe.epochs)
            ] or [np.zeros((0,), "int32")])
            recorder = EpochRecorder(
                work_dir / HISTORY_FILE, evaluator,
                {"val": (data.x_val, data.y_val), "test": (data.x_test, data.y_test)},
                eval_batch_size, initial_epoch, scope.devices,
            )
            extra_callbacks, callbacks = callbacks, [
                StopOnNonFiniteLoss(steps_per_epoch),
                StopAtIteration(recipe.iterations, steps_per_epoch),
                recorder,
                keras.callbacks.BackupAndRestore(
                    str(backup_dir), save_freq="epoch", delete_checkpoint=False
                ),
            ]
            stopper = None
            if deadline is not None:
                stopper = StopBeforeDeadline(deadline, recipe.epochs)
                callbacks.append(stopper)
            callbacks += list(extra_callbacks or [])
            if not len(order):
                # Every epoch is done (the run stopped while closing): fit runs no
                # epoch, but its BackupAndRestore still restores the trained weights.
                order = np.zeros(recipe.batch_size, "int32")
            trainer.fit(
                order, data.y_train[order], batch_size=recipe.batch_size,
                epochs=recipe.epochs, initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch, shuffle=False,
                callbacks=callbacks, verbose=verbose,
            )
            finished = stopper is None or not stopper.stopped
            if finished:
                if verbose:
                    print(f"Evaluating the final weights on the {len(data.x_train):,} training "
                          "images (clean, no augmentation)", file=sys.stderr, flush=True)
                train_accuracy = evaluate_accuracy(
                    evaluator, data.x_train, data.y_train, eval_batch_size, scope.devices
                )
        # Trained on logits, published with probabilities: the same weights, so
        # switch the head's activation instead of building (and on JAX,
        # compiling the initializers of) a second model.
        net.get_layer("predictions").activation = keras.activations.get("softmax")
        net.classifier_activation = "softmax"
    finally:
        keras.config.set_dtype_policy(previous_policy)

    history = read_history(work_dir / HISTORY_FILE)
    last = history[-1] if history else {}
    if not finished:
        if verbose:
            print(f"Stopped before the deadline after epoch {int(last.get('epoch') or 0)} of "
                  f"{recipe.epochs}; continue with resume=True (--resume).", flush=True)
        return {"finished": False, "metrics": {}, "recipe": recipe, "history": history,
                "model": net, "output": None, "run": None}
    # Steady-state throughput: this process's epochs after the first (compilation).
    timed = recorder.train_seconds[1:] or recorder.train_seconds
    images_per_second = (
        len(timed) * steps_per_epoch * recipe.batch_size / sum(timed) if timed else None
    )
    metrics = {
        "train_accuracy": train_accuracy,
        "train_accuracy_running": None if not last else 1.0 - last["train_error"],
        "val_accuracy": None if last.get("val_error") is None else 1.0 - last["val_error"],
        "test_accuracy": None if last.get("test_error") is None else 1.0 - last["test_error"],
    }
    # A split that was not there (validation=0, no test images) has no metric.
    metrics = {name: value for name, value in metrics.items() if value is not None}
    run_info = {
        "epochs": int(last.get("epoch") or 0),
        "iterations": int(last.get("iterations") or 0),
        "wall_time_s": round(float(last.get("wall_time") or 0.0), 1),
        "images_per_second": None if images_per_second is None else round(images_per_second, 1),
        "seed": seed,
        "mixed_precision": policy,
        "distribute": bool(distribute),
        "hardware": hardware_description(),
        "versions": software_versions(),
        "data": data.describe(),
        "train_error_note": (
            "train_accuracy: clean evaluation of the final weights on the training split; "
            "train_accuracy_running: mean over the last epoch under augmentation"
        ),
    }
    out = None
    if output is not None:
        if verbose:
            print(f"Writing the checkpoint to {output}", file=sys.stderr, flush=True)
        # A few held-out images (training ones when there are none) and what the
        # checkpoint computes on them: every later load can be checked against it.
        reference_source = data.x_test if len(data.x_test) else data.x_train
        out = write_checkpoint(
            net, output, labels=data.labels, dataset=data.name, metrics=metrics,
            recipe=recipe.to_dict(), command=command,
            reference_inputs=reference_source[:REFERENCE_IMAGES], **run_info,
            **({"data_note": data_note} if data_note else {}),
        )
    return {"finished": True, "metrics": metrics, "recipe": recipe, "history": history,
            "model": net, "output": out, "run": run_info}


def write_checkpoint(model, directory, **kwargs):
    """Write ``model`` as a checkpoint directory (``keras_resblocks.save_pretrained``)."""
    from keras_resblocks.checkpoints import save_pretrained

    return save_pretrained(model, directory, **kwargs)
