"""Datasets as uint8 arrays: scikit-learn's digits, keras.datasets' CIFAR, image folders.

Every loader returns a :class:`Dataset` of ``(N, H, W, 3)`` uint8 images and
int32 labels; the model normalizes pixels itself (its ``preprocessing``), so
the arrays stay small enough to live on the accelerator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import sys
import tarfile
import tempfile
import zlib
from typing import Optional

import numpy as np

from keras_resblocks.checkpoints.io import sha256_of

from keras_resblocks._suggest import did_you_mean

CIFAR10_LABELS = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
FOLDER_LAYOUT = "train/<class>/*.jpg and test/<class>/*.jpg (the same classes in both)"
DATASET_NAMES = ("digits", "cifar10", "cifar100")


class DatasetError(ValueError):
    """A dataset path that is missing or not laid out as expected."""


class DatasetDownloadError(DatasetError, ConnectionError):
    """A named dataset could not be downloaded (offline, or its server unreachable)."""


@dataclasses.dataclass
class Dataset:
    """Train/validation/test splits as uint8 images and int32 labels.

    ``x_val`` is empty when no validation images are held out.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: Optional[list]
    source: str

    @property
    def num_classes(self):
        return len(self.labels) if self.labels else int(self.y_train.max()) + 1

    @property
    def image_shape(self):
        return tuple(self.x_train.shape[1:])

    def describe(self):
        """A JSON-able summary for metadata and model cards."""
        return {
            "name": self.name,
            "source": self.source,
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "train": int(len(self.x_train)),
            "validation": int(len(self.x_val)),
            "test": int(len(self.x_test)),
        }


def hold_out(x, y, validation):
    """Split ``validation`` images off a training set with a fixed permutation.

    The permutation does not depend on the run's seed, so runs with different
    seeds are compared on the same split. ``validation`` is capped at a tenth
    of the set, so a small dataset keeps most of its images for training.

    Example:

    >>> import numpy as np
    >>> from keras_resblocks.training.data import hold_out
    >>> x, y = np.zeros((100, 2, 2, 3), "uint8"), np.arange(100)
    >>> [a.shape[0] for a in hold_out(x, y, 5000)]
    [90, 90, 10, 10]
    """
    validation = min(int(validation), len(x) // 10)
    order = np.random.default_rng(0).permutation(len(x))
    train, val = order[: len(x) - validation], order[len(x) - validation :]
    return x[train], y[train], x[val], y[val]


def load_digits_dataset():
    """scikit-learn's 8x8 digits as 32x32 RGB uint8, 80/20 stratified train/test.

    Bundled with scikit-learn, so it works offline; scikit-learn comes with the
    ``train`` extra (``pip install "keras-resblocks[train]"``).

    Example:

    >>> from keras_resblocks.training.data import load_digits_dataset
    >>> x_train, y_train, x_test, y_test, labels = load_digits_dataset()
    >>> tuple(x_train.shape), x_train.dtype.name, int(x_train.max()), len(x_test), labels[:3]
    ((1437, 32, 32, 3), 'uint8', 255, 360, ['0', '1', '2'])
    """
    from keras_resblocks._extras import require

    require("sklearn", "The digits dataset")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype("uint8")
    images = images.repeat(4, axis=1).repeat(4, axis=2)  # nearest-neighbour 8 -> 32
    images = np.repeat(images[..., None], 3, axis=-1)
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        digits.target.astype("int32"),
        test_size=0.2,
        random_state=0,
        stratify=digits.target,
    )
    return x_train, y_train, x_test, y_test, [str(i) for i in range(10)]


def load_keras_dataset(name):
    """CIFAR-10 or CIFAR-100 through ``keras.datasets`` (downloads once; needs internet).

    Offline, with nothing downloaded before, raises :class:`DatasetDownloadError`
    naming the URL and the offline way (an image folder or a .tar.gz of one).
    """
    import keras

    from keras_resblocks._downloads import download_failure, is_network_error

    module = {"cifar10": keras.datasets.cifar10, "cifar100": keras.datasets.cifar100}[name]
    try:
        (x_train, y_train), (x_test, y_test) = module.load_data()
    except Exception as error:  # keras.utils.get_file raises a bare Exception
        if not is_network_error(error):
            raise
        raise DatasetDownloadError(
            f"{download_failure(name, error)} Offline, give a dataset path instead of the "
            f"name: an image folder holding {FOLDER_LAYOUT}, or a .tar.gz of one (`--dataset PATH` "
            f"on the command line, load_dataset(PATH) in Python). Received: dataset={name!r}"
        ) from None
    labels = CIFAR10_LABELS if name == "cifar10" else None
    return (
        x_train.astype("uint8"),
        y_train.reshape(-1).astype("int32"),
        x_test.astype("uint8"),
        y_test.reshape(-1).astype("int32"),
        labels,
    )


