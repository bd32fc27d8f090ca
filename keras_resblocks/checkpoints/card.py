"""The model card (``README.md``) written beside a checkpoint, with its Hub front matter."""

from __future__ import annotations

import json
import re

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from keras_resblocks.checkpoints.format import metadata_detail

# The card's two lines that name where the checkpoint loads from.
_SOURCE_LINES = re.compile(
    r'^(model = from_pretrained|print\(verify_reference)\("[^"\n]*"\).*$', re.MULTILINE
)


def model_card(model, config, metadata, license, source):
    """The :class:`huggingface_hub.ModelCard` of ``model`` saved with ``config`` and ``metadata``.

    ``config`` and ``metadata`` are the :class:`CheckpointConfig` and
    :class:`CheckpointMetadata` written beside it; ``source`` is what its code
    examples pass to ``from_pretrained`` (see :func:`card_for_source`).
    """
    return _model_card(model, config.to_json(), metadata.to_json(), license, source)


def card_for_source(text, source):
    """A card's text with its code examples loading from ``source`` (``hf://owner/name``
    once published, the name of a checkpoint that ships with the package, a directory).

    Example:

    >>> from keras_resblocks.checkpoints.card import card_for_source
    >>> print(card_for_source('x\\nmodel = from_pretrained("path/to/run")  # this directory\\n',
    ...                       "hf://me/resnet20"))
    x
    model = from_pretrained("hf://me/resnet20")
    <BLANKLINE>
    """
    quoted = json.dumps(str(source))
    return _SOURCE_LINES.sub(
        lambda m: f"{m.group(1)}({quoted})" + (")" if "print" in m.group(1) else ""), text
    )


def _metric_split(metric, train_split, eval_split):
    """The split a metric was measured on, from its name (``train_accuracy`` -> train).

    >>> _metric_split("train_accuracy", "train", "test"), _metric_split("val_accuracy", "train", "test")
    ('train', 'validation')
    >>> _metric_split("test_accuracy", "train", "test"), _metric_split("accuracy", "train", "test")
    ('test', 'test')
    """
    prefix = metric.split("_", 1)[0]
    return {"train": train_split, "val": "validation", "test": eval_split}.get(prefix, eval_split)


def _data_lines(meta):
    """The card's account of the data a trainer recorded: its source, split sizes and note."""
    data, lines = metadata_detail(meta, "data"), []
    if data.get("source"):
        sizes = ", ".join(
            f"{data[k]:,} {k}"
            for k in ("train", "validation", "test")
            if isinstance(data.get(k), int)
        )
        lines.append(f"Source: {data['source']}" + (f" ({sizes} images)." if sizes else "."))
    if metadata_detail(meta, "data_note"):
        lines.append(metadata_detail(meta, "data_note"))
    return lines


def _upstream_lines(meta):
    """Where converted weights came from, and how they expect images, as the card says it."""
    upstream = metadata_detail(meta, "upstream")
    if not upstream.get("repo_id"):
        return []
    lines = [
        "## Source",
        "",
        f"Converted from the Hugging Face Hub repository `{upstream['repo_id']}` at commit "
        f"`{upstream.get('revision')}` ({upstream.get('architecture')}"
        + (f", tag `{upstream['tag']}`" if upstream.get("tag") else "")
        + f"; `{upstream.get('file')}` sha256 `{upstream.get('sha256')}`, as the Hub reported it), "
        f"licence: {upstream.get('license') or 'not stated'}.",
    ]
    size, interpolation = (
        metadata_detail(meta, "input_size"),
        metadata_detail(meta, "interpolation"),
    )
    crop = metadata_detail(meta, "crop_fraction")
    if size and interpolation and crop:
        lines.append(
            f"The weights expect images resized ({interpolation}) so that a centre crop of "
            f"{crop:g} of the side is {size[0]}x{size[1]} pixels."
        )
    return lines + [""]


def _model_card(model, config, meta, license, source):
    dataset, metrics, command = meta["dataset"], meta["metrics"] or {}, meta["command"]
    train_split = metadata_detail(meta, "train_split")
    eval_split = metadata_detail(meta, "eval_split")
    name = metadata_detail(meta, "model_name") or model.name
    eval_results = [
        EvalResult(
            task_type="image-classification",
            dataset_type=dataset or "unknown",
            dataset_name=dataset or "unknown",
            dataset_split=_metric_split(metric, train_split, eval_split),
            metric_type=metric,
            metric_value=float(value),
        )
        for metric, value in metrics.items()
    ]
    card_data = ModelCardData(
        library_name="keras-resblocks",
        license=license,
        tags=["keras", "resnet", "image-classification", "keras-resblocks"],
        datasets=[dataset] if dataset else None,
        pipeline_tag="image-classification",
        model_name=name,
        eval_results=eval_results or None,
    )
    arch = config["architecture"]
    lines = [
        f"# {name}",
        "",
        f"A residual network from [keras-resblocks](https://pypi.org/project/keras-resblocks/) "
        f"({model.architecture.depth} weighted layers, {model.count_params():,} parameters, "
        f"{arch['block']} blocks, stage depths {arch['stage_depths']}, widths {arch['stage_widths']}).",
        "",
        "```python",
        "from keras_resblocks import from_pretrained",
        f"model = from_pretrained({json.dumps(source)})",
        "```",
        "",
        *_upstream_lines(meta),
        "## Data",
        "",
        (
            f"Trained on the `{train_split}` split of `{dataset}` and evaluated on its "
            f"`{eval_split}` split."
            if dataset
            else "Training data: not recorded."
        ),
        f"Input: {config['model']['input_shape']} images; preprocessing: {config['preprocessing']}.",
        *_data_lines(meta),
        "",
        "## Results",
        "",
    ]
    if metrics:
        lines += ["| metric | value |", "| --- | --- |"]
        lines += [f"| {metric} | {value} |" for metric, value in metrics.items()]
        lines += ["", "Measured with:", "", "```bash", command, "```"]
    else:
        lines.append("No metrics were measured for this checkpoint.")
    if meta["recipe"]:
        lines += [
            "",
            "## Training recipe",
            "",
            "```json",
            json.dumps(meta["recipe"], indent=2),
            "```",
        ]
    if meta.get("reference"):
        lines += [
            "",
            "## Reference batch",
            "",
            f"`reference.safetensors` holds {meta['reference']['num_inputs']} inputs and the "
            f"outputs this checkpoint gave on them ({meta['reference']['backend']} backend, "
            "float32). Check that it computes the same on your backend:",
            "",
            "```python",
            "from keras_resblocks import verify_reference",
            f"print(verify_reference({json.dumps(source)}))",
            "```",
        ]
    lines += [
        "",
        f"Weights sha256: `{meta['sha256']}`; written with keras-resblocks "
        f"{meta['package_version']}, Keras {meta['keras_version']} ({meta['backend']} backend).",
    ]
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")
