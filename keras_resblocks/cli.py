"""The ``keras-resblocks`` command (also ``python -m keras_resblocks``): list, info,
predict, evaluate, verify, train, publish, plot; the package's only command-line program.

Exit codes, for every subcommand: 0 success, 1 the work failed (a bad file, a failed
check, a failed run, a download that failed because the machine is offline or the
server cannot be reached), 2 bad usage, 75 a ``train --deadline`` that stopped before
the end (``--resume`` continues it). Every failure is one ``error: ...`` line on
stderr, never a traceback. A subcommand reports a failure by raising
:class:`CommandError`; :func:`main` alone prints it and picks the exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


from keras_resblocks._command import CommandError, UsageError, command_line  # noqa: F401


# -- list --------------------------------------------------------------------------------
def _architecture_rows():
    from keras_resblocks import Architecture, list_models, parameter_count

    rows = []
    for name in list_models():
        arch = Architecture.named(name)
        rows.append(
            {
                "name": name,
                "kind": "architecture",
                "family": "CIFAR" if arch.stem == "cifar" else "ImageNet",
                "block": arch.block
                + (" preact" if arch.preact else "")
                + (" bottleneck" if arch.bottleneck else ""),
                "depth": arch.depth,
                "parameters": parameter_count(arch),
            }
        )
    return rows


def _checkpoint_rows():
    from keras_resblocks import list_pretrained

    rows = []
    for name, entry in sorted(list_pretrained().items()):
        source = entry.source if entry.source == "bundled" else entry.location
        if entry.ported_from:
            source += f", ported from {entry.ported_from.split('@')[0]}"
        rows.append(
            dict(
                _listing(entry),
                kind="checkpoint",
                source=source,
                measured_on=(entry.measured_on or "").removeprefix("the ") or None,
            )
        )
    return rows


def _listing(entry):
    """A :class:`Pretrained` as JSON, without its raw catalogue entry."""
    import dataclasses

    return {k: v for k, v in dataclasses.asdict(entry).items() if k != "entry"}


_HEADS = {"size_mb": "SIZE", "measured_on": "MEASURED ON"}


def _table(rows, columns):
    def cell(row, column):
        value = row.get(column)
        if value is None:
            return "-"
        if column == "parameters":
            return f"{value / 1e6:.2f}M"
        if column == "accuracy":
            return f"{100 * value:.2f}%"
        if column == "size_mb":
            return f"{value:.1f} MB"
        return str(value)

    cells = [[cell(r, c) for c in columns] for r in rows]
    widths = [
        max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
        for i, c in enumerate(columns)
    ]
    heads = [_HEADS.get(c, c.upper()) for c in columns]
    widths = [max(w, len(h)) for w, h in zip(widths, heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def cmd_list(args):
    architectures = _architecture_rows()
    checkpoints = _checkpoint_rows()
    if args.json:
        print(json.dumps({"architectures": architectures, "checkpoints": checkpoints}, indent=1))
        return 0
    print("Architectures (keras_resblocks.create_model(NAME)):")
    print(_table(architectures, ["name", "family", "block", "depth", "parameters"]))
    print()
    print("Pretrained checkpoints (keras_resblocks.from_pretrained(NAME)):")
    print(
        _table(
            checkpoints,
            [
                "name",
                "architecture",
                "parameters",
                "size_mb",
                "dataset",
                "accuracy",
                "measured_on",
                "source",
            ],
        )
    )
    print(
        "ACCURACY: top-1, measured by this package (SIZE: the float32 weights). Ported "
        "checkpoints were not trained by this package; the data they were measured on and "
        "upstream's figures are in `keras-resblocks info NAME`."
    )
    return 0


# -- info --------------------------------------------------------------------------------
def printable(text):
    r"""``text`` without control characters other than newlines and tabs, so a model card
    cannot move the cursor, recolour or retitle the user's terminal.

    Example:

    >>> printable("ok\x1b[2J\x1b]0;pwned\x07 fine\n")
    'ok[2J]0;pwned fine\n'
    """
    return "".join(c for c in text if c in "\n\t" or (c.isprintable() and c != "\x7f"))


def cmd_info(args):
    from keras_resblocks import Architecture, list_models, list_pretrained, parameter_count
    from keras_resblocks.checkpoints import CARD_FILE, METADATA_FILE
    from keras_resblocks.checkpoints.catalog import weights_root

    name = args.name
    if name in list_models():
        arch = Architecture.named(name)
        info = {
            "name": name,
            "architecture": arch.to_dict(),
            "depth": arch.depth,
            "parameters": parameter_count(arch),
        }
        if args.json:
            print(json.dumps(info, indent=1))
        else:
            print(f"{name}: {arch.depth} weighted layers, {info['parameters']:,} parameters")
            print(json.dumps(arch.to_dict(), indent=1))
            if args.summary:
                import_backend(quietly=not args.debug)
                from keras_resblocks import create_model

                create_model(name).summary()
        return 0
    pretrained = list_pretrained()
    if name in pretrained:
        entry = pretrained[name]
        card = None
        if entry.entry.get("bundled"):
            card_file = weights_root() / entry.entry["bundled"] / CARD_FILE
            card = printable(card_file.read_text(encoding="utf-8"))
        listing = dict(_listing(entry), entry=entry.entry)
        if args.json:
            print(json.dumps(listing, indent=1))
        else:
            print(card if card else json.dumps(listing, indent=1))
        return 0
    if os.path.isdir(name):
        from keras_resblocks.checkpoints import CheckpointMetadata
        from keras_resblocks.checkpoints.io import check_files, read_config, read_file, read_json

        # A directory is anyone's: validate it before printing anything from it.
        check_files(name)
        read_config(name)
        metadata = read_json(os.path.join(name, METADATA_FILE))
        CheckpointMetadata.from_json(metadata)
        if args.json:
            print(json.dumps(metadata, indent=1))
            return 0
        if not os.path.exists(os.path.join(name, CARD_FILE)):
            raise CommandError(f"{name}: no {CARD_FILE} (model card) in this directory")
        card = read_file(os.path.join(name, CARD_FILE), max_bytes=1 << 20)
        print(printable(card.decode("utf-8", errors="replace")))
        return 0
    from keras_resblocks._suggest import SEE_ALL, did_you_mean

    raise CommandError(
        f"unknown name {name!r}: not an architecture, a pretrained checkpoint, or a checkpoint "
        f"directory.{did_you_mean(name, [*list_models(), *pretrained])} {SEE_ALL}"
    )


# -- predict -----------------------------------------------------------------------------
MAX_IMAGE_PIXELS = 50_000_000  # about 7,000 x 7,000: larger files are refused before decoding


def load_image(path, size=None):
    """An image file as a uint8 RGB array, resized to ``size`` ((height, width)) if given.

    Any format Pillow reads; grey, palette and RGBA images are converted to RGB, and
    16-bit, 32-bit integer and floating-point images are scaled to 0..255 (not clipped):
    16-bit by 255/65535, floats in 0..1 by 255. An image of more than
    :data:`MAX_IMAGE_PIXELS` pixels is refused from its header, before it is decoded.

    Example:

    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> from keras_resblocks.cli import load_image
    >>> path = tempfile.mkdtemp() + "/grey.png"
    >>> Image.fromarray(np.zeros((10, 20), "uint8")).save(path)
    >>> load_image(path, size=(32, 32)).shape
    (32, 32, 3)
    >>> Image.fromarray(np.full((4, 4), 65535, "uint16")).save(path)  # 16-bit grey
    >>> int(load_image(path).max())
    255
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise CommandError(
                    f"{path}: {width}x{height} = {width * height:,} pixels, beyond the limit of "
                    f"{MAX_IMAGE_PIXELS:,}; resize it first"
                )
            if image.mode in (
                "RGB",
                "L",
                "P",
                "RGBA",
                "LA",
                "PA",
                "1",
                "CMYK",
                "YCbCr",
                "LAB",
                "HSV",
            ):
                pixels = np.asarray(image.convert("RGB"), dtype="uint8")
            else:  # 16/32-bit integers or floats: one channel of wider values
                values = np.asarray(image, dtype="float64")
                if image.mode == "F":
                    top = 1.0 if np.nanmax(values, initial=0.0) <= 1.0 else 255.0
                else:
                    top = 65535.0 if np.max(values, initial=0) <= 65535 else float(2**32 - 1)
                grey = np.clip(np.nan_to_num(values) * (255.0 / top), 0, 255).round()
                pixels = np.repeat(grey.astype("uint8")[..., None], 3, axis=-1)
            if size is not None and all(size) and pixels.shape[:2] != tuple(size):
                pixels = np.asarray(
                    Image.fromarray(pixels).resize((size[1], size[0]), Image.Resampling.BILINEAR),
                    dtype="uint8",
                )
            return pixels
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CommandError(f"{path}: is a directory, not an image") from None
    except Image.DecompressionBombError:
        raise CommandError(
            f"{path}: more pixels than the limit of {MAX_IMAGE_PIXELS:,}; resize it first"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise CommandError(f"{path}: not a readable image ({type(e).__name__})") from None


def _load_model(name):
    from keras_resblocks import from_pretrained

    return from_pretrained(name)


def cmd_predict(args):
    import numpy as np

    model = _load_model(args.name)
    size = model.image_shape[:2]
    labels = getattr(model, "labels", None) or [str(i) for i in range(model.num_classes)]
    images, names, failed = [], [], 0
    for path in args.images:
        try:
            images.append(load_image(path, size))
            names.append(path)
        except CommandError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
    results = []
    if images:
        probabilities = np.asarray(
            model.predict(np.stack(images).astype("float32"), batch_size=args.batch_size, verbose=0)
        )
        if model.classifier_activation != "softmax":
            exp = np.exp(probabilities - probabilities.max(-1, keepdims=True))
            probabilities = exp / exp.sum(-1, keepdims=True)
        k = min(args.top_k, probabilities.shape[-1])
        for path, p in zip(names, probabilities):
            top = np.argsort(-p)[:k]
            results.append(
                {
                    "file": path,
                    "top": [
                        {"label": labels[i], "index": int(i), "probability": float(p[i])}
                        for i in top
                    ],
                }
            )
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            best = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in r["top"])
            print(f"{r['file']}: {best}")
    return 1 if failed else 0


