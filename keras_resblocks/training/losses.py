"""Losses of the training loop."""

from __future__ import annotations

import keras
from keras import ops

from keras_resblocks.blocks import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of logits against integer labels with label smoothing.

    Keras's ``SparseCategoricalCrossentropy`` has no ``label_smoothing``; this
    one-hots the labels and uses ``categorical_crossentropy``'s.

    Example:

    >>> import numpy as np
    >>> from keras_resblocks.training.losses import SmoothedSparseCrossentropy
    >>> loss = SmoothedSparseCrossentropy(num_classes=2, label_smoothing=0.2)
    >>> round(float(loss(np.array([0]), np.array([[0.0, 0.0]]))), 4)  # log 2 whatever the target
    0.6931
    """

    def __init__(
        self, num_classes, label_smoothing=0.0, name="smoothed_sparse_crossentropy", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), self.num_classes)
        return keras.losses.categorical_crossentropy(
            labels, y_pred, from_logits=True, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return dict(
            super().get_config(), num_classes=self.num_classes, label_smoothing=self.label_smoothing
        )
