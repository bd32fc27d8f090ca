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

import contextlib
import dataclasses
import json
import pathlib
import sys
from typing import Any, Optional

import keras
import numpy as np

from keras_resblocks.checkpoints.format import METADATA_FILE
from keras_resblocks.checkpoints.io import check_overwritable, sha256_of
from keras_resblocks.checkpoints.save import save_pretrained
from keras_resblocks.models import check_overrides, create_model
from keras_resblocks.training.augment import RandomCropFlip, ResidentImages
from keras_resblocks.training.callbacks import (
    AtomicBackupAndRestore,
    EpochRecorder,
    StopAtIteration,
    StopBeforeDeadline,
    StopOnNonFiniteLoss,
    evaluate_accuracy,
    fixed_subset,
)
from keras_resblocks.training.data import load_dataset
from keras_resblocks.training.environment import hardware_description, software_versions
from keras_resblocks.training.history import HISTORY_FILE, read_history
from keras_resblocks.training.losses import SmoothedSparseCrossentropy
from keras_resblocks.training.recipes import Recipe, get_recipe, learning_rate_schedule

BACKUP_DIR = "backup"
OUTPUT_RECORD = "output.json"  # in the backup: the checkpoint this run wrote, by its hash
REFERENCE_IMAGES = 8  # stored with the checkpoint, see keras_resblocks.verify_reference


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Fields:
        finished: false when the run stopped before its deadline (resume it).
        metrics: final-epoch accuracies (empty for an unfinished run).
        recipe: the resolved :class:`Recipe`.
        history: the rows of history.csv (see :func:`read_history`).
        model: the trained :class:`keras_resblocks.ResNet` (softmax head).
        output: the checkpoint directory written, or ``None``.
        run: what the run used and measured (epochs, time, images/s, hardware,
            versions, data), as stored in the checkpoint's metadata.
    """

    finished: bool
    metrics: dict
    recipe: Recipe
    history: list
    model: Any
    output: Optional[pathlib.Path] = None
    run: Optional[dict] = None


def _backup_epoch(backup_dir):
    """The epoch a BackupAndRestore backup will resume from (0 if none)."""
    meta = pathlib.Path(backup_dir) / "training_metadata.json"
    if not meta.exists():
        return 0
    return int(json.loads(meta.read_text())["epoch"])


def check_output(output, backup_dir, resume=False, overwrite=False):
    """Refuse, before any work, an ``output`` that the checkpoint may not replace; return
    whether it may be replaced.

    Writing where nothing is, or into an empty directory, is always allowed; replacing a
    checkpoint only with ``overwrite``, or when ``resume`` continues the run that wrote
    it (the backup records its hash); a directory holding anything else, never (see
    :func:`~keras_resblocks.checkpoints.io.check_overwritable`).

    Example:

    >>> import pathlib, tempfile
    >>> from keras_resblocks.training.trainer import check_output
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (run / "config.json").write_text("{}")
    >>> check_output(run, run / "work" / "backup", overwrite=True)
    True
    >>> check_output(run, run / "work" / "backup", resume=True)
    Traceback (most recent call last):
    ...
    ValueError: `output` already holds a checkpoint; refusing to replace it. Pass overwrite=True (--overwrite) to replace it, or choose another directory. Received: output='...'
    """
    if output is None:
        return False
    own = resume and _written_by_this_run(output, backup_dir)
    check_overwritable(output, overwrite or own, name="output")
    return overwrite or own


def _written_by_this_run(output, backup_dir):
    # The hash of metadata.json (which holds the weights' hash, the run's times...)
    # names the checkpoint, wherever the run and its output have been moved since.
    record = pathlib.Path(backup_dir) / OUTPUT_RECORD
    metadata = pathlib.Path(output) / METADATA_FILE
    if not record.is_file() or not metadata.is_file():
        return False
    return json.loads(record.read_text()).get("metadata_sha256") == sha256_of(metadata)


def _record_output(output, backup_dir):
    if pathlib.Path(backup_dir).is_dir():
        record = {"metadata_sha256": sha256_of(pathlib.Path(output) / METADATA_FILE)}
        (pathlib.Path(backup_dir) / OUTPUT_RECORD).write_text(json.dumps(record) + "\n")


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
    return {
        "scale": 1 / 255,
        "mean": [round(float(m), 6) for m in mean],
        "std": [round(max(float(s), 1e-3), 6) for s in std],
    }


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
                [
                    d.name
                    for d in tf.config.list_logical_devices(
                        "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
                    )
                ]
            )
            self._strategy_scope = strategy.scope()
            self._strategy_scope.__enter__()
            self.devices = strategy.num_replicas_in_sync
        else:
            raise ValueError(
                f"`distribute` needs the JAX or TensorFlow backend. Received: backend={backend!r}"
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
    epoch_test_images=5000,
    model_overrides=None,
    command=None,
    callbacks=None,
    verbose="auto",
    deadline=None,
    data_note=None,
    overwrite=False,
):
    """Train a model of the zoo and write it as a checkpoint directory.

    Args:
        model: a name from :func:`keras_resblocks.list_models`.
        dataset: ``"digits"``, ``"cifar10"``, ``"cifar100"``, or a path to an image folder /
            .tar.gz (see :func:`load_dataset`).
        recipe: a preset name or a :class:`Recipe` (see :func:`get_recipe`).
        output: the checkpoint directory, written atomically at the end (``None``: no
            checkpoint), with a reference batch of the first 8 test images (training images
            without a test split). It must not exist yet or be empty, unless ``overwrite`` (or
            ``resume``, when this run wrote it); this is checked before any work.
        work_dir: where history.csv and the backups for ``resume`` go (default
            ``<output>.work``).
        resume: continue from the backup in ``work_dir``; without it an existing backup is an
            error rather than silently overwritten.
        seed: seeds the weights, the epoch permutations and the augmentation.
        mixed_precision: ``None``/``"float32"`` or ``"bfloat16"``.
        distribute: data parallelism over all local devices.
        epoch_test_images: how many test images to evaluate after each epoch but the last, a
            fixed class-balanced subset (see
            :func:`~keras_resblocks.training.callbacks.fixed_subset`); the last epoch, whose
            error the checkpoint reports, evaluates all of them. ``None``: all of them after
            every epoch.
        model_overrides: Architecture fields or ResNet arguments for
            :func:`keras_resblocks.create_model`.
        command: the command line, recorded with the checkpoint.
        callbacks: extra Keras callbacks, run after the built-in ones.
        deadline: a wall-clock time (``time.time()`` seconds) to stop before: the run ends at
            the last epoch boundary that leaves time for the next epoch, keeps its backup and
            returns unfinished (``finished`` false, no checkpoint); ``resume=True`` continues
            it exactly.
        data_note: a sentence about the data for the model card.
        overwrite: replace a checkpoint already at ``output`` (never a directory holding
            anything else).

    Returns a :class:`TrainResult`; an unfinished run (stopped at ``deadline``) has empty
    ``metrics`` and no ``output``.

    Example (``tests/test_training.py`` runs real trainings; a bad argument fails before any
    work):

    >>> from keras_resblocks.training import train
    >>> train("resnet20", "digits", recipe="paper", work_dir="/tmp/unused")
    Traceback (most recent call last):
    ...
    ValueError: Unknown recipe; choose one of ['budget', 'cosine', 'he2015', 'quick']. Received: recipe='paper'
    """
    plan = _plan_run(recipe, output, work_dir, resume, overwrite, mixed_precision)
    check_overrides(model, **dict(model_overrides or {}))  # before the data is loaded
    if not (isinstance(eval_batch_size, int) and eval_batch_size >= 1):
        raise ValueError(
            f"`eval_batch_size` must be a positive integer. Received: {eval_batch_size!r}"
        )
    keras.utils.set_random_seed(seed)
    data, steps_per_epoch = _load_data(dataset, plan.recipe, data_cache)
    with _global_dtype_policy(plan.policy), _DistributionScope(distribute) as scope:
        setup = _set_up(
            model, model_overrides, data, plan.recipe, steps_per_epoch, seed, scope.devices
        )
        callbacks, recorder, stopper = _make_callbacks(
            setup, plan, data, eval_batch_size, epoch_test_images, deadline, callbacks
        )
        _fit(setup, data, seed, plan.initial_epoch, callbacks, verbose)
        finished = stopper is None or not stopper.stopped
        if finished:
            accuracies = _final_accuracies(setup, data, recorder, eval_batch_size, verbose)
    _use_softmax_head(setup.net)

    history = read_history(plan.work_dir / HISTORY_FILE)
    if not finished:
        return _unfinished(setup, history, verbose)
    metrics = _final_metrics(*accuracies, history)
    run_info = _run_info(setup, history, recorder, seed, plan.policy, distribute, data)
    out = _write_checkpoint(
        setup, output, data, metrics, run_info, command, data_note, plan, verbose
    )
    return TrainResult(True, metrics, setup.recipe, history, setup.net, out, run_info)


_POLICIES = {
    None: "float32",
    "float32": "float32",
    "bfloat16": "mixed_bfloat16",
    "mixed_bfloat16": "mixed_bfloat16",
}


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A run's settings, checked before any work (see :func:`_plan_run`)."""

    recipe: Recipe  # as given: resolved for the model's depth once the model is built
    work_dir: pathlib.Path
    backup_dir: pathlib.Path
    initial_epoch: int  # where a resumed run continues; 0 for a new one
    replace_output: bool  # whether the checkpoint may replace one at ``output``
    policy: str  # the Keras dtype policy


