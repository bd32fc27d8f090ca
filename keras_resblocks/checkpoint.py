"""The checkpoint format: a directory laid out exactly like its Hugging Face Hub repo.

A checkpoint holds four files, and optionally a fifth:

- ``config.json``: ``{"format": "keras-resblocks", "format_version": 1,
  "architecture": <Architecture.to_dict()>, "model": {"include_top", "num_classes",
  "pooling", "classifier_activation", "input_shape"}, "preprocessing": ..., "labels": ...}``.
  It is read with this package's own schema only (:meth:`Architecture.from_dict` and a
  strict check of the other blocks); Keras deserialization, which can import modules
  and run code, is never used on it.
- ``model.safetensors``: every model variable (trainable or not), keyed by
  ``variable.path``. No pickle, HDF5 or ``.keras`` file is ever read.
- ``metadata.json``: the sha256 of ``model.safetensors``, versions, backend, dataset,
  recipe and measured metrics.
- ``README.md``: a Hub model card.
- ``reference.safetensors`` (optional): a few stored inputs and the float32 outputs
  the checkpoint gave on them when it was written, so that :func:`verify_reference`
  can show, on any backend, that it still computes the same function. Its sha256 is
  in ``metadata.json`` under ``"reference"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
import safetensors.numpy
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from keras_resblocks.config import Architecture
from keras_resblocks.models import POOLINGS, ResNet

logger = logging.getLogger("keras_resblocks")

FORMAT = "keras-resblocks"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
CARD_FILE = "README.md"
REFERENCE_FILE = "reference.safetensors"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE)
CHECKPOINT_FILES = REQUIRED_FILES + (CARD_FILE,)
HEAD_PREFIX = "predictions/"

# Formats we refuse to read: pickle can run arbitrary code on load, and HDF5 /
# .keras archives carry Keras configs that deserialize into arbitrary layers.
UNSAFE_SUFFIXES = (".bin", ".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".h5", ".hdf5",
                   ".keras", ".joblib", ".npy", ".npz", ".msgpack", ".pb")

_CONFIG_KEYS = ("format", "format_version", "architecture", "model", "preprocessing", "labels")
_MODEL_KEYS = ("include_top", "num_classes", "pooling", "classifier_activation", "input_shape")
# A name outside this list would reach keras.activations.get(), which resolves
# registered objects: keep the accepted values to plain, known functions.
CLASSIFIER_ACTIVATIONS = (None, "softmax", "sigmoid", "linear")
_RESERVED_METADATA = ("sha256", "package_version", "keras_version", "backend", "dataset",
                      "recipe", "metrics", "command", "format", "format_version", "reference")
_MAX_LISTED = 5
# The reference batch is a check, not a data set: a few images keep the file small.
MAX_REFERENCE_INPUTS = 64
REFERENCE_TENSORS = ("inputs", "outputs", "logits")
# float32 inference of the same weights on TensorFlow and JAX (CPU) differs by
# rounding only; see docs/checkpoints.md for the measured differences.
REFERENCE_ATOL = 1e-3
REFERENCE_RTOL = 1e-3


class CheckpointError(ValueError):
    """A checkpoint is missing a file, is malformed, or does not fit the model."""


class MissingFileError(CheckpointError):
    """A file a checkpoint needs is not there."""


class ChecksumError(CheckpointError):
    """A weights file's sha256 is not the expected one."""


