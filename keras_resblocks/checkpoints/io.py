"""Checkpoint files on disk: a directory read once (schema, hashes, weights), atomic writes."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import safetensors.numpy

from keras_resblocks.checkpoints.format import (
    CHECKPOINT_FILES,
    CONFIG_FILE,
    METADATA_FILE,
    REFERENCE_FILE,
    REQUIRED_FILES,
    UNSAFE_SUFFIXES,
    WEIGHTS_FILE,
    CheckpointConfig,
    CheckpointError,
    CheckpointMetadata,
    ChecksumError,
    MissingFileError,
)


def sha256_of(path):
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of_bytes(data):
    """The hex sha256 of bytes already in memory."""
    return hashlib.sha256(data).hexdigest()


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


def read_json(path):
    """A JSON file holding an object, or a :class:`CheckpointError` naming the file."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"Cannot read {path.name} as JSON: {error}. Received: {str(path)!r}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path.name} must hold a JSON object. Received: {type(data).__name__}")
    return data


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False, allow_nan=False)
        f.write("\n")


def read_config(directory):
    """The validated :class:`CheckpointConfig` of a checkpoint directory."""
    return CheckpointConfig.from_json(read_json(Path(directory) / CONFIG_FILE))


def read_metadata(directory):
    """The validated :class:`CheckpointMetadata` of a checkpoint directory."""
    return CheckpointMetadata.from_json(read_json(Path(directory) / METADATA_FILE))


@dataclasses.dataclass(frozen=True)
class CheckpointFiles:
    """A checkpoint directory read once: its validated JSON, verified hashes and weights."""

    config: CheckpointConfig
    metadata: CheckpointMetadata
    tensors: dict
    sha256: str
    reference_sha256: str | None


def read_checkpoint(directory, expected_sha256=None, hint=""):
    """Read a checkpoint directory: files present, JSON valid, hashes right, weights readable.

    The weights' sha256 is checked against ``expected_sha256`` if given, else the one
    in ``metadata.json``; the optional ``reference.safetensors`` against
    ``metadata.json``. ``hint`` (how to get a good copy) ends a :class:`ChecksumError`.
    """
    directory = Path(directory)
    check_files(directory)
    config = read_config(directory)
    metadata = read_metadata(directory)
    weights_path = directory / WEIGHTS_FILE
    sha256 = verify_sha256(weights_path, expected_sha256 or metadata.sha256, hint)
    # The reference batch is optional; when it is there, it must be the one written.
    reference_sha256 = None
    if metadata.reference and (directory / REFERENCE_FILE).is_file():
        reference_sha256 = verify_sha256(directory / REFERENCE_FILE, metadata.reference["sha256"], hint)
    try:
        tensors = safetensors.numpy.load_file(str(weights_path))
    except Exception as error:  # safetensors raises its own SafetensorError
        raise CheckpointError(f"Cannot read {WEIGHTS_FILE}: {error}. Received: {str(weights_path)!r}")
    return CheckpointFiles(config, metadata, tensors, sha256, reference_sha256)


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
    if missing:
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


def usual_permissions(path):
    """Give ``path`` the mode ``open()`` or ``mkdir`` would have: 0o666 for a file, 0o777
    for a directory, less the umask (0644 / 0755 under the usual umask 022).

    ``tempfile.mkstemp`` and ``mkdtemp`` create 0600 / 0700, which would keep a
    checkpoint meant to be shared from others on the machine.

    Example:

    >>> import os, stat, tempfile
    >>> from keras_resblocks.checkpoints.io import usual_permissions
    >>> old = os.umask(0o022)
    >>> directory = tempfile.mkdtemp()
    >>> usual_permissions(directory)
    >>> _ = os.umask(old)
    >>> oct(stat.S_IMODE(os.stat(directory).st_mode))
    '0o755'
    """
    umask = os.umask(0)
    os.umask(umask)
    full = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, full & ~umask)


@contextlib.contextmanager
def replacing_directory(target):
    """Yield an empty staging directory beside ``target``; on success it becomes ``target``.

    A failure midway leaves an existing checkpoint at ``target`` untouched, and
    only a checkpoint (or an empty directory) is ever replaced. The directory and
    its files get the permissions of :func:`usual_permissions`.
    """
    target = Path(target)
    _check_overwritable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield staging
        for path in [staging, *staging.iterdir()]:
            usual_permissions(path)
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


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
