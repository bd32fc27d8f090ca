"""Transfer learning helpers."""

from __future__ import annotations

import re

_STAGE_LAYER = re.compile(r"^stage(\d+)_block\d+$")


def _stage_of(layer_name, num_stages):
    """0 for the stem (and input preprocessing), i for stage i, num_stages + 1 after the last."""
    if layer_name.startswith("stem_") or layer_name == "preprocess":
        return 0
    match = _STAGE_LAYER.match(layer_name)
    if match:
        return int(match.group(1))
    if layer_name.startswith("post_"):
        return num_stages  # the final BN + ReLU of a pre-activation net closes the last stage
    return None  # pooling, the classifier, the input


def freeze_backbone(model, up_to=None):
    """Freeze the stem and stages ``1..k`` of a :class:`ResNet`; return the frozen layer names.

    ``up_to`` is ``"stem"``, ``"stage1"``, ``"stage2"``, ... (``None``: the whole
    backbone, i.e. everything but the classifier). The frozen layers get
    ``trainable = False``.

    BatchNormalization: in Keras, ``trainable = False`` on a ``BatchNormalization``
    layer does two things: its gamma and beta are no longer trained, *and* it runs
    in inference mode, normalising with its moving mean and variance and no longer
    updating them, even inside ``fit()`` (``training=True``). This is what
    fine-tuning wants (the statistics of a small new dataset would overwrite the
    pretrained ones), and this helper relies on it: every BatchNormalization of the
    frozen part, including those inside the residual blocks, is frozen with its
    layer, so it keeps its pretrained statistics. Layers after ``up_to`` are left
    as they are (trainable, BatchNorm in training mode during ``fit``).

    As always in Keras, (re)compile the model after changing ``trainable``; to
    unfreeze later, set ``layer.trainable = True`` (or ``model.trainable = True``)
    and compile again, typically with a lower learning rate.

    Example:

    >>> from keras_resblocks import Architecture, ResNet, freeze_backbone
    >>> arch = Architecture(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2])
    >>> model = ResNet(arch, num_classes=3, input_shape=(8, 8, 3))
    >>> freeze_backbone(model, up_to="stage1")
    ['stem_conv', 'stem_bn', 'stem_relu', 'stage1_block1']
    >>> [w.path for w in model.trainable_weights][:2]
    ['stage2_block1/conv1/kernel', 'stage2_block1/bn1/gamma']
    """
    num_stages = len(model.architecture.stage_depths)
    stages = ["stem"] + [f"stage{i}" for i in range(1, num_stages + 1)]
    if up_to is None:
        last = num_stages
    elif up_to in stages:
        last = stages.index(up_to)
    else:
        raise ValueError(f"`up_to` must be None or one of {stages}. Received: up_to={up_to!r}")
    frozen = []
    for layer in model.layers:
        stage = _stage_of(layer.name, num_stages)
        if stage is not None and stage <= last:
            layer.trainable = False
            frozen.append(layer.name)
    return frozen