class ReferenceMismatchError(CheckpointError):
    """A checkpoint does not reproduce the outputs stored in its reference batch."""


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What :func:`load_checkpoint` loaded, set on the model as ``model.load_report``.

    ``skipped`` lists the checkpoint weights that were *not* loaded (the classifier,
    when ``num_classes`` changes or ``include_top=False``); ``reinitialized`` the
    model weights that kept their fresh initialisation.
    """

    source: str
    sha256: str
    loaded: tuple
    skipped: tuple = ()
    reinitialized: tuple = ()
    reference_sha256: str | None = None

    @property
    def complete(self):
        return not self.skipped and not self.reinitialized


def sha256_of(path):
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _package_version():
    from keras_resblocks import __version__

    return __version__


# -- writing ---------------------------------------------------------------------------
def save_pretrained(model, directory, *, labels=None, dataset=None, metrics=None, recipe=None,
                    command=None, license="apache-2.0", reference_inputs=None, **metadata):
    """Write ``model`` as a checkpoint directory (config, safetensors, metadata, card).

    The directory is first written beside the target under a temporary name and
    then renamed into place, so a failure midway leaves an existing checkpoint
    untouched. ``metrics`` (``{"accuracy": 0.91, ...}``) must come with the
    ``command`` that measured them; both go into the model card and its
    ``model-index``. ``dataset`` is the Hub dataset id the model was trained and
    evaluated on (``train_split`` / ``eval_split`` in ``metadata`` name the splits,
    by default ``"train"`` and ``"test"``). Any further keyword is stored in
    ``metadata.json``.

    ``reference_inputs`` (a few images shaped like the model input, uint8 or
    float; at most 64) adds ``reference.safetensors``: the checkpoint just
    written is loaded back with :func:`load_checkpoint` under the float32 policy,
    exactly as a user would load it (not ``model`` itself, which may run in
    mixed precision), and its inference-mode outputs on these inputs are stored
    with them, so that :func:`verify_reference` can later check the checkpoint
    on any backend.

    Example:

    >>> import tempfile
    >>> from keras_resblocks import Architecture, ResNet, save_pretrained
    >>> arch = Architecture(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2])
    >>> model = ResNet(arch, num_classes=3, input_shape=(8, 8, 3))
    >>> path = save_pretrained(model, tempfile.mkdtemp() + "/tiny", labels=["a", "b", "c"])
    >>> sorted(p.name for p in path.iterdir())
    ['README.md', 'config.json', 'metadata.json', 'model.safetensors']
    """
    if not isinstance(model, ResNet):
        raise ValueError(
            "`save_pretrained` writes keras_resblocks.ResNet models (their config is an "
            f"Architecture). Received: model of type {type(model).__name__}"
        )
    if metrics and not command:
        raise ValueError(
            "Metrics must come with the `command` that measured them, so the model card "
            f"can say how to reproduce them. Received: metrics={metrics!r}, command={command!r}"
        )
    for metric, value in (metrics or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(
                f"Metric {metric!r} must be a finite number (leave out what was not "
                f"measured). Received: {metric}={value!r}"
            )
    clash = sorted(set(metadata) & set(_RESERVED_METADATA))
    if clash:
        raise ValueError(f"Reserved metadata key(s) {clash}. Received: {sorted(metadata)}")
    config = checkpoint_config(model, labels=labels)
    if reference_inputs is not None:
        reference_inputs = _check_reference_inputs(reference_inputs, model.image_shape)
    tensors = {}
    for variable in model.variables:
        if variable.path in tensors:
            raise ValueError(f"Two variables share the path {variable.path!r}; keys must be unique.")
        tensors[variable.path] = np.ascontiguousarray(keras.ops.convert_to_numpy(variable))

    target = Path(directory)
    _check_overwritable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        _write_json(staging / CONFIG_FILE, config)
        safetensors.numpy.save_file(tensors, str(staging / WEIGHTS_FILE),
                                    metadata={"format": FORMAT})
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "sha256": sha256_of(staging / WEIGHTS_FILE),
            "package_version": _package_version(),
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
            "dataset": dataset,
            "recipe": recipe,
            "metrics": metrics,
            "command": command,
            **metadata,
        }
        _write_json(staging / METADATA_FILE, meta)
        if reference_inputs is not None:
            meta["reference"] = _write_reference(staging, reference_inputs, meta["sha256"])
            _write_json(staging / METADATA_FILE, meta)
        _model_card(model, config, meta, license).save(staging / CARD_FILE)
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def checkpoint_config(model, labels=None):
    """The ``config.json`` of a :class:`ResNet`: plain JSON, our schema only."""
    if labels is not None:
        labels = [str(label) for label in labels]
        if model.include_top and len(labels) != model.num_classes:
            raise ValueError(
                f"`labels` must name each of the {model.num_classes} classes. "
                f"Received: {len(labels)} labels"
            )
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": model.architecture.to_dict(),
        "model": {
            "include_top": model.include_top,
            "num_classes": model.num_classes,
            "pooling": model.pooling,
            "classifier_activation": model.classifier_activation,
            "input_shape": list(model.image_shape),
        },
        "preprocessing": model.preprocessing,
        "labels": labels,
    }


def _write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False, allow_nan=False)
        f.write("\n")


def _check_overwritable(target):
    # Only ever replace something that is itself a checkpoint: never wipe a
    # user's unrelated directory because its path was mistyped.
    if not target.exists():
        return
    if not target.is_dir():
        raise ValueError(f"`directory` exists and is not a directory. Received: {str(target)!r}")
    if any(target.iterdir()) and not (target / CONFIG_FILE).is_file():
        raise ValueError(
            "`directory` exists, is not empty and is not a keras-resblocks checkpoint "
            f"(no {CONFIG_FILE}); refusing to replace it. Received: {str(target)!r}"
        )


def _swap_into_place(staging, target):
    # POSIX cannot rename over a non-empty directory, so the old checkpoint is
    # first moved aside and only deleted once the new one is in place.
    if not target.exists():
        os.replace(staging, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, old / target.name)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(old / target.name, target)
        raise
    finally:
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)


def _metric_split(metric, train_split, eval_split):
    """The split a metric was measured on, from its name (``train_accuracy`` -> train).

    >>> _metric_split("train_accuracy", "train", "test"), _metric_split("val_accuracy", "train", "test")
    ('train', 'validation')
    >>> _metric_split("test_accuracy", "train", "test"), _metric_split("accuracy", "train", "test")
    ('test', 'test')
    """
    prefix = metric.split("_", 1)[0]
    return {"train": train_split, "val": "validation", "test": eval_split}.get(prefix, eval_split)


def _data_lines(meta):
    """The card's account of the data a trainer recorded: its source, split sizes and note."""
    data, lines = meta.get("data"), []
    if isinstance(data, dict) and data.get("source"):
        sizes = ", ".join(f"{data[k]:,} {k}" for k in ("train", "validation", "test")
                          if isinstance(data.get(k), int))
        lines.append(f"Source: {data['source']}" + (f" ({sizes} images)." if sizes else "."))
    if meta.get("data_note"):
        lines.append(str(meta["data_note"]))
    return lines


