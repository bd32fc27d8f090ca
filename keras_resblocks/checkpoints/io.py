"""Checkpoint files on disk: a directory read once (schema, hashes, weights), atomic writes."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import logging
import math
import os
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np
import safetensors.numpy

from keras_resblocks.checkpoints.format import (
    CARD_FILE,
    CHECKPOINT_FILES,
    CONFIG_FILE,
    HASHED_FILES,
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


logger = logging.getLogger("keras_resblocks")
MAX_JSON_BYTES = 1 << 20  # metadata.json and the card: a few KiB in practice
# config.json: the labels of LIMITS["num_classes"] classes of LIMITS["label_chars"] each fit
MAX_CONFIG_BYTES = 32 << 20
MAX_WEIGHTS_BYTES = 8 << 30  # a billion float32 parameters (the config's limit) and then some
_FILE_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
    stat.S_IFSOCK: "a socket",
}


def read_file(path, root=None, max_bytes=None):
    """The bytes of a checkpoint's file, read once: a regular file, really inside ``root``.

    ``root`` (default: the file's directory, or for a snapshot of huggingface_hub's
    cache its repo folder, whose blobs the snapshot links to) is where the file may
    be: a link leading out of it is refused rather than followed. FIFOs, devices, sockets and
    directories are refused without reading (nothing can hang on them), and so is
    a file over ``max_bytes``. Callers check hashes on the returned bytes, so what
    is checked is what is used.

    Example:

    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from keras_resblocks.checkpoints.io import read_file
    >>> folder = Path(tempfile.mkdtemp())
    >>> os.mkfifo(folder / "config.json")
    >>> read_file(folder / "config.json")
    Traceback (most recent call last):
    ...
    keras_resblocks.checkpoints.format.CheckpointError: config.json is a FIFO, not a regular file; refusing to read it. Received: ...
    """
    fd = _open_regular(path, root, max_bytes)
    with os.fdopen(fd, "rb") as f:
        data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:  # it grew while being read
        raise CheckpointError(
            f"{path.name} is over the limit of {max_bytes:,} bytes. Received: {str(path)!r}"
        )
    return data


def _open_regular(path, root, max_bytes):
    # A read-only descriptor of a regular file really inside ``root``, of at most
    # ``max_bytes``; anything else is refused before a byte is read.
    path = Path(path)
    root = Path(root if root is not None else _default_root(path.parent)).resolve()
    real = path.resolve()
    if real != root and root not in real.parents:
        raise CheckpointError(
            f"{path.name} is a link to {str(real)!r}, outside its checkpoint directory; refusing "
            f"to follow it. Received: {str(path)!r}"
        )
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as error:
        raise CheckpointError(
            f"Cannot open {path.name}: {error.strerror}. Received: {str(path)!r}"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise CheckpointError(
                f"{path.name} is {kind}, not a regular file; refusing to read "
                f"it. Received: {str(path)!r}"
            )
        if max_bytes is not None and info.st_size > max_bytes:
            raise CheckpointError(
                f"{path.name} is {info.st_size:,} bytes, beyond the limit of "
                f"{max_bytes:,}. Received: {str(path)!r}"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _default_root(directory):
    # huggingface_hub's cache: models--owner--name/snapshots/<commit>/<file> are links
    # into models--owner--name/blobs/, so a snapshot's files may live anywhere in its repo folder.
    directory = Path(directory)
    if directory.parent.name == "snapshots" and directory.parent.parent.name.startswith("models--"):
        return directory.parent.parent
    return directory


def _unique_keys(pairs):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = sorted({key for key in keys if keys.count(key) > 1})
        raise ValueError(f"a key appears twice in one object: {twice[:5]}")
    return dict(pairs)


def read_json(path, root=None, data=None, max_bytes=MAX_JSON_BYTES):
    """A JSON file holding an object (at most ``max_bytes``, read by :func:`read_file`,
    or parsed from ``data``, its bytes already read), or a :class:`CheckpointError`
    naming the file. A key given twice in one object is refused (JSON readers
    disagree on which one wins).

    Example:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from keras_resblocks.checkpoints.io import read_json
    >>> read_json(Path("config.json"), data=b'{"labels": ["cat"], "labels": ["dog"]}')
    Traceback (most recent call last):
    ...
    keras_resblocks.checkpoints.format.CheckpointError: Cannot read config.json as JSON: a key appears twice in one object: ['labels']. Received: 'config.json'
    """
    path = Path(path)
    data = read_file(path, root, max_bytes) if data is None else data
    try:
        data = json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(
            f"Cannot read {path.name} as JSON: {error}. Received: {str(path)!r}"
        ) from None
    except RecursionError:
        raise CheckpointError(
            f"{path.name} is nested too deeply to be a checkpoint's JSON. Received: {str(path)!r}"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{path.name} must hold a JSON object. Received: {type(data).__name__}"
        )
    return data


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False, allow_nan=False)
        f.write("\n")


def replace_json(path, data):
    """Write ``data`` to ``path`` as JSON atomically: a crash leaves the old file or the new
    one, never half of one (a temporary file beside it, then ``os.replace``).

    Example:

    >>> import json, pathlib, tempfile
    >>> from keras_resblocks.checkpoints.io import replace_json
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "catalog.json"
    >>> replace_json(path, {"checkpoints": {}})
    >>> json.loads(path.read_text())
    {'checkpoints': {}}
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, allow_nan=False)
            f.write("\n")
        usual_permissions(tmp)  # not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_config(directory, root=None):
    """The validated :class:`CheckpointConfig` of a checkpoint directory."""
    return CheckpointConfig.from_json(read_json(Path(directory) / CONFIG_FILE, root))


