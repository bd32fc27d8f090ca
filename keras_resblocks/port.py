"""Port keras.applications ResNets' weights into this package's models and checkpoints."""

from __future__ import annotations

import os
import re
from pathlib import Path

import keras

from keras_resblocks._downloads import download_failure, is_network_error, url_of
from keras_resblocks.checkpoints import CheckpointDownloadError, save_pretrained
from keras_resblocks.checkpoints import catalog
from keras_resblocks.checkpoints.io import check_overwritable
from keras_resblocks.models import create_model

# keras.applications names its layers conv{stage+1}_block{j}_{k}_{conv|bn}, where
# k=0 is the shortcut, 1..3 the branch and "preact" the V2 pre-activation BN.
_BLOCK_LAYER = re.compile(r"^conv(\d+)_block(\d+)_(0|1|2|3|preact)_(conv|bn)$")
_TOP_LEVEL = {
    "conv1_conv": "stem_conv",
    "conv1_bn": "stem_bn",
    "post_bn": "post_bn",
    "predictions": "predictions",
}
_KERAS_NAMES = {
    "resnet50": "resnet50",
    "resnet101": "resnet101",
    "resnet152": "resnet152",
    "resnet50v2": "resnet50v2",
    "resnet101v2": "resnet101v2",
    "resnet152v2": "resnet152v2",
}


def _target_name(source_name):
    """(top-level layer, sub-layer or None) in our model for a keras.applications layer."""
    if source_name in _TOP_LEVEL:
        return _TOP_LEVEL[source_name], None
    match = _BLOCK_LAYER.match(source_name)
    if not match:
        return None
    stage, block, k, kind = match.groups()
    block_name = f"stage{int(stage) - 1}_block{block}"
    if k == "0":
        return block_name, f"shortcut_{kind}"
    if k == "preact":
        return block_name, "preact_bn"
    return block_name, f"{kind}{k}"


def _sublayer(block, name):
    for layer in block._flatten_layers(include_self=False):
        if layer.name == name:
            return layer
    raise ValueError(f"Layer {block.name!r} has no sub-layer {name!r}")


def port_keras_applications(source, target=None):
    """Copy a ``keras.applications`` ResNet's weights into this package's twin.

    ``source`` is a ``keras.applications.ResNet50/101/152`` or ``ResNet50V2/
    101V2/152V2`` model; ``target`` a model of ours with the same architecture
    (by default the named twin, built with the source's input shape and head).
    Every weight of ``source`` is copied exactly once, shapes checked first.
    With internet access, this is how the ImageNet weights of
    ``keras.applications`` become this package's checkpoints.

    Example:

    >>> import keras
    >>> from keras_resblocks import port_keras_applications
    >>> source = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3))
    >>> ours = port_keras_applications(source)
    >>> ours.name, ours.count_params() == source.count_params()
    ('resnet50', True)
    """
    if target is None:
        name = source.name.lower()
        if name not in _KERAS_NAMES:
            raise ValueError(
                "Cannot tell which architecture this keras.applications model is; "
                f"pass `target`. Expected a model named one of {sorted(_KERAS_NAMES)}. "
                f"Received: source.name={source.name!r}"
            )
        has_top = any(layer.name == "predictions" for layer in source.layers)
        kwargs = dict(input_shape=tuple(source.input_shape[1:]), include_top=has_top)
        if has_top:
            head = source.get_layer("predictions")
            kwargs.update(
                num_classes=head.units, classifier_activation=head.get_config()["activation"]
            )
        else:
            kwargs["pooling"] = _source_pooling(source)
        target = create_model(_KERAS_NAMES[name], **kwargs)

    copied = 0
    for layer in source.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        where = _target_name(layer.name)
        if where is None:
            raise ValueError(f"No counterpart for keras.applications layer {layer.name!r}")
        top, sub = where
        try:
            dest = target.get_layer(top)
            if sub is not None:
                dest = _sublayer(dest, sub)
        except ValueError as error:
            raise ValueError(
                f"The target has no counterpart of keras.applications layer "
                f"{layer.name!r} ({error}). Received: target={target.name!r}"
            ) from None
        expected = [tuple(w.shape) for w in dest.get_weights()]
        received = [tuple(w.shape) for w in weights]
        if expected != received:
            raise ValueError(
                f"Shape mismatch porting {layer.name!r} into {dest.path!r}: "
                f"expected {expected}. Received: {received}"
            )
        dest.set_weights(weights)
        copied += sum(w.size for w in weights)
    if copied != target.count_params():
        raise ValueError(
            f"Ported {copied} of the target's {target.count_params()} weights; the "
            "architectures differ."
        )
    return target


