"""Deprecated: the checkpoint format moved to :mod:`keras_resblocks.checkpoints`.

Every name this module had keeps working for one release; import from
``keras_resblocks`` (the public API) or ``keras_resblocks.checkpoints`` instead.
"""

import warnings

from keras_resblocks.checkpoints import *  # noqa: F401,F403
from keras_resblocks.checkpoints import (  # noqa: F401
    CHECKPOINT_FILES,
    CONFIG_FILE,
    METADATA_FILE,
    CheckpointConfig,
    CheckpointMetadata,
    load_checkpoint,
    read_json,
    save_pretrained,
)
from keras_resblocks.checkpoints import io as _io
from keras_resblocks.checkpoints.format import _RESERVED_METADATA  # noqa: F401
from keras_resblocks.checkpoints.load import logger  # noqa: F401
from keras_resblocks.checkpoints.reference import (  # noqa: F401
    check_reference_inputs as _check_reference_inputs,
    float32_inference as _float32_inference,
    reference_outputs as _reference_outputs,
    write_reference as _write_reference,
)
from keras_resblocks.pretrained import verify_reference  # noqa: F401

warnings.warn(
    "keras_resblocks.checkpoint is deprecated; import from keras_resblocks or "
    "keras_resblocks.checkpoints instead.",
    DeprecationWarning,
    stacklevel=2,
)


def read_config(path):
    """The old ``(architecture, model_kwargs, labels)`` of a ``config.json`` file."""
    config = CheckpointConfig.from_json(read_json(path))
    kwargs = dict(config.model_kwargs(), input_shape=tuple(config.input_shape))
    return config.architecture, kwargs, config.labels


def read_metadata(path):
    """The old form: a ``metadata.json`` file, validated, as a plain dict."""
    return CheckpointMetadata.from_json(read_json(path)).to_json()


sha256_of = _io.sha256_of
verify_sha256 = _io.verify_sha256
check_files = _io.check_files
missing_files_error = _io.missing_files_error