def read_metadata(directory, root=None):
    """The validated :class:`CheckpointMetadata` of a checkpoint directory."""
    return CheckpointMetadata.from_json(read_json(Path(directory) / METADATA_FILE, root))


@dataclasses.dataclass(frozen=True)
class CheckpointFiles:
    """A checkpoint directory read once: its validated JSON, verified hashes and weights, and
    the bytes of its reference batch as their hash was checked (``None`` without one)."""

    config: CheckpointConfig
    metadata: CheckpointMetadata
    tensors: dict
    sha256: str
    reference_sha256: str | None
    reference: bytes | None = None


def read_checkpoint(
    directory, expected_sha256=None, hint="", root=None, expected_metadata_sha256=None
):
    """Read a checkpoint directory: files present, JSON valid, hashes right, weights readable.

    Every file is read once, by :func:`read_file` (regular files inside ``root``,
    default ``directory``), and checked from those bytes. The weights' sha256 is
    checked against ``expected_sha256`` if given, else the one in
    ``metadata.json``; ``config.json``, ``README.md`` and the optional
    ``reference.safetensors`` against ``metadata.json`` (which must hash the
    config); ``metadata.json`` itself against ``expected_metadata_sha256``
    if given (the catalogue pins it for its checkpoints). The weights must be finite
    float32 tensors. ``hint`` (how to get a good copy) ends a :class:`ChecksumError`.
    """
    directory = Path(directory)
    check_files(directory)
    metadata_bytes = read_file(directory / METADATA_FILE, root, MAX_JSON_BYTES)
    if expected_metadata_sha256:
        _check_sha256(
            metadata_bytes, METADATA_FILE, expected_metadata_sha256, hint, directory / METADATA_FILE
        )
    metadata = CheckpointMetadata.from_json(
        read_json(directory / METADATA_FILE, data=metadata_bytes)
    )
    config_bytes = read_file(directory / CONFIG_FILE, root, MAX_CONFIG_BYTES)
    hashed = metadata.files or {}
    if CONFIG_FILE not in hashed:
        raise ChecksumError(
            f"{METADATA_FILE} records no sha256 for {CONFIG_FILE}, so its labels and settings "
            f"cannot be checked; every checkpoint this package writes records it. "
            f"Received: {str(directory)!r}"
        )
    _check_sha256(config_bytes, CONFIG_FILE, hashed[CONFIG_FILE], hint, directory / CONFIG_FILE)
    if CARD_FILE in hashed and (directory / CARD_FILE).exists():
        card = read_file(directory / CARD_FILE, root, MAX_JSON_BYTES)
        _check_sha256(card, CARD_FILE, hashed[CARD_FILE], hint, directory / CARD_FILE)
    config = CheckpointConfig.from_json(read_json(directory / CONFIG_FILE, data=config_bytes))
    weights_path = directory / WEIGHTS_FILE
    check_weights_header(weights_path, config, root)
    weights = read_file(weights_path, root, MAX_WEIGHTS_BYTES)
    sha256 = _check_sha256(
        weights, WEIGHTS_FILE, expected_sha256 or metadata.sha256, hint, weights_path
    )
    # The reference batch is optional; when it is there, it must be the one written.
    reference_sha256 = reference = None
    if metadata.reference and (directory / REFERENCE_FILE).exists():
        reference = read_file(directory / REFERENCE_FILE, root, MAX_WEIGHTS_BYTES)
        reference_sha256 = _check_sha256(
            reference,
            REFERENCE_FILE,
            metadata.reference["sha256"],
            hint,
            directory / REFERENCE_FILE,
        )
    try:
        tensors = safetensors.numpy.load(weights)
    except Exception as error:  # safetensors raises its own SafetensorError
        raise CheckpointError(
            f"Cannot read {WEIGHTS_FILE}: {error}. Received: {str(weights_path)!r}"
        )
    check_weights(tensors, repr(str(weights_path)))
    return CheckpointFiles(config, metadata, tensors, sha256, reference_sha256, reference)


