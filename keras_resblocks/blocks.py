"""Residual and plain blocks, in convolutional and dense form.

The residual block of He et al. 2015 computes ``a[l+2] = g(z[l+2] + a[l])``: the
shortcut ``a[l]`` is added after the second linear step (conv or dense) and its
normalization, and *before* the final activation ``g``. A plain block is exactly
the same branch without the shortcut. All four public layers share one branch
implementation (``_Block``); the only difference between residual and plain is
``_Block.residual``.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_resblocks.normalization import BatchNormalization
from keras_resblocks.architecture import (
    SHORTCUTS,
    branch_plan,
    branch_steps,
    plan_stride,
    projection_step,
    resolve_shortcut,
)

PACKAGE = "keras_resblocks"
NORMALIZATIONS = (None, "batch", "layer")


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")


class _Block(keras.layers.Layer):
    """The branch shared by every block; subclasses say what the linear steps are.

    A subclass implements ``_plan(in_channels)`` (a list of ``(units, kernel_size,
    strides)``, one per linear step), ``_linear(...)`` (the layers of one linear
    step) and ``_subsample(strides)`` (the parameter-free shortcut for strided
    inputs), and sets ``_linear_name`` / ``_norm_name`` (the prefixes of its
    sub-layer names, which are the keys of every saved weight).
    """

    residual = True
    avg_down = False
    _linear_name = "conv"
    _norm_name = "bn"

    def __init__(
        self,
        *,
        preact=False,
        shortcut="auto",
        zero_init_last=False,
        use_bias=False,
        activation="relu",
        normalization="batch",
        norm_momentum=0.9,
        norm_epsilon=1e-5,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_choice("shortcut", shortcut, SHORTCUTS)
        _check_choice("normalization", normalization, NORMALIZATIONS)
        if preact and normalization is None:
            raise ValueError(
                "`preact=True` needs a normalization to pre-activate with. "
                f"Received: normalization={normalization!r}"
            )
        self.preact = bool(preact)
        self.shortcut = shortcut
        self.zero_init_last = bool(zero_init_last)
        self.use_bias = bool(use_bias)
        self.activation = keras.activations.get(activation)
        self._activation_config = activation
        self.normalization = normalization
        self.norm_momentum = norm_momentum
        self.norm_epsilon = norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    # -- pieces a subclass provides -------------------------------------------------
    def _plan(self, in_channels):
        raise NotImplementedError

    def _linear(self, name, units, kernel_size, strides, use_bias, zero_init):
        raise NotImplementedError

    def _subsample(self, strides):
        raise NotImplementedError

    def _average_pool(self, strides):
        raise NotImplementedError

    def _output_spatial(self, spatial, strides):
        return [None if n is None else (n - 1) // strides + 1 for n in spatial]

    # -- shared machinery ------------------------------------------------------------
    def _norm(self, name, zero_init=False):
        gamma = "zeros" if zero_init else "ones"
        if self.normalization == "batch":
            return BatchNormalization(
                momentum=self.norm_momentum,
                epsilon=self.norm_epsilon,
                gamma_initializer=gamma,
                name=name,
                dtype=self.dtype_policy,
            )
        return keras.layers.LayerNormalization(
            epsilon=self.norm_epsilon,
            gamma_initializer=gamma,
            name=name,
            dtype=self.dtype_policy,
        )

    def _resolve_shortcut(self, in_channels, out_channels, strides):
        """Which shortcut this block uses for the given shapes (None for plain)."""
        if not self.residual:
            return None
        return resolve_shortcut(self.shortcut, in_channels, out_channels, strides)

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(
                f"{type(self).__name__} needs a known channel dimension. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        plan = self._plan(in_channels)
        out_channels = plan[-1][0]
        total_stride = plan_stride(plan)
        self._shortcut_kind = self._resolve_shortcut(in_channels, out_channels, total_stride)
        self._out_channels = out_channels
        self._total_stride = total_stride

        shape = tuple(input_shape)
        if self.preact:
            self.preact_norm = self._norm(f"preact_{self._norm_name}")
            self.preact_norm.build(shape)
        self._steps = []  # (linear layers, norm or None) per step
        steps = branch_steps(
            plan,
            preact=self.preact,
            normalization=self.normalization,
            use_bias=self.use_bias,
            residual=self.residual,
            zero_init_last=self.zero_init_last,
        )
        for i, step in enumerate(steps, start=1):
            layers = self._linear(
                f"{self._linear_name}{i}",
                step["units"],
                step["kernel_size"],
                step["strides"],
                use_bias=step["use_bias"],
                zero_init=step["zero_kernel"],
            )
            for layer in layers:
                layer.build(shape)
                shape = tuple(layer.compute_output_shape(shape))
            norm = None
            if step["norm"]:
                norm = self._norm(f"{self._norm_name}{i}", zero_init=step["zero_gamma"])
                norm.build(shape)
            self._steps.append((layers, norm))
        # Track the sub-layers under stable attribute names.
        self.branch_layers = [layer for layers, _ in self._steps for layer in layers]
        self.branch_norms = [norm for _, norm in self._steps if norm is not None]

        self.shortcut_layers = []
        kind = self._shortcut_kind
        if kind == "projection":
            step = projection_step(
                preact=self.preact, normalization=self.normalization, use_bias=self.use_bias
            )
            pooled = self.avg_down and total_stride > 1
            proj = self._linear(
                f"shortcut_{self._linear_name}",
                out_channels,
                1,
                1 if pooled else total_stride,
                use_bias=step["use_bias"],
                zero_init=False,
            )
            if pooled:
                proj = [self._average_pool(total_stride)] + proj
            if step["norm"]:
                proj = proj + [self._norm(f"shortcut_{self._norm_name}")]
            self.shortcut_layers = proj
        elif kind == "zero_pad" and total_stride > 1:
            self.shortcut_layers = [self._subsample(total_stride)]
        sc_shape = tuple(input_shape)
        for layer in self.shortcut_layers:
            layer.build(sc_shape)
            sc_shape = tuple(layer.compute_output_shape(sc_shape))
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = inputs
        shortcut_source = inputs
        if self.preact:
            x = self.activation(self.preact_norm(x, training=training))
            # He et al. 2016: a projection sees the pre-activated input, an
            # identity shortcut the raw one.
            if self._shortcut_kind == "projection":
                shortcut_source = x
        for i, (layers, norm) in enumerate(self._steps):
            for layer in layers:
                x = layer(x)
            if norm is not None:
                x = norm(x, training=training)
            if i < len(self._steps) - 1:
                x = self.activation(x)
        if self._shortcut_kind is not None:
            s = shortcut_source
            for layer in self.shortcut_layers:
                s = layer(s, training=training) if _takes_training(layer) else layer(s)
            if self._shortcut_kind == "zero_pad":
                extra = self._out_channels - s.shape[-1]
                if extra:
                    pad = [[0, 0]] * (len(s.shape) - 1) + [[0, extra]]
                    s = ops.pad(s, pad)
            x = x + ops.cast(s, x.dtype)
        if not self.preact:
            x = self.activation(x)
        return x

    def compute_output_shape(self, input_shape):
        plan = self._plan(input_shape[-1])
        spatial = self._output_spatial(list(input_shape[1:-1]), plan_stride(plan))
        return (input_shape[0], *spatial, plan[-1][0])

    def _base_config(self):
        config = super().get_config()
        config.update(
            preact=self.preact,
            use_bias=self.use_bias,
            activation=self._activation_config,
            normalization=self.normalization,
            norm_momentum=self.norm_momentum,
            norm_epsilon=self.norm_epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer)
            if self.kernel_regularizer is not None
            else None,
        )
        if self.residual:
            config.update(shortcut=self.shortcut, zero_init_last=self.zero_init_last)
        if self.avg_down:
            config.update(avg_down=True)
        return config


def _takes_training(layer):
    return isinstance(layer, (keras.layers.BatchNormalization, keras.layers.LayerNormalization))


class _ConvBlock(_Block):
    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        bottleneck=False,
        expansion=4,
        stride_in_1x1=False,
        avg_down=False,
        **kwargs,
    ):
        _check_positive_int("filters", filters)
        _check_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(
                f"`kernel_size` must be odd so that padding is symmetric. "
                f"Received: kernel_size={kernel_size}"
            )
        _check_positive_int("strides", strides)
        _check_positive_int("expansion", expansion)
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.bottleneck = bool(bottleneck)
        self.expansion = expansion
        self.stride_in_1x1 = bool(stride_in_1x1)
        self.avg_down = bool(avg_down)

    def _plan(self, in_channels):
        return branch_plan(
            self.filters,
            self.kernel_size,
            self.strides,
            self.bottleneck,
            self.expansion,
            self.stride_in_1x1,
        )

    def _linear(self, name, units, kernel_size, strides, use_bias, zero_init):
        layers = []
        padding = "same"
        if strides > 1 and kernel_size > 1:
            # Explicit symmetric padding (as keras.applications and PyTorch do);
            # "same" would pad a strided conv on one side only.
            layers.append(
                keras.layers.ZeroPadding2D(
                    (kernel_size - 1) // 2, name=f"{name}_pad", dtype=self.dtype_policy
                )
            )
            padding = "valid"
        layers.append(
            keras.layers.Conv2D(
                units,
                kernel_size,
                strides=strides,
                padding=padding,
                use_bias=use_bias,
                kernel_initializer="zeros" if zero_init else self.kernel_initializer,
                kernel_regularizer=self.kernel_regularizer,
                name=name,
                dtype=self.dtype_policy,
            )
        )
        return layers

    def _subsample(self, strides):
        # A 1x1 max-pool with a stride keeps every `strides`-th pixel: the
        # parameter-free strided identity of option A and keras.applications' V2.
        return keras.layers.MaxPooling2D(
            pool_size=1, strides=strides, name="shortcut_pool", dtype=self.dtype_policy
        )

    def _average_pool(self, strides):
        # PyTorch's AvgPool2d(2, strides, ceil_mode=True, count_include_pad=False), as
        # timm's avg_down uses it: with a 2-wide window, "same" pads at most one pixel,
        # after the input, and Keras averages over the pixels a window covers.
        return keras.layers.AveragePooling2D(
            pool_size=2,
            strides=strides,
            padding="same",
            name="shortcut_avg_pool",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"{type(self).__name__} expects 4D input (batch, height, width, "
                f"channels). Received: input_shape={tuple(input_shape)}"
            )
        super().build(input_shape)

    def get_config(self):
        config = self._base_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            bottleneck=self.bottleneck,
            expansion=self.expansion,
            stride_in_1x1=self.stride_in_1x1,
        )
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResidualBlock(_ConvBlock):
    """The convolutional residual block of He et al. 2015: ``g(z[l+2] + a[l])``.

    conv -> BN -> ReLU -> conv -> BN, add the shortcut, ReLU. With
    ``bottleneck=True`` the branch is 1x1 -> kxk -> 1x1 with ``expansion``
    times ``filters`` output channels; with ``preact=True`` it is the
    pre-activation ordering of He et al. 2016 (BN -> ReLU -> conv, nothing after
    the addition).

    Args:
        filters: channels of the branch (the output has ``filters`` channels, or
            ``filters * expansion`` with ``bottleneck=True``).
        kernel_size: odd size of the spatial convolutions.
        strides: stride of the block (on the first kxk conv, or on the first 1x1
            conv with ``stride_in_1x1=True`` as in keras.applications' ResNet50).
        bottleneck: use the 1x1 -> kxk -> 1x1 bottleneck branch.
        preact: use the pre-activation ordering.
        shortcut: ``"auto"`` (identity when shapes match, else a 1x1 conv + BN
            projection), ``"projection"`` (always project), ``"zero_pad"``
            (option A of the paper: strided identity, new channels zero-padded,
            no parameters) or ``"identity"`` (error when the shapes differ).
        zero_init_last: start the last BN's gamma (the last conv's kernel when
            ``preact=True``) at zero, so the block starts as ``relu(x)``.
        avg_down: a strided block's projection average-pools (2x2 windows, the
            block's stride) before a stride-1 1x1 conv, instead of striding the 1x1
            conv (ResNet-D).
        use_bias: give convs that a normalization follows a bias (convs that no
            normalization follows always have one).
        activation, normalization, norm_momentum, norm_epsilon,
        kernel_initializer, kernel_regularizer: the usual Keras meanings;
            ``normalization`` is ``"batch"``, ``"layer"`` or ``None``.

    Example:

    >>> import numpy as np, keras
    >>> from keras_resblocks import ResidualBlock
    >>> block = ResidualBlock(16)
    >>> tuple(block(np.zeros((2, 8, 8, 16), "float32")).shape)
    (2, 8, 8, 16)
    >>> ResidualBlock(32, strides=2, shortcut="zero_pad").compute_output_shape((2, 8, 8, 16))
    (2, 4, 4, 32)
    >>> tuple(ResidualBlock(32, strides=2, avg_down=True)(np.zeros((1, 7, 7, 16), "float32")).shape)
    (1, 4, 4, 32)
    """

    residual = True

    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        bottleneck=False,
        preact=False,
        shortcut="auto",
        zero_init_last=False,
        avg_down=False,
        **kwargs,
    ):
        super().__init__(
            filters,
            kernel_size=kernel_size,
            strides=strides,
            bottleneck=bottleneck,
            preact=preact,
            shortcut=shortcut,
            zero_init_last=zero_init_last,
            avg_down=avg_down,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package=PACKAGE)
class PlainBlock(_ConvBlock):
    """The branch of :class:`ResidualBlock` without the shortcut.

    conv -> BN -> ReLU -> conv -> BN -> ReLU (or the bottleneck / pre-activation
    forms). It takes the same arguments as :class:`ResidualBlock` except
    ``shortcut`` and ``zero_init_last`` (zeroing the last gamma of a plain block
    would zero its output).

    Example:

    >>> import numpy as np
    >>> from keras_resblocks import PlainBlock
    >>> tuple(PlainBlock(8, strides=2)(np.ones((1, 8, 8, 4), "float32")).shape)
    (1, 4, 4, 8)
    """

    residual = False

    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        bottleneck=False,
        preact=False,
        **kwargs,
    ):
        _reject_residual_only(kwargs, "PlainBlock")
        super().__init__(
            filters,
            kernel_size=kernel_size,
            strides=strides,
            bottleneck=bottleneck,
            preact=preact,
            **kwargs,
        )


def _reject_residual_only(kwargs, cls_name):
    for key in ("shortcut", "zero_init_last", "avg_down"):
        if key in kwargs:
            raise ValueError(
                f"{cls_name} has no shortcut, so it takes no `{key}`. "
                f"Received: {key}={kwargs[key]!r}"
            )


class _DenseBlock(_Block):
    _linear_name = "dense"
    _norm_name = "norm"

    def __init__(self, units, normalization=None, use_bias=True, **kwargs):
        _check_positive_int("units", units)
        super().__init__(normalization=normalization, use_bias=use_bias, **kwargs)
        self.units = units

    def _plan(self, in_channels):
        return [(self.units, 1, 1), (self.units, 1, 1)]

    def _linear(self, name, units, kernel_size, strides, use_bias, zero_init):
        return [
            keras.layers.Dense(
                units,
                use_bias=use_bias,
                kernel_initializer="zeros" if zero_init else self.kernel_initializer,
                kernel_regularizer=self.kernel_regularizer,
                name=name,
                dtype=self.dtype_policy,
            )
        ]

    def _output_spatial(self, spatial, strides):
        return spatial

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                f"{type(self).__name__} expects input of rank >= 2 (batch, ..., "
                f"features). Received: input_shape={tuple(input_shape)}"
            )
        super().build(input_shape)

    def get_config(self):
        config = self._base_config()
        config.update(units=self.units)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class DenseResidualBlock(_DenseBlock):
    """The fully connected residual block: the same equations on vectors.

    ``z1 = W1 a + b1; a1 = g(z1); z2 = W2 a1 + b2; out = g(z2 + a)``, with an
    optional normalization after each linear step (``normalization="batch"`` or
    ``"layer"``) and, when the widths differ, a learned projection ``Ws a + bs`` on
    the shortcut (``shortcut="auto"``; ``"zero_pad"`` pads the new features with
    zeros instead, ``"identity"`` refuses different widths).

    Example:

    >>> import numpy as np
    >>> from keras_resblocks import DenseResidualBlock
    >>> tuple(DenseResidualBlock(8)(np.ones((4, 8), "float32")).shape)
    (4, 8)
    """

    residual = True

    def __init__(
        self,
        units,
        activation="relu",
        normalization=None,
        use_bias=True,
        shortcut="auto",
        zero_init_last=False,
        **kwargs,
    ):
        super().__init__(
            units,
            activation=activation,
            normalization=normalization,
            use_bias=use_bias,
            shortcut=shortcut,
            zero_init_last=zero_init_last,
            **kwargs,
        )

    def _subsample(self, strides):  # dense blocks have no strides
        raise AssertionError("unreachable")


@keras.saving.register_keras_serializable(package=PACKAGE)
class DensePlainBlock(_DenseBlock):
    """:class:`DenseResidualBlock` without the shortcut: ``out = g(z2)``.

    Example:

    >>> import numpy as np
    >>> from keras_resblocks import DensePlainBlock
    >>> tuple(DensePlainBlock(3)(np.ones((2, 5), "float32")).shape)
    (2, 3)
    """

    residual = False

    def __init__(self, units, activation="relu", normalization=None, use_bias=True, **kwargs):
        _reject_residual_only(kwargs, "DensePlainBlock")
        super().__init__(
            units,
            activation=activation,
            normalization=normalization,
            use_bias=use_bias,
            **kwargs,
        )
