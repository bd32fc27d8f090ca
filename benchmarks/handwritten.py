"""Hand-written functional Keras equivalents of the package's CIFAR models.

Written with ``keras.layers`` only, op for op what :class:`keras_resblocks.ResidualBlock`
and :class:`keras_resblocks.PlainBlock` compute (see ``keras_resblocks/blocks.py``):
an explicit symmetric ``ZeroPadding2D`` before each strided 3x3 conv, the same
``keras.activations.relu``, option A shortcuts as a 1x1 stride-2 max-pool plus a
channel zero-pad through the same ``keras.ops.pad``. Layer names are the package's
with ``/`` replaced by ``_``, so weights copy across by name.
"""

from __future__ import annotations

import keras
from keras import ops


class ChannelZeroPad(keras.layers.Layer):
    """Appends ``extra`` zero channels: option A's shortcut, with the package's op."""

    def __init__(self, extra, **kwargs):
        super().__init__(**kwargs)
        self.extra = extra

    def call(self, inputs):
        pad = [[0, 0]] * (len(inputs.shape) - 1) + [[0, self.extra]]
        return ops.pad(inputs, pad)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.extra)

    def get_config(self):
        return {**super().get_config(), "extra": self.extra}


def _conv_bn(x, filters, strides, name, momentum, epsilon):
    if strides > 1:
        x = keras.layers.ZeroPadding2D(1, name=f"{name}_conv_pad")(x)
    x = keras.layers.Conv2D(
        filters,
        3,
        strides=strides,
        padding="valid" if strides > 1 else "same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, name=f"{name}_bn")(x)


def _basic_block(x, filters, strides, name, residual, momentum, epsilon):
    in_channels = x.shape[-1]
    y = _conv_bn(x, filters, strides, f"{name}_1", momentum, epsilon)
    y = keras.layers.Activation("relu", name=f"{name}_relu1")(y)
    y = _conv_bn(y, filters, 1, f"{name}_2", momentum, epsilon)
    if residual:
        s = x
        if strides > 1:
            s = keras.layers.MaxPooling2D(1, strides=strides, name=f"{name}_shortcut_pool")(s)
        if filters > in_channels:
            s = ChannelZeroPad(filters - in_channels, name=f"{name}_shortcut_pad")(s)
        y = keras.layers.Add(name=f"{name}_add")([y, s])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def cifar_resnet(depth, residual=True, num_classes=10, momentum=0.9, epsilon=1e-5):
    """ResNet-``depth`` (or its plain twin) of He et al. 2015, section 4.2, by hand.

    ``_conv_bn`` names ``{block}_1_conv``; :func:`package_path` maps the package's
    ``stage1_block1/conv1/kernel`` onto it.
    """
    n = (depth - 2) // 6
    inputs = keras.Input((32, 32, 3), name="images")
    x = keras.layers.Conv2D(
        16,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name="stem_conv",
    )(inputs)
    x = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, name="stem_bn")(x)
    x = keras.layers.Activation("relu", name="stem_relu")(x)
    for i, (width, stride) in enumerate(zip((16, 32, 64), (1, 2, 2)), start=1):
        for j in range(1, n + 1):
            strides = stride if j == 1 else 1
            x = _basic_block(x, width, strides, f"stage{i}_block{j}", residual, momentum, epsilon)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", name="predictions", dtype="float32"
    )(x)
    kind = "resnet" if residual else "plain"
    return keras.Model(inputs, outputs, name=f"handwritten_{kind}{depth}")


def twin_of(name, num_classes=10):
    """The hand-written twin of a named CIFAR model (``"resnet20"``, ``"plain56"``)."""
    from keras_resblocks import Architecture

    arch = Architecture.named(name)  # the named architecture's description, not the name's spelling
    return cifar_resnet(arch.depth, residual=arch.block == "residual", num_classes=num_classes)


def handwritten_path(package_path):
    """The hand-written model's variable path for a package variable path.

    ``stage1_block1/conv1/kernel`` -> ``stage1_block1_1_conv/kernel``;
    top-level paths (``stem_conv/kernel``) are unchanged.
    """
    parts = package_path.split("/")
    if len(parts) == 3:
        block, sub, var = parts
        kind, index = sub.rstrip("0123456789"), sub[len(sub.rstrip("0123456789")) :]
        return f"{block}_{index}_{kind}/{var}"
    return package_path


def copy_weights(source, target):
    """Copy every variable of a package model into its hand-written twin, by path.

    Raises ValueError when the two models do not hold the same variables.
    """
    target_vars = {v.path: v for v in target.weights}
    mapped = {handwritten_path(v.path): v for v in source.weights}
    if set(mapped) != set(target_vars):
        raise ValueError(
            "The models hold different variables. Received: only in source "
            f"{sorted(set(mapped) - set(target_vars))}, only in target "
            f"{sorted(set(target_vars) - set(mapped))}"
        )
    for path, variable in mapped.items():
        # Through numpy: on JAX, sharing one buffer between two models breaks when a
        # compiled step donates (frees) it.
        if tuple(variable.shape) != tuple(target_vars[path].shape):
            raise ValueError(
                f"Shape mismatch for {path}. Received: {tuple(variable.shape)} vs "
                f"{tuple(target_vars[path].shape)}"
            )
        target_vars[path].assign(keras.ops.convert_to_numpy(variable.value))
