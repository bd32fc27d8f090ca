"""``keras-resblocks list`` and ``info``: the architectures and checkpoints the package
knows, read without loading a deep-learning backend."""

from __future__ import annotations

import fnmatch
import json
import os
import re

from keras_resblocks._cli_common import CommandError, UsageError, printable


def add_list_arguments(parser):
    """The options of ``keras-resblocks list``."""
    parser.add_argument(
        "pattern", nargs="?", default="*", help="names to show, with wildcards: 'resnet5*'"
    )
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--pretrained", action="store_true", help="only pretrained checkpoints")
    kind.add_argument("--architectures", action="store_true", help="only architectures")
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="CONDITION",
        help="keep rows where COLUMN<VALUE (also <=, >, >=, =, !=; numbers may end in K, M, "
        "G; = and != take wildcards), e.g. 'parameters<1M' or 'dataset=cifar10*'; repeatable",
    )
    parser.add_argument("--sort", metavar="COLUMN", help="sort by a column (smallest first)")
    parser.add_argument("--descending", action="store_true", help="with --sort: largest first")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def add_info_arguments(parser):
    """The options of ``keras-resblocks info``."""
    parser.add_argument(
        "name",
        help="architecture, pretrained name, hf://owner/repo[@revision] or checkpoint directory",
    )
    parser.add_argument("--summary", action="store_true", help="also print the Keras layer summary")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def architecture_rows():
    """The named architectures as rows of ``keras-resblocks list``: name, family, block,
    depth, parameters and multiply-accumulates at the stem's input size."""
    from keras_resblocks import Architecture, list_models, multiply_accumulates, parameter_count

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
                "macs": multiply_accumulates(arch),
            }
        )
    return rows


def checkpoint_rows():
    """The pretrained checkpoints as rows of ``keras-resblocks list``: every field of
    :class:`keras_resblocks.Pretrained` but its raw catalogue entry."""
    from keras_resblocks import list_pretrained

    return [_checkpoint_row(entry) for _, entry in sorted(list_pretrained().items())]


def _checkpoint_row(entry):
    import dataclasses

    row = {k: v for k, v in dataclasses.asdict(entry).items() if k != "entry"}
    row.update(
        kind="checkpoint", measured_on=(entry.measured_on or "").removeprefix("the ") or None
    )
    return row


_CONDITION = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|!=|<|>|=)\s*(.+?)\s*$")
_SUFFIXES = {"K": 1e3, "M": 1e6, "G": 1e9}


def _number(text):
    scale = _SUFFIXES.get(text[-1:].upper(), 1)
    return float(text[:-1] if scale != 1 else text) * scale


def select(rows, pattern="*", where=(), sort=None, columns=None):
    """The rows whose name matches ``pattern`` (wildcards) and every ``where`` condition,
    sorted by ``sort`` (a column; ``-column`` from the largest; rows without a value last).
    ``columns``: the names ``where`` and ``sort`` may use (default: the rows' keys).

    Example:

    >>> from keras_resblocks.listing import select
    >>> rows = [{"name": "resnet20", "parameters": 271098, "dataset": "cifar10"},
    ...         {"name": "resnet50", "parameters": 25636712, "dataset": "imagenet-1k"}]
    >>> [r["name"] for r in select(rows, "resnet*", ["parameters<1M"])]
    ['resnet20']
    >>> [r["name"] for r in select(rows, where=["dataset=cifar*"], sort="-parameters")]
    ['resnet20']
    >>> select(rows, where=["size>1"])
    Traceback (most recent call last):
    ...
    ValueError: Unknown column in --where; the columns are ['dataset', 'name', 'parameters']. Received: 'size>1'
    """
    columns = sorted(columns or {key for row in rows for key in row})
    conditions = []
    for text in where:
        match = _CONDITION.match(text)
        if not match:
            raise ValueError(
                f"A --where condition is COLUMN<VALUE (or <=, >, >=, =, !=). Received: {text!r}"
            )
        column, operator, value = match.groups()
        if column not in columns:
            raise ValueError(
                f"Unknown column in --where; the columns are {columns}. Received: {text!r}"
            )
        conditions.append((column, operator, value))
    kept = [
        row
        for row in rows
        if fnmatch.fnmatchcase(row["name"], pattern)
        and all(_holds(row.get(c), op, v) for c, op, v in conditions)
    ]
    if sort:
        column = sort.lstrip("-")
        if column not in columns:
            raise ValueError(
                f"Unknown column in --sort; the columns are {columns}. Received: {sort!r}"
            )
        present = [r for r in kept if r.get(column) is not None]
        absent = [r for r in kept if r.get(column) is None]
        kept = sorted(present, key=lambda r: r[column], reverse=sort.startswith("-")) + absent
    return kept


