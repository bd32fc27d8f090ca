"""Batch normalization as one fused kernel on the TensorFlow backend."""

from __future__ import annotations

import keras

_FUSED_DTYPES = ("float16", "bfloat16", "float32")

# False: every layer of this class computes as keras.layers.BatchNormalization does (for
# bit-exact comparisons with a model built from Keras's layer; read when a layer is called
# or a function traced).
FUSED = True


@keras.saving.register_keras_serializable(package="keras_resblocks")
class BatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` computed by TensorFlow's fused kernel where it can be.

    It keeps Keras's class name on purpose: Keras names a layer's weights in
    ``.weights.h5`` and ``.keras`` files after its class, so files written with Keras's own
    layer (training backups among them) load into this one, and the other way round.

    The same variables, arguments, configuration and results as Keras's layer (batch
    statistics in training, the moving ones in inference, the biased batch variance in the
    moving average), computed by one ``tf.nn.fused_batch_norm`` kernel (oneDNN's on a CPU,
    cuDNN's on a GPU) instead of Keras's separate moments, casts and arithmetic. Keras 3
    computes batch normalization in float32 around ``mixed_bfloat16`` layers, casting in and
    out each time; the fused kernel reads and writes bfloat16 directly. On a 2-core CPU this
    made a ResNet-20 training step in ``mixed_bfloat16`` about twice as fast, and a
    ResNet-56 step about 1.6 times (see ``docs/benchmarks.md``).

    It applies on the TensorFlow backend to 4D channels-last inputs of float16, bfloat16 or
    float32, without a mask, with ``center`` and ``scale``, without ``renorm`` and not
    ``synchronized``; everywhere else (JAX, other shapes, those options) it is Keras's layer
    unchanged.

    Example:

    >>> import numpy as np
    >>> from keras_resblocks.normalization import BatchNormalization
    >>> x = np.random.default_rng(0).normal(3.0, 2.0, (4, 5, 5, 8)).astype("float32")
    >>> y = BatchNormalization()(x, training=True)
    >>> # The mean is 0 to rounding, whose sign depends on the CPU's kernels.
    >>> bool(abs(float(np.mean(y))) < 1e-5), round(float(np.std(y)), 3)
    (True, 1.0)
    """

    def _fusable(self, inputs, mask):
        return (
            FUSED
            and keras.backend.backend() == "tensorflow"
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and self.center
            and self.scale
            and not self.renorm
            and not self.synchronized
            and keras.backend.standardize_dtype(inputs.dtype) in _FUSED_DTYPES
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        gamma = tf.cast(self.gamma, "float32")
        beta = tf.cast(self.beta, "float32")
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, is_training=True, data_format="NHWC"
            )
            # The kernel returns the unbiased variance (n / (n - 1) times the one it
            # normalized with); Keras's moving average takes the biased one.
            n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), "float32")
            variance = variance * ((n - 1.0) / tf.maximum(n, 1.0))
            momentum = self.momentum
            self.moving_mean.assign(
                self.moving_mean * momentum
                + tf.cast(mean, self.moving_mean.dtype) * (1.0 - momentum)
            )
            self.moving_variance.assign(
                self.moving_variance * momentum
                + tf.cast(variance, self.moving_variance.dtype) * (1.0 - momentum)
            )
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs,
                gamma,
                beta,
                mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon,
                is_training=False,
                data_format="NHWC",
            )
        return tf.cast(outputs, self.compute_dtype)
