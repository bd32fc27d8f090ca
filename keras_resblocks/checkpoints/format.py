"""The checkpoint format, defined once: file names, version, errors and the JSON schema.

A checkpoint is a directory laid out exactly like its Hugging Face Hub repo:

- ``config.json``: :class:`CheckpointConfig`, the architecture and the model's head,
  input and preprocessing. It is read with this schema only; Keras deserialization,
  which can import modules and run code, is never used on it.
- ``model.safetensors``: every model variable (trainable or not), keyed by
  ``variable.path``. No pickle, HDF5 or ``.keras`` file is ever read.
- ``metadata.json``: :class:`CheckpointMetadata`, the sha256 of the weights, versions,
  backend, dataset, recipe and measured metrics.
- ``README.md``: a Hub model card.
- ``reference.safetensors`` (optional): a few stored inputs and the outputs the
  checkpoint gave on them, recorded in ``metadata.json`` under ``"reference"``.

Both JSON files go through :meth:`from_json` when read and :meth:`to_json` when
written, so whatever is saved is what loading accepts, and the reverse.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
from pathlib import Path

from keras_resblocks._cli_common import printable

from keras_resblocks.architecture import (  # noqa: F401  (LIMITS: a checkpoint's bounds)
    LIMITS,
    POOLINGS,
    Architecture,
    check_limits,
    check_preprocessing,
    parameter_count,
)

FORMAT = "keras-resblocks"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
CARD_FILE = "README.md"
REFERENCE_FILE = "reference.safetensors"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE)
CHECKPOINT_FILES = REQUIRED_FILES + (CARD_FILE,)
# Files whose sha256 metadata.json records under "files" (the weights' is "sha256", the
# reference batch's is in "reference"), so that none of them can be edited unnoticed.
HASHED_FILES = (CONFIG_FILE, CARD_FILE)
HEAD_PREFIX = "predictions/"
# float32 inference of the same weights on TensorFlow and JAX (CPU) differs by
# rounding only; see docs/checkpoints.md for the measured differences.
REFERENCE_ATOL = 1e-3
REFERENCE_RTOL = 1e-3

# Formats we refuse to read: pickle can run arbitrary code on load, and HDF5 /
# .keras archives carry Keras configs that deserialize into arbitrary layers.
UNSAFE_SUFFIXES = (
    ".bin",
    ".pkl",
    ".pickle",
    ".pt",
    ".pth",
    ".ckpt",
    ".h5",
    ".hdf5",
    ".keras",
    ".joblib",
    ".npy",
    ".npz",
    ".msgpack",
    ".pb",
)

# A name outside this list would reach keras.activations.get(), which resolves
# registered objects: keep the accepted values to plain, known functions.
CLASSIFIER_ACTIVATIONS = (None, "softmax", "sigmoid", "linear")
_CONFIG_KEYS = ("format", "format_version", "architecture", "model", "preprocessing", "labels")
_MODEL_KEYS = ("include_top", "num_classes", "pooling", "classifier_activation", "input_shape")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CheckpointError(ValueError):
    """A checkpoint is missing a file, is malformed, or does not fit the model.

    The base of every error this package raises about a checkpoint: reading,
    writing, resolving, downloading or publishing one.
    """


class MissingFileError(CheckpointError):
    """A file a checkpoint needs is not there."""


class ChecksumError(CheckpointError):
    """A file's sha256 is not the expected one."""


class ReferenceMismatchError(CheckpointError):
    """A checkpoint does not reproduce the outputs stored in its reference batch."""


class CheckpointNotFoundError(CheckpointError):
    """The Hub answered: no such repo, or no such revision in it."""


class CheckpointDownloadError(CheckpointError, ConnectionError):
    """A checkpoint's files could not be downloaded (offline, or the server unreachable)
    and nothing usable is cached; the message names what was wanted and the offline way."""


