"""The built-in checkpoints (``weights/catalog.json``), read and validated once per process."""

from __future__ import annotations

import importlib.resources
import json

from keras_resblocks.checkpoints.format import CheckpointError
from keras_resblocks.variants import ARCHITECTURES

CATALOG_FILE = "catalog.json"
_ENTRY_KEYS = {
    "architecture",
    "dataset",
    "description",
    "metrics",
    "sha256",
    "metadata_sha256",
    "files",
    "hub",
    "bundled",
    "keras_applications",
    "license",
    "ported_from",
    "trained_on",
    "spread",
    "reported",
}
SOURCES = ("hub", "bundled", "keras_applications")


def weights_root():
    """The folder of the package's bundled weights and ``catalog.json``."""
    return importlib.resources.files("keras_resblocks.weights")


def entries():
    """``{name: entry}`` of the catalogue under :func:`weights_root`, read on first use.

    Do not modify what it returns (:func:`keras_resblocks.list_pretrained` gives
    copies). Tests that point :func:`weights_root` elsewhere get that catalogue; one
    that rewrites a catalogue file already read calls :func:`clear_cache`.
    """
    root = weights_root()
    key = str(root)
    if key not in _CACHE:
        _CACHE[key] = _validated(json.loads((root / CATALOG_FILE).read_text(encoding="utf-8")))
    return _CACHE[key]


def clear_cache():
    """Forget the catalogues read so far, so the next :func:`entries` reads its file again."""
    _CACHE.clear()


_CACHE = {}


def _validated(data):
    checked = {}
    for name, entry in data.get("checkpoints", {}).items():
        unknown = set(entry) - _ENTRY_KEYS
        if unknown or entry.get("architecture") not in ARCHITECTURES:
            raise CheckpointError(
                f"Invalid catalogue entry {name!r} (unknown keys {sorted(unknown)}, or an "
                f"architecture not in list_models()). Received: {entry!r}"
            )
        if not any(entry.get(k) for k in SOURCES):
            raise CheckpointError(
                f"Registry entry {name!r} says neither where it is published (`hub`), "
                f"bundled (`bundled`) nor ported from (`keras_applications`). Received: {entry!r}"
            )
        checked[name] = entry
    return checked