def _plan_run(recipe, output, work_dir, resume, overwrite, mixed_precision):
    """Check the arguments that need no data (a bad one is refused in one line) and resolve
    the run's :class:`_Plan`: the recipe, the work and backup directories, the epoch to
    start from, whether ``output`` may be replaced, and the dtype policy."""
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if not isinstance(recipe, Recipe):
        raise ValueError(f"`recipe` must be a preset name or a Recipe. Received: recipe={recipe!r}")
    if output is None and work_dir is None:
        raise ValueError(
            "Give `output` or `work_dir` (where history and backups go). Received: neither"
        )
    work_dir = pathlib.Path(work_dir if work_dir is not None else f"{output}.work")
    backup_dir = work_dir / BACKUP_DIR
    if not resume and backup_dir.exists():
        raise ValueError(
            f"{backup_dir} holds a backup of an earlier run; pass resume=True (--resume) "
            f"to continue it, or choose another work directory. Received: work_dir={work_dir}"
        )
    initial_epoch = _backup_epoch(backup_dir) if resume else 0
    replace_output = check_output(output, backup_dir, resume, overwrite)
    policy = _POLICIES.get(mixed_precision)
    if policy is None:
        raise ValueError(
            "`mixed_precision` must be None, 'float32' or 'bfloat16'. "
            f"Received: mixed_precision={mixed_precision!r}"
        )
    return _Plan(recipe, work_dir, backup_dir, initial_epoch, replace_output, policy)


