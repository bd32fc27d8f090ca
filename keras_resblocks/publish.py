"""Publish a checkpoint directory to the Hugging Face Hub, all or nothing.

A checkpoint directory (see ``save_pretrained``) holds exactly the four files
of its Hub model repo, and optionally a fifth, ``reference.safetensors``.
Publishing checks them as loading does (every recorded hash), prepares what it
sends in a temporary copy (the card pointed to the repo), then sends that in a
single commit whose parent is the branch head read just before: the Hub applies
a commit entirely or not at all, and a publisher that raced us gets a conflict
instead of silently interleaving files. The directory itself is only read.
``huggingface_hub`` does all transport.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import sys
import tempfile
from typing import NamedTuple, Optional, Tuple

# The checkpoint format is keras_resblocks.checkpoints'; publishing checks it with the
# reader that loading uses, then sends it.
from keras_resblocks.checkpoints.format import (
    CARD_FILE,
    CHECKPOINT_FILES,
    FORMAT,
    METADATA_FILE,
    REFERENCE_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    MissingFileError,
)
from keras_resblocks.checkpoints.io import (
    MAX_WEIGHTS_BYTES,
    point_card_to,
    read_checkpoint,
    read_config,
    read_file,
    read_metadata,
    sha256_of,
    sha256_of_bytes,
)

_LOGIN_HINT = (
    "log in with `hf auth login` (or `huggingface-cli login`), set the HF_TOKEN "
    "environment variable, or pass token=..."
)


class PublishError(CheckpointError, RuntimeError):
    """Publishing failed; the message says whether the Hub repo may have changed."""


class PublishConflictError(PublishError):
    """The branch moved between reading its head and committing (a racing publisher)."""


class CheckpointFile(NamedTuple):
    """One file of a checkpoint directory, as it will be sent."""

    name: str
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Publication:
    """What ``push_to_hub`` sent (or, for a dry run, would send).

    ``commit_sha`` is ``None`` for a dry run; ``parent_commit`` is the branch
    head the commit was made on top of; ``deleted`` names the files of the
    previous checkpoint that this one does not have and the commit removed
    (a ``reference.safetensors`` left from an earlier publication).
    """

    repo_id: str
    revision: str
    files: Tuple[CheckpointFile, ...]
    commit_sha: Optional[str] = None
    parent_commit: Optional[str] = None
    deleted: Tuple[str, ...] = ()

    def describe(self):
        """Human-readable lines: the target and each file with size and sha256."""
        verb = "Would commit" if self.commit_sha is None else "Committed"
        lines = [f"{verb} {len(self.files)} files to {self.repo_id}@{self.revision}:"]
        width = max(len(name) for name in [*(f.name for f in self.files), *self.deleted])
        for f in self.files:
            lines.append(f"  {f.name:<{width}}  {f.size:>12,d} bytes  sha256 {f.sha256}")
        for name in self.deleted:
            lines.append(f"  {name:<{width}}  deleted (left from the previous checkpoint)")
        if self.commit_sha is not None:
            lines.append(f"commit {self.commit_sha} (parent {self.parent_commit})")
        return "\n".join(lines)


def _check_metadata(directory, weights_sha256):
    metadata = read_metadata(directory)  # the schema: sha256, metrics are finite numbers, ...
    if metadata.sha256 != weights_sha256:
        raise CheckpointError(
            f"{WEIGHTS_FILE} does not match the sha256 recorded in {METADATA_FILE} "
            f"({metadata.sha256!r}): the weights changed after the checkpoint was written. "
            f"Received: sha256={weights_sha256}"
        )
    # What may be published is stricter than what may be loaded: a published
    # checkpoint says how good it is.
    if not metadata.metrics:
        raise CheckpointError(
            f"{METADATA_FILE} must record the measured `metrics` as a non-empty JSON "
            f"object of numbers. Received: metrics={metadata.metrics!r}"
        )
    return metadata


def _check_tensors(path, what="weights"):
    import numpy as np
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path.name} is not a readable safetensors file. Received: {err}"
        ) from None
    if not tensors:
        raise CheckpointError(f"{path.name} holds no tensors. Received: {path}")
    for key, tensor in tensors.items():
        if not np.issubdtype(tensor.dtype, np.floating):
            continue
        finite = np.isfinite(tensor)
        if not finite.all():
            bad = tensor[~finite]
            kind = "NaN" if np.isnan(bad).any() else "Inf"
            raise CheckpointError(
                f"Tensor '{key}' in {path.name} contains {kind} "
                f"({bad.size} of {tensor.size} values are not finite); refusing to "
                f"publish broken {what}. Received: {bad[:3].tolist()}"
            )


def _check_readme(path):
    from huggingface_hub import ModelCard

    try:
        card = ModelCard.load(path)
    except Exception as err:  # the card parser raises several types for bad YAML
        raise CheckpointError(f"{path.name} is not a valid model card. Received: {err}") from None
    if card.data.library_name != FORMAT:
        raise CheckpointError(
            f"{path.name} front matter must say `library_name: {FORMAT}` so "
            f"the Hub lists the model under this library. "
            f"Received: library_name={card.data.library_name!r}"
        )


def validate_checkpoint_dir(directory):
    """Check a checkpoint directory before it is published; return its files.

    Checks that config.json, model.safetensors, metadata.json and README.md are
    all there; that model.safetensors has the sha256 recorded in metadata.json
    and no NaN or Inf in any tensor; that the directory passes the reader that
    loading uses (:func:`~keras_resblocks.checkpoints.io.read_checkpoint`: the
    schema of config.json and metadata.json, and the sha256 that metadata.json
    records for config.json and README.md), so nothing is published that loading
    would refuse; that metadata.json records metrics (a published checkpoint
    says how good it is); and that README.md is a model card for this library.
    The optional reference.safetensors is sent when it is there or metadata.json
    records it: then it must be there, have the sha256 recorded for it, hold
    ``inputs`` and ``outputs``, and no NaN or Inf. The directory is only read.

    Args:
        directory: path of the checkpoint directory.

    Returns:
        A tuple of :class:`CheckpointFile` (name, size in bytes, sha256), one
        per file, in the order they are sent.

    Raises:
        CheckpointError (a ``ValueError``): naming the file (and tensor) at fault;
        :class:`MissingFileError` when a file is missing.

    Example:

    >>> import tempfile
    >>> from keras_resblocks import validate_checkpoint_dir
    >>> validate_checkpoint_dir(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    keras_resblocks.checkpoints.format.MissingFileError: Checkpoint directory ... lacks config.json, model.safetensors, metadata.json, README.md. Received: ...
    """
    root = pathlib.Path(directory)
    if not root.is_dir():
        raise MissingFileError(
            f"`directory` must be a checkpoint directory. Received: directory={str(directory)!r}"
        )
    missing = [name for name in CHECKPOINT_FILES if not (root / name).is_file()]
    if missing:
        present = sorted(p.name for p in root.iterdir())
        raise MissingFileError(
            f"Checkpoint directory {root} lacks {', '.join(missing)}. Received: files={present}"
        )
    read_config(root)  # the schema loading uses
    names = CHECKPOINT_FILES
    if (root / REFERENCE_FILE).exists() or read_metadata(root).reference:
        names += (REFERENCE_FILE,)
    files = tuple(
        CheckpointFile(name, (root / name).stat().st_size, sha256_of(root / name))
        for name in names
        if (root / name).is_file()
    )
    _check_metadata(root, files[CHECKPOINT_FILES.index(WEIGHTS_FILE)].sha256)
    _check_tensors(root / WEIGHTS_FILE)
    # Loading's own reader: a file changed after the checkpoint was written (a class
    # label in config.json, the card) is refused here as it would be when loaded.
    read_checkpoint(root, hint=" Refusing to publish it.")
    _check_readme(root / CARD_FILE)
    if REFERENCE_FILE in names:
        from keras_resblocks.checkpoints.reference import read_reference

        read_reference(root)  # present, recorded, the recorded sha256, the expected tensors
        _check_tensors(root / REFERENCE_FILE, what="reference outputs")
    return files


@contextlib.contextmanager
def staged_publication(directory, repo_id, files=None):
    """Yield ``(copy, files)``: a temporary copy of a checkpoint directory as it is
    published to ``repo_id``, and its :class:`CheckpointFile` tuple.

    The directory is validated (:func:`validate_checkpoint_dir`, unless its
    ``files`` are given, as that returned them) and only read: its files are copied
    (each checked against the sha256 validated), then the copy's card is pointed to
    ``hf://<repo_id>`` and its hash re-recorded in the copy's metadata.json, and the
    copy is validated again. The copy is deleted on exit.

    Example:

    >>> import tempfile
    >>> from keras_resblocks.publish import staged_publication
    >>> with staged_publication(tempfile.mkdtemp(), "me/resnet20-cifar10") as (copy, files):
    ...     pass
    Traceback (most recent call last):
    ...
    keras_resblocks.checkpoints.format.MissingFileError: Checkpoint directory ... lacks config.json, ... Received: files=[]
    """
    files = validate_checkpoint_dir(directory) if files is None else files
    root = pathlib.Path(directory)
    with tempfile.TemporaryDirectory(prefix="keras-resblocks-publish-") as tmp:
        copy = pathlib.Path(tmp)
        for f in files:
            data = read_file(root / f.name, max_bytes=MAX_WEIGHTS_BYTES)
            (copy / f.name).write_bytes(_checked(data, f))
        # The card's examples load the checkpoint from where it is going (its hash follows).
        point_card_to(copy, f"hf://{repo_id}")
        yield copy, validate_checkpoint_dir(copy)


def _check_repo_id(repo_id):
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    valid = isinstance(repo_id, str) and repo_id.count("/") == 1 and all(repo_id.split("/"))
    try:
        valid = valid and validate_repo_id(repo_id) is None
    except HFValidationError:
        valid = False
    if not valid:
        raise ValueError(
            "`repo_id` must be 'owner/name', each of letters, digits, '-', '_' or '.'. "
            f"Received: repo_id={repo_id!r}"
        )


def _resolve_token(token):
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise PublishError(
            f"Publishing needs a Hugging Face token with write access: {_LOGIN_HINT}. "
            "Received: no token (argument, HF_TOKEN or saved login)"
        )
    return token


def _branch_head(api, repo_id, revision):
    refs = api.list_repo_refs(repo_id)
    for branch in refs.branches:
        if branch.name == revision:
            return branch.target_commit
    names = sorted(b.name for b in refs.branches)
    raise PublishError(
        f"`revision` must be an existing branch of {repo_id} (branches: {names}); create "
        f"it first with `HfApi().create_branch({repo_id!r}, branch={revision!r})`. "
        f"Received: revision={revision!r}"
    )


def push_to_hub(
    directory,
    repo_id,
    *,
    token=None,
    private=False,
    revision="main",
    commit_message=None,
    parent_commit=None,
    dry_run=False,
    endpoint=None,
):
    """Publish a checkpoint directory to a Hub model repo in one commit.

    The directory is validated first (:func:`validate_checkpoint_dir`), so
    broken weights never leave the machine. The repo is created if needed,
    then all its files go in a single commit on ``revision`` whose parent
    is the branch head read just before (or ``parent_commit`` when given):
    the repo either shows the whole new checkpoint or stays as it was, and a
    concurrent publisher makes this one fail with :class:`PublishConflictError`
    rather than mixing files. A ``reference.safetensors`` that the parent
    commit has and this checkpoint lacks is deleted in that same commit
    (``Publication.deleted``); a dry run cannot know of it. What is sent is a
    temporary copy whose card's code examples load the checkpoint from
    ``hf://<repo_id>`` (with the card's new hash in its metadata.json): the
    directory itself is only read, whether publishing succeeds or fails.

    Args:
        directory: checkpoint directory written by ``save_pretrained``.
        repo_id: ``"owner/name"`` of the model repo.
        token: Hub token; defaults to ``HF_TOKEN`` or the saved login.
        private: create the repo as private (ignored if it exists).
        revision: branch to commit to; it must exist.
        commit_message: defaults to one naming the weights' sha256.
        parent_commit: the commit the branch must still point to; defaults to
            its head when publishing starts.
        dry_run: validate and return what would be sent, contacting nothing.
        endpoint: Hub URL; defaults to ``HF_ENDPOINT`` or huggingface.co.

    Returns:
        A :class:`Publication`; its ``commit_sha`` is the new commit (``None``
        for a dry run). Its ``files`` are those sent (for a dry run, those of
        the directory).

    Raises:
        CheckpointError (a ``ValueError``): the checkpoint is refused, before any
        request; :class:`PublishError` (one of them): no token, the Hub cannot be
        reached or refused a request (the message says whether the repo changed).

    Example:

    >>> import tempfile
    >>> from keras_resblocks import push_to_hub
    >>> push_to_hub(tempfile.mkdtemp(), "me/resnet20-cifar10", dry_run=True)
    Traceback (most recent call last):
    ...
    keras_resblocks.checkpoints.format.MissingFileError: Checkpoint directory ... lacks config.json, ... Received: files=[]
    """
    files = validate_checkpoint_dir(directory)
    _check_repo_id(repo_id)
    plan = Publication(repo_id=repo_id, revision=revision, files=files)
    if dry_run:
        return plan
    from huggingface_hub import CommitOperationDelete, HfApi

    token = _resolve_token(token)
    files, operations = _staged_operations(directory, repo_id, files)
    weights = next(f for f in files if f.name == WEIGHTS_FILE)
    message = (
        commit_message
        or f"Publish keras-resblocks checkpoint (weights sha256 {weights.sha256[:12]})"
    )
    api = HfApi(endpoint=endpoint, token=token)
    parent, stale = _prepare_repo(api, repo_id, revision, private, parent_commit, files)
    operations += [CommitOperationDelete(path_in_repo=name) for name in stale]
    commit = _create_commit(api, repo_id, revision, parent, operations, message)
    return dataclasses.replace(
        plan, files=files, commit_sha=commit.oid, parent_commit=parent, deleted=stale
    )


def _staged_operations(directory, repo_id, files):
    """The files as sent (see :func:`staged_publication`) and a commit operation adding
    each, holding the very bytes that were hashed, so that a file rewritten after
    validation cannot slip through."""
    from huggingface_hub import CommitOperationAdd

    with staged_publication(directory, repo_id, files) as (copy, files):
        operations = [
            CommitOperationAdd(
                path_in_repo=f.name, path_or_fileobj=_checked((copy / f.name).read_bytes(), f)
            )
            for f in files
        ]
    return files, operations


def _prepare_repo(api, repo_id, revision, private, parent_commit, files):
    """Create the repo if needed; return the commit to publish on top of (``parent_commit``,
    or the branch head) and the names of the files there that this checkpoint lacks."""
    with _hub_errors(api, repo_id, "nothing was committed"):
        api.create_repo(repo_id, exist_ok=True, private=private)
        parent = parent_commit or _branch_head(api, repo_id, revision)
        # A reference batch of an earlier publication would sit beside weights it
        # was not computed from; loaders ignore it (metadata does not record it),
        # but it goes in the same commit rather than mislead a reader of the repo.
        stale = tuple(
            name
            for name in (REFERENCE_FILE,)
            if name not in {f.name for f in files}
            and api.file_exists(repo_id, name, revision=parent)
        )
    return parent, stale


def _create_commit(api, repo_id, revision, parent, operations, message):
    """Commit ``operations`` on ``revision`` on top of ``parent``, all or nothing; a refusal
    or an interruption becomes a one-line :class:`PublishError` saying where the branch is."""
    from huggingface_hub.utils import HfHubHTTPError

    try:
        return api.create_commit(
            repo_id,
            operations,
            commit_message=message,
            revision=revision,
            parent_commit=parent,
        )
    except HfHubHTTPError as err:
        status = getattr(err.response, "status_code", None)
        if status in (409, 412):
            raise PublishConflictError(
                f"{repo_id}@{revision} moved past {parent} while publishing (another "
                f"publisher committed first); nothing of this checkpoint was committed. "
                f"Check the repo, then publish again. Received: HTTP {status}"
            ) from err
        raise PublishError(
            f"The Hub rejected the commit to {repo_id}@{revision}; a commit is all or "
            f"nothing, so the branch is still at {parent}. Received: {_one_line(err)}"
        ) from err
    except Exception as err:  # transport errors; their type depends on the HTTP client
        raise PublishError(
            f"The commit to {repo_id}@{revision} was interrupted; the Hub applies a "
            f"commit whole or not at all, so the branch is either still at {parent} or "
            f"holds this entire checkpoint. Received: {_one_line(err)}"
        ) from err


def _checked(data, f):
    """``data``, the bytes of ``f``, unless they are no longer what was validated."""
    if sha256_of_bytes(data) != f.sha256:
        raise PublishError(
            f"{f.name} changed while publishing; nothing was sent. "
            f"Received: sha256={sha256_of_bytes(data)}"
        )
    return data


@contextlib.contextmanager
def _hub_errors(api, repo_id, outcome):
    """Turn the Hub's refusals and transport failures into one-line :class:`PublishError`."""
    from huggingface_hub.utils import HfHubHTTPError

    try:
        yield
    except (PublishError, ValueError):  # ours, and the client's checks of its arguments
        raise
    except HfHubHTTPError as err:
        status = getattr(err.response, "status_code", None)
        if status in (401, 403):
            raise PublishError(
                f"The Hub refused this token for {repo_id} (it needs write access to the "
                f"namespace): {_LOGIN_HINT}. Received: HTTP {status}"
            ) from err
        raise PublishError(
            f"The Hub at {api.endpoint} refused a request for {repo_id}; {outcome}. "
            f"Received: {_one_line(err)}"
        ) from err
    except Exception as err:  # transport errors; their type depends on the HTTP client
        raise PublishError(
            f"Cannot reach the Hub at {api.endpoint} (offline, or a wrong --endpoint / "
            f"HF_ENDPOINT?); {outcome}. Received: {type(err).__name__}: {_one_line(err)}"
        ) from err


def _one_line(err):
    return " ".join(str(err).split()) or type(err).__name__


def add_publish_arguments(parser):
    """Add the ``publish`` options to an argparse parser (shared with the CLI).

    Example:

    >>> import argparse
    >>> from keras_resblocks.publish import add_publish_arguments
    >>> parser = add_publish_arguments(argparse.ArgumentParser())
    >>> args = parser.parse_args(["ckpt", "--repo-id", "me/resnet20", "--dry-run"])
    >>> args.directory, args.repo_id, args.revision, args.dry_run
    ('ckpt', 'me/resnet20', 'main', True)
    """
    parser.add_argument("directory", help="checkpoint directory written by save_pretrained")
    parser.add_argument("--repo-id", required=True, help="Hub model repo, owner/name")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", default="main", help="branch to commit to (default: main)")
    parser.add_argument("--commit-message", help="commit summary")
    parser.add_argument(
        "--parent-commit", help="fail unless the branch still points to this commit"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="validate and list the files; send nothing"
    )
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")
    parser.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT or huggingface.co)")
    return parser


def run_publish(args):
    """Carry out parsed ``publish`` arguments; print the result; return the exit code."""
    from keras_resblocks._cli_common import CommandError

    try:
        publication = push_to_hub(
            args.directory,
            args.repo_id,
            token=args.token,
            private=args.private,
            revision=args.revision,
            commit_message=args.commit_message,
            parent_commit=args.parent_commit,
            dry_run=args.dry_run,
            endpoint=args.endpoint,
        )
        if args.dry_run:
            print(publication.describe() + "\n(dry run: nothing was sent)")
            return 0
        print(publication.describe(), file=sys.stderr)
    except (ValueError, PublishError, OSError) as err:
        raise CommandError(_one_line(err)) from err
    # stdout carries only the sha, so scripts can capture it.
    print(publication.commit_sha)
    return 0
