"""The options and the work of ``keras-resblocks train``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from keras_resblocks._cli_common import MAX_BATCH_SIZE, count
from keras_resblocks.training.recipes import PRESETS, SCHEDULES, get_recipe

# Recipe fields a flag can override, with how to parse them.
_RECIPE_FLAGS = {
    "batch_size": int,
    "learning_rate": float,
    "momentum": float,
    "weight_decay": float,
    "schedule": str,
    "iterations": int,
    "epochs": int,
    "warmup_iterations": int,
    "warmup_lr": float,
    "lr_factor": float,
    "crop_padding": int,
    "label_smoothing": float,
    "validation": int,
}


def _int_list(text):
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated iteration counts like 32000,48000. Received: {text!r}"
        ) from None


def _json_object(text):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(
            f"expected a JSON object ({e}). Received: {text!r}"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object. Received: {text!r}")
    return value


EXIT_UNFINISHED = 75  # EX_TEMPFAIL: stopped at --deadline, continue with --resume


def parse_deadline(text, now=None):
    """A deadline as ``time.time()`` seconds: ``HH:MM`` (the next such local time),
    an ISO 8601 date-time, or ``+N`` with a unit ``s``, ``m`` or ``h`` from now.

    Example:

    >>> from keras_resblocks.training.command import parse_deadline
    >>> parse_deadline("+90m", now=1000.0)
    6400.0
    >>> parse_deadline("soon")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected HH:MM, an ISO date-time or +90m. Received: 'soon'
    """
    import datetime
    import time

    now = time.time() if now is None else now
    text = text.strip()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text.startswith("+") and text[-1:] in units:
            return now + float(text[1:-1]) * units[text[-1]]
        if len(text) <= 5 and ":" in text:
            hour, minute = (int(v) for v in text.split(":"))
            base = datetime.datetime.fromtimestamp(now)
            when = base.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if when.timestamp() <= now:
                when += datetime.timedelta(days=1)
            return when.timestamp()
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected HH:MM, an ISO date-time or +90m. Received: {text!r}"
        ) from None


def add_train_arguments(parser):
    """Add the training options to an ``argparse`` parser (or sub-parser).

    Every recipe field has a flag; an unset flag keeps the preset's value.

    Example:

    >>> import argparse
    >>> from keras_resblocks.training.command import add_train_arguments
    >>> args = add_train_arguments(argparse.ArgumentParser()).parse_args(
    ...     ["--recipe", "he2015", "--lr-boundaries", "100,200", "--no-flip"])
    >>> args.recipe, args.lr_boundaries, args.flip, args.batch_size
    ('he2015', (100, 200), False, None)
    """
    _add_data_arguments(parser.add_argument_group("data and model"))
    _add_recipe_arguments(
        parser.add_argument_group("recipe (a preset; any field can be overridden)")
    )
    _add_run_arguments(parser.add_argument_group("run"))
    return parser


def _add_data_arguments(group):
    """The options that choose the data and the model."""
    group.add_argument("--model", default="resnet20", help="architecture name (default resnet20)")
    group.add_argument(
        "--dataset",
        default="digits",
        help="digits (offline default), cifar10, cifar100 (keras.datasets, needs internet), "
        "or a path to an image folder train/<class>/*, test/<class>/* or a .tar.gz of one",
    )
    group.add_argument(
        "--data-note",
        default=None,
        help="a sentence about the data for the model card (e.g. how it differs "
        "from the usual copy)",
    )
    group.add_argument(
        "--data-cache",
        default=None,
        help="where decoded image folders are cached (default ~/.cache/keras_resblocks)",
    )
    group.add_argument(
        "--model-overrides",
        type=_json_object,
        default=None,
        help='JSON of Architecture fields / ResNet arguments, e.g. \'{"shortcut": "projection"}\'',
    )


def _add_recipe_arguments(group):
    """``--recipe`` and a flag for every recipe field, unset by default (the preset's value)."""
    group.add_argument(
        "--recipe",
        default="quick",
        choices=sorted(PRESETS),
        help="he2015: the paper's 64k-iteration step schedule; budget: short runs "
        "that anneal to 0 at the last epoch (Nesterov, weight decay 5e-4); cosine: "
        "the paper's optimizer with a cosine schedule; quick: digits in about a "
        "minute (default)",
    )
    for field, kind in _RECIPE_FLAGS.items():
        flag = "--" + field.replace("_", "-")
        if field == "schedule":
            group.add_argument(flag, choices=SCHEDULES, default=None)
        else:
            group.add_argument(flag, type=kind, default=None)
    group.add_argument(
        "--lr-boundaries",
        type=_int_list,
        default=None,
        help="iterations where the step schedule multiplies the lr by --lr-factor",
    )
    group.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    group.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random horizontal flips",
    )