def _load_data(dataset, recipe, cache_dir):
    """The :class:`~keras_resblocks.training.data.Dataset` and the number of steps of an
    epoch; a batch larger than the training set is refused."""
    data = load_dataset(dataset, validation=recipe.validation, cache_dir=cache_dir)
    steps_per_epoch = len(data.x_train) // recipe.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"The batch size is larger than the training set ({len(data.x_train)} images). "
            f"Received: batch_size={recipe.batch_size}"
        )
    return data, steps_per_epoch


@contextlib.contextmanager
def _global_dtype_policy(policy):
    """Keras's global dtype policy set to ``policy`` inside the block, restored after it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@dataclasses.dataclass(frozen=True)
class _Setup:
    """A run set up on its data and devices (see :func:`_set_up`)."""

    net: Any  # the ResNet, with a logits head while it trains
    trainer: Any  # compiled; takes a batch of indices into the resident training images
    evaluator: Any  # compiled; takes uint8 pixels
    recipe: Recipe  # resolved for the network's depth
    steps_per_epoch: int
    devices: int  # a batch is split among them


def _set_up(model, overrides, data, recipe, steps_per_epoch, seed, devices):
    """Create the network and the two compiled models that share its weights.

    The network's input is normalized by the training images' :func:`channel_statistics`.
    The trainer holds the training images on the device, takes a batch of indices into
    them and augments the batch in the graph; it trains with the recipe's optimizer and
    loss. The evaluator takes uint8 pixels (the augmentation passes them through at
    inference) and measures accuracy.
    """
    if recipe.batch_size % devices:
        raise ValueError(
            f"The batch size must divide among {devices} devices. "
            f"Received: batch_size={recipe.batch_size}"
        )
    net = create_model(
        model,
        num_classes=data.num_classes,
        input_shape=data.image_shape,
        classifier_activation=None,
        preprocessing=channel_statistics(data.x_train),
        kernel_l2=recipe.weight_decay / 2,
        **dict(overrides or {}),
    )
    recipe = recipe.resolve(net.architecture.depth, steps_per_epoch)
    augment = RandomCropFlip(recipe.crop_padding, recipe.flip, seed=seed, name="augment")
    indices = keras.Input(shape=(), dtype="int32", name="indices")
    images = ResidentImages(data.x_train, name="train_images")(indices)
    trainer = keras.Model(indices, net(augment(images)), name="trainer")
    pixels = keras.Input(shape=data.image_shape, dtype="uint8", name="pixels")
    evaluator = keras.Model(pixels, net(augment(pixels)), name="evaluator")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    train_loss = (
        loss
        if not recipe.label_smoothing
        else SmoothedSparseCrossentropy(data.num_classes, recipe.label_smoothing)
    )
    optimizer = keras.optimizers.SGD(
        learning_rate_schedule(recipe), momentum=recipe.momentum, nesterov=recipe.nesterov
    )
    trainer.compile(
        optimizer, train_loss, metrics=[keras.metrics.SparseCategoricalAccuracy("accuracy")]
    )
    evaluator.compile(
        loss=loss, weighted_metrics=[keras.metrics.SparseCategoricalAccuracy("accuracy")]
    )
    return _Setup(net, trainer, evaluator, recipe, steps_per_epoch, devices)


def _make_callbacks(setup, plan, data, eval_batch_size, epoch_test_images, deadline, extra):
    """The run's callbacks, in the order they run: stop on a non-finite loss, stop at the
    recipe's iteration count, record the epoch in history.csv, back the epoch up for
    ``resume``, with a ``deadline`` stop before it, then the caller's ``extra`` ones.

    Returns ``(callbacks, recorder, stopper)``: the :class:`EpochRecorder` and the
    :class:`StopBeforeDeadline` among them (``None`` without a deadline).
    """
    recorder = EpochRecorder(
        plan.work_dir / HISTORY_FILE,
        setup.evaluator,
        {"val": (data.x_val, data.y_val), "test": (data.x_test, data.y_test)},
        eval_batch_size,
        plan.initial_epoch,
        setup.devices,
        subsets={"test": fixed_subset(data.y_test, epoch_test_images)},
        final_epoch=setup.recipe.epochs,
    )
    callbacks = [
        StopOnNonFiniteLoss(setup.steps_per_epoch),
        StopAtIteration(setup.recipe.iterations, setup.steps_per_epoch),
        recorder,
        AtomicBackupAndRestore(str(plan.backup_dir), save_freq="epoch", delete_checkpoint=False),
    ]
    stopper = None
    if deadline is not None:
        stopper = StopBeforeDeadline(deadline, setup.recipe.epochs)
        callbacks.append(stopper)
    return callbacks + list(extra or []), recorder, stopper


def _fit(setup, data, seed, initial_epoch, callbacks, verbose):
    """Train from ``initial_epoch`` to the recipe's last epoch, epoch ``e`` visiting the
    training images in the order :func:`epoch_order` gives for ``(seed, e)``."""
    recipe = setup.recipe
    order = np.concatenate(
        [
            epoch_order(seed, e, len(data.x_train), setup.steps_per_epoch, recipe.batch_size)
            for e in range(initial_epoch, recipe.epochs)
        ]
        or [np.zeros((0,), "int32")]
    )
    if not len(order):
        # Every epoch is done (the run stopped while closing): fit runs no
        # epoch, but its BackupAndRestore still restores the trained weights.
        order = np.zeros(recipe.batch_size, "int32")
    setup.trainer.fit(
        order,
        data.y_train[order],
        batch_size=recipe.batch_size,
        epochs=recipe.epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=setup.steps_per_epoch,
        shuffle=False,
        callbacks=callbacks,
        verbose=verbose,
    )


def _final_accuracies(setup, data, recorder, batch_size, verbose):
    """The final weights' clean accuracy on the training images, and on all the test images
    when the last epoch measured only a subset of them (a run that ended before its planned
    last epoch); otherwise ``None``: history's last row holds it."""
    if verbose:
        print(
            f"Evaluating the final weights on the {len(data.x_train):,} training "
            "images (clean, no augmentation)",
            file=sys.stderr,
            flush=True,
        )
    train_accuracy = evaluate_accuracy(
        setup.evaluator, data.x_train, data.y_train, batch_size, setup.devices
    )
    test_accuracy = None
    measured = (recorder.rows[-1:] or [{}])[0].get("test_images")
    if (measured or len(data.x_test)) < len(data.x_test):
        test_accuracy = evaluate_accuracy(
            setup.evaluator, data.x_test, data.y_test, batch_size, setup.devices
        )
    return train_accuracy, test_accuracy