class HubUnavailableError(CheckpointDownloadError):
    """The Hub cannot be reached (or offline mode is on) and nothing usable is cached."""


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a checkpoint directory came from: what :func:`resolve` returns.

    ``kind`` is ``"directory"``, ``"bundled"``, ``"hub"``, ``"timm"`` (converted from a timm
    repository of the Hub, see :mod:`keras_resblocks.hub_timm`) or ``"keras_applications"``;
    ``source`` what the caller gave; ``repo_id`` and ``revision`` (the commit) for a
    Hub checkpoint; ``expected_sha256`` the weights' hash the source vouches for
    (the catalogue's), if any, else ``metadata.json`` is trusted;
    ``expected_metadata_sha256`` the hash of ``metadata.json`` (which holds the hashes
    of the other files) the source vouches for, if any; ``recovery`` how to
    replace a corrupted copy, added to a :class:`ChecksumError`; ``root`` the folder
    its files may really be in when they are links (default: ``directory`` itself).
    """

    directory: Path
    kind: str = "directory"
    source: str = ""
    repo_id: str | None = None
    revision: str | None = None
    expected_sha256: str | None = None
    expected_metadata_sha256: str | None = None
    recovery: str = ""
    root: Path | None = None  # where its files may really live (a Hub cache links into blobs/)


def _bad_model_field(include_top, num_classes, pooling, classifier_activation, input_shape):
    """The first field of a config's ``model`` block that the schema refuses, or None."""
    if not isinstance(include_top, bool):
        return "include_top"
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
        return "num_classes"
    if pooling not in POOLINGS:
        return "pooling"
    if not (classifier_activation is None or isinstance(classifier_activation, str)) or (
        classifier_activation not in CLASSIFIER_ACTIVATIONS
    ):
        return "classifier_activation"
    if (
        not isinstance(input_shape, (list, tuple))
        or len(input_shape) != 3
        or not all(
            n is None or (isinstance(n, int) and not isinstance(n, bool) and n > 0)
            for n in input_shape
        )
    ):
        return "input_shape"
    return None


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """``config.json``: the architecture and how the model around it is built.

    Validated on construction, so a config that :meth:`from_json` would refuse can
    never be written either.

    Example:

    >>> from keras_resblocks import Architecture
    >>> from keras_resblocks.checkpoints import CheckpointConfig
    >>> arch = Architecture(stage_depths=[1], stage_widths=[4], stage_strides=[1])
    >>> config = CheckpointConfig(arch, num_classes=2, input_shape=(8, 8, 3))
    >>> CheckpointConfig.from_json(config.to_json()) == config
    True
    >>> CheckpointConfig(arch, num_classes=2, input_shape=(8, 8, 3), classifier_activation="relu")
    Traceback (most recent call last):
    ...
    keras_resblocks.checkpoints.format.CheckpointError: Invalid `model.classifier_activation` in config.json (one of [None, 'softmax', 'sigmoid', 'linear']). Received: classifier_activation='relu'
    """

    architecture: Architecture
    include_top: bool = True
    num_classes: int = 1000
    pooling: str | None = None
    classifier_activation: str | None = "softmax"
    input_shape: tuple = (224, 224, 3)
    preprocessing: dict | None = None
    labels: list | None = None

    def __post_init__(self):
        if not isinstance(self.architecture, Architecture):
            raise CheckpointError(
                f"`architecture` must be an Architecture. Received: {self.architecture!r}"
            )
        bad = _bad_model_field(
            self.include_top,
            self.num_classes,
            self.pooling,
            self.classifier_activation,
            self.input_shape,
        )
        if bad:
            allowed = {
                "classifier_activation": f" (one of {list(CLASSIFIER_ACTIVATIONS)})",
                "pooling": f" (one of {list(POOLINGS)})",
            }.get(bad, "")
            raise CheckpointError(
                f"Invalid `model.{bad}` in {CONFIG_FILE}{allowed}. "
                f"Received: {bad}={getattr(self, bad)!r}"
            )
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        check_limits(
            self.architecture,
            self.num_classes,
            self.input_shape,
            self.include_top,
            source=CONFIG_FILE,
            error=CheckpointError,
        )
        labels = self.labels
        if labels is not None and not (
            isinstance(labels, (list, tuple)) and all(isinstance(x, str) for x in labels)
        ):
            raise CheckpointError(
                f"`labels` must be null or a list of strings. Received: labels={labels!r}"
            )
        if labels is not None and len(set(labels)) != len(labels):
            twice = sorted(x for x, n in collections.Counter(labels).items() if n > 1)
            raise CheckpointError(
                f"`labels` must name each class once; {len(twice)} label(s) appear more than "
                f"once: {[printable(x) for x in twice[:5]]}. Received: {len(labels)} labels"
            )
        long = [x for x in labels or () if len(x) > LIMITS["label_chars"]]
        if long:
            raise CheckpointError(
                f"A label may have at most {LIMITS['label_chars']} characters. Received: a label "
                f"of {len(long[0])} characters"
            )
        if labels is not None and self.include_top and len(labels) != self.num_classes:
            raise CheckpointError(
                f"`labels` must name each of the {self.num_classes} classes. "
                f"Received: {len(labels)} labels"
            )
        if labels is not None:
            object.__setattr__(self, "labels", list(labels))
        if self.preprocessing is not None:
            try:
                check_preprocessing(self.preprocessing, self.input_shape[-1] or 3)
            except ValueError as error:
                raise CheckpointError(
                    f"Invalid `preprocessing` in {CONFIG_FILE}: {error}"
                ) from None

    @classmethod
    def from_model(cls, model, labels=None):
        """The config of a :class:`ResNet` (``labels`` are turned into strings)."""
        return cls(
            architecture=model.architecture,
            include_top=model.include_top,
            num_classes=model.num_classes,
            pooling=model.pooling,
            classifier_activation=model.classifier_activation,
            input_shape=tuple(model.image_shape),
            preprocessing=model.preprocessing,
            labels=None if labels is None else [str(label) for label in labels],
        )

    @classmethod
    def from_json(cls, data):
        """Validate a parsed ``config.json``; anything unexpected is a :class:`CheckpointError`.

        No code named in the data is imported or run.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise CheckpointError(
                f'{CONFIG_FILE} must have "format": {FORMAT!r} and the keys '
                f"{list(_CONFIG_KEYS)}; it is not a keras-resblocks config. Received: format={found!r}"
                + (f", keys={sorted(data)}" if isinstance(data, dict) else "")
            )
        _check_keys("config", data, _CONFIG_KEYS)
        if data["format_version"] != FORMAT_VERSION:
            raise CheckpointError(
                f'{CONFIG_FILE} must have "format_version": {FORMAT_VERSION} (the only version '
                f"this keras-resblocks reads). Received: format_version={data['format_version']!r}"
            )
        try:
            architecture = Architecture.from_dict(data["architecture"])
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{CONFIG_FILE} has an invalid `architecture`: {error}") from None
        model = data["model"]
        if not isinstance(model, dict):
            raise CheckpointError(
                f"`model` in {CONFIG_FILE} must be a JSON object. Received: {model!r}"
            )
        _check_keys("model", model, _MODEL_KEYS)
        return cls(
            architecture=architecture,
            **model,
            preprocessing=data["preprocessing"],
            labels=data["labels"],
        )

    def to_json(self):
        """The plain-JSON ``config.json`` (the layout of format version 1)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "architecture": self.architecture.to_dict(),
            "model": {
                "include_top": self.include_top,
                "num_classes": self.num_classes,
                "pooling": self.pooling,
                "classifier_activation": self.classifier_activation,
                "input_shape": list(self.input_shape),
            },
            "preprocessing": self.preprocessing,
            "labels": self.labels,
        }

    def model_kwargs(self):
        """The keyword arguments of :class:`ResNet` besides the architecture."""
        return dict(
            include_top=self.include_top,
            num_classes=self.num_classes,
            pooling=self.pooling,
            classifier_activation=self.classifier_activation,
            input_shape=self.input_shape,
            preprocessing=self.preprocessing,
        )


