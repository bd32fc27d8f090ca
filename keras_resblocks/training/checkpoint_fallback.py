"""A stand-in for ``keras_resblocks.checkpoint`` (issue 3) until it is merged.

TODO(issue 3): delete this module once ``keras_resblocks.checkpoint`` lands;
:func:`keras_resblocks.training.trainer.write_checkpoint` already prefers it.
It writes the directory layout of the checkpoint contract (config.json,
model.safetensors keyed by ``variable.path``, metadata.json, README.md)
atomically: everything goes to a temporary sibling that is renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import tempfile

import keras
import numpy as np
from keras import ops

FORMAT = "keras-resblocks"
FORMAT_VERSION = 1


def _config(model, labels):
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": model.architecture.to_dict(),
        "model": {
            "include_top": model.include_top,
            "num_classes": model.num_classes,
            "pooling": model.pooling,
            "classifier_activation": model.classifier_activation,
            "input_shape": list(model.image_shape),
        },
        "preprocessing": model.preprocessing,
        "labels": list(labels) if labels is not None else None,
    }


def _card(config, metadata):
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    metrics = metadata.get("metrics") or {}
    dataset = metadata.get("dataset") or "unknown"
    results = [
        EvalResult(
            task_type="image-classification", dataset_type=str(dataset), dataset_name=str(dataset),
            metric_type="accuracy", metric_value=round(float(value), 4),
            dataset_split=split,
        )
        for split, value in (("test", metrics.get("test_accuracy")),
                             ("train", metrics.get("train_accuracy")))
        if value is not None
    ]
    data = ModelCardData(
        library_name="keras-resblocks", license="apache-2.0", tags=["image-classification", "keras", "resnet"],
        datasets=[str(dataset)], model_name="keras-resblocks model", eval_results=results or None,
    )
    lines = [f"# keras-resblocks checkpoint\n", "Trained with `scripts/train.py`.\n", "## Measured\n"]
    for key in ("metrics", "epochs", "iterations", "wall_time_s", "images_per_second",
                "hardware", "versions", "data", "recipe", "train_error_note"):
        if key in metadata:
            lines.append(f"- **{key}**: `{json.dumps(metadata[key])}`")
    if metadata.get("command"):
        lines.append(f"\nCommand:\n\n```bash\n{metadata['command']}\n```")
    return ModelCard(f"---\n{data.to_yaml()}\n---\n" + "\n".join(lines) + "\n")


def save_pretrained(model, directory, *, labels=None, dataset=None, metrics=None, recipe=None,
                    command=None, **metadata):
    """Write ``model`` as a checkpoint directory (atomic). See the module docstring.

    Example:

    >>> import tempfile
    >>> from keras_resblocks import Architecture, ResNet
    >>> arch = Architecture(stage_depths=[1], stage_widths=[4], stage_strides=[1], stem_width=4)
    >>> model = ResNet(arch, num_classes=2, input_shape=(8, 8, 3))
    >>> path = save_pretrained(model, tempfile.mkdtemp() + "/tiny")
    >>> sorted(p.name for p in path.iterdir())
    ['README.md', 'config.json', 'metadata.json', 'model.safetensors']
    """
    from safetensors.numpy import save_file

    import keras_resblocks

    directory = pathlib.Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        config = _config(model, labels)
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        tensors = {v.path: np.ascontiguousarray(ops.convert_to_numpy(v.value)) for v in model.variables}
        save_file(tensors, str(tmp / "model.safetensors"))
        digest = hashlib.sha256((tmp / "model.safetensors").read_bytes()).hexdigest()
        meta = {
            "sha256": digest,
            "package_version": keras_resblocks.__version__,
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
            "dataset": dataset,
            "recipe": recipe,
            "metrics": metrics,
            "command": command,
            **metadata,
        }
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
        _card(config, meta).save(tmp / "README.md")
        if directory.exists():
            trash = pathlib.Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
            os.replace(directory, trash / directory.name)
            os.replace(tmp, directory)
            shutil.rmtree(trash)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def load_pretrained(directory):
    """Rebuild a model written by :func:`save_pretrained` (config through
    ``Architecture.from_dict``, weights from safetensors by variable path).

    Example:

    >>> import tempfile
    >>> from keras_resblocks import Architecture, ResNet
    >>> from keras_resblocks.training.checkpoint_fallback import load_pretrained, save_pretrained
    >>> arch = Architecture(stage_depths=[1], stage_widths=[4], stage_strides=[1], stem_width=4)
    >>> saved = save_pretrained(ResNet(arch, num_classes=2, input_shape=(8, 8, 3)), tempfile.mkdtemp() + "/m")
    >>> load_pretrained(saved).output_shape
    (None, 2)
    """
    from safetensors.numpy import load_file

    from keras_resblocks.config import Architecture
    from keras_resblocks.models import ResNet

    directory = pathlib.Path(directory)
    config = json.loads((directory / "config.json").read_text())
    head = config["model"]
    model = ResNet(
        Architecture.from_dict(config["architecture"]),
        include_top=head["include_top"], num_classes=head["num_classes"], pooling=head["pooling"],
        classifier_activation=head["classifier_activation"], input_shape=tuple(head["input_shape"]),
        preprocessing=config["preprocessing"],
    )
    tensors = load_file(str(directory / "model.safetensors"))
    for variable in model.variables:
        variable.assign(tensors[variable.path])
    return model
