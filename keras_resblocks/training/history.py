"""history.csv: one row per epoch of a training run (read without importing Keras)."""

from __future__ import annotations

import csv
import os
import pathlib

HISTORY_FIELDS = (
    "epoch",
    "iterations",
    "train_loss",
    "train_error",
    "val_error",
    "test_error",
    "lr",
    "wall_time",
    "train_seconds",
    "eval_seconds",
    "val_images",
    "test_images",
)
HISTORY_FILE = "history.csv"


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


def write_history(path, rows):
    """Write ``rows`` (dicts with :data:`HISTORY_FIELDS`) to ``path`` atomically.

    Example:

    >>> import pathlib, tempfile
    >>> from keras_resblocks.training.history import read_history, write_history
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "history.csv"
    >>> write_history(p, [{"epoch": 1.0, "iterations": 10.0, "train_error": 0.5}])
    >>> read_history(p)[0]["epoch"], read_history(p)[0]["test_error"]
    (1.0, None)
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(
            dict(row, epoch=int(row["epoch"]), iterations=int(row["iterations"])) for row in rows
        )
    os.replace(tmp, path)
