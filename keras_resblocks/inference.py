"""``keras-resblocks predict``, ``evaluate`` and ``verify``: a checkpoint run on images."""

from __future__ import annotations

import json
import sys

from keras_resblocks._cli_common import (
    MAX_BATCH_SIZE,
    CommandError,
    count,
    printable_line,
    tolerance,
)
from keras_resblocks.images import MAX_IMAGE_PIXELS, ImageError, decode_image


def add_predict_arguments(parser):
    """The options of ``keras-resblocks predict``."""
    parser.add_argument(
        "name", help="pretrained name, hf://owner/repo[@rev] or checkpoint directory"
    )
    parser.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="image files (any Pillow format; 16-bit and float images are scaled to "
        f"0..255; at most {MAX_IMAGE_PIXELS:,} pixels)",
    )
    parser.add_argument("--top-k", type=count(1), default=5, help="labels per image (default 5)")
    parser.add_argument(
        "--batch-size", type=count(1, MAX_BATCH_SIZE), default=64, help="default 64"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def add_evaluate_arguments(parser):
    """The options of ``keras-resblocks evaluate``."""
    parser.add_argument(
        "name", help="pretrained name, hf://owner/repo[@rev] or checkpoint directory"
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--data", help="image folder (train/<class>/, test/<class>/) or .tar.gz")
    group.add_argument("--dataset", help="digits, cifar10 or cifar100")
    parser.add_argument("--split", choices=["test", "train"], default="test")
    parser.add_argument(
        "--batch-size", type=count(1, MAX_BATCH_SIZE), default=256, help="default 256"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def add_verify_arguments(parser):
    """The options of ``keras-resblocks verify``."""
    from keras_resblocks.checkpoints import REFERENCE_ATOL, REFERENCE_RTOL

    parser.add_argument(
        "name", help="pretrained name, hf://owner/repo[@rev] or checkpoint directory"
    )
    parser.add_argument(
        "--atol",
        type=tolerance,
        default=REFERENCE_ATOL,
        help=f"absolute tolerance (default {REFERENCE_ATOL:g})",
    )
    parser.add_argument(
        "--rtol",
        type=tolerance,
        default=REFERENCE_RTOL,
        help=f"relative tolerance (default {REFERENCE_RTOL:g})",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def load_image(path, size=None):
    """An image file as a uint8 RGB array (:func:`keras_resblocks.images.decode_image`),
    a failure as a :class:`CommandError`."""
    try:
        return decode_image(path, size=size)
    except ImageError as error:
        raise CommandError(str(error)) from None


def _load_model(name):
    from keras_resblocks import from_pretrained

    return from_pretrained(name)


def run_predict(args):
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
            print(f"error: {printable_line(e)}", file=sys.stderr)
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
            best = ", ".join(
                f"{printable_line(t['label'])} {t['probability']:.3f}" for t in r["top"]
            )
            print(f"{printable_line(r['file'])}: {best}")
    return 1 if failed else 0


def run_evaluate(args):
    from keras_resblocks.training.data import load_dataset
    from keras_resblocks.training.callbacks import evaluate_accuracy

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
            printable_line(f"{args.name} on {source} ({args.split}, {len(x)} images): ")
            + f"top-1 accuracy {100 * accuracy:.2f}%"
        )
    return 0


def run_verify(args):
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