def _use_softmax_head(net):
    """Give the trained network the softmax head it is published with."""
    # Trained on logits, published with probabilities: the same weights, so
    # switch the head's activation instead of building (and on JAX,
    # compiling the initializers of) a second model.
    net.get_layer("predictions").activation = keras.activations.get("softmax")
    net.classifier_activation = "softmax"


def _unfinished(setup, history, verbose):
    """The result of a run stopped before its deadline, after saying how to continue it."""
    if verbose:
        last = history[-1] if history else {}
        print(
            f"Stopped before the deadline after epoch {int(last.get('epoch') or 0)} of "
            f"{setup.recipe.epochs}; continue with resume=True (--resume).",
            flush=True,
        )
    return TrainResult(False, {}, setup.recipe, history, setup.net)


def _final_metrics(train_accuracy, test_accuracy, history):
    """The finished run's accuracies: clean on the training split, running over its last
    epoch, on the validation and test splits (history's last row unless measured at the
    end); a split that was not there (validation=0, no test images) has none."""
    last = history[-1] if history else {}
    if test_accuracy is None and last.get("test_error") is not None:
        test_accuracy = 1.0 - last["test_error"]
    metrics = {
        "train_accuracy": train_accuracy,
        "train_accuracy_running": None if not last else 1.0 - last["train_error"],
        "val_accuracy": None if last.get("val_error") is None else 1.0 - last["val_error"],
        "test_accuracy": test_accuracy,
    }
    return {name: value for name, value in metrics.items() if value is not None}


