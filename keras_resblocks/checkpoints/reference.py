"""The reference batch: a few inputs and the float32 outputs a checkpoint gave on them."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import keras
import numpy as np
import safetensors.numpy

from keras_resblocks.checkpoints.format import (
    FORMAT,
    METADATA_FILE,
    REFERENCE_ATOL,
    REFERENCE_FILE,
    REFERENCE_RTOL,
    CheckpointError,
    MissingFileError,
    ReferenceMismatchError,
)
from keras_resblocks.checkpoints.io import read_metadata, sha256_of, verify_sha256
from keras_resblocks.checkpoints.load import LoadReport, load_checkpoint

# The reference batch is a check, not a data set: a few images keep the file small.
MAX_REFERENCE_INPUTS = 64
REFERENCE_TENSORS = ("inputs", "outputs", "logits")


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
def float32_inference():
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


def check_reference_inputs(inputs, image_shape):
    array = np.asarray(keras.ops.convert_to_numpy(inputs))
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"`reference_inputs` must be uint8 or floating-point images. Received: dtype={array.dtype}"
        )
    fits = array.ndim == 1 + len(image_shape) and all(
        n is None or n == m for n, m in zip(image_shape, array.shape[1:])
    )
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


def reference_outputs(model, inputs):
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
    return {
        name: np.ascontiguousarray(keras.ops.convert_to_numpy(value), dtype="float32")
        for name, value in result.items()
    }


def write_reference(directory, inputs, weights_sha256):
    """Load the checkpoint in ``directory`` as a user would, write its reference batch."""
    with float32_inference():
        loaded = load_checkpoint(directory, expected_sha256=weights_sha256)
        outputs = reference_outputs(loaded, inputs)
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
    >>> from keras_resblocks.checkpoints import read_reference
    >>> arch = Architecture(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2])
    >>> path = save_pretrained(ResNet(arch, num_classes=3, input_shape=(8, 8, 3)),
    ...                        tempfile.mkdtemp() + "/tiny")
    >>> read_reference(path)
    Traceback (most recent call last):
    ...
    keras_resblocks.checkpoints.format.MissingFileError: ... has no reference batch: metadata.json records none. ...
    """
    directory = Path(directory)
    entry = read_metadata(directory).reference
    path = directory / REFERENCE_FILE
    if entry is None:
        stray = (
            f"; the {REFERENCE_FILE} there is not recorded, so it cannot be trusted"
            if path.exists()
            else ""
        )
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


def compare_reference(
    model, *, name=None, atol=REFERENCE_ATOL, rtol=REFERENCE_RTOL, raise_on_mismatch=True
):
    """Run a loaded checkpoint's reference batch through ``model``; compare with the stored outputs.

    ``model`` must have been loaded whole from a checkpoint, in float32 (see
    :func:`keras_resblocks.verify_reference`, which also takes a name, a Hub repo or
    a directory); ``name`` is how errors and the report call it (by default its
    directory). Returns a :class:`ReferenceReport`; raises
    :class:`ReferenceMismatchError` when an output differs by more than
    ``atol + rtol * |recorded|`` (unless ``raise_on_mismatch=False``).

    Example:

    >>> import tempfile
    >>> import numpy as np
    >>> from keras_resblocks import Architecture, ResNet, load_checkpoint, save_pretrained
    >>> from keras_resblocks.checkpoints import compare_reference
    >>> arch = Architecture(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2])
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype="uint8")
    >>> path = save_pretrained(ResNet(arch, num_classes=3, input_shape=(8, 8, 3)),
    ...                        tempfile.mkdtemp() + "/tiny", reference_inputs=images)
    >>> compare_reference(load_checkpoint(path)).allclose
    True
    """
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
    directory = load_report.source
    name = directory if name is None else name
    entry, tensors = read_reference(directory)
    inputs = check_reference_inputs(tensors["inputs"], model.image_shape)
    with float32_inference():
        actual = reference_outputs(model, inputs)
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
        source=name,
        backend=keras.backend.backend(),
        recorded_backend=entry.get("backend", "unknown"),
        num_inputs=len(tensors["inputs"]),
        max_abs_diff=max(diffs.values()),
        diffs=diffs,
        allclose=not failing,
        atol=atol,
        rtol=rtol,
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