def _model_card(model, config, meta, license):
    dataset, metrics, command = meta["dataset"], meta["metrics"] or {}, meta["command"]
    train_split = meta.get("train_split", "train")
    eval_split = meta.get("eval_split", "test")
    name = meta.get("model_name", model.name)
    eval_results = [
        EvalResult(task_type="image-classification", dataset_type=dataset or "unknown",
                   dataset_name=dataset or "unknown",
                   dataset_split=_metric_split(metric, train_split, eval_split),
                   metric_type=metric, metric_value=float(value))
        for metric, value in metrics.items()
    ]
    card_data = ModelCardData(
        library_name="keras-resblocks",
        license=license,
        tags=["keras", "resnet", "image-classification", "keras-resblocks"],
        datasets=[dataset] if dataset else None,
        pipeline_tag="image-classification",
        model_name=name,
        eval_results=eval_results or None,
    )
    arch = config["architecture"]
    lines = [
        f"# {name}",
        "",
        f"A residual network from [keras-resblocks](https://pypi.org/project/keras-resblocks/) "
        f"({model.architecture.depth} weighted layers, {model.count_params():,} parameters, "
        f"{arch['block']} blocks, stage depths {arch['stage_depths']}, widths {arch['stage_widths']}).",
        "",
        "```python",
        "from keras_resblocks import from_pretrained",
        'model = from_pretrained("hf://OWNER/REPO")  # or the local directory',
        "```",
        "",
        "## Data",
        "",
        (f"Trained on the `{train_split}` split of `{dataset}` and evaluated on its "
         f"`{eval_split}` split." if dataset else "Training data: not recorded."),
        f"Input: {config['model']['input_shape']} images; preprocessing: {config['preprocessing']}.",
        *_data_lines(meta),
        "",
        "## Results",
        "",
    ]
    if metrics:
        lines += ["| metric | value |", "| --- | --- |"]
        lines += [f"| {metric} | {value} |" for metric, value in metrics.items()]
        lines += ["", "Measured with:", "", "```bash", command, "```"]
    else:
        lines.append("No metrics were measured for this checkpoint.")
    if meta["recipe"]:
        lines += ["", "## Training recipe", "", "```json", json.dumps(meta["recipe"], indent=2), "```"]
    if meta.get("reference"):
        lines += ["", "## Reference batch", "",
                  f"`reference.safetensors` holds {meta['reference']['num_inputs']} inputs and the "
                  f"outputs this checkpoint gave on them ({meta['reference']['backend']} backend, "
                  "float32). Check that it computes the same on your backend:", "",
                  "```python", "from keras_resblocks import verify_reference",
                  'print(verify_reference("hf://OWNER/REPO"))  # or the local directory', "```"]
    lines += ["", f"Weights sha256: `{meta['sha256']}`; written with keras-resblocks "
              f"{meta['package_version']}, Keras {meta['keras_version']} ({meta['backend']} backend)."]
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")