def _run_info(setup, history, recorder, seed, policy, distribute, data):
    """What the run used and measured, as its checkpoint's metadata records it
    (:attr:`TrainResult.run`)."""
    last = history[-1] if history else {}
    # Steady-state throughput: this process's epochs after the first (compilation).
    timed = recorder.train_seconds[1:] or recorder.train_seconds
    images = setup.steps_per_epoch * setup.recipe.batch_size
    images_per_second = len(timed) * images / sum(timed) if timed else None
    return {
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


def _write_checkpoint(setup, output, data, metrics, run_info, command, data_note, plan, verbose):
    """Write the trained network as the checkpoint directory ``output`` (nothing when it is
    ``None``) and record the checkpoint's hash in the backup, so that resuming this run
    may write it again; return its path."""
    if output is None:
        return None
    if verbose:
        print(f"Writing the checkpoint to {output}", file=sys.stderr, flush=True)
    # A few held-out images (training ones when there are none) and what the
    # checkpoint computes on them: every later load can be checked against it.
    reference_source = data.x_test if len(data.x_test) else data.x_train
    out = save_pretrained(
        setup.net,
        output,
        labels=data.labels,
        dataset=data.name,
        metrics=metrics,
        recipe=setup.recipe.to_dict(),
        command=command,
        reference_inputs=reference_source[:REFERENCE_IMAGES],
        overwrite=plan.replace_output,
        **run_info,
        **({"data_note": data_note} if data_note else {}),
    )
    _record_output(out, plan.backup_dir)
    return out