def check_weights(tensors, received):
    """Raise :class:`CheckpointError` unless every tensor is finite float32 and every
    BatchNorm moving variance is at least 0: what saving writes and what can compute.
    ``received`` ends the message (the file, or the variable)."""
    for key, tensor in sorted(tensors.items()):
        if tensor.dtype != np.float32 or not np.isfinite(tensor).all():
            what = f"of dtype {tensor.dtype}" if tensor.dtype != np.float32 else "not finite"
            raise CheckpointError(
                f"{WEIGHTS_FILE} must hold finite float32 tensors; {key!r} "
                f"is {what}. Received: {received}"
            )
        if key.endswith("moving_variance") and (tensor < 0).any():
            raise CheckpointError(
                f"{WEIGHTS_FILE}: the BatchNorm variance {key!r} has values below 0 "
                f"(minimum {float(tensor.min()):.3g}), which cannot be. Received: {received}"
            )


# A safetensors file: an 8-byte little-endian header length, a JSON header, the data.
MAX_SAFETENSORS_HEADER = 16 << 20


# Up to this many parameters, a weights file that disagrees with its config is read and
# the model built, so the error can name the tensors that differ (ResNet-152 has 60M);
# beyond it, the header alone refuses it: building costs more than the refusal is worth.
DETAILED_MISMATCH_PARAMETERS = 64_000_000


def check_weights_header(path, config, root=None):
    """Refuse, from its size and header alone, a weights file that cannot belong to
    ``config``: larger than the architecture's parameters in float32
    (:func:`keras_resblocks.parameter_count`) plus a header of at most
    :data:`MAX_SAFETENSORS_HEADER` bytes, or, for an architecture of more than
    :data:`DETAILED_MISMATCH_PARAMETERS` parameters, holding another number of float32
    values. Smaller disagreements are left to the loader, whose error names the tensors.
    """
    from keras_resblocks.architecture import parameter_count

    path = Path(path)
    expected = 4 * parameter_count(
        config.architecture,
        num_classes=config.num_classes,
        include_top=config.include_top,
        channels=config.input_shape[-1] or 3,
    )
    received = repr(str(path))
    fd = _open_regular(path, root, MAX_WEIGHTS_BYTES)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > expected + 8 + MAX_SAFETENSORS_HEADER:
            raise CheckpointError(
                f"{path.name} is {size:,} bytes, more than the {expected // 4:,} parameters of "
                f"the architecture in {CONFIG_FILE} take ({expected:,} bytes in float32); they "
                f"do not belong together. Received: {received}"
            )
        if expected // 4 <= DETAILED_MISMATCH_PARAMETERS:
            return
        values = _float32_values(f, size, path.name, received)
    if 4 * values != expected:
        raise CheckpointError(
            f"{path.name} holds {values:,} float32 values where the architecture in "
            f"{CONFIG_FILE} has {expected // 4:,} parameters; they do not belong together. "
            f"Received: {received}"
        )