# -- evaluate ----------------------------------------------------------------------------
def cmd_evaluate(args):
    from keras_resblocks.training.data import load_dataset
    from keras_resblocks.training.trainer import evaluate_accuracy

    source = args.data or args.dataset
    if source is None:
        raise CommandError("give --data DIR (an image folder) or --dataset NAME")
    model = _load_model(args.name)
    data = load_dataset(source, validation=0)
    x, y = (data.x_test, data.y_test) if args.split == "test" else (data.x_train, data.y_train)
    if tuple(x.shape[1:]) != tuple(model.image_shape) and None not in model.image_shape:
        raise CommandError(
            f"{source}: images are {tuple(x.shape[1:])} but {args.name} takes "
            f"{tuple(model.image_shape)}"
        )
    # weighted: the padded last batch of evaluate_accuracy weighs nothing
    model.compile(loss="sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
    # A progress bar on a terminal; redirected, one plain line (no control characters).
    verbose = 0 if args.json else (1 if sys.stdout.isatty() else 2)
    accuracy = evaluate_accuracy(model, x, y, args.batch_size, verbose=verbose)
    result = {
        "model": args.name,
        "data": str(source),
        "split": args.split,
        "images": int(len(x)),
        "accuracy": accuracy,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.name} on {source} ({args.split}, {len(x)} images): "
            f"top-1 accuracy {100 * accuracy:.2f}%"
        )
    return 0