def _add_run_arguments(group):
    """Where the run writes, how it resumes and stops, and how it runs and reports."""
    group.add_argument("--output", default=None, help="checkpoint directory written at the end")
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the checkpoint already at --output (without it, an --output that "
        "holds files is refused before training starts)",
    )
    group.add_argument(
        "--work-dir", default=None, help="history.csv and backups (default <output>.work)"
    )
    group.add_argument(
        "--resume", action="store_true", help="continue from the backup in the work directory"
    )
    group.add_argument(
        "--deadline",
        type=parse_deadline,
        default=None,
        help="stop at an epoch boundary before this wall-clock time (HH:MM local, "
        "an ISO date-time, or +90m / +2h from now), keeping the backup; exit "
        f"status {EXIT_UNFINISHED}; --resume continues",
    )
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--mixed-precision", choices=("float32", "bfloat16"), default="float32")
    group.add_argument(
        "--distribute", action="store_true", help="data parallelism over all local devices"
    )
    group.add_argument(
        "--eval-batch-size", type=count(1, MAX_BATCH_SIZE), default=500, help="default 500"
    )
    group.add_argument(
        "--epoch-test-images",
        type=_image_count,
        default=5000,
        metavar="N",
        help="test images evaluated after each epoch but the last: a fixed class-balanced "
        "subset (default 5000); the last epoch, whose error is reported, uses all of "
        "them; 'all': every image after every epoch",
    )
    group.add_argument(
        "--verbose",
        default="auto",
        choices=("auto", "0", "1", "2"),
        help="Keras progress output: 1 bar, 2 a line per epoch; auto: a bar on "
        "a terminal, a line per epoch otherwise (logs stay free of control codes)",
    )


def _image_count(text):
    """``--epoch-test-images``: a positive count, or ``all`` (``None``)."""
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive count or 'all'. Received: {text!r}")
    return value


def recipe_from_args(args):
    """The :class:`Recipe` that parsed arguments ask for.

    Example:

    >>> import argparse
    >>> from keras_resblocks.training.command import add_train_arguments, recipe_from_args
    >>> parser = add_train_arguments(argparse.ArgumentParser())
    >>> recipe_from_args(parser.parse_args(["--recipe", "he2015", "--batch-size", "64"])).batch_size
    64
    """
    overrides = {field: getattr(args, field) for field in _RECIPE_FLAGS}
    overrides.update(lr_boundaries=args.lr_boundaries, nesterov=args.nesterov, flip=args.flip)
    return get_recipe(args.recipe, **overrides)


def run_train(args, command=None):
    """Train from parsed :func:`add_train_arguments` options; returns the exit status."""
    from keras_resblocks._cli_common import CommandError, UsageError, command_line
    from keras_resblocks.training.data import DatasetError
    from keras_resblocks.training.callbacks import NonFiniteLossError
    from keras_resblocks.training.trainer import train

    if args.output is None and args.work_dir is None:
        raise UsageError("give --output (a checkpoint directory) and/or --work-dir")
    if command is None:
        command = getattr(args, "command_line", None) or command_line()
    try:
        recipe = recipe_from_args(args)
        verbose = (
            int(args.verbose) if args.verbose != "auto" else (1 if sys.stdout.isatty() else 2)
        )  # a progress bar only on a terminal
        result = train(
            model=args.model,
            dataset=args.dataset,
            recipe=recipe,
            output=args.output,
            work_dir=args.work_dir,
            resume=args.resume,
            seed=args.seed,
            mixed_precision=args.mixed_precision,
            distribute=args.distribute,
            data_cache=args.data_cache,
            eval_batch_size=args.eval_batch_size,
            epoch_test_images=args.epoch_test_images,
            model_overrides=args.model_overrides,
            verbose=verbose,
            command=command,
            deadline=args.deadline,
            data_note=args.data_note,
            overwrite=args.overwrite,
        )
    except (DatasetError, NonFiniteLossError, ValueError) as e:
        raise CommandError(str(e)) from e
    if not result.finished:
        last = result.history[-1] if result.history else {}
        print(
            json.dumps(
                {
                    "finished": False,
                    "epoch": int(last.get("epoch") or 0),
                    "epochs": result.recipe.epochs,
                }
            )
        )
        return EXIT_UNFINISHED
    print(
        json.dumps(
            {
                "output": str(result.output),
                "metrics": result.metrics,
                "recipe": dataclasses.asdict(result.recipe),
            }
        )
    )
    return 0