def _folder_files(root):
    """``{split: {class: [relative paths]}}`` of an image folder, validated."""
    found = {}
    for split in ("train", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            raise DatasetError(
                f"Image folder {root} has no '{split}' directory; expected "
                f"{FOLDER_LAYOUT}. Received: {sorted(p.name for p in root.iterdir())}"
            )
        classes = {}
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            files = sorted(
                f"{split}/{class_dir.name}/{f.name}"
                for f in class_dir.iterdir()
                if f.suffix.lower() in IMAGE_SUFFIXES
            )
            if files:
                classes[class_dir.name] = files
        found[split] = classes
    _check_classes(root, found)
    return found


def _check_classes(root, found):
    train, test = sorted(found["train"]), sorted(found["test"])
    if not train:
        raise DatasetError(
            f"Image folder {root} has no class directories with images under 'train'; "
            f"expected {FOLDER_LAYOUT}. Received: an empty 'train'"
        )
    if train != test:
        raise DatasetError(
            f"Image folder {root} must have the same classes in 'train' and 'test'; "
            f"expected {FOLDER_LAYOUT}. Received: train classes {train}, test classes {test}"
        )


def _tar_files(archive):
    """The same listing for a .tar.gz, whose entries may sit under one top folder."""
    found = {"train": {}, "test": {}}
    members = {}
    for member in archive.getmembers():
        if not member.isfile():
            continue
        parts = pathlib.PurePosixPath(member.name).parts
        parts = parts[1:] if parts and parts[0] == "." else parts
        # split/class/file, possibly below a single top-level folder
        for offset in (0, 1):
            rest = parts[offset:]
            if len(rest) == 3 and rest[0] in found:
                if pathlib.PurePosixPath(rest[2]).suffix.lower() in IMAGE_SUFFIXES:
                    key = "/".join(rest)
                    found[rest[0]].setdefault(rest[1], []).append(key)
                    members[key] = member
                break
    for split in found.values():
        for files in split.values():
            files.sort()
    return found, members


def _decode(data, where, shape):
    from keras_resblocks.images import ImageError, decode_image

    try:
        array = decode_image(data, where=where)
    except ImageError as e:
        raise DatasetError(f"Could not decode image {e}. Received: a broken image file") from None
    if shape is not None and array.shape != shape:
        raise DatasetError(
            f"Every image must have the same size; {where} is {array.shape[:2]} where "
            f"earlier ones are {shape[:2]}. Received: image shape {array.shape}"
        )
    return array


def _source_key(path):
    """A cheap fingerprint of the source: path, sizes and modification times."""
    h = hashlib.sha256(str(path.resolve()).encode())
    if path.is_file():
        st = path.stat()
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    else:
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                st = os.stat(os.path.join(root, name))
                h.update(f"{root}/{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def default_cache_dir():
    """Where decoded image folders are cached: ``$KERAS_RESBLOCKS_CACHE`` or
    ``~/.cache/keras_resblocks``, plus ``datasets``.

    Example:

    >>> from keras_resblocks.training.data import default_cache_dir
    >>> default_cache_dir().name
    'datasets'
    """
    root = os.environ.get("KERAS_RESBLOCKS_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "keras_resblocks"
    )
    return pathlib.Path(root) / "datasets"


def load_image_folder(path, cache_dir=None, verbose=1):
    """An image folder (or a .tar.gz of one) as uint8 arrays, decoded once and cached.

    The layout is ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``; labels
    are the class directory names in sorted order. The decoded arrays are
    cached as an uncompressed ``.npz`` in ``cache_dir`` (default
    :func:`default_cache_dir`), keyed by the source's path, sizes and
    modification times. With ``verbose``, the first (uncached) load says what
    it decodes and where the cache goes, with a progress bar, on stderr.

    Returns ``(x_train, y_train, x_test, y_test, labels)``.

    Example:

    >>> import tempfile, pathlib
    >>> from keras_resblocks.training.data import load_image_folder
    >>> load_image_folder(pathlib.Path(tempfile.mkdtemp()) / "missing")
    Traceback (most recent call last):
    ...
    keras_resblocks.training.data.DatasetError: Dataset path .../missing does not exist; expected a directory or .tar.gz holding train/<class>/*.jpg and test/<class>/*.jpg (the same classes in both). Received: dataset=.../missing
    """
    path = pathlib.Path(path).expanduser()
    if not path.exists():
        raise DatasetError(
            f"Dataset path {path} does not exist; expected a directory or .tar.gz holding "
            f"{FOLDER_LAYOUT}. Received: dataset={path}"
        )
    is_archive = path.is_file()
    if is_archive and not tarfile.is_tarfile(path):
        raise DatasetError(
            f"Dataset file {path} is not a tar archive; expected a directory or .tar.gz "
            f"holding {FOLDER_LAYOUT}. Received: dataset={path}"
        )
    cache_dir = pathlib.Path(cache_dir) if cache_dir else default_cache_dir()
    stem = path.name.split(".")[0] or "images"
    cache_file = cache_dir / f"{stem}-{_source_key(path)}.npz"
    if cache_file.exists():
        with np.load(cache_file) as cached:
            return (
                cached["x_train"],
                cached["y_train"],
                cached["x_test"],
                cached["y_test"],
                [str(label) for label in cached["labels"]],
            )

    from keras_resblocks.checkpoints.io import usual_permissions

    if verbose:
        print(
            f"Reading {path.name} (first use: decoded once, then cached in {cache_dir})",
            file=sys.stderr,
            flush=True,
        )
    if is_archive:
        try:
            with tarfile.open(path) as archive:
                found, members = _tar_files(archive)
                _check_classes(path, found)
                # Read in archive order: a gzip stream cannot seek backwards cheaply.
                blobs = {key: archive.extractfile(m).read() for key, m in members.items()}
        except (EOFError, tarfile.TarError, zlib.error, OSError) as error:
            raise DatasetError(
                f"Cannot read the archive {path.name}: it is truncated or not a .tar.gz "
                f"({type(error).__name__}: {error}). Received: {str(path)!r}"
            ) from None
        arrays = _decode_splits(found, blobs.__getitem__, path, verbose)
    else:
        found = _folder_files(path)
        arrays = _decode_splits(found, lambda key: path / key, path, verbose)
    labels = sorted(found["train"])

    cache_dir.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and renamed, so a killed run leaves no half file.
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".npz.tmp")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, labels=np.array(labels), **arrays)
    usual_permissions(tmp)  # not mkstemp's 0600
    os.replace(tmp, cache_file)
    if verbose:
        size = cache_file.stat().st_size / 2**20
        print(
            f"Cached {sum(len(a) for k, a in arrays.items() if k.startswith('x_')):,} images "
            f"({size:,.0f} MiB) in {cache_file}",
            file=sys.stderr,
            flush=True,
        )
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], labels


