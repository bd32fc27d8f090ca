"""Training: end to end on digits, resumption, the NaN guard, schedules, distribution."""

import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_resblocks.training import (
    NonFiniteLossError,
    get_recipe,
    learning_rate_schedule,
    load_dataset,
    read_history,
    train,
)
from keras_resblocks.cli import main as cli_main


def main(argv):
    """``keras-resblocks train ARGV``."""
    return cli_main(["train", *argv])


REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(stage_depths=[1, 1, 1], stage_widths=[8, 8, 16], stem_width=8)
TINY_FLAGS = ["--model-overrides", json.dumps(TINY)]


def _load(path):
    from keras_resblocks import from_pretrained

    return from_pretrained(str(path))


def test_two_epochs_on_digits_end_to_end(tmp_path, capsys):
    out = tmp_path / "resnet-digits"
    # 30 iterations: one full epoch of 20 and a partial second one.
    status = main(
        [
            "--dataset",
            "digits",
            "--recipe",
            "quick",
            "--iterations",
            "30",
            "--output",
            str(out),
            "--verbose",
            "0",
            "--seed",
            "3",
            "--epoch-test-images",
            "100",
            *TINY_FLAGS,
        ]
    )
    assert status == 0
    history = read_history(tmp_path / "resnet-digits.work" / "history.csv")
    assert [row["epoch"] for row in history] == [1, 2]
    # Epoch 1 measured the fixed subset of 100 test images, the last epoch all of them
    # (the accuracy below, on every test image, is the one the metadata reports).
    n_test = len(load_dataset("digits").x_test)
    assert [row["test_images"] for row in history] == [100, n_test] and n_test > 100
    assert history[0]["val_images"] == history[1]["val_images"] > 0
    assert [row["iterations"] for row in history] == [20, 30]  # 1294 // 64 = 20 per epoch
    assert all(
        0 <= row[k] <= 1 for row in history for k in ("train_error", "val_error", "test_error")
    )

    config = json.loads((out / "config.json").read_text())
    assert config["model"]["classifier_activation"] == "softmax"
    assert config["labels"] == [str(i) for i in range(10)]
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["recipe"]["name"] == "quick" and metadata["recipe"]["epochs"] == 2
    assert metadata["iterations"] == 30 and metadata["epochs"] == 2
    assert "--iterations 30" in metadata["command"]
    # The card shows the command without this machine's paths (the output's included).
    card = (out / "README.md").read_text()
    assert "--output .../resnet-digits" in metadata["command"] and metadata["command"] in card
    assert str(tmp_path) not in card and sys.prefix not in card

    model = _load(out)
    data = load_dataset("digits")
    probabilities = model.predict(data.x_test.astype("float32"), verbose=0)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    accuracy = float((probabilities.argmax(-1) == data.y_test).mean())
    assert accuracy == pytest.approx(metadata["metrics"]["test_accuracy"], abs=1e-6)
    assert history[1]["train_loss"] < history[0]["train_loss"]

    # The reference batch: the first 8 test images and what the checkpoint computes on them.
    from keras_resblocks import verify_reference
    from keras_resblocks.checkpoints import read_reference

    record, tensors = read_reference(out)
    assert record["num_inputs"] == 8 and record["backend"] == keras.backend.backend()
    np.testing.assert_array_equal(tensors["inputs"], data.x_test[:8])
    np.testing.assert_allclose(tensors["outputs"], probabilities[:8], atol=1e-5)
    assert verify_reference(model).allclose


def test_the_per_epoch_test_subset_is_fixed_and_class_balanced():
    from keras_resblocks.training.callbacks import fixed_subset
    from keras_resblocks.training.command import add_train_arguments

    labels = load_dataset("digits").y_test
    subset = fixed_subset(labels, 50)
    assert len(subset) == 50 and np.all(np.diff(subset) > 0)
    assert np.bincount(labels[subset], minlength=10).tolist() == [5] * 10
    assert fixed_subset(labels, 50).tolist() == subset.tolist()  # the same every time
    assert set(fixed_subset(labels, 20)) < set(subset)  # a smaller one is a part of it
    assert fixed_subset(labels, None).tolist() == list(range(len(labels)))
    assert fixed_subset(labels, 10**6).tolist() == list(range(len(labels)))
    with pytest.raises(ValueError, match="Received: size=0"):
        fixed_subset(labels, 0)

    import argparse

    parser = add_train_arguments(argparse.ArgumentParser())
    assert parser.parse_args([]).epoch_test_images == 5000
    assert parser.parse_args(["--epoch-test-images", "all"]).epoch_test_images is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--epoch-test-images", "0"])