def _float32_values(f, size, name, received):
    # The float32 values a safetensors header lists: an 8-byte little-endian length, then
    # the JSON header.
    length = int.from_bytes(f.read(8), "little")
    try:
        if not 0 < length <= min(size - 8, MAX_SAFETENSORS_HEADER):
            raise ValueError(length)
        header = json.loads(f.read(length).decode("utf-8"))
        return sum(
            math.prod(entry["shape"])
            for key, entry in header.items()
            if key != "__metadata__" and entry.get("dtype") == "F32"
        )
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        raise CheckpointError(
            f"{name} does not start with a readable safetensors header. Received: {received}"
        ) from None


def record_file_hashes(directory):
    """Record the sha256 of ``config.json`` and ``README.md`` in a checkpoint's
    ``metadata.json`` (``"files"``) after one of them was changed on purpose (a card
    renamed by a maintainer); :func:`save_pretrained` records them when it writes."""
    directory = Path(directory)
    metadata = read_metadata(directory)
    files = {
        name: sha256_of(directory / name) for name in HASHED_FILES if (directory / name).is_file()
    }
    write_json(directory / METADATA_FILE, dataclasses.replace(metadata, files=files).to_json())
    return files


def point_card_to(directory, source):
    """Make a checkpoint's card load it from ``source`` (``hf://owner/name`` when it is
    published, a built-in name when it ships with the package) and re-record the card's
    hash in ``metadata.json``. Returns whether anything changed."""
    from keras_resblocks.checkpoints.card import card_for_source

    path = Path(directory) / CARD_FILE
    text = path.read_text(encoding="utf-8")
    new = card_for_source(text, source)
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    record_file_hashes(directory)
    return True


def _check_sha256(data, name, expected, hint, path):
    actual = sha256_of_bytes(data)
    if actual != expected:
        raise ChecksumError(
            f"sha256 mismatch for {name}: expected {expected}, got {actual}. The file "
            f"is corrupted or was changed after the checkpoint was written.{hint} "
            f"Received: {str(path)!r}"
        )
    return actual


def check_files(directory):
    """Raise a clear error unless ``directory`` holds the files a checkpoint needs (a
    checkpoint that a killed writer left moved aside is first put back:
    :func:`recover_interrupted_replacement`)."""
    directory = Path(directory)
    if not directory.is_dir():
        recover_interrupted_replacement(directory)
    if not directory.is_dir():
        raise MissingFileError(
            f"No checkpoint directory at {str(directory)!r}; expected a directory holding "
            f"{list(CHECKPOINT_FILES)}. Received: {str(directory)!r}"
        )
    present = sorted(p.name for p in directory.iterdir())
    missing = [name for name in REQUIRED_FILES if name not in present]
    if missing:
        raise missing_files_error(missing, present, where=str(directory))


def _some(names, limit=12):
    """``names`` for an error message: at most ``limit`` of them and how many more."""
    names = list(names)
    return str(names) if len(names) <= limit else f"{names[:limit]} and {len(names) - limit:,} more"


