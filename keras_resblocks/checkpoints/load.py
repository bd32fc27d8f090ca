"""Loading: build the model a checkpoint directory describes and assign its verified weights."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from keras_resblocks.checkpoints.format import (
    CONFIG_FILE,
    HEAD_PREFIX,
    WEIGHTS_FILE,
    CheckpointError,
    Provenance,
)
from keras_resblocks.checkpoints.io import read_checkpoint
from keras_resblocks.models import ResNet

logger = logging.getLogger("keras_resblocks")
_MAX_LISTED = 5


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What :func:`load_checkpoint` loaded, set on the model as ``model.load_report``.

    ``skipped`` lists the checkpoint weights that were *not* loaded (the classifier,
    when ``num_classes`` changes or ``include_top=False``); ``reinitialized`` the
    model weights that kept their fresh initialisation; ``provenance`` where the
    checkpoint directory came from.
    """

    source: str
    sha256: str
    loaded: tuple
    skipped: tuple = ()
    reinitialized: tuple = ()
    reference_sha256: str | None = None
    provenance: Provenance | None = None

    @property
    def complete(self):
        return not self.skipped and not self.reinitialized


def load_checkpoint(
    directory,
    *,
    expected_sha256=None,
    num_classes=None,
    include_top=True,
    input_shape=None,
    pooling=None,
):
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
    provenance = Provenance(Path(directory), source=str(directory), expected_sha256=expected_sha256)
    return load_resolved(
        provenance,
        num_classes=num_classes,
        include_top=include_top,
        input_shape=input_shape,
        pooling=pooling,
    )


def load_resolved(
    provenance, *, num_classes=None, include_top=True, input_shape=None, pooling=None
):
    """:func:`load_checkpoint` for a directory that :func:`resolve` found (a :class:`Provenance`)."""
    directory = Path(provenance.directory)
    files = read_checkpoint(
        directory,
        provenance.expected_sha256,
        provenance.recovery,
        root=provenance.root,
        expected_metadata_sha256=provenance.expected_metadata_sha256,
    )
    config, tensors = files.config, files.tensors

    kwargs = config.model_kwargs()
    saved_classes = config.num_classes
    head_kept = include_top and config.include_top and num_classes in (None, saved_classes)
    kwargs.update(include_top=include_top, pooling=None if include_top else pooling)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    model = ResNet(config.architecture, **kwargs)

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
    problems += [
        f"{name}: in the checkpoint, not in the model" for name in wanted if name not in expected
    ]
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
    if files.reference is not None:
        _check_it_computes(model, files.reference, directory)

    report = LoadReport(
        source=str(directory),
        sha256=files.sha256,
        loaded=tuple(sorted(expected)),
        skipped=tuple(skipped),
        reinitialized=tuple(reinitialized),
        reference_sha256=files.reference_sha256,
        provenance=provenance,
    )
    if skipped or reinitialized:
        why = (
            f"num_classes={num_classes} differs from the checkpoint's {saved_classes}"
            if include_top
            else "include_top=False"
        )
        logger.warning(
            "Loaded %d weights from %s; the classifier was not loaded (%s): skipped %s, "
            "freshly initialised %s.",
            len(expected),
            directory,
            why,
            list(skipped),
            list(reinitialized),
        )
    model.load_report = report
    model.labels = config.labels if head_kept else None
    return model


def _check_it_computes(model, reference, directory):
    """Refuse weights that are finite but make the outputs overflow: run the checkpoint's
    own reference images (a few, stored with it; ``reference``, the file's bytes as their
    hash was checked) through the loaded model."""
    import keras
    import numpy as np
    import safetensors.numpy

    try:
        inputs = safetensors.numpy.load(reference).get("inputs")
    except Exception:  # a malformed reference batch: verify_reference says how
        return
    wanted = tuple(model.input_shape[1:])
    if (
        inputs is None
        or len(wanted) != inputs.ndim - 1
        or any(n is not None and n != m for n, m in zip(wanted, inputs.shape[1:]))
    ):
        return  # none, or of another size: verify_reference says so, with the shapes
    outputs = keras.ops.convert_to_numpy(model(np.asarray(inputs, "float32"), training=False))
    if not np.isfinite(outputs).all():
        raise CheckpointError(
            f"The weights in {WEIGHTS_FILE} are finite but the model's outputs on its own "
            f"reference images are not (the weights overflow float32); it cannot compute. "
            f"Received: {str(directory)!r}"
        )


def _shape(shape):
    return "(" + ",".join(str(n) for n in shape) + ")"
