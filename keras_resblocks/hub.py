"""Find, download, verify and load pretrained checkpoints.

One resolver, :func:`from_pretrained`, accepts a built-in name (see
:func:`list_pretrained`), ``"hf://owner/repo"`` / ``"hf://owner/repo@revision"``, or a
local checkpoint directory. ``huggingface_hub`` does all the transport, so its
settings apply as usual: ``HF_ENDPOINT``, ``HF_HOME`` / ``HF_HUB_CACHE``,
``HF_TOKEN``, ``HF_HUB_OFFLINE`` (read by ``huggingface_hub`` when it is imported).
A revision is resolved to a commit once and every file is fetched at that commit,
so a branch that moves during a download cannot mix files. ``huggingface_hub``
only checks sizes; the sha256 of the weights is checked here, on every load, which
also catches a file corrupted in the cache after it was downloaded.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
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

from keras_resblocks.checkpoint import (
    CONFIG_FILE,
    METADATA_FILE,
    REFERENCE_FILE,
    REQUIRED_FILES,
    CheckpointError,
    load_checkpoint,
    logger,
    missing_files_error,
    read_metadata,
    save_pretrained,
)
from keras_resblocks.registry import ARCHITECTURES

REGISTRY_FILE = "registry.json"
_HF_SOURCE = re.compile(r"^hf://([A-Za-z0-9][\w.-]*/[\w.-]+)(?:@([^@\s]+))?$")
_ENTRY_KEYS = {"architecture", "dataset", "description", "metrics", "sha256", "files", "hub",
               "bundled", "keras_applications", "license", "ported_from"}
_FORCE_HINT = " Download it again with from_pretrained(..., force_download=True)."


class CheckpointNotFoundError(CheckpointError):
    """The Hub answered: no such repo, or no such revision in it."""


class HubUnavailableError(ConnectionError):
    """The Hub cannot be reached (or offline mode is on) and nothing usable is cached."""


# -- the registry ----------------------------------------------------------------------
def _weights_root():
    return importlib.resources.files("keras_resblocks.weights")


def _registry():
    data = json.loads((_weights_root() / REGISTRY_FILE).read_text(encoding="utf-8"))
    entries = data.get("checkpoints", {})
    for name, entry in entries.items():
        unknown = set(entry) - _ENTRY_KEYS
        if unknown or entry.get("architecture") not in ARCHITECTURES:
            raise CheckpointError(
                f"Invalid registry entry {name!r} (unknown keys {sorted(unknown)}, or an "
                f"architecture not in list_models()). Received: {entry!r}"
            )
        sources = [k for k in ("hub", "bundled", "keras_applications") if entry.get(k)]
        if not sources:
            raise CheckpointError(
                f"Registry entry {name!r} says neither where it is published (`hub`), "
                f"bundled (`bundled`) nor ported from (`keras_applications`). Received: {entry!r}"
            )
    return entries


def list_pretrained():
    """The built-in checkpoints: ``{name: entry}`` from ``weights/registry.json``.

    An entry records the architecture (a :func:`list_models` name), the dataset,
    measured metrics, the sha256 of the weights, and where the weights come from:
    ``"hub"`` (``{"repo_id", "revision"}``), ``"bundled"`` (a directory inside the
    package, loaded without network) or ``"keras_applications"`` (ported on first
    use from ``keras.applications``' own ImageNet download). ``"ported_from"``
    (``"owner/repo@commit"``) marks weights converted from another project rather
    than trained by this package.

    Example:

    >>> from keras_resblocks import list_pretrained
    >>> entry = list_pretrained()["resnet50_imagenet"]
    >>> entry["architecture"], entry["keras_applications"]
    ('resnet50', 'ResNet50')
    """
    return {name: dict(entry) for name, entry in _registry().items()}


# -- resolving a source ----------------------------------------------------------------
def from_pretrained(source, *, revision=None, num_classes=None, include_top=True, input_shape=None,
                    pooling=None, cache_dir=None, token=None, force_download=False):
    """Load a pretrained :class:`ResNet` from a name, a Hub repo or a directory.

    ``source`` is a built-in name (:func:`list_pretrained`), ``"hf://owner/repo"``
    (optionally ``"@revision"``: a branch, tag or commit; or pass ``revision=``), or
    a local checkpoint directory. ``num_classes``, ``include_top``, ``input_shape``
    and ``pooling`` adapt the model as in :func:`load_checkpoint` (a new
    ``num_classes`` loads all but the classifier, and says so). ``cache_dir``,
    ``token`` and ``force_download`` go to ``huggingface_hub`` (for the ImageNet
    names ported from ``keras.applications``, ``cache_dir`` is where the ported
    checkpoint is kept).

    Errors: :class:`CheckpointNotFoundError` (unknown repo or revision),
    :class:`MissingFileError` (a file is missing; lists the expected ones),
    :class:`ChecksumError` (names the file and both hashes),
    :class:`HubUnavailableError` (the Hub cannot be reached and nothing is cached).

    Example:

    >>> import tempfile
    >>> from keras_resblocks import Architecture, ResNet, save_pretrained, from_pretrained
    >>> arch = Architecture(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2])
    >>> path = save_pretrained(ResNet(arch, num_classes=3, input_shape=(8, 8, 3)),
    ...                        tempfile.mkdtemp() + "/tiny")
    >>> model = from_pretrained(str(path), include_top=False, pooling="avg")
    >>> model.output_shape
    (None, 8)
    """
    load_kwargs = dict(num_classes=num_classes, include_top=include_top, input_shape=input_shape,
                       pooling=pooling)
    if isinstance(source, os.PathLike):
        return load_checkpoint(source, **load_kwargs)
    if not isinstance(source, str) or not source:
        raise ValueError(
            "`source` must be a built-in name, 'hf://owner/repo[@revision]' or a directory. "
            f"Received: source={source!r}"
        )
    if source.startswith("hf://"):
        match = _HF_SOURCE.match(source)
        if not match:
            raise ValueError(
                f"A Hub source reads 'hf://owner/repo' or 'hf://owner/repo@revision'. "
                f"Received: source={source!r}"
            )
        repo_id, at_revision = match.groups()
        if at_revision and revision and at_revision != revision:
            raise ValueError(
                f"Two revisions given: {at_revision!r} in `source` and {revision!r}. "
                f"Received: source={source!r}, revision={revision!r}"
            )
        directory = download(repo_id, revision=at_revision or revision, cache_dir=cache_dir,
                             token=token, force_download=force_download)
        return load_checkpoint(directory, **load_kwargs, _hint=_FORCE_HINT)

    registry = _registry()
    if source in registry:
        return _load_builtin(source, registry[source], revision, cache_dir, token, force_download,
                             load_kwargs)
    if os.path.isdir(source):
        return load_checkpoint(source, **load_kwargs)
    raise ValueError(
        f"Unknown checkpoint {source!r}: not a built-in name ({sorted(registry)}), not "
        f"'hf://owner/repo[@revision]' and not an existing directory. Received: source={source!r}"
    )


def _load_builtin(name, entry, revision, cache_dir, token, force_download, load_kwargs):
    if entry.get("bundled"):
        with importlib.resources.as_file(_weights_root() / entry["bundled"]) as directory:
            return load_checkpoint(directory, expected_sha256=entry["sha256"], **load_kwargs)
    if entry.get("hub"):
        hub = entry["hub"]
        directory = download(hub["repo_id"], revision=revision or hub.get("revision"),
                             cache_dir=cache_dir, token=token, force_download=force_download)
        expected = entry["sha256"] if revision in (None, hub.get("revision")) else None
        return load_checkpoint(directory, expected_sha256=expected, **load_kwargs,
                               _hint=_FORCE_HINT)
    directory = _ported_dir(name, cache_dir)
    if force_download or not (directory / CONFIG_FILE).is_file():
        import_keras_applications(name, cache_dir=cache_dir)
    return load_checkpoint(directory, **load_kwargs,
                           _hint=" Port it again with from_pretrained(..., force_download=True).")


# -- the Hub ---------------------------------------------------------------------------
def download(repo_id, *, revision=None, cache_dir=None, token=None, force_download=False):
    """Fetch a checkpoint's files from a Hub repo, all at one commit; return their directory.

    The revision (default: the main branch) is resolved to a commit once, then
    ``config.json``, ``model.safetensors`` and ``metadata.json`` are downloaded at
    that commit into the ``huggingface_hub`` cache, and ``reference.safetensors``
    too when ``metadata.json`` records one (it is optional: a repo without it
    loads the same). Offline or with the Hub down, a previously cached snapshot is
    used. Nothing is verified here; see :func:`from_pretrained`.
    """
    api = huggingface_hub.HfApi(token=token)
    where = f"{repo_id}@{revision or 'main'} on {api.endpoint}"
    try:
        resolved = api.resolve_revision(repo_id, revision=revision, cache_dir=cache_dir, token=token)
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

    fetch = dict(repo_id=repo_id, revision=resolved, cache_dir=cache_dir, token=token,
                 force_download=force_download)
    paths = {}
    for filename in REQUIRED_FILES:
        try:
            paths[filename] = huggingface_hub.hf_hub_download(filename=filename, **fetch)
        except RemoteEntryNotFoundError:
            present = [s.rfilename for s in api.model_info(repo_id, revision=resolved.resolved).siblings]
            missing = [name for name in REQUIRED_FILES if name not in present]
            raise missing_files_error(missing, present, where=f"hf://{repo_id}@{resolved.resolved}") from None
        except LocalEntryNotFoundError as error:
            raise _unavailable(where, cache_dir, error) from None
        except (CheckpointError, ValueError):
            raise
        except Exception as error:  # transport errors (httpx, OSError) after the client's retries
            raise HubUnavailableError(
                f"Downloading {filename} of {repo_id}@{resolved.resolved} from {api.endpoint} failed: "
                f"{type(error).__name__}: {error}. Retry later. Received: repo_id={repo_id!r}"
            ) from error
    _download_reference(paths[METADATA_FILE], fetch, where)
    return Path(paths[CONFIG_FILE]).parent


def _download_reference(metadata_path, fetch, where):
    # Asked for only when metadata.json records it, so a repo without one costs no
    # request; a reference that cannot be had does not stop the model from loading
    # (verify_reference then says it is missing).
    try:
        if not read_metadata(metadata_path).get("reference"):
            return
    except CheckpointError:
        return  # load_checkpoint reports the broken metadata.json
    try:
        huggingface_hub.hf_hub_download(filename=REFERENCE_FILE, **fetch)
    except (RemoteEntryNotFoundError, LocalEntryNotFoundError) as error:
        logger.warning("%s records a %s but it could not be fetched (%s); the model loads "
                       "without it.", where, REFERENCE_FILE, type(error).__name__)
    except Exception as error:  # transport errors, as for the required files
        raise HubUnavailableError(
            f"Downloading {REFERENCE_FILE} of {where} failed: {type(error).__name__}: {error}. "
            f"Retry later. Received: repo_id={fetch['repo_id']!r}"
        ) from error


def _unavailable(where, cache_dir, error):
    reason = ("offline mode is on (HF_HUB_OFFLINE)" if hf_constants.is_offline_mode()
              else "the Hub cannot be reached")
    return HubUnavailableError(
        f"Cannot load {where}: {reason} and it is not in the cache "
        f"{str(cache_dir or hf_constants.HF_HUB_CACHE)!r}. ({type(error).__name__}: {error}) "
        "Connect once to download it, or point HF_ENDPOINT at a reachable mirror."
    )


# -- keras.applications ImageNet weights -----------------------------------------------
def _ported_dir(name, cache_dir):
    # keras.applications keeps its downloads under KERAS_HOME (default ~/.keras);
    # the ported checkpoints sit next to them.
    root = cache_dir or os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")),
                                     "keras_resblocks")
    return Path(root) / name


def import_keras_applications(name, *, weights_path=None, cache_dir=None, input_shape=None):
    """Port a ``keras.applications`` ImageNet ResNet into a checkpoint under ``cache_dir``.

    ``name`` is a registry entry with ``"keras_applications"`` (``"resnet50_imagenet"``
    ...). By default the weights come from ``keras.applications``' own download
    (``weights="imagenet"``, checked against its pinned hash); ``weights_path``
    takes a local weights file instead (e.g. for tests, or a machine without
    network), and ``input_shape`` then may be smaller than 224x224. The ported model
    is written with :func:`save_pretrained`, so later loads are local.
    Returns the checkpoint directory.

    Example:

    >>> from keras_resblocks import import_keras_applications
    >>> import_keras_applications("resnet20")
    Traceback (most recent call last):
    ...
    ValueError: `name` must be one of ['resnet101_imagenet', 'resnet101v2_imagenet', 'resnet152_imagenet', 'resnet152v2_imagenet', 'resnet50_imagenet', 'resnet50v2_imagenet']. Received: name='resnet20'

    Porting ``keras.applications.ResNet50(weights=None)`` saved to a file (as the
    tests do) or the real ImageNet weights takes seconds, so it is not run here.
    """
    import keras

    from keras_resblocks.port import port_keras_applications

    registry = _registry()
    entry = registry.get(name)
    if not entry or not entry.get("keras_applications"):
        ported = sorted(n for n, e in registry.items() if e.get("keras_applications"))
        raise ValueError(f"`name` must be one of {ported}. Received: name={name!r}")
    constructor = getattr(keras.applications, entry["keras_applications"])
    weights = "imagenet" if weights_path is None else str(weights_path)
    source = constructor(weights=weights, input_shape=input_shape)
    model = port_keras_applications(source)
    return save_pretrained(
        model, _ported_dir(name, cache_dir), dataset=entry["dataset"],
        license=entry.get("license") or "other",
        source=f"keras.applications.{entry['keras_applications']}",
        weights=weights if weights_path is None else os.path.basename(str(weights_path)),
        model_name=name,
    )
