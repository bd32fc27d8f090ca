"""The checkpoint format and its one implementation: schema, files, save, load, reference batch.

Modules, each one concern:

- :mod:`.format`: file names, format version, the error hierarchy and the JSON schema
  (:class:`CheckpointConfig`, :class:`CheckpointMetadata`, :class:`Provenance`).
- :mod:`.io`: the files on disk: a directory read once (JSON through the schema, hashes
  verified, weights), atomic directory writes.
- :mod:`.card`: the model card.
- :mod:`.reference`: the reference batch (write, read, compare).
- :mod:`.load`: :func:`load_checkpoint`.
- :mod:`.save`: :func:`save_pretrained`.
- :mod:`.catalog`: the built-in checkpoints of ``weights/catalog.json``.

Finding a checkpoint (a name, a Hub repo, a port) is :func:`keras_resblocks.resolve`'s
job; the Hub transport (:mod:`keras_resblocks.hub`, :mod:`keras_resblocks.publish`)
imports from this package, never the reverse.
"""

from keras_resblocks._lazy import lazy_names
from keras_resblocks.checkpoints.format import (
    CARD_FILE,
    CHECKPOINT_FILES,
    CLASSIFIER_ACTIVATIONS,
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    HEAD_PREFIX,
    METADATA_FILE,
    REFERENCE_ATOL,
    REFERENCE_FILE,
    REFERENCE_RTOL,
    REQUIRED_FILES,
    UNSAFE_SUFFIXES,
    WEIGHTS_FILE,
    CheckpointConfig,
    CheckpointDownloadError,
    CheckpointError,
    CheckpointMetadata,
    CheckpointNotFoundError,
    ChecksumError,
    HubUnavailableError,
    MissingFileError,
    Provenance,
    ReferenceMismatchError,
)

# The modules that need numpy, safetensors or Keras are imported on first use.
_EXPORTS = {
    "CheckpointFiles": "keras_resblocks.checkpoints.io",
    "check_files": "keras_resblocks.checkpoints.io",
    "missing_files_error": "keras_resblocks.checkpoints.io",
    "read_checkpoint": "keras_resblocks.checkpoints.io",
    "read_config": "keras_resblocks.checkpoints.io",
    "read_json": "keras_resblocks.checkpoints.io",
    "read_metadata": "keras_resblocks.checkpoints.io",
    "sha256_of": "keras_resblocks.checkpoints.io",
    "verify_sha256": "keras_resblocks.checkpoints.io",
    "LoadReport": "keras_resblocks.checkpoints.load",
    "load_checkpoint": "keras_resblocks.checkpoints.load",
    "load_resolved": "keras_resblocks.checkpoints.load",
    "MAX_REFERENCE_INPUTS": "keras_resblocks.checkpoints.reference",
    "REFERENCE_TENSORS": "keras_resblocks.checkpoints.reference",
    "ReferenceReport": "keras_resblocks.checkpoints.reference",
    "compare_reference": "keras_resblocks.checkpoints.reference",
    "read_reference": "keras_resblocks.checkpoints.reference",
    "checkpoint_config": "keras_resblocks.checkpoints.save",
    "save_pretrained": "keras_resblocks.checkpoints.save",
}
__all__ = [
    "CARD_FILE",
    "CHECKPOINT_FILES",
    "CLASSIFIER_ACTIVATIONS",
    "CONFIG_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "HEAD_PREFIX",
    "METADATA_FILE",
    "REFERENCE_ATOL",
    "REFERENCE_FILE",
    "REFERENCE_RTOL",
    "REQUIRED_FILES",
    "UNSAFE_SUFFIXES",
    "WEIGHTS_FILE",
    "CheckpointConfig",
    "CheckpointDownloadError",
    "CheckpointError",
    "CheckpointMetadata",
    "CheckpointNotFoundError",
    "ChecksumError",
    "HubUnavailableError",
    "MissingFileError",
    "Provenance",
    "ReferenceMismatchError",
    *_EXPORTS,
]
__getattr__, __dir__ = lazy_names(__name__, _EXPORTS)