def _decode_splits(found, read, root, verbose=0):
    labels = sorted(found["train"])
    arrays = {}
    shape = None
    total = sum(len(files) for split in found.values() for files in split.values())
    progress = _Progress(total) if verbose else None
    for split in ("train", "test"):
        keys = [(key, i) for i, label in enumerate(labels) for key in found[split][label]]
        images = None
        for n, (key, _) in enumerate(keys):
            if progress is not None:
                progress.step()
            image = _decode(read(key), f"{root}/{key}", shape)
            if images is None:
                shape = image.shape
                images = np.empty((len(keys),) + shape, dtype="uint8")
            images[n] = image
        arrays[f"x_{split}"] = images
        arrays[f"y_{split}"] = np.array([i for _, i in keys], dtype="int32")
    return arrays


class _Progress:
    """A decoding progress bar on stderr: redrawn in place on a terminal, a line per
    tenth otherwise (so a log file holds no control characters)."""

    def __init__(self, total):
        self.total, self.done, self.shown = max(total, 1), 0, -1
        self.tty = sys.stderr.isatty()

    def step(self):
        self.done += 1
        tenth = 10 * self.done // self.total
        if self.tty and (self.done % 500 == 0 or self.done == self.total):
            bar = "=" * (30 * self.done // self.total)
            end = "\n" if self.done == self.total else ""
            print(
                f"\rDecoding {self.done:,}/{self.total:,} [{bar:<30}]",
                end=end,
                file=sys.stderr,
                flush=True,
            )
        elif not self.tty and tenth != self.shown:
            self.shown = tenth
            print(f"Decoding {self.done:,}/{self.total:,}", file=sys.stderr, flush=True)


def load_dataset(name, validation=5000, cache_dir=None):
    """A :class:`Dataset` by name (``digits``, ``cifar10``, ``cifar100``) or path.

    A path is an image folder or a .tar.gz of one (see :func:`load_image_folder`).
    ``validation`` training images are held out (see :func:`hold_out`).

    Example:

    >>> from keras_resblocks.training import load_dataset
    >>> data = load_dataset("digits")
    >>> len(data.x_train), len(data.x_val), len(data.x_test), data.num_classes
    (1294, 143, 360, 10)
    """
    if name == "digits":
        parts, source = (
            load_digits_dataset(),
            "sklearn.datasets.load_digits, 8x8 upscaled to 32x32 RGB",
        )
    elif name in ("cifar10", "cifar100"):
        parts, source = load_keras_dataset(name), f"keras.datasets.{name}"
    else:
        path = pathlib.Path(name).expanduser()
        hint = did_you_mean(str(name), DATASET_NAMES) if not path.exists() else ""
        if hint:
            raise DatasetError(
                f"Unknown dataset {str(name)!r}: not one of {list(DATASET_NAMES)} and no such "
                f"path.{hint} Received: dataset={str(name)!r}"
            )
        parts = load_image_folder(path, cache_dir=cache_dir)
        # The file's name and content hash, not where it sits on this machine.
        source = f"image folder {path.name}"
        if path.is_file():
            source += f" (sha256 {sha256_of(path)})"
        name = path.name.split(".")[0]
    x_train, y_train, x_test, y_test, labels = parts
    x_train, y_train, x_val, y_val = hold_out(x_train, y_train, validation)
    return Dataset(name, x_train, y_train, x_val, y_val, x_test, y_test, labels, source)