# -- reading ---------------------------------------------------------------------------
def check_files(directory):
    """Raise a clear error unless ``directory`` holds the files a checkpoint needs."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MissingFileError(
            f"No checkpoint directory at {str(directory)!r}; expected a directory holding "
            f"{list(CHECKPOINT_FILES)}. Received: {str(directory)!r}"
        )
    present = sorted(p.name for p in directory.iterdir())
    missing = [name for name in REQUIRED_FILES if name not in present]
    if not missing:
        return
    raise missing_files_error(missing, present, where=str(directory))


def missing_files_error(missing, present, where):
    """The error for a checkpoint (local or remote) lacking ``missing`` files."""
    unsafe = [name for name in present if name.lower().endswith(UNSAFE_SUFFIXES)]
    if unsafe:
        return CheckpointError(
            f"{where} holds {unsafe}, formats keras-resblocks refuses to read (pickle and "
            f"HDF5/.keras files can run code or rebuild arbitrary layers). A keras-resblocks "
            f"checkpoint holds {list(CHECKPOINT_FILES)}. Received: files {present}"
        )
    return MissingFileError(
        f"{where} has no {', '.join(missing)}; a keras-resblocks checkpoint holds "
        f"{list(CHECKPOINT_FILES)}. Received: files {present}"
    )


def read_config(path):
    """Parse and validate a ``config.json`` with this package's schema only.

    Returns ``(architecture, model_kwargs, labels)``; anything unexpected (another
    format, unknown keys, a Keras layer config, a non-whitelisted activation) is a
    :class:`CheckpointError`. No code named in the file is imported or run.
    """
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"Cannot read {CONFIG_FILE} as JSON: {error}. Received: {str(path)!r}")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(
            f"{CONFIG_FILE} is not a keras-resblocks config (expected \"format\": {FORMAT!r} and "
            f"the keys {list(_CONFIG_KEYS)}). Received: format={found!r}"
            + (f", keys={sorted(config)}" if isinstance(config, dict) else "")
        )
    _check_keys("config", config, _CONFIG_KEYS)
    if config["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"This version of keras-resblocks reads format_version {FORMAT_VERSION}. "
            f"Received: format_version={config['format_version']!r}"
        )
    try:
        architecture = Architecture.from_dict(config["architecture"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"Invalid architecture in {CONFIG_FILE}: {error}") from None
    model = config["model"]
    if not isinstance(model, dict):
        raise CheckpointError(f"`model` must be a JSON object. Received: {model!r}")
    _check_keys("model", model, _MODEL_KEYS)
    bad = None
    if not isinstance(model["include_top"], bool):
        bad = "include_top"
    elif (isinstance(model["num_classes"], bool) or not isinstance(model["num_classes"], int)
          or model["num_classes"] <= 0):
        bad = "num_classes"
    elif model["pooling"] not in POOLINGS:
        bad = "pooling"
    elif model["classifier_activation"] not in CLASSIFIER_ACTIVATIONS:
        bad = "classifier_activation"
    elif not isinstance(model["input_shape"], list) or len(model["input_shape"]) != 3 or not all(
        n is None or (isinstance(n, int) and not isinstance(n, bool) and n > 0)
        for n in model["input_shape"]
    ):
        bad = "input_shape"
    if bad:
        raise CheckpointError(f"Invalid `model.{bad}` in {CONFIG_FILE}. Received: {bad}={model[bad]!r}")
    labels = config["labels"]
    if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
        raise CheckpointError(f"`labels` must be null or a list of strings. Received: labels={labels!r}")
    preprocessing = config["preprocessing"]
    if preprocessing is not None and not isinstance(preprocessing, dict):
        raise CheckpointError(f"`preprocessing` must be null or an object. Received: {preprocessing!r}")
    kwargs = dict(model, input_shape=tuple(model["input_shape"]), preprocessing=preprocessing)
    return architecture, kwargs, labels


def _check_keys(block, data, expected):
    unknown = sorted(set(data) - set(expected))
    missing = [k for k in expected if k not in data]
    if unknown or missing:
        raise CheckpointError(
            f"The `{block}` block of {CONFIG_FILE} must have exactly the keys {list(expected)}"
            f" (unknown: {unknown}, missing: {missing}). Received: keys={sorted(data)}"
        )


def read_metadata(path):
    try:
        with open(path, encoding="utf-8") as f:
            metadata = json.load(f)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"Cannot read {METADATA_FILE} as JSON: {error}. Received: {str(path)!r}")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("sha256"), str):
        raise CheckpointError(f"{METADATA_FILE} must be an object with a \"sha256\" string. "
                              f"Received: {str(path)!r}")
    return metadata


def verify_sha256(path, expected, hint=""):
    """Raise :class:`ChecksumError` unless the file's sha256 is ``expected``; return it."""
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumError(
            f"sha256 mismatch for {Path(path).name}: expected {expected}, got {actual}. The file "
            f"is corrupted or was changed after the checkpoint was written.{hint} "
            f"Received: {str(path)!r}"
        )
    return actual


