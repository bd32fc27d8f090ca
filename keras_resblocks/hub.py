"""The Hugging Face Hub transport: download a checkpoint's files, all at one commit.

``huggingface_hub`` does all the transport, so its settings apply as usual:
``HF_ENDPOINT``, ``HF_HOME`` / ``HF_HUB_CACHE``, ``HF_TOKEN``, ``HF_HUB_OFFLINE``
(read by ``huggingface_hub`` when it is imported). A revision is resolved to a
commit once and every file is fetched at that commit, so a branch that moves during
a download cannot mix files. ``huggingface_hub`` only checks sizes; the sha256 of
the weights is checked when the checkpoint is loaded, which also catches a file
corrupted in the cache after it was downloaded. Publishing is
:mod:`keras_resblocks.publish`. Finding a checkpoint by name is
:func:`keras_resblocks.resolve`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import huggingface_hub
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    RevisionResolutionError,
)

from keras_resblocks._downloads import one_line
from keras_resblocks.checkpoints.format import (
    CONFIG_FILE,
    METADATA_FILE,
    REFERENCE_FILE,
    REQUIRED_FILES,
    CheckpointError,
    CheckpointNotFoundError,
    HubUnavailableError,
)
from keras_resblocks.checkpoints.io import missing_files_error, read_metadata

logger = logging.getLogger("keras_resblocks")


# -- the Hub ---------------------------------------------------------------------------
def download(repo_id, *, revision=None, cache_dir=None, token=None, force_download=False):
    """Fetch a checkpoint's files from a Hub repo, all at one commit; return their directory.

    The revision (default: the main branch) is resolved to a commit once, then
    ``config.json``, ``model.safetensors`` and ``metadata.json`` are downloaded at
    that commit into the ``huggingface_hub`` cache, and ``reference.safetensors``
    too when ``metadata.json`` records one (it is optional: a repo without it
    loads the same). Offline or with the Hub down, a previously cached snapshot is
    used. Nothing is verified here; loading does (see :func:`keras_resblocks.from_pretrained`).
    """
    api = huggingface_hub.HfApi(token=token)
    resolved = resolve_commit(api, repo_id, revision, cache_dir, token)
    fetch = fetch_arguments(repo_id, resolved, cache_dir, token, force_download)
    where = f"{repo_id}@{revision or 'main'} on {api.endpoint}"
    paths = {name: fetch_file(api, name, fetch, REQUIRED_FILES, where) for name in REQUIRED_FILES}
    _download_reference(paths[METADATA_FILE], fetch, where)
    return Path(paths[CONFIG_FILE]).parent


def resolve_commit(api, repo_id, revision, cache_dir, token):
    """``revision`` (default: the main branch) of ``repo_id`` resolved to a commit, once.

    Offline, or with the Hub down, the commit the cache last saw for it; one-line
    errors for an unknown repo or revision and for nothing cached.
    """
    where = f"{repo_id}@{revision or 'main'} on {api.endpoint}"
    try:
        return api.resolve_revision(repo_id, revision=revision, cache_dir=cache_dir, token=token)
    except RevisionNotFoundError:
        raise CheckpointNotFoundError(
            f"The Hub repo {repo_id!r} has no revision {revision!r} (branch, tag or commit). "
            f"Received: revision={revision!r}"
        ) from None
    except RepositoryNotFoundError:
        raise CheckpointNotFoundError(
            f"No model repo {repo_id!r} on {api.endpoint} (or it is private and no valid token "
            f"was given). Received: repo_id={repo_id!r}"
        ) from None
    except RevisionResolutionError as error:
        raise _unavailable(where, cache_dir, error) from None


def fetch_arguments(repo_id, resolved, cache_dir, token, force_download):
    """The keyword arguments of ``hf_hub_download`` that fetch ``repo_id``'s files at ``resolved``."""
    return dict(
        repo_id=repo_id,
        revision=resolved,
        cache_dir=cache_dir,
        token=token,
        force_download=force_download,
    )


def fetch_file(api, filename, fetch, expected, where):
    """One file of a repo at the commit of ``fetch``; its local path (a link into the cache's
    ``blobs/``, which ``huggingface_hub`` names after the ETag the Hub sent: a large
    file's sha256). A missing file is a :class:`MissingFileError` listing ``expected``."""
    repo_id, resolved = fetch["repo_id"], fetch["revision"]
    try:
        return huggingface_hub.hf_hub_download(filename=filename, **fetch)
    except RemoteEntryNotFoundError:
        present = [
            s.rfilename for s in api.model_info(repo_id, revision=resolved.resolved).siblings
        ]
        missing = [name for name in expected if name not in present]
        raise missing_files_error(
            missing, present, where=f"hf://{repo_id}@{resolved.resolved}"
        ) from None
    except LocalEntryNotFoundError as error:
        raise _unavailable(where, fetch["cache_dir"], error) from None
    except (CheckpointError, ValueError):
        raise
    except Exception as error:  # transport errors (httpx, OSError) after the client's retries
        raise HubUnavailableError(
            one_line(
                f"Downloading {filename} of {repo_id}@{resolved.resolved} from {api.endpoint} failed: "
                f"{type(error).__name__}: {error}. Retry later. {_OFFLINE_WAY} "
                f"Received: repo_id={repo_id!r}"
            )
        ) from error


def _download_reference(metadata_path, fetch, where):
    # Asked for only when metadata.json records it, so a repo without one costs no
    # request; a reference that cannot be had does not stop the model from loading
    # (verify_reference then says it is missing).
    try:
        if not read_metadata(Path(metadata_path).parent).reference:
            return
    except CheckpointError:
        return  # load_checkpoint reports the broken metadata.json
    try:
        huggingface_hub.hf_hub_download(filename=REFERENCE_FILE, **fetch)
    except (RemoteEntryNotFoundError, LocalEntryNotFoundError) as error:
        logger.warning(
            "%s records a %s but it could not be fetched (%s); the model loads without it.",
            where,
            REFERENCE_FILE,
            type(error).__name__,
        )
    except Exception as error:  # transport errors, as for the required files
        raise HubUnavailableError(
            one_line(
                f"Downloading {REFERENCE_FILE} of {where} failed: {type(error).__name__}: {error}. "
                f"Retry later. {_OFFLINE_WAY} Received: repo_id={fetch['repo_id']!r}"
            )
        ) from error


_OFFLINE_WAY = (
    "Offline, load a local checkpoint directory instead, or fill the cache on a "
    "connected machine and set HF_HUB_OFFLINE=1."
)


def _unavailable(where, cache_dir, error):
    reason = (
        "offline mode is on (HF_HUB_OFFLINE)"
        if hf_constants.is_offline_mode()
        else "the Hub cannot be reached (is this machine offline?)"
    )
    return HubUnavailableError(
        one_line(
            f"Cannot load {where}: {reason} and it is not in the cache "
            f"{str(cache_dir or hf_constants.HF_HUB_CACHE)!r}. ({type(error).__name__}: {error}) "
            f"Connect once to download it, or point HF_ENDPOINT at a reachable mirror. {_OFFLINE_WAY}"
        )
    )
