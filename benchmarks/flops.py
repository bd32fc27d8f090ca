"""Analytic FLOP counts from a built model's layer shapes.

Only the multiply-accumulates of ``Conv2D`` and ``Dense`` layers are counted
(BatchNorm, activations, additions and pooling are a few percent of a ResNet's
arithmetic and run at memory speed anyway). A training step is taken to cost three
forward passes (the backward pass computes two products per forward one: with
respect to the activations and to the weights), the usual convention.
"""

from __future__ import annotations

import math

import keras

# NVIDIA H100 SXM5 datasheet, dense (no sparsity) peaks, in FLOP/s.
H100_SXM_PEAK = {"bfloat16": 989.4e12, "float32": 66.9e12, "tf32": 494.7e12}


def forward_macs(model):
    """Multiply-accumulates of one image's forward pass through ``model``.

    Walks every (nested) ``Conv2D`` and ``Dense`` layer, using the input shape it
    was built with. Needs every spatial dimension to be known.
    """
    total = 0
    # _flatten_layers is the only recursive walk Keras 3 offers; it reaches the
    # sub-layers a ResidualBlock builds inside itself.
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            continue
        input_shape = layer.get_build_config()["input_shape"]
        if isinstance(layer, keras.layers.Conv2D):
            output_shape = layer.compute_output_shape(input_shape)
            positions = output_shape[1:-1]
        else:
            positions = input_shape[1:-1]
        if any(n is None for n in positions):
            raise ValueError(
                f"Layer {layer.path!r} has an unknown spatial size; build the model "
                f"with a fixed input_shape. Received: input_shape={input_shape}"
            )
        # kernel: (kh, kw, in_channels / groups, out) or (in, out)
        total += math.prod(positions) * math.prod(layer.kernel.shape)
    return total


def training_flops_per_image(model):
    """FLOPs of one image through a training step: 2 FLOPs per MAC, 3 passes."""
    return 3 * 2 * forward_macs(model)