def load_checkpoint(directory, *, expected_sha256=None, num_classes=None, include_top=True,
                    input_shape=None, pooling=None, _hint=""):
    """Build the :class:`ResNet` a checkpoint directory describes and load its weights.

    The weights' sha256 is checked (against ``expected_sha256`` if given, else the one
    in ``metadata.json``), and so is the optional ``reference.safetensors`` (against
    ``metadata.json``); names and shapes are all compared before anything is
    assigned. ``num_classes`` different from the checkpoint's, or
    ``include_top=False`` (with ``pooling`` for a feature vector), loads everything
    but the classifier ``predictions/*``: this is logged and recorded in
    ``model.load_report``. ``input_shape`` changes the input size (the convolutions
    do not depend on it). ``model.labels`` holds the class names when the head is
    the checkpoint's.

    Example:

    >>> import tempfile
    >>> from keras_resblocks import Architecture, ResNet, save_pretrained, load_checkpoint
    >>> arch = Architecture(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2])
    >>> path = save_pretrained(ResNet(arch, num_classes=3, input_shape=(8, 8, 3)),
    ...                        tempfile.mkdtemp() + "/tiny")
    >>> model = load_checkpoint(path, num_classes=5)
    >>> model.output_shape, model.load_report.skipped
    ((None, 5), ('predictions/bias', 'predictions/kernel'))
    """
    directory = Path(directory)
    check_files(directory)
    architecture, kwargs, labels = read_config(directory / CONFIG_FILE)
    weights_path = directory / WEIGHTS_FILE
    metadata = read_metadata(directory / METADATA_FILE)
    if expected_sha256 is None:
        expected_sha256 = metadata["sha256"]
    sha256 = verify_sha256(weights_path, expected_sha256, _hint)
    # The reference batch is optional; when it is there, it must be the one written.
    reference = _reference_entry(metadata)
    reference_sha256 = None
    if reference and (directory / REFERENCE_FILE).is_file():
        reference_sha256 = verify_sha256(directory / REFERENCE_FILE, reference["sha256"], _hint)

    saved_classes = kwargs["num_classes"]
    head_kept = include_top and kwargs["include_top"] and num_classes in (None, saved_classes)
    kwargs.update(include_top=include_top, pooling=None if include_top else pooling)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    if not head_kept:
        labels = None
    model = ResNet(architecture, **kwargs)

    try:
        tensors = safetensors.numpy.load_file(str(weights_path))
    except Exception as error:  # safetensors raises its own SafetensorError
        raise CheckpointError(f"Cannot read {WEIGHTS_FILE}: {error}. Received: {str(weights_path)!r}")
    variables = {v.path: v for v in model.variables}
    is_head = lambda name: name.startswith(HEAD_PREFIX)  # noqa: E731
    skipped = sorted(k for k in tensors if is_head(k)) if not head_kept else []
    reinitialized = sorted(k for k in variables if is_head(k)) if not head_kept else []
    wanted = {k: v for k, v in tensors.items() if k not in skipped}
    expected = {k: v for k, v in variables.items() if k not in reinitialized}
    problems = [
        f"{name}: checkpoint {_shape(wanted[name].shape)} vs model {_shape(expected[name].shape)}"
        for name in expected
        if name in wanted and tuple(wanted[name].shape) != tuple(expected[name].shape)
    ]
    problems += [f"{name}: missing from the checkpoint" for name in expected if name not in wanted]
    problems += [f"{name}: in the checkpoint, not in the model" for name in wanted if name not in expected]
    if problems:
        shown = "; ".join(problems[:_MAX_LISTED])
        more = f" (and {len(problems) - _MAX_LISTED} more)" if len(problems) > _MAX_LISTED else ""
        raise CheckpointError(
            f"The weights in {WEIGHTS_FILE} do not fit the architecture in {CONFIG_FILE}; "
            f"nothing was loaded. {len(problems)} mismatch(es): {shown}{more}. "
            f"Received: {str(directory)!r}"
        )
    for name, variable in expected.items():
        variable.assign(wanted[name])

    report = LoadReport(source=str(directory), sha256=sha256, loaded=tuple(sorted(expected)),
                        skipped=tuple(skipped), reinitialized=tuple(reinitialized),
                        reference_sha256=reference_sha256)
    if skipped or reinitialized:
        why = (f"num_classes={num_classes} differs from the checkpoint's {saved_classes}"
               if include_top else "include_top=False")
        logger.warning(
            "Loaded %d weights from %s; the classifier was not loaded (%s): skipped %s, "
            "freshly initialised %s.", len(expected), directory, why, list(skipped),
            list(reinitialized))
    model.load_report = report
    model.labels = labels
    return model


