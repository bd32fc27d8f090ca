"""timm's repositories on the Hugging Face Hub, loaded as checkpoints of this package.

A timm repository (``timm/resnet50.a1_in1k``) holds a ``config.json`` naming a timm
``architecture`` beside a ``pretrained_cfg``, and a ``model.safetensors`` keyed by timm's
module names; it has no ``metadata.json`` of ours. :func:`fetch_converted` downloads the two
files at one commit through ``huggingface_hub`` (so ``HF_ENDPOINT``, ``HF_HOME``,
``HF_TOKEN`` and ``HF_HUB_OFFLINE`` apply as for :mod:`keras_resblocks.hub`), checks the
weights against the sha256 the Hub reported for them, converts them with
:func:`keras_resblocks.convert_timm.convert_timm` and writes the result as a checkpoint
(card and reference batch included) into a cache folder named after the repository and
the commit: the conversion happens once per commit, and later loads read that checkpoint,
verified like any other.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from keras_resblocks import hub
from keras_resblocks.checkpoints.format import (
    CONFIG_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    ChecksumError,
)

UPSTREAM_FILES = (CONFIG_FILE, WEIGHTS_FILE)
REFERENCE_IMAGES = 2
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONVERT_AGAIN = " Download and convert it again with from_pretrained(..., force_download=True)."


class TimmSourceError(CheckpointError):
    """A timm repository whose files cannot be converted (architecture, shapes, format)."""


def is_timm_config(config):
    """Whether a parsed ``config.json`` is timm's: a string ``architecture`` and a
    ``pretrained_cfg`` (this package's own config holds the architecture as an object).

    Example:

    >>> from keras_resblocks.hub_timm import is_timm_config
    >>> is_timm_config({"architecture": "resnet18", "num_classes": 1000, "pretrained_cfg": {}})
    True
    >>> is_timm_config({"architecture": {"stage_depths": [2, 2]}, "model": {}})
    False
    """
    return (
        isinstance(config, dict)
        and isinstance(config.get("architecture"), str)
        and isinstance(config.get("pretrained_cfg"), dict)
    )


def converted_dir(repo_id, commit, cache_dir=None):
    """Where the conversion of ``repo_id`` at ``commit`` is kept: beside the ported
    ``keras.applications`` checkpoints (``cache_dir``, else ``$KERAS_HOME/keras_resblocks``).

    Example:

    >>> from keras_resblocks.hub_timm import converted_dir
    >>> converted_dir("timm/resnet18.a1_in1k", "0" * 40, "/cache").as_posix()
    '/cache/timm/timm--resnet18.a1_in1k/0000000000000000000000000000000000000000'
    """
    from keras_resblocks.port import ported_dir

    return ported_dir("timm", cache_dir) / repo_id.replace("/", "--") / commit


def fetch_converted(
    api,
    repo_id,
    resolved,
    *,
    cache_dir=None,
    token=None,
    force_download=False,
    expected_sha256=None,
):
    """The converted checkpoint of a timm repository at the commit ``resolved``, or None
    when the repository is not timm's (its ``config.json`` is then already in the cache).

    A conversion already cached for that commit is returned as it is, with no request
    (loading verifies it); ``force_download`` downloads and converts again.
    ``expected_sha256`` (the catalogue's pin) is the sha256 timm's ``model.safetensors``
    must have, checked on the download and against what a cached conversion records.
    """
    directory = converted_dir(repo_id, resolved.resolved, cache_dir)
    if not force_download and (directory / METADATA_FILE).is_file():
        if expected_sha256 is not None:
            _check_pin(_recorded_upstream(directory), expected_sha256, repo_id, resolved.resolved)
        return directory
    fetch = hub.fetch_arguments(repo_id, resolved, cache_dir, token, force_download)
    where = f"{repo_id}@{resolved.resolved} on {api.endpoint}"
    config_path = hub.fetch_file(api, CONFIG_FILE, fetch, UPSTREAM_FILES, where)
    config = _read_config(config_path, repo_id)
    if not is_timm_config(config):
        return None
    info = _check_config(config, repo_id)  # before downloading the weights
    weights_path = hub.fetch_file(api, WEIGHTS_FILE, fetch, UPSTREAM_FILES, where)
    sha256 = check_upstream_weights(weights_path, repo_id, resolved.resolved)
    if expected_sha256 is not None:
        _check_pin(sha256, expected_sha256, repo_id, resolved.resolved)
    upstream = {
        "repo_id": repo_id,
        "revision": resolved.resolved,
        "file": WEIGHTS_FILE,
        "sha256": sha256,
        "architecture": info["architecture"],
        "tag": info["tag"],
        "license": info["licence"],
    }
    return write_converted(weights_path, config, upstream, directory)


def _recorded_upstream(directory):
    from keras_resblocks.checkpoints.format import metadata_detail
    from keras_resblocks.checkpoints.io import read_json

    return metadata_detail(read_json(directory / METADATA_FILE), "upstream").get("sha256")


def _check_pin(actual, expected, repo_id, commit):
    if actual != expected:
        raise ChecksumError(
            f"{WEIGHTS_FILE} of hf://{repo_id}@{commit} has sha256 {actual}, but the catalogue "
            f"pins {expected}: not the weights the catalogue names.{_CONVERT_AGAIN} "
            f"Received: sha256={actual!r}"
        )


def _read_config(path, repo_id):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"The {CONFIG_FILE} of hf://{repo_id} is not JSON ({error})."
            f"{_CONVERT_AGAIN} Received: {str(path)!r}"
        ) from None


def _check_config(config, repo_id):
    from keras_resblocks.convert_timm import TimmConversionError, read_timm_config

    try:
        return read_timm_config(config)
    except TimmConversionError as error:
        raise TimmSourceError(f"hf://{repo_id}: {error}") from None


def check_upstream_weights(path, repo_id, commit):
    """The sha256 of a downloaded file, checked against the one the Hub reported for it.

    ``huggingface_hub`` names each file of its cache after the ETag the Hub sent, which for
    a file stored with Git LFS (as every weights file) is its sha256; the file is hashed
    and must match, on the first download and on every later use of the cached copy
    (offline too). Raises :class:`ChecksumError` naming both hashes.
    """
    from keras_resblocks.checkpoints.io import sha256_of

    blob = Path(path).resolve()
    reported = blob.name
    if not _SHA256.match(reported):
        raise ChecksumError(
            f"The Hub reports no sha256 for {WEIGHTS_FILE} of hf://{repo_id}@{commit} "
            f"(not stored with Git LFS), so it cannot be checked; refused. "
            f"Received: ETag {reported!r}"
        )
    actual = sha256_of(blob)
    if actual != reported:
        raise ChecksumError(
            f"{WEIGHTS_FILE} of hf://{repo_id}@{commit} has sha256 {actual}, but the Hub "
            f"reported {reported}: the download is incomplete or the cached copy was "
            f"changed.{_CONVERT_AGAIN} Received: {str(blob)!r}"
        )
    return actual


def write_converted(weights_path, config, upstream, directory):
    """Convert timm's ``model.safetensors`` with its ``config`` and write the checkpoint."""
    import numpy as np
    import safetensors.numpy

    from keras_resblocks.checkpoints import save_pretrained
    from keras_resblocks.checkpoints.io import point_card_to
    from keras_resblocks.convert_timm import (
        TimmConversionError,
        convert_timm,
        imagenet_class_names,
    )

    repo_id = upstream["repo_id"]
    try:
        state = safetensors.numpy.load_file(str(weights_path))
    except Exception as error:  # safetensors raises its own SafetensorError, or OSError
        raise TimmSourceError(
            f"{WEIGHTS_FILE} of hf://{repo_id} is not a readable safetensors file "
            f"({type(error).__name__}: {error}). Received: {str(weights_path)!r}"
        ) from None
    try:
        conversion = convert_timm(state, config)
    except TimmConversionError as error:
        raise TimmSourceError(f"hf://{repo_id}: {error}") from None
    labels = conversion.labels
    if labels is None and conversion.num_classes == 1000 and _imagenet_1k(conversion.tag):
        labels = imagenet_class_names()
    height, width, _ = conversion.input_shape
    images = np.random.default_rng(0).integers(
        0, 256, (REFERENCE_IMAGES, *conversion.input_shape), dtype="uint8"
    )
    # Written beside its place and moved there whole once its card loads it from the Hub,
    # so an interrupted conversion never leaves a checkpoint that looks finished.
    staging = directory.with_name(directory.name + ".converting")
    save_pretrained(
        conversion.model,
        staging,
        labels=labels,
        dataset="imagenet-1k" if _imagenet_1k(conversion.tag) else None,
        license=conversion.licence or "other",
        reference_inputs=images,
        overwrite=staging.exists(),
        model_name=repo_id.split("/")[-1],
        eval_split="validation",
        upstream=upstream,
        input_size=[height, width],
        interpolation=conversion.interpolation,
        crop_fraction=conversion.crop_fraction,
    )
    point_card_to(staging, f"hf://{repo_id}@{upstream['revision']}")
    if directory.exists():  # force_download: the conversion is made again
        shutil.rmtree(directory)
    os.replace(staging, directory)
    return directory


def _imagenet_1k(tag):
    """Whether timm's tag says the weights classify ImageNet-1k (``a1_in1k``, ``tv2_in1k``,
    ``fb_swsl_ig1b_ft_in1k``: the suffix names the classifier's data)."""
    return isinstance(tag, str) and tag.endswith("in1k")