# -- verify --------------------------------------------------------------------------------
def cmd_verify(args):
    """Rerun a checkpoint's stored reference batch on this backend; 1 if it differs."""
    import dataclasses

    from keras_resblocks import verify_reference

    report = verify_reference(args.name, atol=args.atol, rtol=args.rtol, raise_on_mismatch=False)
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=1))
    else:
        verdict = "reproduces" if report.allclose else "DOES NOT reproduce"
        print(
            f"{args.name} {verdict} its reference batch on {report.backend} "
            f"(recorded on {report.recorded_backend}, {report.num_inputs} inputs): max |diff| "
            f"{report.max_abs_diff:.3g} (atol {report.atol:g}, rtol {report.rtol:g})"
        )
        for output, diff in sorted(report.diffs.items()):
            print(f"  {output}: max |diff| {diff:.3g}")
    return 0 if report.allclose else 1


# -- train / publish / plot: their options and work live in their own modules -----------
def cmd_train(args):
    from keras_resblocks.training.cli import run_train

    return run_train(args)


def cmd_publish(args):
    from keras_resblocks.publish import run_publish

    return run_publish(args)


def cmd_plot(args):
    from keras_resblocks._extras import require
    from keras_resblocks.plotting import run_plot

    require("matplotlib", "Plotting")  # before reading the histories loads the backend

    return run_plot(args)


