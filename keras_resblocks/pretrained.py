"""Pretrained models: resolve a source to a local checkpoint directory, then load it.

:func:`resolve` accepts a built-in name (see :func:`list_pretrained`),
``"hf://owner/repo"`` / ``"hf://owner/repo@revision"``, or a local checkpoint
directory, and returns a :class:`Provenance`: the directory and where it came from.
:func:`from_pretrained` is :func:`resolve` followed by one read of that directory.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

# Keras, the Hub client and the port are imported where they are needed, so that
# list_pretrained() (and `keras-resblocks list`) loads no deep-learning backend.
from keras_resblocks.checkpoints import registry
from keras_resblocks.checkpoints.format import (
    CONFIG_FILE,
    REFERENCE_ATOL,
    REFERENCE_RTOL,
    Provenance,
)

_HF_SOURCE = re.compile(r"^hf://([A-Za-z0-9][\w.-]*/[\w.-]+)(?:@([^@\s]+))?$")
_DOWNLOAD_AGAIN = " Download it again with from_pretrained(..., force_download=True)."
_PORT_AGAIN = " Port it again with from_pretrained(..., force_download=True)."


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
    return copy.deepcopy(registry.entries())


def resolve(source, *, revision=None, cache_dir=None, token=None, force_download=False):
    """Find a checkpoint and return its local directory and provenance.

    ``source`` is a built-in name (:func:`list_pretrained`), ``"hf://owner/repo"``
    (optionally ``"@revision"``: a branch, tag or commit; or pass ``revision=``), or
    a local checkpoint directory. A Hub checkpoint is downloaded (all files at one
    commit) and a ``keras.applications`` port is written on first use; nothing is
    loaded or verified here, :func:`load_checkpoint` does that.

    Example:

    >>> import tempfile
    >>> from keras_resblocks import Architecture, ResNet, resolve, save_pretrained
    >>> arch = Architecture(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2])
    >>> path = save_pretrained(ResNet(arch, num_classes=3, input_shape=(8, 8, 3)),
    ...                        tempfile.mkdtemp() + "/tiny")
    >>> resolve(str(path)).kind
    'directory'
    >>> resolve("hf://me/repo@v1", revision="v2")
    Traceback (most recent call last):
    ...
    ValueError: Two revisions given: 'v1' in `source` and 'v2'. Received: source='hf://me/repo@v1', revision='v2'
    """
    if isinstance(source, os.PathLike):
        return Provenance(Path(source), source=str(source))
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
        return _from_hub(source, repo_id, at_revision or revision, None, cache_dir, token,
                         force_download)
    entries = registry.entries()
    if source in entries:
        return _builtin(source, entries[source], revision, cache_dir, token, force_download)
    if os.path.isdir(source):
        return Provenance(Path(source), source=source)
    raise ValueError(
        f"Unknown checkpoint {source!r}: not a built-in name ({sorted(entries)}), not "
        f"'hf://owner/repo[@revision]' and not an existing directory. Received: source={source!r}"
    )


def _from_hub(source, repo_id, revision, expected_sha256, cache_dir, token, force_download):
    from keras_resblocks import hub

    directory = hub.download(repo_id, revision=revision, cache_dir=cache_dir, token=token,
                             force_download=force_download)
    # The snapshot folder of huggingface_hub's cache is named after the commit.
    return Provenance(directory, kind="hub", source=source, repo_id=repo_id,
                      revision=directory.name, expected_sha256=expected_sha256,
                      recovery=_DOWNLOAD_AGAIN)


def _builtin(name, entry, revision, cache_dir, token, force_download):
    if entry.get("bundled"):
        # The package's own files: a real directory in every install this package
        # supports (wheel or editable), not a zip.
        directory = Path(str(registry.weights_root() / entry["bundled"]))
        return Provenance(directory, kind="bundled", source=name, expected_sha256=entry["sha256"])
    if entry.get("hub"):
        pinned = entry["hub"].get("revision")
        expected = entry["sha256"] if revision in (None, pinned) else None
        return _from_hub(name, entry["hub"]["repo_id"], revision or pinned, expected, cache_dir,
                         token, force_download)
    from keras_resblocks import port

    directory = port.ported_dir(name, cache_dir)
    if force_download or not (directory / CONFIG_FILE).is_file():
        port.import_keras_applications(name, cache_dir=cache_dir)
    return Provenance(directory, kind="keras_applications", source=name, recovery=_PORT_AGAIN)


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
    checkpoint is kept). Where the checkpoint came from is in
    ``model.load_report.provenance``.

    Errors: :class:`CheckpointNotFoundError` (unknown repo or revision),
    :class:`MissingFileError` (a file is missing; lists the expected ones),
    :class:`ChecksumError` (names the file and both hashes),
    :class:`HubUnavailableError` (the Hub cannot be reached and nothing is cached),
    :class:`CheckpointDownloadError` (its base: also an ImageNet name whose
    ``keras.applications`` weights cannot be downloaded).

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
    from keras_resblocks.checkpoints.load import load_resolved

    provenance = resolve(source, revision=revision, cache_dir=cache_dir, token=token,
                         force_download=force_download)
    return load_resolved(provenance, num_classes=num_classes, include_top=include_top,
                         input_shape=input_shape, pooling=pooling)


def verify_reference(source, *, atol=REFERENCE_ATOL, rtol=REFERENCE_RTOL, raise_on_mismatch=True):
    """Check that a checkpoint still computes, on this backend, what it computed when written.

    ``source`` is a model returned by :func:`load_checkpoint` /
    :func:`from_pretrained` (loaded with its own head, in float32), or anything
    :func:`from_pretrained` takes (a built-in name, ``"hf://owner/repo"``, a
    directory), which is then loaded in float32. The inputs stored in the
    checkpoint's ``reference.safetensors`` go through the model in inference
    mode and its outputs (and logits) are compared with the stored ones.

    Returns a :class:`ReferenceReport`. Raises :class:`ReferenceMismatchError`,
    naming the checkpoint and the largest difference, when an output differs by
    more than ``atol + rtol * |recorded|`` (unless ``raise_on_mismatch=False``);
    :class:`MissingFileError` when the checkpoint has no reference batch;
    :class:`ChecksumError` when the file is not the one recorded.

    The default tolerances hold for float32 inference across TensorFlow and JAX;
    see docs/checkpoints.md for the measured differences.

    Example:

    >>> import tempfile
    >>> import numpy as np
    >>> from keras_resblocks import Architecture, ResNet, save_pretrained, verify_reference
    >>> arch = Architecture(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2])
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype="uint8")
    >>> path = save_pretrained(ResNet(arch, num_classes=3, input_shape=(8, 8, 3)),
    ...                        tempfile.mkdtemp() + "/tiny", reference_inputs=images)
    >>> report = verify_reference(path)
    >>> report.allclose, report.num_inputs, sorted(report.diffs)
    (True, 2, ['logits', 'outputs'])
    """
    import keras

    from keras_resblocks.checkpoints.reference import compare_reference, float32_inference

    if isinstance(source, keras.Model):
        return compare_reference(source, atol=atol, rtol=rtol, raise_on_mismatch=raise_on_mismatch)
    with float32_inference():
        model = from_pretrained(source)
    return compare_reference(model, name=str(source), atol=atol, rtol=rtol,
                             raise_on_mismatch=raise_on_mismatch)