def test_no_validation_split_means_no_validation_metric(tmp_path):
    out = tmp_path / "ckpt"
    assert (
        main(
            [
                "--dataset",
                "digits",
                "--recipe",
                "quick",
                "--iterations",
                "3",
                "--validation",
                "0",
                "--output",
                str(out),
                "--verbose",
                "0",
                *TINY_FLAGS,
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metadata.json").read_text())["metrics"]
    assert set(metrics) == {"train_accuracy", "train_accuracy_running", "test_accuracy"}
    assert read_history(tmp_path / "ckpt.work" / "history.csv")[-1]["val_error"] is None


class _Kill(keras.callbacks.Callback):
    """Stands in for a killed process: dies in the middle of an epoch."""

    def __init__(self, at_iteration):
        super().__init__()
        self.at_iteration = at_iteration

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.at_iteration:
            raise KeyboardInterrupt("killed")


def test_resumed_run_ends_like_an_uninterrupted_one(tmp_path):
    kwargs = dict(
        model="resnet20",
        dataset="digits",
        recipe=get_recipe("quick", epochs=2),
        seed=1,
        model_overrides=TINY,
        verbose=0,
    )
    whole = train(work_dir=tmp_path / "whole", **kwargs)
    with pytest.raises(KeyboardInterrupt):
        train(work_dir=tmp_path / "split", callbacks=[_Kill(27)], **kwargs)  # epoch 2, batch 7
    # A run already in the work directory must not be overwritten by accident.
    with pytest.raises(ValueError, match="resume"):
        train(work_dir=tmp_path / "split", **kwargs)
    resumed = train(work_dir=tmp_path / "split", resume=True, **kwargs)

    for a, b in zip(whole.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert len(resumed.history) == 2
    for a, b in zip(whole.history, resumed.history):
        for key in ("iterations", "train_loss", "train_error", "val_error", "test_error", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key


def test_a_kill_or_a_full_disk_while_a_backup_is_written_keeps_the_previous_one(
    tmp_path, monkeypatch
):
    """The backup of epoch 2 is cut short (half a file written, then the process "dies", or
    the disk is full): the backup of epoch 1 stays whole, and resuming from it ends like the
    uninterrupted run."""
    import errno

    kwargs = dict(
        model="resnet20",
        dataset="digits",
        recipe=get_recipe("quick", epochs=3),
        seed=1,
        model_overrides=TINY,
        verbose=0,
    )
    whole = train(work_dir=tmp_path / "whole", **kwargs)
    real = keras.Model.save_weights
    for name, failure in (("killed", KeyboardInterrupt("killed")), ("full", None)):
        saves = []

        def save_weights(self, filepath, *args, failure=failure, **kw):
            saves.append(filepath)
            if len(saves) < 2:
                return real(self, filepath, *args, **kw)
            pathlib.Path(filepath).write_bytes(b"\x89HDF\r\n" + b"\0" * 100)  # half written
            raise failure or OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(keras.Model, "save_weights", save_weights)
        with pytest.raises(KeyboardInterrupt if failure else OSError) as error:
            train(work_dir=tmp_path / name, **kwargs)
        monkeypatch.setattr(keras.Model, "save_weights", real)
        backup = tmp_path / name / "backup"
        record = json.loads((backup / "training_metadata.json").read_text())
        assert record["epoch"] == 1 and (backup / record["weights"]).is_file()
        if not failure:  # one line naming the epoch lost and the one kept
            message = str(error.value)
            assert "Could not write the backup of epoch 2" in message and "\n" not in message
            assert "No space left on device" in message and "(epoch 1) is kept" in message
            assert not (backup / "weights-2.weights.h5").exists()
        resumed = train(work_dir=tmp_path / name, resume=True, **kwargs)
        for a, b in zip(whole.model.get_weights(), resumed.model.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        assert sorted(p.name for p in backup.glob("*.weights.h5")) == ["weights-3.weights.h5"]

    # A backup whose weights are not the file its record names is refused, not resumed.
    backup = tmp_path / "full" / "backup"
    (backup / "weights-3.weights.h5").write_bytes(b"forged")
    with pytest.raises(OSError, match="is damaged: weights-3.weights.h5 is missing or not"):
        train(work_dir=tmp_path / "full", resume=True, **kwargs)


def test_a_deadline_stops_at_an_epoch_boundary_and_resume_ends_like_an_uninterrupted_run(tmp_path):
    import time

    kwargs = dict(
        model="resnet20",
        dataset="digits",
        recipe=get_recipe("budget", epochs=2, label_smoothing=0.1, batch_size=64),
        seed=1,
        model_overrides=TINY,
        verbose=0,
    )
    whole = train(work_dir=tmp_path / "whole", **kwargs)
    # A deadline already past: the first epoch still runs (and is backed up), then it stops.
    stopped = train(work_dir=tmp_path / "split", deadline=time.time(), **kwargs)
    assert stopped.finished is False and stopped.output is None
    assert [row["epoch"] for row in stopped.history] == [1]
    assert (
        json.loads((tmp_path / "split" / "backup" / "training_metadata.json").read_text())["epoch"]
        == 1
    )
    resumed = train(
        work_dir=tmp_path / "split",
        resume=True,
        deadline=time.time() + 3600,
        output=tmp_path / "out",
        command="tests/test_training.py",
        **kwargs,
    )
    assert resumed.finished is True and resumed.output == tmp_path / "out"
    for a, b in zip(whole.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert resumed.metrics["train_accuracy"] == pytest.approx(
        whole.metrics["train_accuracy"], abs=1e-6
    )

    # Resuming a run whose epochs are all done (it stopped while closing) restores the
    # trained weights rather than closing with freshly initialized ones.
    again = train(work_dir=tmp_path / "split", resume=True, **kwargs)
    assert again.metrics["train_accuracy"] == pytest.approx(
        whole.metrics["train_accuracy"], abs=1e-6
    )
    assert [row["epoch"] for row in read_history(tmp_path / "split" / "history.csv")] == [1, 2]


def _state_in_old_layout(old, fresh, target):
    """Copy the work directory ``old`` to ``target`` and put the state of ``fresh`` (a run
    stopped at the same epoch) into its files: the weight file keeps the old file's paths,
    history.csv the old columns, so only the numbers come from ``fresh``."""
    import csv
    import shutil

    import h5py

    from keras_resblocks.training.trainer import BACKUP_DIR

    shutil.copytree(old, target)
    weights = pathlib.Path(BACKUP_DIR) / "latest.weights.h5"  # the earlier version's name
    record = json.loads((fresh / BACKUP_DIR / "training_metadata.json").read_text())
    todays = pathlib.Path(BACKUP_DIR) / record["weights"]  # today's: one file per epoch
    with h5py.File(target / weights, "r+") as into, h5py.File(fresh / todays, "r") as source:
        paths = []
        into.visititems(
            lambda name, item: paths.append(name) if isinstance(item, h5py.Dataset) else None
        )
        for name in paths:
            assert name in source and source[name].shape == into[name].shape, (
                f"{name} {into[name].shape}: a backup of the earlier version holds it, "
                f"today's does not ({source[name].shape if name in source else 'missing'})"
            )
            into[name][...] = source[name][...]
    with open(old / "history.csv", newline="") as f:
        columns = csv.DictReader(f).fieldnames
    with open(fresh / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(target / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def test_a_run_stopped_by_an_earlier_version_resumes_and_ends_like_an_uninterrupted_one(tmp_path):
    # tests/fixtures/backup_v1 gives the earlier version's layout (its weight file's paths,
    # history.csv without the columns added since). Its numbers came from another machine's
    # kernels, which round differently, so the first epoch runs here and its state is put
    # into a copy of the old files: the resumed run must end as the uninterrupted one does.
    import time

    from tests.fixtures.make_backup_v1 import HERE, KWARGS

    whole = train(work_dir=tmp_path / "whole", **KWARGS)
    stopped = train(work_dir=tmp_path / "today", deadline=time.time(), **KWARGS)
    assert not stopped.finished
    work = tmp_path / "old-run"
    _state_in_old_layout(HERE / "backup_v1", tmp_path / "today", work)
    first_epoch = read_history(work / "history.csv")[0]
    assert "test_images" not in first_epoch  # the old layout indeed

    resumed = train(work_dir=work, resume=True, **KWARGS)
    assert resumed.finished and [row["epoch"] for row in resumed.history] == [1, 2]
    # The earlier version's row is kept as it was; the columns added since are empty there.
    assert {k: resumed.history[0][k] for k in first_epoch} == first_epoch
    assert resumed.history[0]["test_images"] is None
    assert resumed.history[1]["test_images"] == len(load_dataset("digits").x_test)
    for a, b in zip(whole.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    for a, b in zip(whole.history, resumed.history):
        for key in ("iterations", "train_loss", "train_error", "val_error", "test_error", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key


# -- the output: never replaced without a word -------------------------------------------
BUNDLED = REPO / "weights" / "resnet20_cifar10"


def _hashes(directory):
    """The sha256 of every file in ``directory`` and below."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _no_work(*args, **kwargs):
    raise AssertionError("the run loaded its data or built its model before refusing")


@pytest.mark.parametrize(
    "holds, flags, message",
    [
        ("checkpoint", [], r"`output` already holds a checkpoint; refusing to replace it\. "),
        # --resume continues this work directory's run, which did not write that checkpoint.
        ("checkpoint", ["--resume"], r"already holds a checkpoint.*\(--overwrite\)"),
        ("other files", ["--overwrite"], r"not a keras-resblocks checkpoint.*another directory"),
    ],
    ids=["checkpoint", "checkpoint-resume", "other-files-overwrite"],
)
def test_an_output_that_holds_files_is_refused_in_one_line_before_any_work(
    tmp_path, capsys, monkeypatch, holds, flags, message
):
    import keras_resblocks.training.trainer as trainer

    out = tmp_path / "out"
    if holds == "checkpoint":
        shutil.copytree(BUNDLED, out)
    else:
        out.mkdir()
        (out / "notes.txt").write_text("not a checkpoint")
    before = _hashes(tmp_path)
    monkeypatch.setattr(trainer, "load_dataset", _no_work)
    monkeypatch.setattr(trainer, "create_model", _no_work)

    start = time.monotonic()
    assert main(["--output", str(out), "--verbose", "0", *flags]) == 1
    assert time.monotonic() - start < 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert re.search(message, err) and err.endswith(f"Received: output={str(out)!r}\n"), err
    assert _hashes(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_overwrite_replaces_a_checkpoint_and_a_resumed_run_writes_its_own_again(tmp_path, capsys):
    out = shutil.copytree(BUNDLED, tmp_path / "out")
    with pytest.raises(ValueError, match=r"already holds a checkpoint.*overwrite=True"):
        train(output=out, model_overrides=TINY, verbose=0)  # the same rule in Python
    args = ["--output", str(out), "--iterations", "5", "--verbose", "0", *TINY_FLAGS]

    assert main([*args, "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["labels"] == [str(i) for i in range(10)]
    weights = (out / "model.safetensors").read_bytes()
    # A resumed run whose epochs are all done (it stopped while closing) writes its own
    # checkpoint again, with the same weights, without --overwrite...
    assert main([*args, "--resume"]) == 0
    assert (out / "model.safetensors").read_bytes() == weights
    _load(out)
    # ...but not over a checkpoint it did not write.
    shutil.rmtree(out)
    shutil.copytree(BUNDLED, out)
    capsys.readouterr()
    assert main([*args, "--resume"]) == 1
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert _hashes(out) == _hashes(BUNDLED)


def test_label_smoothing_changes_the_training_loss_only():
    from keras_resblocks.training.losses import SmoothedSparseCrossentropy

    logits = np.array([[4.0, 0.0, -1.0], [0.5, 0.2, 3.0]], "float32")
    labels = np.array([0, 2])
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(SmoothedSparseCrossentropy(3, 0.0)(labels, logits)) == pytest.approx(
        float(plain), rel=1e-6
    )
    smoothed = float(SmoothedSparseCrossentropy(3, 0.3)(labels, logits))
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    target = np.full((2, 3), 0.1) + 0.7 * np.eye(3)[labels]
    assert smoothed == pytest.approx(float(-(target * log_p).sum(-1).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="label_smoothing=1.5"):
        get_recipe("budget", label_smoothing=1.5)


def test_deadline_flag_accepts_clock_times_dates_and_durations():
    import argparse
    import datetime

    from keras_resblocks.training.command import parse_deadline

    now = datetime.datetime(2026, 1, 2, 15, 0).timestamp()
    assert parse_deadline("+2h", now=now) == now + 7200
    assert parse_deadline("17:45", now=now) == datetime.datetime(2026, 1, 2, 17, 45).timestamp()
    assert parse_deadline("14:00", now=now) == datetime.datetime(2026, 1, 3, 14, 0).timestamp()
    assert (
        parse_deadline("2026-01-05T08:30", now=now)
        == datetime.datetime(2026, 1, 5, 8, 30).timestamp()
    )
    with pytest.raises(argparse.ArgumentTypeError, match="Received: '25:99'"):
        parse_deadline("25:99", now=now)


def test_nan_loss_stops_naming_the_iteration_and_keeps_the_last_good_backup(tmp_path):
    # Epoch 1 (iterations 1..20) is sane; from update 20 on the lr is absurd.
    recipe = get_recipe("quick", epochs=3, schedule="step", lr_boundaries=(20,), lr_factor=1e30)
    with pytest.raises(NonFiniteLossError, match=r"at iteration (2[1-9]|3\d|40) \(epoch 2"):
        train(
            "resnet20", "digits", recipe=recipe, work_dir=tmp_path, model_overrides=TINY, verbose=0
        )
    backup = tmp_path / "backup"
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 1
    assert [row["epoch"] for row in read_history(tmp_path / "history.csv")] == [1]

    # The command line turns these errors into a message and a non-zero exit.
    status = main(["--dataset", str(tmp_path / "nowhere"), "--work-dir", str(tmp_path / "cli")])
    assert status == 1


def test_he2015_schedule_at_its_boundaries():
    lr = learning_rate_schedule(get_recipe("he2015").resolve(depth=110, steps_per_epoch=351))
    values = {i: round(float(lr(i)), 7) for i in (0, 399, 400, 31999, 32000, 47999, 48000, 63999)}
    assert values == {
        0: 0.01,
        399: 0.01,
        400: 0.1,
        31999: 0.1,
        32000: 0.01,
        47999: 0.01,
        48000: 0.001,
        63999: 0.001,
    }
    # The paper warms up only from 110 layers on; the flag forces it either way.
    assert round(float(learning_rate_schedule(get_recipe("he2015").resolve(56, 351))(0)), 7) == 0.1
    forced = get_recipe("he2015", warmup_iterations=400).resolve(20, 351)
    assert round(float(learning_rate_schedule(forced)(399)), 7) == 0.01
    resolved = get_recipe("he2015").resolve(depth=20, steps_per_epoch=351)
    assert (resolved.iterations, resolved.epochs) == (64000, 183)


def test_recipe_flags_override_the_preset():
    from keras_resblocks.training.command import add_train_arguments, recipe_from_args
    import argparse

    parser = add_train_arguments(argparse.ArgumentParser())
    recipe = recipe_from_args(
        parser.parse_args(
            [
                "--recipe",
                "he2015",
                "--learning-rate",
                "0.05",
                "--epochs",
                "3",
                "--no-flip",
                "--warmup-iterations",
                "0",
                "--lr-boundaries",
                "10,20",
            ]
        )
    )
    assert (
        recipe.learning_rate,
        recipe.epochs,
        recipe.iterations,
        recipe.flip,
        recipe.warmup_iterations,
        recipe.lr_boundaries,
    ) == (0.05, 3, None, False, 0, (10, 20))
    with pytest.raises(ValueError, match="Received: recipe='paper'"):
        get_recipe("paper")


def test_distributed_bfloat16_training_on_two_virtual_devices(tmp_path):
    backend = keras.backend.backend()
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    args = [
        "--recipe",
        "quick",
        "--epochs",
        "1",
        "--distribute",
        "--mixed-precision",
        "bfloat16",
        "--work-dir",
        str(tmp_path),
        "--verbose",
        "0",
        *TINY_FLAGS,
    ]
    if backend == "jax":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        code = "import sys; from keras_resblocks.cli import main; sys.exit(main(['train', *sys.argv[1:]]))"
    elif backend == "tensorflow":
        code = (
            "import sys, tensorflow as tf\n"
            "cpu = tf.config.list_physical_devices('CPU')[0]\n"
            "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
            "from keras_resblocks.cli import main; sys.exit(main(['train', *sys.argv[1:]]))"
        )
    else:
        pytest.skip(f"no data-parallel path for {backend}")
    code = (
        "import sys, keras_resblocks.training.trainer as t\n"
        "_enter = t._DistributionScope.__enter__\n"
        "def enter(self):\n"
        "    out = _enter(self); print('replicas', self.devices, file=sys.stderr); return out\n"
        "t._DistributionScope.__enter__ = enter\n" + code
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "replicas 2" in proc.stderr
    assert [row["iterations"] for row in read_history(tmp_path / "history.csv")] == [20]