def build_parser():
    """The ``keras-resblocks`` argument parser (one sub-command per job).

    Example:

    >>> from keras_resblocks.cli import build_parser
    >>> build_parser().parse_args(["predict", "resnet20_cifar10", "cat.png", "--top-k", "3"]).top_k
    3
    """
    from keras_resblocks import __version__
    from keras_resblocks.checkpoints import REFERENCE_ATOL, REFERENCE_RTOL
    from keras_resblocks.plotting import add_plot_arguments
    from keras_resblocks.publish import add_publish_arguments
    from keras_resblocks.training.cli import add_train_arguments

    parser = argparse.ArgumentParser(
        prog="keras-resblocks",
        description="Residual networks for Keras 3: architectures, pretrained checkpoints, "
        "training and publishing.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the backend's start-up log and full tracebacks (also KERAS_RESBLOCKS_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="architectures and pretrained checkpoints")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="the card of a checkpoint or the summary of an architecture")
    p.add_argument("name", help="architecture, pretrained name or checkpoint directory")
    p.add_argument("--summary", action="store_true", help="also print the Keras layer summary")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("predict", help="top-k labels for image files")
    p.add_argument("name", help="pretrained name, hf://owner/repo[@rev] or checkpoint directory")
    p.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="image files (any Pillow format; 16-bit and float images are scaled to "
        f"0..255; at most {MAX_IMAGE_PIXELS:,} pixels)",
    )
    p.add_argument("--top-k", type=int, default=5, help="labels per image (default 5)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_predict, backend=True)

    p = sub.add_parser("evaluate", help="top-1 accuracy on an image folder or a dataset")
    p.add_argument("name", help="pretrained name, hf://owner/repo[@rev] or checkpoint directory")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--data", help="image folder (train/<class>/, test/<class>/) or .tar.gz")
    group.add_argument("--dataset", help="digits, cifar10 or cifar100")
    p.add_argument("--split", choices=["test", "train"], default="test")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_evaluate, backend=True)

    p = sub.add_parser("verify", help="rerun a checkpoint's reference batch on this backend")
    p.add_argument("name", help="pretrained name, hf://owner/repo[@rev] or checkpoint directory")
    p.add_argument(
        "--atol",
        type=float,
        default=REFERENCE_ATOL,
        help=f"absolute tolerance (default {REFERENCE_ATOL:g})",
    )
    p.add_argument(
        "--rtol",
        type=float,
        default=REFERENCE_RTOL,
        help=f"relative tolerance (default {REFERENCE_RTOL:g})",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_verify, backend=True)

    p = sub.add_parser("train", help="train a model and write a checkpoint")
    add_train_arguments(p)
    p.set_defaults(func=cmd_train, backend=True)

    p = sub.add_parser("publish", help="publish a checkpoint to the Hub")
    add_publish_arguments(p)
    p.set_defaults(func=cmd_publish, backend=True)

    p = sub.add_parser("plot", help="training curves from history files to a PNG")
    add_plot_arguments(p)
    p.set_defaults(func=cmd_plot, backend=True)
    return parser


def quiet_backend_logs(debug=False):
    """Silence the deep-learning backend's own log for this process, unless ``debug``.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` (only where the user has not set it) and the
    Python loggers of TensorFlow, absl and JAX to errors. Must run before the
    backend is imported to take full effect; the command calls it first thing.
    """
    import logging

    if debug:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("tensorflow", "absl", "jax._src.xla_bridge"):
        logging.getLogger(name).setLevel(logging.ERROR)


def import_backend(quietly=True):
    """Import Keras, and with it the backend; ``quietly``, without its start-up log.

    TensorFlow's C++ core writes a few lines to file descriptor 2 while it loads,
    before any setting can silence them ("All log messages before
    absl::InitializeLog() ...", oneDNN, CUDA drivers); ``quietly``, that descriptor
    points to /dev/null for the import only. Python's own errors are unaffected.
    A backend that is not installed raises :class:`MissingExtraError` naming the
    extra that installs it.
    """
    if "keras" in sys.modules:
        return
    try:
        _import_keras(quietly)
    except ModuleNotFoundError as error:
        from keras_resblocks._extras import missing_extra

        backend = (error.name or "").split(".")[0]
        if backend not in ("tensorflow", "jax"):
            raise
        raise missing_extra(
            backend,
            f"Keras' {backend} backend (KERAS_BACKEND="
            f"{os.environ.get('KERAS_BACKEND', 'tensorflow')})",
        ) from None


def _import_keras(quietly):
    try:
        saved = os.dup(2) if quietly else None
    except OSError:  # no file descriptor 2 (a closed stderr): nothing to silence
        saved = None
    if saved is None:
        import keras  # noqa: F401

        return
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv=None):
    """Entry point of the ``keras-resblocks`` console script; returns the exit code.

    A failure is one ``error: ...`` line on stderr and exit code 1 (2 for bad
    usage); ``--debug`` (or ``KERAS_RESBLOCKS_DEBUG=1``) shows the traceback and the
    backend's start-up log instead.
    """
    from keras_resblocks._downloads import download_failure, is_network_error, one_line
    from keras_resblocks._extras import MissingExtraError

    args = build_parser().parse_args(argv)
    # The one record of the command line (checkpoint cards): as typed, or as called.
    args.command_line = command_line(
        sys.argv if argv is None else ["keras-resblocks", *map(str, argv)]
    )
    debug = args.debug or os.environ.get("KERAS_RESBLOCKS_DEBUG", "") not in ("", "0")
    args.debug = debug
    quiet_backend_logs(debug)
    try:
        if getattr(args, "backend", False):
            import_backend(quietly=not debug)
        return args.func(args)
    except (CommandError, MissingExtraError) as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1)
    except (ValueError, OSError, ConnectionError) as e:
        if debug:
            raise
        print(f"error: {type(e).__name__}: {one_line(e)}", file=sys.stderr)
        return 1
    except Exception as e:  # keras.utils.get_file raises a bare Exception when offline
        if debug or not is_network_error(e):
            raise
        print(f"error: {download_failure('a file', e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
