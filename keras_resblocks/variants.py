"""The named architectures, as plain data.

Each entry is the keyword arguments of :class:`keras_resblocks.Architecture`.
Pretrained checkpoints (sets of weights for these architectures) are listed
separately, in ``weights/catalog.json``.
"""

from __future__ import annotations

# He et al. 2015, section 4.2: 6n+2 layers, widths 16/32/64, option A shortcuts.
_CIFAR = dict(
    stage_widths=(16, 32, 64),
    stage_strides=(1, 2, 2),
    stem="cifar",
    stem_width=16,
    shortcut="zero_pad",
)
# torchvision's resnet18/34: basic blocks, stride on the 3x3 conv, no conv biases.
_IMAGENET_BASIC = dict(
    stage_widths=(64, 128, 256, 512),
    stage_strides=(1, 2, 2, 2),
    stem="imagenet",
    stem_width=64,
)
# keras.applications.ResNet50/101/152: stride on the first 1x1 conv, conv biases,
# BatchNorm epsilon 1.001e-5.
_IMAGENET_V1 = dict(
    _IMAGENET_BASIC,
    bottleneck=True,
    stride_in_1x1=True,
    use_bias=True,
    bn_epsilon=1.001e-5,
)
# keras.applications.ResNet50V2/101V2/152V2: pre-activation, downsampling in the
# last block of each stage through a parameter-free subsample.
_IMAGENET_V2 = dict(
    _IMAGENET_BASIC,
    stage_strides=(2, 2, 2, 1),
    bottleneck=True,
    preact=True,
    downsample="last",
    bn_epsilon=1.001e-5,
)

# timm's (and torchvision's) bottleneck ResNets: stride on the 3x3 conv, no conv biases,
# BatchNorm epsilon 1e-5. (The names resnet50/101/152 above are keras.applications' layout;
# timm's resnet50 is Architecture.named("resnet50", **TIMM_BOTTLENECK_CHANGES).)
TIMM_BOTTLENECK_CHANGES = dict(stride_in_1x1=False, use_bias=False, bn_epsilon=1e-5)
_IMAGENET_BOTTLENECK = dict(_IMAGENET_BASIC, bottleneck=True, **TIMM_BOTTLENECK_CHANGES)
# ResNet-D (He et al. 2019, "Bag of Tricks"; timm's resnet*d): the deep 3x3 stem of widths
# 32/32/64 and average-pooling projection shortcuts.
_BASIC_D = dict(_IMAGENET_BASIC, deep_stem=True, avg_down=True)
_BOTTLENECK_D = dict(_IMAGENET_BOTTLENECK, deep_stem=True, avg_down=True)

ARCHITECTURES = {
    "resnet20": dict(_CIFAR, stage_depths=(3, 3, 3)),
    "resnet32": dict(_CIFAR, stage_depths=(5, 5, 5)),
    "resnet44": dict(_CIFAR, stage_depths=(7, 7, 7)),
    "resnet56": dict(_CIFAR, stage_depths=(9, 9, 9)),
    "resnet110": dict(_CIFAR, stage_depths=(18, 18, 18)),
    "resnet1202": dict(_CIFAR, stage_depths=(200, 200, 200)),
    "plain20": dict(_CIFAR, stage_depths=(3, 3, 3), block="plain", shortcut="auto"),
    "plain32": dict(_CIFAR, stage_depths=(5, 5, 5), block="plain", shortcut="auto"),
    "plain44": dict(_CIFAR, stage_depths=(7, 7, 7), block="plain", shortcut="auto"),
    "plain56": dict(_CIFAR, stage_depths=(9, 9, 9), block="plain", shortcut="auto"),
    "plain110": dict(_CIFAR, stage_depths=(18, 18, 18), block="plain", shortcut="auto"),
    "resnet18": dict(_IMAGENET_BASIC, stage_depths=(2, 2, 2, 2)),
    "resnet34": dict(_IMAGENET_BASIC, stage_depths=(3, 4, 6, 3)),
    "plain18": dict(_IMAGENET_BASIC, stage_depths=(2, 2, 2, 2), block="plain"),
    "plain34": dict(_IMAGENET_BASIC, stage_depths=(3, 4, 6, 3), block="plain"),
    "resnet50": dict(_IMAGENET_V1, stage_depths=(3, 4, 6, 3)),
    "resnet101": dict(_IMAGENET_V1, stage_depths=(3, 4, 23, 3)),
    "resnet152": dict(_IMAGENET_V1, stage_depths=(3, 8, 36, 3)),
    "resnet50v2": dict(_IMAGENET_V2, stage_depths=(3, 4, 6, 3)),
    "resnet101v2": dict(_IMAGENET_V2, stage_depths=(3, 4, 23, 3)),
    "resnet152v2": dict(_IMAGENET_V2, stage_depths=(3, 8, 36, 3)),
    "resnet26": dict(_IMAGENET_BOTTLENECK, stage_depths=(2, 2, 2, 2)),
    "resnet18d": dict(_BASIC_D, stage_depths=(2, 2, 2, 2)),
    "resnet34d": dict(_BASIC_D, stage_depths=(3, 4, 6, 3)),
    "resnet26d": dict(_BOTTLENECK_D, stage_depths=(2, 2, 2, 2)),
    "resnet50d": dict(_BOTTLENECK_D, stage_depths=(3, 4, 6, 3)),
    "resnet101d": dict(_BOTTLENECK_D, stage_depths=(3, 4, 23, 3)),
    "resnet152d": dict(_BOTTLENECK_D, stage_depths=(3, 8, 36, 3)),
}

# The head each family is built with unless the caller overrides it.
DEFAULT_HEAD = {
    "cifar": dict(num_classes=10, input_shape=(32, 32, 3)),
    "imagenet": dict(num_classes=1000, input_shape=(224, 224, 3)),
}

# Constructor names, keras.applications style: ``ResNet56``, ``Plain20``, ``ResNet50V2``,
# ``ResNet50D``.
CONSTRUCTOR_NAMES = {
    name: ("ResNet" + name[6:].upper() if name.startswith("resnet") else "Plain" + name[5:])
    for name in ARCHITECTURES
}
