"""``keras-resblocks list`` and ``info``: the architectures and checkpoints the package
knows, read without loading a deep-learning backend."""

from __future__ import annotations

import json
import os

from keras_resblocks._command import CommandError, printable


def add_list_arguments(parser):
    """The options of ``keras-resblocks list``."""
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def add_info_arguments(parser):
    """The options of ``keras-resblocks info``."""
    parser.add_argument("name", help="architecture, pretrained name or checkpoint directory")
    parser.add_argument("--summary", action="store_true", help="also print the Keras layer summary")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


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


def run_list(args):
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


def run_info(args):
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
                from keras_resblocks._backend import import_backend

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