def _source_pooling(source):
    last = source.layers[-1].__class__.__name__
    return {"GlobalAveragePooling2D": "avg", "GlobalMaxPooling2D": "max"}.get(last)


# -- keras.applications ImageNet weights -----------------------------------------------
def ported_dir(name, cache_dir=None):
    """Where the checkpoint ported for catalogue entry ``name`` is kept."""
    # keras.applications keeps its downloads under KERAS_HOME (default ~/.keras);
    # the ported checkpoints sit next to them.
    root = cache_dir or os.path.join(
        os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")), "keras_resblocks"
    )
    return Path(root) / name


def import_keras_applications(
    name, *, weights_path=None, cache_dir=None, input_shape=None, overwrite=False
):
    """Port a ``keras.applications`` ImageNet ResNet into a checkpoint under ``cache_dir``.

    ``name`` is a catalogue entry with ``"keras_applications"`` (``"resnet50_imagenet"``
    ...). By default the weights come from ``keras.applications``' own download
    (``weights="imagenet"``, checked against its pinned hash); ``weights_path``
    takes a local weights file instead (e.g. for tests, or a machine without
    network), and ``input_shape`` then may be smaller than 224x224. The ported model
    is written with :func:`save_pretrained`, so later loads are local; a checkpoint
    already ported there is replaced only with ``overwrite=True``.
    Returns the checkpoint directory. Offline, with the weights never downloaded,
    raises :class:`CheckpointDownloadError` naming the URL and the offline ways.

    Example:

    >>> from keras_resblocks import import_keras_applications
    >>> import_keras_applications("resnet20")
    Traceback (most recent call last):
    ...
    ValueError: `name` must be one of ['resnet101_imagenet', 'resnet101v2_imagenet', 'resnet152_imagenet', 'resnet152v2_imagenet', 'resnet50_imagenet', 'resnet50v2_imagenet']. Received: name='resnet20'

    Porting ``keras.applications.ResNet50(weights=None)`` saved to a file (as the
    tests do) or the real ImageNet weights takes seconds, so it is not run here.
    """
    entries = catalog.entries()
    entry = entries.get(name)
    if not entry or not entry.get("keras_applications"):
        ported = sorted(n for n, e in entries.items() if e.get("keras_applications"))
        raise ValueError(f"`name` must be one of {ported}. Received: name={name!r}")
    directory = ported_dir(name, cache_dir)
    check_overwritable(directory, overwrite)  # before downloading or building anything
    constructor = getattr(keras.applications, entry["keras_applications"])
    weights = "imagenet" if weights_path is None else str(weights_path)
    try:
        source = constructor(weights=weights, input_shape=input_shape)
    except Exception as error:  # keras.utils.get_file raises a bare Exception
        if not is_network_error(error):
            raise
        raise CheckpointDownloadError(_offline_message(name, entry, error)) from None
    model = port_keras_applications(source)
    return save_pretrained(
        model,
        directory,
        overwrite=overwrite,
        dataset=entry["dataset"],
        license=entry.get("license") or "other",
        source=f"keras.applications.{entry['keras_applications']}",
        weights=weights if weights_path is None else os.path.basename(str(weights_path)),
        model_name=name,
    )


def _offline_message(name, entry, error):
    what = f"the ImageNet weights of {name} (keras.applications.{entry['keras_applications']})"
    url = url_of(error)
    keras_cache = os.path.join(
        os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")), "models"
    )
    copy = (
        f", or copy {os.path.basename(url)} from a machine that has it into {keras_cache}"
        if url
        else ""
    )
    return (
        f"{download_failure(what, error)} Offline, load a local checkpoint directory "
        f"instead (from_pretrained(DIR); `keras-resblocks predict DIR ...`){copy}. "
        f"Received: name={name!r}"
    )