def missing_files_error(missing, present, where):
    """The error for a checkpoint (local or remote) lacking ``missing`` files."""
    unsafe = [name for name in present if name.lower().endswith(UNSAFE_SUFFIXES)]
    if unsafe:
        return CheckpointError(
            f"{where} holds {unsafe}, formats keras-resblocks refuses to read (pickle and "
            f"HDF5/.keras files can run code or rebuild arbitrary layers). A keras-resblocks "
            f"checkpoint holds {list(CHECKPOINT_FILES)}. Received: files {_some(present)}"
        )
    return MissingFileError(
        f"{where} has no {', '.join(missing)}; a keras-resblocks checkpoint holds "
        f"{list(CHECKPOINT_FILES)}. Received: files {_some(present)}"
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
def replacing_directory(target, overwrite=False):
    """Yield an empty staging directory beside ``target``; on success it becomes ``target``.

    A failure midway leaves an existing checkpoint at ``target`` untouched. What may
    be at ``target`` is :func:`check_overwritable`'s rule, checked before and again
    just before the swap. The directory and its files get the permissions of
    :func:`usual_permissions`.
    """
    target = Path(target)
    check_overwritable(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_leftover_prefix(target, "tmp"), dir=target.parent))
    try:
        yield staging
        for path in [staging, *staging.iterdir()]:
            usual_permissions(path)
        check_overwritable(target, overwrite)  # nothing appeared there meanwhile
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def check_overwritable(target, overwrite=False, name="directory"):
    """Raise a ``ValueError`` unless a checkpoint may be written at ``target``.

    Nothing there or an empty directory: yes. A checkpoint (it has ``config.json``):
    only with ``overwrite``. Anything else is never replaced, so a mistyped path
    cannot wipe a user's unrelated directory. ``name`` is the argument the message
    names (``Received: name=...``).

    Example:

    >>> import pathlib, tempfile
    >>> from keras_resblocks.checkpoints.io import check_overwritable
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (run / "config.json").write_text("{}")
    >>> check_overwritable(run, overwrite=True)
    >>> check_overwritable(run, name="output")
    Traceback (most recent call last):
    ...
    ValueError: `output` already holds a checkpoint; refusing to replace it. Pass overwrite=True (--overwrite) to replace it, or choose another directory. Received: output='...'
    """
    target = Path(target)
    received = f"Received: {name}={str(target)!r}"
    recover_interrupted_replacement(target)
    if not target.exists():
        return
    if not target.is_dir():
        raise ValueError(f"`{name}` exists and is not a directory. {received}")
    if not any(target.iterdir()):
        return
    if not (target / CONFIG_FILE).is_file():
        raise ValueError(
            f"`{name}` exists, is not empty and is not a keras-resblocks checkpoint (no "
            f"{CONFIG_FILE}); refusing to replace it: choose another directory. {received}"
        )
    if not overwrite:
        raise ValueError(
            f"`{name}` already holds a checkpoint; refusing to replace it. Pass "
            f"overwrite=True (--overwrite) to replace it, or choose another directory. "
            f"{received}"
        )


def _swap_into_place(staging, target):
    # POSIX cannot rename over a non-empty directory, so the old checkpoint is
    # first moved aside and only deleted once the new one is in place.
    if not target.exists():
        os.replace(staging, target)
        return
    old = Path(tempfile.mkdtemp(prefix=_leftover_prefix(target, "old"), dir=target.parent))
    os.replace(target, old / target.name)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(old / target.name, target)
        raise
    finally:
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)


def _leftover_prefix(target, kind):
    # .NAME.tmp-PID- (a checkpoint being written) or .NAME.old-PID- (the checkpoint it
    # replaces, moved aside for the instant of the swap): the PID tells a later process
    # whether the writer is still alive.
    return f".{Path(target).name}.{kind}-{os.getpid()}-"


def _writer_alive(leftover):
    try:
        pid = int(leftover.name.rsplit(".", 1)[1].split("-")[1])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_interrupted_replacement(target):
    """Put right what a process killed while replacing the checkpoint ``target`` left:
    the previous checkpoint moved aside (``.NAME.old-PID-*``) goes back to ``target``
    if nothing took its place, and the leftovers of dead writers (``.NAME.tmp-PID-*``,
    an unfinished checkpoint, and the moved-aside copy once the new one is in place)
    are deleted. A writer that is still running is left alone. Returns what was done,
    one line each; every writer calls it first, and loading calls it for a checkpoint
    directory that is missing.

    Example:

    >>> import pathlib, tempfile
    >>> from keras_resblocks.checkpoints.io import recover_interrupted_replacement
    >>> parent = pathlib.Path(tempfile.mkdtemp())
    >>> (parent / ".run.old-999999999-x" / "run").mkdir(parents=True)  # a dead writer's
    >>> recover_interrupted_replacement(parent / "run")
    ['restored ... from .run.old-999999999-x']
    >>> (parent / "run").is_dir()
    True
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    done = []
    for kind in ("old", "tmp"):
        for leftover in sorted(target.parent.glob(f".{glob.escape(target.name)}.{kind}-*")):
            if not leftover.is_dir() or _writer_alive(leftover):
                continue
            saved = leftover / target.name
            if kind == "old" and saved.is_dir() and not target.exists():
                os.replace(saved, target)
                done.append(f"restored {target} from {leftover.name}")
            shutil.rmtree(leftover, ignore_errors=True)
            if kind == "tmp":
                done.append(f"deleted {leftover.name}, left unfinished by a stopped process")
    for line in done:
        logger.warning("%s", line)
    return done
