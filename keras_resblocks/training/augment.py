"""The training model's input pipeline, inside the compiled step: the uint8 training images
held in a variable and gathered by index, then padded, cropped and flipped at random."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_resblocks.blocks import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResidentImages(keras.layers.Layer):
    """Maps a batch of indices to uint8 images held in a non-trainable variable.

    The images are data, not state: they are left out of saved weights
    (``save_own_variables`` stores nothing), so backups stay small.

    Example:

    >>> import numpy as np
    >>> from keras_resblocks.training.augment import ResidentImages
    >>> images = np.arange(4 * 2 * 2 * 3, dtype="uint8").reshape(4, 2, 2, 3)
    >>> out = ResidentImages(images)(np.array([3, 0]))
    >>> import keras
    >>> tuple(out.shape), keras.backend.standardize_dtype(out.dtype)
    ((2, 2, 2, 3), 'uint8')
    """

    def __init__(self, images, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        images = np.asarray(images)
        self.images = self.add_weight(
            shape=images.shape,
            dtype=images.dtype.name,
            initializer="zeros",
            trainable=False,
            name="images",
        )
        self.images.assign(images)

    def call(self, indices):
        return ops.take(self.images, ops.cast(indices, "int32"), axis=0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + tuple(self.images.shape[1:])

    def save_own_variables(self, store):
        pass

    def load_own_variables(self, store):
        pass


@keras.saving.register_keras_serializable(package=PACKAGE)
class RandomCropFlip(keras.layers.Layer):
    """Casts images to float32 and, in training, pads, crops back at random and flips.

    Zero padding of ``padding`` pixels then a random crop to the input size (He
    et al. 2015's augmentation), written as two one-hot matrix products so it
    runs per sample inside the compiled step on every backend. Outside training
    it only casts. The random state is saved with the weights, so a resumed
    run draws the same crops.

    Example:

    >>> import numpy as np
    >>> from keras_resblocks.training.augment import RandomCropFlip
    >>> x = np.random.randint(0, 255, (2, 8, 8, 3)).astype("uint8")
    >>> layer = RandomCropFlip(padding=2, flip=True, seed=0)
    >>> y = layer(x, training=True)
    >>> tuple(y.shape), bool((np.asarray(layer(x)) == x).all())
    ((2, 8, 8, 3), True)
    """

    def __init__(self, padding=4, flip=True, seed=None, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.padding = int(padding)
        self.flip = bool(flip)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        x = ops.cast(images, "float32")
        if not training or (self.padding == 0 and not self.flip):
            return x
        batch = ops.shape(x)[0]
        height, width = x.shape[1], x.shape[2]
        if self.padding:
            p = self.padding
            x = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
            rows = self._window(batch, height, 2 * p)
            cols = self._window(batch, width, 2 * p)
            # out[b, i, j] = padded[b, i + dy[b], j + dx[b]]; exact, as the
            # matrices hold only zeros and ones.
            x = ops.einsum("bip,bpqc->biqc", rows, x)
            x = ops.einsum("bjq,biqc->bijc", cols, x)
        if self.flip:
            flip = keras.random.uniform((batch, 1, 1, 1), seed=self.seed_generator) < 0.5
            x = ops.where(flip, ops.flip(x, axis=2), x)
        return x

    def _window(self, batch, size, slack):
        """One-hot ``(batch, size, size + slack)`` matrices selecting a random window."""
        offset = keras.random.randint(
            (batch, 1), 0, slack + 1, seed=self.seed_generator, dtype="int32"
        )
        positions = ops.arange(size, dtype="int32")[None, :] + offset
        return ops.one_hot(positions, size + slack, dtype="float32")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return dict(super().get_config(), padding=self.padding, flip=self.flip, seed=self.seed)

    # The seed generator's state is not a layer weight, so Keras would not save
    # it; a resumed run must continue the same random stream.
    def save_own_variables(self, store):
        store["seed_generator_state"] = ops.convert_to_numpy(self.seed_generator.state.value)

    def load_own_variables(self, store):
        if "seed_generator_state" in store:
            self.seed_generator.state.assign(np.asarray(store["seed_generator_state"]))
