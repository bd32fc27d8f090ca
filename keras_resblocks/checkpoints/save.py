"""Saving: write a :class:`ResNet` as a checkpoint directory, all files or none."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import safetensors.numpy

from keras_resblocks.checkpoints.card import model_card
from keras_resblocks.checkpoints.format import (
    _RESERVED_METADATA,
    CARD_FILE,
    CONFIG_FILE,
    FORMAT,
    METADATA_FILE,
    WEIGHTS_FILE,
    CheckpointConfig,
    CheckpointError,
    CheckpointMetadata,
)
from keras_resblocks.checkpoints.io import (
    check_overwritable,
    check_weights,
    replacing_directory,
    sha256_of,
    write_json,
)
from keras_resblocks.checkpoints.reference import check_reference_inputs, write_reference
from keras_resblocks.models import ResNet


def save_pretrained(
    model,
    directory,
    *,
    labels=None,
    dataset=None,
    metrics=None,
    recipe=None,
    command=None,
    license="apache-2.0",
    reference_inputs=None,
    overwrite=False,
    **metadata,
):
    """Write ``model`` as a checkpoint directory (config, safetensors, metadata, card).

    ``directory`` must not exist yet or be empty; a checkpoint already there is
    replaced only with ``overwrite=True``, and a directory holding anything else
    never is (see :func:`~keras_resblocks.checkpoints.io.check_overwritable`). The
    directory is first written beside the target under a temporary name and
    then renamed into place, so a failure midway leaves an existing checkpoint
    untouched. ``metrics`` (``{"accuracy": 0.91, ...}``) must come with the
    ``command`` that measured them; both go into the model card and its
    ``model-index``. ``dataset`` is the Hub dataset id the model was trained and
    evaluated on (``train_split`` / ``eval_split`` in ``metadata`` name the splits,
    by default ``"train"`` and ``"test"``). Any further keyword is stored in
    ``metadata.json``. The config and metadata are checked by the same schema that
    loading uses (:class:`CheckpointConfig`, :class:`CheckpointMetadata`), so
    nothing is written that :func:`load_checkpoint` would refuse.

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
    _check_arguments(model, metrics, command, metadata)
    config = CheckpointConfig.from_model(model, labels=labels)
    described = dict(dataset=dataset, recipe=recipe, metrics=metrics, command=command)
    # Checked before anything is written; the sha256 is filled in once the weights are.
    CheckpointMetadata(sha256="0" * 64, **described, extra=metadata)
    if reference_inputs is not None:
        reference_inputs = check_reference_inputs(reference_inputs, model.image_shape)
    check_overwritable(directory, overwrite)  # before any work
    tensors = _weight_tensors(model)

    try:
        _write_files(
            directory,
            overwrite,
            model,
            config,
            tensors,
            described,
            metadata,
            reference_inputs,
            license,
        )
    except ValueError:
        raise
    except Exception as error:  # a full disk: OSError, or safetensors' own SafetensorError
        raise CheckpointError(
            f"Could not write the checkpoint ({type(error).__name__}: {error}); nothing at its "
            f"path was changed. Received: {str(directory)!r}"
        ) from None
    return Path(directory)


def _write_files(
    directory, overwrite, model, config, tensors, described, metadata, reference_inputs, license
):
    with replacing_directory(directory, overwrite) as staging:
        write_json(staging / CONFIG_FILE, config.to_json())
        safetensors.numpy.save_file(
            tensors, str(staging / WEIGHTS_FILE), metadata={"format": FORMAT}
        )
        meta = CheckpointMetadata(
            files={CONFIG_FILE: sha256_of(staging / CONFIG_FILE)},
            sha256=sha256_of(staging / WEIGHTS_FILE),
            package_version=_package_version(),
            keras_version=keras.__version__,
            backend=keras.backend.backend(),
            **described,
            extra=metadata,
        )
        write_json(staging / METADATA_FILE, meta.to_json())
        if reference_inputs is not None:
            entry = write_reference(staging, reference_inputs, meta.sha256)
            meta = dataclasses.replace(meta, reference=entry)
            write_json(staging / METADATA_FILE, meta.to_json())
        _write_card(staging, model, config, meta, license, Path(directory).name)


def _check_arguments(model, metrics, command, metadata):
    """Refuse what :func:`save_pretrained` cannot write: a model that is not a
    :class:`ResNet`, metrics without the command that measured them, a reserved
    metadata key."""
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
    clash = sorted(set(metadata) & set(_RESERVED_METADATA))
    if clash:
        raise ValueError(f"Reserved metadata key(s) {clash}. Received: {sorted(metadata)}")


def _weight_tensors(model):
    """``model``'s variables as numpy arrays keyed by their paths; refused now when two
    share a path, or as loading would refuse them (see
    :func:`~keras_resblocks.checkpoints.io.check_weights`)."""
    tensors = {}
    for variable in model.variables:
        if variable.path in tensors:
            raise ValueError(
                f"Two variables share the path {variable.path!r}; keys must be unique."
            )
        tensors[variable.path] = np.ascontiguousarray(keras.ops.convert_to_numpy(variable))
    check_weights(tensors, f"model {model.name!r}")
    return tensors


def _write_card(staging, model, config, meta, license, name):
    """Write the model card, then record its hash in metadata.json, which then covers
    every file."""
    # Until it is published (which points it to hf://owner/name), the card loads the
    # checkpoint from its directory, named without this machine's folders.
    model_card(model, config, meta, license, f"path/to/{name}").save(staging / CARD_FILE)
    meta = dataclasses.replace(
        meta, files=dict(meta.files, **{CARD_FILE: sha256_of(staging / CARD_FILE)})
    )
    write_json(staging / METADATA_FILE, meta.to_json())


def checkpoint_config(model, labels=None):
    """The ``config.json`` of a :class:`ResNet`: plain JSON, our schema only."""
    return CheckpointConfig.from_model(model, labels=labels).to_json()


def _package_version():
    from keras_resblocks import __version__

    return __version__