def _check_keys(block, data, expected):
    unknown = sorted(set(data) - set(expected))
    missing = [k for k in expected if k not in data]
    if unknown or missing:
        raise CheckpointError(
            f"The `{block}` block of {CONFIG_FILE} must have exactly the keys {list(expected)}"
            f" (unknown: {unknown}, missing: {missing}). Received: keys={sorted(data)}"
        )


# Keys a writer may record in metadata.json beside CheckpointMetadata's fields (they land
# in its ``extra``): what each holds, its type and its default. The trainer, the converters
# and the keras.applications port write them; the card, list_pretrained and the zoo read
# them through metadata_detail().
EXTRA_KEYS = {
    "model_name": (str, None, "the name the card gives the model (default: the Keras model's)"),
    "train_split": (str, "train", "the split the train_* metrics were measured on"),
    "eval_split": (str, "test", "the split the other metrics were measured on"),
    "data": (dict, {}, "the data a trainer used: source and split sizes"),
    "data_note": (str, None, "a sentence about the data: how it differs from the usual copy"),
    "measurement": (dict, {}, "how a ported checkpoint's metrics were measured here"),
    "upstream": (
        dict,
        {},
        "weights converted from a Hub repository: repo_id, revision (the commit), file, its "
        "sha256 as the Hub reported and the download had, architecture, tag, license",
    ),
    "input_size": (list, None, "[height, width] the weights were made for"),
    "interpolation": (str, None, "how the weights expect images resized (timm's name)"),
    "crop_fraction": (float, None, "the centre crop the weights expect, as a fraction of the side"),
}