def _shape(shape):
    return "(" + ",".join(str(n) for n in shape) + ")"


# -- the reference batch ---------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ReferenceReport:
    """What :func:`verify_reference` compared.

    ``diffs`` maps each stored output (``"outputs"``, and ``"logits"`` for a model
    with its classifier) to its largest absolute difference from the outputs
    computed now; ``max_abs_diff`` is the largest of them; ``allclose`` says
    whether every output is within ``atol + rtol * |recorded|``.
    """

    source: str
    backend: str
    recorded_backend: str
    num_inputs: int
    max_abs_diff: float
    diffs: dict
    allclose: bool
    atol: float
    rtol: float


@contextlib.contextmanager
def _float32_inference():
    """Run the enclosed model building and inference in full float32.

    The float32 policy, whatever the global one (a trainer may have left
    ``mixed_bfloat16``), and no TensorFloat-32: JAX and TensorFlow both use it
    by default for float32 convolutions and matrix products on recent NVIDIA
    GPUs, which would make a reference recorded there differ from CPU results
    by far more than rounding.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        backend = keras.backend.backend()
        if backend == "jax":
            import jax

            with jax.default_matmul_precision("highest"):
                yield
        elif backend == "tensorflow":
            import tensorflow as tf

            tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
            tf.config.experimental.enable_tensor_float_32_execution(False)
            try:
                yield
            finally:
                tf.config.experimental.enable_tensor_float_32_execution(tf32)
        else:
            yield
    finally:
        keras.config.set_dtype_policy(previous)


def _check_reference_inputs(inputs, image_shape):
    array = np.asarray(keras.ops.convert_to_numpy(inputs))
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"`reference_inputs` must be uint8 or floating-point images. Received: dtype={array.dtype}"
        )
    fits = array.ndim == 1 + len(image_shape) and all(
        n is None or n == m for n, m in zip(image_shape, array.shape[1:]))
    if not fits or not 1 <= len(array) <= MAX_REFERENCE_INPUTS:
        raise ValueError(
            f"`reference_inputs` must be 1 to {MAX_REFERENCE_INPUTS} images shaped like the "
            f"model input {(None,) + tuple(image_shape)}. Received: shape={array.shape}"
        )
    if array.dtype != np.uint8:
        array = array.astype("float32")
        if not np.isfinite(array).all():
            raise ValueError("`reference_inputs` must be finite. Received: NaN or Inf values")
    return np.ascontiguousarray(array)


def _reference_outputs(model, inputs):
    """``model``'s float32 outputs on ``inputs`` in inference mode, and its logits."""
    x = np.asarray(inputs, dtype="float32")  # uint8 pixels are exact in float32
    if model.include_top:
        head = model.get_layer("predictions")
        probe = keras.Model(model.input, [head.input, model.output])
        features, outputs = probe(x, training=False)
        # Dense.call without its activation: the logits, computed by the backend
        # like everything else, so they are checked too (softmax hides most of
        # their differences once a class is near-certain).
        logits = keras.ops.add(keras.ops.matmul(features, head.kernel), head.bias)
        result = {"outputs": outputs, "logits": logits}
    else:
        result = {"outputs": model(x, training=False)}
    return {name: np.ascontiguousarray(keras.ops.convert_to_numpy(value), dtype="float32")
            for name, value in result.items()}


