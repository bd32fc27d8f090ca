"""Pretrained models: resolve a source to a local checkpoint directory, then load it.

:func:`resolve` accepts a built-in name (see :func:`list_pretrained`),
``"hf://owner/repo"`` / ``"hf://owner/repo@revision"``, or a local checkpoint
directory, and returns a :class:`Provenance`: the directory and where it came from.
:func:`from_pretrained` is :func:`resolve` followed by one read of that directory.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Optional

# Keras, the Hub client and the port are imported where they are needed, so that
# list_pretrained() (and `keras-resblocks list`) loads no deep-learning backend.
from keras_resblocks.checkpoints import catalog
from keras_resblocks._suggest import SEE_ALL, did_you_mean
from keras_resblocks.checkpoints.format import (
    CONFIG_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    REFERENCE_ATOL,
    REFERENCE_RTOL,
    Provenance,
    metadata_detail,
)

_HF_SOURCE = re.compile(r"^hf://([A-Za-z0-9][\w.-]*/[\w.-]+)(?:@([^@\s]+))?$")
_DOWNLOAD_AGAIN = " Download it again with from_pretrained(..., force_download=True)."
_CONVERT_AGAIN = " Download and convert it again with from_pretrained(..., force_download=True)."
_PORT_AGAIN = " Port it again with from_pretrained(..., force_download=True)."


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """One built-in checkpoint, as :func:`list_pretrained` describes it.

    Fields:
        name: what :func:`from_pretrained` takes.
        architecture: its :func:`list_models` name.
        dataset: what it was trained on (a Hub dataset id or a short name).
        accuracy: top-1 accuracy measured by this package, or None (not measured).
        measured_on: on what ``accuracy`` was measured: the split, its size and, for
            data other than the original, what it was (``data_note`` in full).
        data_note: the full account of the data ``accuracy`` was measured on, or None.
        parameters: weights of the model, BatchNorm statistics included.
        size_mb: the float32 weights, in MB (10**6 bytes).
        source: ``"bundled"`` (in the package, no network), ``"hub"`` (downloaded
            from ``location``) or ``"keras.applications"`` (ported on first use from
            Keras' own ImageNet download).
        location: the package folder, ``hf://owner/repo@revision`` or the Keras
            constructor the weights come from.
        ported_from: ``"owner/repo@commit"`` for weights converted from another
            project rather than trained by this package, else None.
        license: the weights' licence.
        description: one sentence about the weights.
        macs: multiply-accumulates of one image's forward pass at the checkpoint's
            input size (:func:`keras_resblocks.multiply_accumulates`).
        file_mb: the size of its weights file in MB, where it is in the package.
        accuracy_spread: where the same recipe was trained with several seeds, the
            ``accuracy`` of each (``{"seeds": [...], "accuracies": [...], "min", "max",
            "mean"}``), else None.
        origin: ``"trained here"`` (by this package) or ``"ported"`` (converted from
            another project's weights).
        trained_on: the data the weights were trained on, where known.
        command: the command that reproduces the weights (training, or the conversion of
            ported ones), where recorded.
        entry: the raw entry of ``weights/catalog.json``.
    """

    name: str
    architecture: str
    dataset: str
    accuracy: Optional[float]
    measured_on: Optional[str]
    data_note: Optional[str]
    parameters: int
    size_mb: float
    source: str
    location: str
    ported_from: Optional[str]
    license: Optional[str]
    description: str
    macs: int
    file_mb: Optional[float]
    accuracy_spread: Optional[dict]
    origin: str
    trained_on: Optional[str]
    command: Optional[str]
    entry: dict = dataclasses.field(repr=False)

    def summary(self):
        """One line: name, architecture, size, accuracy and on what, where it comes from."""
        reported = (self.entry.get("reported") or {}).get("top1_accuracy")
        if self.accuracy is not None:
            accuracy = f"{100 * self.accuracy:.2f}% top-1 on {self.measured_on}"
        elif reported is not None:
            accuracy = f"upstream reports {100 * reported:.2f}% top-1 (not measured here)"
        else:
            accuracy = "accuracy not measured here"
        return (
            f"{self.name}: {self.architecture}, {self.parameters / 1e6:.2f}M parameters "
            f"({self.size_mb:.1f} MB), {self.dataset}, {accuracy}; {self.source}"
        )


def list_pretrained():
    """The built-in checkpoints: ``{name: Pretrained}``, read from ``weights/catalog.json``.

    Each :class:`Pretrained` says what a user scans for: the architecture, the
    dataset, the accuracy this package measured and on what, the size, and where
    the weights come from (``bundled`` in the package, the ``hub``, or
    ``keras.applications``' ImageNet download); ``ported_from`` marks weights
    converted from another project rather than trained by this package. Nothing
    is downloaded or loaded, and no deep-learning backend is imported.
    ``keras-resblocks list`` prints the same as a table.

    Example:

    >>> from keras_resblocks import list_pretrained
    >>> entry = list_pretrained()["resnet20_cifar10_akamaster"]
    >>> entry.architecture, entry.accuracy, entry.source, entry.parameters
    ('resnet20', 0.8103, 'bundled', 271098)
    >>> print(entry.summary())
    resnet20_cifar10_akamaster: resnet20, 0.27M parameters (1.1 MB), cifar10, 81.03% top-1 on the test (JPEG q75 copy) split, 10,000 images; bundled
    >>> list_pretrained()["resnet50_imagenet"].entry["keras_applications"]  # the catalogue's
    'ResNet50'
    """
    return {
        name: _describe(name, copy.deepcopy(entry)) for name, entry in catalog.entries().items()
    }


def _describe(name, entry):
    from keras_resblocks._cli_common import reproduction_command
    from keras_resblocks.architecture import Architecture, multiply_accumulates, parameter_count

    metrics = entry.get("metrics") or {}
    metric = next((m for m in ("test_accuracy", "top1_accuracy", "accuracy") if m in metrics), None)
    meta, model, file_mb = {}, {}, None
    if entry.get("bundled"):
        directory = catalog.weights_root() / entry["bundled"]
        meta = _json_or_empty(directory / METADATA_FILE)
        model = _json_or_empty(directory / CONFIG_FILE).get("model") or {}
        weights = directory / WEIGHTS_FILE
        file_mb = round(weights.stat().st_size / 1e6, 2) if weights.is_file() else None
        source, location = "bundled", f"keras_resblocks/weights/{entry['bundled']}"
    elif entry.get("hub"):
        hub_entry = entry["hub"]
        source = "hub"
        location = f"hf://{hub_entry['repo_id']}@{(hub_entry.get('revision') or 'main')[:12]}"
    else:
        source = "keras.applications"
        location = f"keras.applications.{entry['keras_applications']} (download on first use)"
    num_classes = model.get("num_classes")
    measured_on, data_note = None, None
    if metric is not None:
        measurement = metadata_detail(meta, "measurement")
        split = metadata_detail(meta, "eval_split") if metric != "accuracy" else "test"
        images = measurement.get("images") or metadata_detail(meta, "data").get("test")
        measured_on = f"the {split} split" + (f", {images:,} images" if images else "")
        data_note = measurement.get("data") or metadata_detail(meta, "data_note")
    if str((entry.get("hub") or {}).get("repo_id", "")).startswith("timm/"):
        from keras_resblocks.convert_timm import timm_architecture

        architecture = timm_architecture(entry["architecture"])  # bias-free, stride on the 3x3
    else:
        architecture = Architecture.named(entry["architecture"])
    parameters = parameter_count(architecture, num_classes=num_classes)
    input_shape = model.get("input_shape")
    macs = multiply_accumulates(
        architecture,
        input_shape=input_shape if input_shape and None not in input_shape else None,
        num_classes=num_classes,
    )
    ported = entry.get("ported_from")
    origin = "ported" if ported or entry.get("keras_applications") else "trained here"
    trained_on = entry.get("trained_on")
    data = metadata_detail(meta, "data")
    if trained_on is None and origin == "trained here" and (data.get("name") or data.get("source")):
        train = data.get("train")
        trained_on = (data.get("name") or data["source"]) + (f", {train:,} images" if train else "")
    recorded = meta.get("converted_by") if origin == "ported" else meta.get("command")
    command = reproduction_command(recorded) if isinstance(recorded, str) else None
    return Pretrained(
        name=name,
        architecture=entry["architecture"],
        dataset=entry.get("dataset") or "",
        accuracy=metrics.get(metric) if metric else None,
        measured_on=measured_on,
        data_note=data_note,
        parameters=parameters,
        size_mb=round(4 * parameters / 1e6, 1),
        source=source,
        location=location,
        ported_from=ported,
        license=entry.get("license"),
        description=entry.get("description") or "",
        macs=macs,
        file_mb=file_mb,
        accuracy_spread=entry.get("spread"),
        origin=origin,
        trained_on=trained_on,
        command=command,
        entry=entry,
    )


def _json_or_empty(path):
    # The listing describes; a broken file is reported when the checkpoint is loaded.
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def resolve(source, *, revision=None, cache_dir=None, token=None, force_download=False):
    """Find a checkpoint and return its local directory and provenance.

    ``source`` is a built-in name (:func:`list_pretrained`), ``"hf://owner/repo"``
    (optionally ``"@revision"``: a branch, tag or commit; or pass ``revision=``), or
    a local checkpoint directory. A Hub checkpoint is downloaded (all files at one
    commit), a timm repository (``"hf://timm/resnet50.a1_in1k"``: timm's ``config.json``
    and ``model.safetensors``) is downloaded, checked against the sha256 the Hub reports
    and converted once per commit (:mod:`keras_resblocks.hub_timm`), and a
    ``keras.applications`` port is written on first use; nothing is loaded or
    verified here, :func:`load_checkpoint` does that.

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
        return _from_hub(
            source, repo_id, at_revision or revision, None, cache_dir, token, force_download
        )
    entries = catalog.entries()
    if source in entries:
        return _builtin(source, entries[source], revision, cache_dir, token, force_download)
    if not os.path.isdir(source):
        from keras_resblocks.checkpoints.io import recover_interrupted_replacement

        recover_interrupted_replacement(source)  # a checkpoint a killed writer moved aside
    if os.path.isdir(source):
        return Provenance(Path(source), source=source)
    raise ValueError(
        f"Unknown checkpoint {source!r}: not a built-in name, not 'hf://owner/repo[@revision]' "
        f"and not an existing directory.{did_you_mean(source, entries)} {SEE_ALL} "
        f"Received: source={source!r}"
    )


def _from_hub(source, repo_id, revision, expected_sha256, cache_dir, token, force_download):
    import huggingface_hub

    from keras_resblocks import hub, hub_timm

    api = huggingface_hub.HfApi(token=token)
    resolved = hub.resolve_commit(api, repo_id, revision, cache_dir, token)
    converted = hub_timm.fetch_converted(
        api,
        repo_id,
        resolved,
        cache_dir=cache_dir,
        token=token,
        force_download=force_download,
        expected_sha256=expected_sha256,  # for a timm repository: its model.safetensors'
    )
    if converted is not None:
        return Provenance(
            converted,
            kind="timm",
            source=source,
            repo_id=repo_id,
            revision=resolved.resolved,
            recovery=_CONVERT_AGAIN,
        )
    directory = hub.download(
        repo_id, revision=resolved, cache_dir=cache_dir, token=token, force_download=force_download
    )
    # The snapshot folder of huggingface_hub's cache is named after the commit.
    # Its files are links into the repo's blobs/ folder, two levels up.
    return Provenance(
        directory,
        kind="hub",
        source=source,
        repo_id=repo_id,
        revision=directory.name,
        expected_sha256=expected_sha256,
        recovery=_DOWNLOAD_AGAIN,
        root=directory.parent.parent,
    )


def _builtin(name, entry, revision, cache_dir, token, force_download):
    if entry.get("bundled"):
        # The package's own files: a real directory in every install this package
        # supports (wheel or editable), not a zip.
        directory = Path(str(catalog.weights_root() / entry["bundled"]))
        return Provenance(
            directory,
            kind="bundled",
            source=name,
            expected_sha256=entry["sha256"],
            expected_metadata_sha256=entry.get("metadata_sha256"),
        )
    if entry.get("hub"):
        pinned = entry["hub"].get("revision")
        expected = entry["sha256"] if revision in (None, pinned) else None
        provenance = _from_hub(
            name,
            entry["hub"]["repo_id"],
            revision or pinned,
            expected,
            cache_dir,
            token,
            force_download,
        )
        if revision in (None, pinned) and entry.get("metadata_sha256"):
            provenance = dataclasses.replace(
                provenance, expected_metadata_sha256=entry["metadata_sha256"]
            )
        return provenance
    from keras_resblocks import port

    directory = port.ported_dir(name, cache_dir)
    if force_download or not (directory / CONFIG_FILE).is_file():
        port.import_keras_applications(name, cache_dir=cache_dir, overwrite=force_download)
    return Provenance(directory, kind="keras_applications", source=name, recovery=_PORT_AGAIN)


def from_pretrained(
    source,
    *,
    revision=None,
    num_classes=None,
    include_top=True,
    input_shape=None,
    pooling=None,
    cache_dir=None,
    token=None,
    force_download=False,
):
    """Load a pretrained :class:`ResNet` from a name, a Hub repo or a directory.

    ``source`` is a built-in name (:func:`list_pretrained`), ``"hf://owner/repo"``
    (optionally ``"@revision"``: a branch, tag or commit; or pass ``revision=``), or
    a local checkpoint directory. A timm ResNet on the Hub (``"hf://timm/resnet50.a1_in1k"``)
    is converted on first use and kept, per commit, beside the ``keras.applications``
    ports (see :func:`resolve`). ``num_classes``, ``include_top``, ``input_shape``
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

    provenance = resolve(
        source, revision=revision, cache_dir=cache_dir, token=token, force_download=force_download
    )
    return load_resolved(
        provenance,
        num_classes=num_classes,
        include_top=include_top,
        input_shape=input_shape,
        pooling=pooling,
    )


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
    return compare_reference(
        model, name=str(source), atol=atol, rtol=rtol, raise_on_mismatch=raise_on_mismatch
    )