def metadata_detail(meta, key):
    """One of :data:`EXTRA_KEYS` of a ``metadata.json`` dict: its value, or its default
    where it is absent or of another type.

    Example:

    >>> from keras_resblocks.checkpoints.format import metadata_detail
    >>> metadata_detail({"data": {"train": 45000}}, "data")["train"], metadata_detail({}, "eval_split")
    (45000, 'test')
    >>> metadata_detail({}, "seed")
    Traceback (most recent call last):
    ...
    KeyError: "Not a metadata key of EXTRA_KEYS. Received: 'seed'"
    """
    if key not in EXTRA_KEYS:
        raise KeyError(f"Not a metadata key of EXTRA_KEYS. Received: {key!r}")
    kind, default, _ = EXTRA_KEYS[key]
    value = meta.get(key)
    if isinstance(value, kind):
        return value
    return dict(default) if isinstance(default, dict) else default


@dataclasses.dataclass(frozen=True)
class CheckpointMetadata:
    """``metadata.json``: the weights' sha256 and how the checkpoint was made and measured.

    ``metrics`` maps a metric's name to a finite number (:func:`save_pretrained`
    also wants the ``command`` that measured them); ``reference`` records the optional reference
    batch; ``files`` the sha256 of ``config.json`` and ``README.md`` (loading requires the
    config's); ``extra`` holds any further key a writer chose to record.

    Example:

    >>> from keras_resblocks.checkpoints import CheckpointMetadata
    >>> meta = CheckpointMetadata(sha256="0" * 64, metrics={"accuracy": 0.9}, command="evaluate")
    >>> CheckpointMetadata.from_json(meta.to_json()) == meta
    True
    >>> CheckpointMetadata(sha256="0" * 64, metrics={"top1": "high"})
    Traceback (most recent call last):
    ...
    keras_resblocks.checkpoints.format.CheckpointError: Metric 'top1' must be a finite number (leave out what was not measured). Received: top1='high'
    """

    sha256: str
    package_version: str | None = None
    keras_version: str | None = None
    backend: str | None = None
    dataset: str | None = None
    recipe: dict | None = None
    metrics: dict | None = None
    command: str | None = None
    reference: dict | None = None
    extra: dict = dataclasses.field(default_factory=dict)
    files: dict | None = None

    def __post_init__(self):
        if not isinstance(self.sha256, str) or not _SHA256.match(self.sha256):
            raise CheckpointError(
                f'{METADATA_FILE} must record the weights\' "sha256" as 64 hex digits. '
                f"Received: sha256={self.sha256!r}"
            )
        if self.metrics is not None and not isinstance(self.metrics, dict):
            raise CheckpointError(
                f"`metrics` must be null or an object of numbers. Received: metrics={self.metrics!r}"
            )
        for metric, value in (self.metrics or {}).items():
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise CheckpointError(
                    f"Metric {metric!r} must be a finite number (leave out what was not "
                    f"measured). Received: {metric}={value!r}"
                )
        if self.command is not None and not isinstance(self.command, str):
            raise CheckpointError(
                f"`command` must be null or the command line, a string. Received: command={self.command!r}"
            )
        entry = self.reference
        if entry is not None and (
            not isinstance(entry, dict)
            or entry.get("file") != REFERENCE_FILE
            or not isinstance(entry.get("sha256"), str)
        ):
            raise CheckpointError(
                f'`reference` in {METADATA_FILE} must be null or an object with "file": '
                f'{REFERENCE_FILE!r} and its "sha256". Received: reference={entry!r}'
            )
        if self.files is not None and not (
            isinstance(self.files, dict)
            and set(self.files) <= set(HASHED_FILES)
            and all(isinstance(v, str) and _SHA256.match(v) for v in self.files.values())
        ):
            raise CheckpointError(
                f"`files` in {METADATA_FILE} must map some of {list(HASHED_FILES)} to their "
                f"sha256 (64 hex digits). Received: files={self.files!r}"
            )
        clash = sorted(set(self.extra) & set(_RESERVED_METADATA))
        if clash:
            raise CheckpointError(
                f"Reserved metadata key(s) {clash}. Received: {sorted(self.extra)}"
            )

    @classmethod
    def from_json(cls, data):
        """Validate a parsed ``metadata.json``; unknown keys go to ``extra``."""
        if not isinstance(data, dict):
            raise CheckpointError(
                f"{METADATA_FILE} must hold a JSON object. Received: {type(data).__name__}"
            )
        if (
            data.get("format", FORMAT) != FORMAT
            or data.get("format_version", FORMAT_VERSION) != FORMAT_VERSION
        ):
            raise CheckpointError(
                f"{METADATA_FILE} must be of format {FORMAT!r} version {FORMAT_VERSION}. Received: "
                f"format={data.get('format')!r}, format_version={data.get('format_version')!r}"
            )
        fields = {name: data[name] for name in _METADATA_FIELDS if name in data}
        if "sha256" not in fields:
            raise CheckpointError(
                f'{METADATA_FILE} must record the weights\' "sha256". Received: keys={sorted(data)}'
            )
        extra = {k: v for k, v in data.items() if k not in _RESERVED_METADATA}
        return cls(**fields, extra=extra)

    def to_json(self):
        """The plain-JSON ``metadata.json``, keys in the order format version 1 writes them."""
        data = {"format": FORMAT, "format_version": FORMAT_VERSION}
        data.update(
            {
                name: getattr(self, name)
                for name in _METADATA_FIELDS
                if name not in ("reference", "files")
            }
        )
        data.update(self.extra)
        if self.reference is not None:
            data["reference"] = self.reference
        if self.files is not None:
            data["files"] = self.files
        return data


_METADATA_FIELDS = tuple(
    f.name for f in dataclasses.fields(CheckpointMetadata) if f.name != "extra"
)
_RESERVED_METADATA = ("format", "format_version") + _METADATA_FIELDS