def _holds(value, operator, wanted):
    if value is None or isinstance(value, (dict, list)):
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            wanted = _number(wanted)
        except ValueError:
            raise ValueError(f"A number is needed to compare with. Received: {wanted!r}") from None
    elif operator in ("=", "!="):
        match = fnmatch.fnmatchcase(str(value), wanted)
        return match if operator == "=" else not match
    else:
        value = str(value)
    return {
        "<": value < wanted,
        "<=": value <= wanted,
        ">": value > wanted,
        ">=": value >= wanted,
        "=": value == wanted,
        "!=": value != wanted,
    }[operator]


def list_checkpoints(pattern="*", where=(), sort=None, columns=None):
    """The rows ``keras-resblocks list --pretrained`` prints (and ``--json`` gives): see
    :func:`checkpoint_rows` and :func:`select`.

    Example: the most accurate CIFAR-10 ResNet under a million parameters.

    >>> from keras_resblocks import list_checkpoints
    >>> best = list_checkpoints("resnet*", ["dataset=cifar10*", "parameters<1M"], "-accuracy")[0]
    >>> best["name"], best["origin"], best["accuracy"] > 0.89
    ('resnet56_cifar10_90epochs', 'trained here', True)
    """
    return select(checkpoint_rows(), pattern, where, sort, columns)


def list_architectures(pattern="*", where=(), sort=None, columns=None):
    """The rows ``keras-resblocks list --architectures`` prints: see
    :func:`architecture_rows` and :func:`select`."""
    return select(architecture_rows(), pattern, where, sort, columns)


_HEADS = {"file_mb": "FILE", "measured_on": "MEASURED ON", "accuracy_spread": "SEEDS"}


def _cell(row, column):
    value = row.get(column)
    if value is None:
        return "-"
    if column == "parameters":
        return f"{value / 1e6:.2f}M"
    if column == "macs":
        return f"{value / 1e9:.2f}G" if value >= 1e9 else f"{value / 1e6:.0f}M"
    if column == "accuracy":
        return f"{100 * value:.2f}%"
    if column == "accuracy_spread":
        return f"{100 * value['min']:.2f}-{100 * value['max']:.2f}% ({len(value['seeds'])})"
    if column == "file_mb":
        return f"{value:.1f} MB"
    if column == "source" and value == "keras.applications":
        return "keras.applications (download)"
    return printable(str(value)).replace("\n", " ")


def _table(rows, columns):
    cells = [[_cell(r, c) for c in columns] for r in rows]
    heads = [_HEADS.get(c, c.upper()) for c in columns]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def run_list(args):
    if args.descending and not args.sort:
        raise UsageError("--descending needs --sort COLUMN")
    if args.sort and args.descending:
        args.sort = "-" + args.sort.lstrip("-")
    tables = {
        "architectures": (architecture_rows() if not args.pretrained else []),
        "checkpoints": (checkpoint_rows() if not args.architectures else []),
    }
    # A column of either table may be named; rows without it do not match.
    columns = {key for rows in tables.values() for row in rows for key in row}
    try:
        architectures, checkpoints = (
            select(rows, args.pattern, args.where, args.sort, columns) for rows in tables.values()
        )
    except ValueError as error:
        raise CommandError(str(error)) from None
    if args.json:
        print(json.dumps({"architectures": architectures, "checkpoints": checkpoints}, indent=1))
        return 0
    if not args.pretrained:
        print("Architectures (keras_resblocks.create_model(NAME)):")
        columns = ["name", "family", "block", "depth", "parameters", "macs"]
        print(_table(architectures, columns) if architectures else "(none match)")
    if not args.architectures:
        if not args.pretrained:
            print()
        print("Pretrained checkpoints (keras_resblocks.from_pretrained(NAME)):")
        columns = ["name", "architecture", "parameters", "macs", "file_mb", "dataset"]
        columns += ["accuracy", "accuracy_spread", "measured_on", "origin", "source"]
        print(_table(checkpoints, columns) if checkpoints else "(none match)")
        print(
            "ACCURACY: top-1 measured by this package; SEEDS: its range over runs of the same "
            "recipe with other seeds (how many); MACS: multiply-accumulates per image at the "
            "checkpoint's input size; ORIGIN: trained by this package or ported from another "
            "project's weights. What each was trained on, where it was ported from and how to "
            "reproduce it: `keras-resblocks info NAME` or `list --json`."
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
        listing = dict(_checkpoint_row(entry), entry=entry.entry)
        if args.json:
            print(json.dumps(listing, indent=1))
        else:
            print(card if card else json.dumps(listing, indent=1))
        return 0
    provenance = None
    if name.startswith("hf://"):  # downloaded (and a timm repository converted) first
        from keras_resblocks import resolve

        provenance = resolve(name)
        name = str(provenance.directory)
    if os.path.isdir(name):
        from keras_resblocks.checkpoints.io import read_checkpoint, read_file, read_json

        # A directory is anyone's: every file is checked against the hashes recorded in
        # metadata.json, as loading checks them, before anything from it is printed.
        if provenance is None:
            read_checkpoint(name)
        else:
            read_checkpoint(name, hint=provenance.recovery, root=provenance.root)
        metadata = read_json(os.path.join(name, METADATA_FILE))
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
