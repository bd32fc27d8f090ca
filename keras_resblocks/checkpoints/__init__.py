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
- :mod:`.registry`: the built-in checkpoints of ``weights/registry.json``.

Finding a checkpoint (a name, a Hub repo, a port) is :func:`keras_resblocks.resolve`'s
job; the Hub transport (:mod:`keras_resblocks.hub`, :mod:`keras_resblocks.publish`)
imports from this package, never the reverse.
"""

from keras_resblocks.checkpoints.format import (
    CARD_FILE,
    CHECKPOINT_FILES,
    CLASSIFIER_ACTIVATIONS,
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    HEAD_PREFIX,
    METADATA_FILE,
    REFERENCE_FILE,
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
from keras_resblocks.checkpoints.io import (
    CheckpointFiles,
    check_files,
    missing_files_error,
    read_checkpoint,
    read_config,
    read_json,
    read_metadata,
    sha256_of,
    verify_sha256,
)
from keras_resblocks.checkpoints.load import LoadReport, load_checkpoint, load_resolved
from keras_resblocks.checkpoints.reference import (
    MAX_REFERENCE_INPUTS,
    REFERENCE_ATOL,
    REFERENCE_RTOL,
    REFERENCE_TENSORS,
    ReferenceReport,
    compare_reference,
    read_reference,
)
from keras_resblocks.checkpoints.save import checkpoint_config, save_pretrained