def _write_reference(directory, inputs, weights_sha256):
    """Load the checkpoint in ``directory`` as a user would, write its reference batch."""
    with _float32_inference():
        loaded = load_checkpoint(directory, expected_sha256=weights_sha256)
        outputs = _reference_outputs(loaded, inputs)
    for name, value in outputs.items():
        if not np.isfinite(value).all():
            raise ValueError(
                f"The checkpoint's `{name}` on `reference_inputs` are not all finite; a "
                f"reference batch must be reproducible. Received: {value[~np.isfinite(value)][:3]}"
            )
    tensors = {"inputs": inputs, **outputs}
    path = directory / REFERENCE_FILE
    safetensors.numpy.save_file(tensors, str(path), metadata={"format": FORMAT})
    return {
        "file": REFERENCE_FILE,
        "sha256": sha256_of(path),
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "num_inputs": len(inputs),
        "tensors": sorted(tensors),
    }


def _reference_entry(metadata):
    entry = metadata.get("reference")
    if entry is None:
        return None
    if (not isinstance(entry, dict) or entry.get("file") != REFERENCE_FILE
            or not isinstance(entry.get("sha256"), str)):
        raise CheckpointError(
            f"`reference` in {METADATA_FILE} must be null or an object with \"file\": "
            f"{REFERENCE_FILE!r} and its \"sha256\". Received: reference={entry!r}"
        )
    return entry


def read_reference(directory):
    """The verified reference batch of a checkpoint directory: ``(entry, tensors)``.

    ``entry`` is the ``"reference"`` record of ``metadata.json``; ``tensors`` holds
    ``inputs``, ``outputs`` and, for a model with its classifier, ``logits``.
    Raises :class:`MissingFileError` when the checkpoint has no reference batch
    (or a file that ``metadata.json`` does not vouch for), :class:`ChecksumError`
    when the file is not the one recorded, :class:`CheckpointError` when it is
    malformed.

    Example:

    >>> import tempfile
    >>> from keras_resblocks import Architecture, ResNet, save_pretrained
    >>> from keras_resblocks.checkpoint import read_reference
    >>> arch = Architecture(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2])
    >>> path = save_pretrained(ResNet(arch, num_classes=3, input_shape=(8, 8, 3)),
    ...                        tempfile.mkdtemp() + "/tiny")
    >>> read_reference(path)
    Traceback (most recent call last):
    ...
    keras_resblocks.checkpoint.MissingFileError: ... has no reference batch: metadata.json records none. ...
    """
    directory = Path(directory)
    entry = _reference_entry(read_metadata(directory / METADATA_FILE))
    path = directory / REFERENCE_FILE
    if entry is None:
        stray = (f"; the {REFERENCE_FILE} there is not recorded, so it cannot be trusted"
                 if path.exists() else "")
        raise MissingFileError(
            f"{directory} has no reference batch: {METADATA_FILE} records none{stray}. Write one "
            f"with save_pretrained(..., reference_inputs=images). Received: {str(directory)!r}"
        )
    if not path.is_file():
        raise MissingFileError(
            f"{directory} has no {REFERENCE_FILE}, though {METADATA_FILE} records one "
            f"(sha256 {entry['sha256']}). Received: files {sorted(p.name for p in directory.iterdir())}"
        )
    verify_sha256(path, entry["sha256"])
    try:
        tensors = safetensors.numpy.load_file(str(path))
    except Exception as error:  # safetensors raises its own SafetensorError
        raise CheckpointError(f"Cannot read {REFERENCE_FILE}: {error}. Received: {str(path)!r}")
    unknown = sorted(set(tensors) - set(REFERENCE_TENSORS))
    missing = [name for name in ("inputs", "outputs") if name not in tensors]
    if unknown or missing or any(len(t) != len(tensors["inputs"]) for t in tensors.values()):
        raise CheckpointError(
            f"{REFERENCE_FILE} must hold `inputs`, `outputs` (and optionally `logits`), one row "
            f"per input. Received: {{{', '.join(f'{k}: {v.shape}' for k, v in tensors.items())}}}"
        )
    return entry, tensors


