"""Edit this repository's ``weights/catalog.json``, the list of checkpoints the package ships.

    python -m scripts.edit_catalog pin NAME --repo-id OWNER/NAME --revision SHA --from DIR
    python -m scripts.edit_catalog rehash [NAME ...]
    python -m scripts.edit_catalog set NAME [NAME ...] --key KEY --value JSON
    python -m scripts.edit_catalog pin-upstream NAME [NAME ...] [--revision REV]

``pin`` records that checkpoint ``NAME`` is published at commit ``SHA`` of the Hub
repo (what ``keras-resblocks publish`` printed), with the sha256 of the weights and
of ``metadata.json`` that publishing ``DIR`` sent (publishing points the card to the
repo in a copy, so the ``metadata.json`` sent is not ``DIR``'s own): loading ``NAME``
then downloads that commit and checks both. ``rehash`` points the card of each
bundled checkpoint (default: all) to its name and records the sha256 of its weights
and ``metadata.json`` (which holds the hashes of its other files) in its entry.
:func:`set_entries` (what ``python -m scripts.zoo register`` uses) enters bundled
checkpoints and rehashes them. ``pin-upstream`` (on a machine that reaches the Hub) pins an
entry converted from another project's Hub repo (``timm/...``) to the commit its revision
(default: the main branch) is now and the sha256 the Hub reports for its
``model.safetensors``. This module is the one writer of the catalogue.

This works on the repository's files, never on an installed copy of the package.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

from keras_resblocks.checkpoints.format import METADATA_FILE, WEIGHTS_FILE
from keras_resblocks.checkpoints.io import (
    point_card_to,
    read_checkpoint,
    read_json,
    replace_json,
    sha256_of,
)
from keras_resblocks.publish import staged_publication

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
CATALOG = REPOSITORY / "weights" / "catalog.json"


def set_entries(catalog_path, entries):
    """Enter (or enter again) bundled checkpoints, ``{name: entry}``, in one write of the
    catalogue, then :func:`rehash` them; returns the names done (none for no entries)."""
    if not entries:
        return []  # rehash of no names would rehash every bundled checkpoint
    catalog = read_json(catalog_path)
    catalog.setdefault("checkpoints", {}).update(entries)
    replace_json(catalog_path, catalog)
    return rehash(catalog_path, list(entries))


def set_field(catalog_path, names, key, value):
    """Set one field of existing entries (``trained_on``, ``description``, ...) to ``value``."""
    catalog = read_json(catalog_path)
    checkpoints = catalog.get("checkpoints", {})
    unknown = sorted(set(names) - set(checkpoints))
    if unknown:
        raise ValueError(f"{catalog_path} has no checkpoint {unknown}. Received: {list(names)}")
    for name in names:
        checkpoints[name][key] = value
    replace_json(catalog_path, catalog)
    return list(names)


def pin(catalog_path, name, repo_id, revision, directory):
    """Pin ``name`` to ``repo_id@revision``, with the hashes of the published ``directory``."""
    if not re.fullmatch(r"[0-9a-f]{40}", revision or ""):
        raise ValueError(f"--revision must be a 40-hex commit sha. Received: {revision!r}")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id or ""):
        raise ValueError(f"--repo-id must be owner/name. Received: {repo_id!r}")
    # Checked as publishing checks it, and hashed as it was sent.
    with staged_publication(directory, repo_id) as (_, files):
        sent = {f.name: f.sha256 for f in files}
    catalog = read_json(catalog_path)
    entry = catalog.get("checkpoints", {}).get(name)
    if entry is None:
        raise ValueError(
            f"{catalog_path} has no checkpoint {name!r}; add its entry first. Received: {name!r}"
        )
    entry["hub"] = {"repo_id": repo_id, "revision": revision}
    entry["sha256"] = sent[WEIGHTS_FILE]
    entry["metadata_sha256"] = sent[METADATA_FILE]
    replace_json(catalog_path, catalog)
    return entry


def pin_upstream(catalog_path, name, revision=None):
    """Pin the Hub entry ``name`` to the commit ``revision`` resolves to and the sha256 the Hub
    reports for its ``model.safetensors`` (the Git LFS hash); returns the entry."""
    import huggingface_hub

    catalog = read_json(catalog_path)
    entry = catalog.get("checkpoints", {}).get(name)
    if entry is None or not (entry.get("hub") or {}).get("repo_id"):
        raise ValueError(f"{catalog_path} has no Hub entry {name!r}. Received: {name!r}")
    repo_id = entry["hub"]["repo_id"]
    info = huggingface_hub.HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    weights = next((s for s in info.siblings if s.rfilename == WEIGHTS_FILE), None)
    if weights is None or weights.lfs is None:
        raise ValueError(
            f"{repo_id}@{info.sha} has no {WEIGHTS_FILE} stored with Git LFS, so the Hub reports "
            f"no sha256 for it. Received: {[s.rfilename for s in info.siblings]}"
        )
    entry["hub"] = {"repo_id": repo_id, "revision": info.sha}
    entry["sha256"] = weights.lfs.sha256
    replace_json(catalog_path, catalog)
    return entry


def rehash(catalog_path, names=None):
    """Point bundled cards to their names and record their hashes; returns the names done."""
    catalog_path = pathlib.Path(catalog_path)
    catalog = read_json(catalog_path)
    bundled = {n: e for n, e in catalog.get("checkpoints", {}).items() if e.get("bundled")}
    unknown = sorted(set(names or ()) - set(bundled))
    if unknown:
        raise ValueError(
            f"Not bundled checkpoints of {catalog_path}: {unknown}. "
            f"The bundled ones are {sorted(bundled)}"
        )
    done = []
    for name in names or sorted(bundled):
        directory = catalog_path.parent / bundled[name]["bundled"]
        point_card_to(directory, name)
        read_checkpoint(directory)  # every recorded hash holds
        bundled[name]["sha256"] = sha256_of(directory / WEIGHTS_FILE)
        bundled[name]["metadata_sha256"] = sha256_of(directory / METADATA_FILE)
        done.append(name)
    replace_json(catalog_path, catalog)
    return done


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--catalog",
        default=CATALOG,
        help="the catalogue file (default: this repository's weights/catalog.json)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pin", help="pin a checkpoint to a published Hub commit")
    p.add_argument("name")
    p.add_argument("--repo-id", required=True)
    p.add_argument("--revision", required=True, help="the commit sha publish printed")
    p.add_argument(
        "--from",
        dest="directory",
        required=True,
        help="the checkpoint directory that was published",
    )
    p = sub.add_parser("rehash", help="record the hashes of bundled checkpoints")
    p.add_argument("names", nargs="*")
    p = sub.add_parser("set", help="set one field of existing entries")
    p.add_argument("names", nargs="+")
    p.add_argument("--key", required=True)
    p.add_argument("--value", required=True, help="the value, as JSON")
    p = sub.add_parser("pin-upstream", help="pin converted Hub entries to a commit and sha256")
    p.add_argument("names", nargs="+")
    p.add_argument("--revision", help="branch, tag or commit (default: the main branch)")
    args = parser.parse_args(argv)
    try:
        if args.command == "pin-upstream":
            for name in args.names:
                entry = pin_upstream(args.catalog, name, args.revision)
                print(f"pinned {name} -> {entry['hub']['repo_id']}@{entry['hub']['revision']}")
        elif args.command == "pin":
            pin(args.catalog, args.name, args.repo_id, args.revision, args.directory)
            print(f"pinned {args.name} -> {args.repo_id}@{args.revision}")
        elif args.command == "set":
            value = json.loads(args.value)
            print("set " + ", ".join(set_field(args.catalog, args.names, args.key, value)))
        else:
            print("rehashed " + ", ".join(rehash(args.catalog, args.names)))
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