def verify_reference(source, *, atol=REFERENCE_ATOL, rtol=REFERENCE_RTOL, raise_on_mismatch=True):
    """Check that a checkpoint still computes, on this backend, what it computed when written.

    ``source`` is a model returned by :func:`load_checkpoint` /
    :func:`from_pretrained` (loaded with its own head, in float32), or anything
    :func:`from_pretrained` takes (a built-in name, ``"hf://owner/repo"``, a
    directory), which is then loaded in float32. The inputs stored in the
    checkpoint's ``reference.safetensors`` go through the model in inference
    mode and its outputs (and logits) are compared with the stored ones.

    Returns a :class:`ReferenceReport`. Raises :class:`ReferenceMismatchError`,
    naming the checkpoint and the largest difference, when an output differs by
    more than ``atol + rtol * |recorded|`` (unless ``raise_on_mismatch=False``);
    :class:`MissingFileError` when the checkpoint has no reference batch;
    :class:`ChecksumError` when the file is not the one recorded.

    The default tolerances hold for float32 inference across TensorFlow and JAX;
    see docs/checkpoints.md for the measured differences.

    Example:

    >>> import tempfile
    >>> import numpy as np
    >>> from keras_resblocks import Architecture, ResNet, save_pretrained, verify_reference
    >>> arch = Architecture(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2])
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype="uint8")
    >>> path = save_pretrained(ResNet(arch, num_classes=3, input_shape=(8, 8, 3)),
    ...                        tempfile.mkdtemp() + "/tiny", reference_inputs=images)
    >>> report = verify_reference(path)
    >>> report.allclose, report.num_inputs, sorted(report.diffs)
    (True, 2, ['logits', 'outputs'])
    """
    if isinstance(source, keras.Model):
        model = source
        load_report = getattr(model, "load_report", None)
        if not isinstance(load_report, LoadReport) or not load_report.complete:
            raise ValueError(
                "`verify_reference` needs a model loaded whole from a checkpoint (its own "
                "classifier, every weight loaded); pass the checkpoint itself instead. "
                f"Received: model {model.name!r} with load_report={load_report!r}"
            )
        if model.compute_dtype != "float32":
            raise ValueError(
                "`verify_reference` compares float32 outputs; this model computes in "
                f"{model.compute_dtype}. Pass the checkpoint instead, it is then loaded in "
                f"float32. Received: dtype_policy={model.dtype_policy.name!r}"
            )
        name = directory = load_report.source
    else:
        from keras_resblocks.hub import from_pretrained

        with _float32_inference():
            model = from_pretrained(source)
        name, directory = str(source), model.load_report.source
    entry, tensors = read_reference(directory)
    inputs = _check_reference_inputs(tensors["inputs"], model.image_shape)
    with _float32_inference():
        actual = _reference_outputs(model, inputs)
    diffs, failing = {}, []
    for key in sorted(set(tensors) - {"inputs"}):
        recorded = tensors[key]
        if key not in actual or actual[key].shape != recorded.shape:
            raise ReferenceMismatchError(
                f"{name} does not reproduce its reference batch: the stored `{key}` have shape "
                f"{recorded.shape}, the model gives {actual[key].shape if key in actual else 'none'}. "
                f"Received: {key} shape {recorded.shape}"
            )
        diffs[key] = float(np.max(np.abs(actual[key].astype("float64") - recorded)))
        if not np.allclose(actual[key], recorded, atol=atol, rtol=rtol):
            failing.append(key)
    report = ReferenceReport(
        source=name, backend=keras.backend.backend(),
        recorded_backend=entry.get("backend", "unknown"), num_inputs=len(tensors["inputs"]),
        max_abs_diff=max(diffs.values()), diffs=diffs, allclose=not failing, atol=atol, rtol=rtol,
    )
    if failing and raise_on_mismatch:
        # Name an output that is out of tolerance: the largest difference overall may be
        # within it (a large logit has a large rtol * |recorded|).
        worst = max(failing, key=diffs.get)
        raise ReferenceMismatchError(
            f"{name} does not reproduce its reference batch on the {report.backend} backend: "
            f"`{worst}` differ by up to {diffs[worst]:.3g} over {report.num_inputs} inputs, beyond "
            f"atol={atol}, rtol={rtol} (recorded on the {report.recorded_backend} backend, Keras "
            f"{entry.get('keras_version', 'unknown')}). The weights, or the code that computes with "
            f"them, changed. Received: max_abs_diff={diffs[worst]!r}"
        )
    return report
