"""BatchNormalization computes what keras.layers.BatchNormalization computes: outputs,
moving statistics and gradients, in float32 and mixed bfloat16, in training and inference."""

import keras
import numpy as np
import pytest

from keras_resblocks.normalization import BatchNormalization


def _pair(policy):
    kwargs = dict(momentum=0.9, epsilon=1e-5, dtype=policy)
    fused, plain = BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    rng = np.random.default_rng(0)
    for layer in (fused, plain):
        layer.build((8, 6, 6, 5))
    for a, b in zip(fused.weights, plain.weights):
        value = rng.normal(1.0, 0.3, a.shape).astype("float32")
        a.assign(value)
        b.assign(value)
    return fused, plain


@pytest.mark.parametrize("policy,tol", [("float32", 1e-5), ("mixed_bfloat16", 3e-2)])
def test_same_outputs_statistics_and_gradients_as_keras(policy, tol):
    fused, plain = _pair(policy)
    x = np.random.default_rng(1).normal(2.0, 3.0, (8, 6, 6, 5)).astype("float32")
    for training in (True, False):
        a = keras.ops.convert_to_numpy(keras.ops.cast(fused(x, training=training), "float32"))
        b = keras.ops.convert_to_numpy(keras.ops.cast(plain(x, training=training), "float32"))
        np.testing.assert_allclose(a, b, atol=tol, rtol=tol)
    # One training call updated the moving statistics the same way (biased variance).
    for a, b in zip(fused.non_trainable_weights, plain.non_trainable_weights):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-5, atol=1e-6
        )
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        weights = tf.constant(np.random.default_rng(3).normal(size=x.shape).astype("float32"))
        grads = []
        for layer in (fused, plain):
            xt = tf.constant(x)
            with tf.GradientTape() as tape:
                tape.watch(xt)
                y = tf.cast(layer(xt, training=True), "float32")
                loss = tf.reduce_sum(y * weights)
            grads.append(tape.gradient(loss, [xt, *layer.trainable_weights]))
        for a, b in zip(*grads):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=tol * 10, rtol=tol)


def test_frozen_or_masked_layers_are_keras_unchanged():
    fused, plain = _pair("float32")
    fused.trainable = plain.trainable = False  # inference statistics even when training
    x = np.random.default_rng(2).normal(size=(8, 6, 6, 5)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(fused(x, training=True)),
        keras.ops.convert_to_numpy(plain(x, training=True)),
        atol=1e-5,
    )
    flat = BatchNormalization()
    y = flat(np.ones((4, 3), "float32"), training=True)  # 2D: Keras's own path
    assert tuple(y.shape) == (4, 3)


def test_weight_files_of_either_layer_load_into_the_other(tmp_path):
    def model(layer):
        inputs = keras.Input((4, 4, 3))
        return keras.Model(inputs, layer(name="bn")(inputs))

    ours, theirs = model(BatchNormalization), model(keras.layers.BatchNormalization)
    theirs.get_layer("bn").moving_mean.assign(np.arange(3, dtype="float32"))
    theirs.save_weights(tmp_path / "theirs.weights.h5")
    ours.load_weights(tmp_path / "theirs.weights.h5")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(ours.get_layer("bn").moving_mean), [0, 1, 2]
    )


def test_it_round_trips_through_keras_saving(tmp_path):
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, BatchNormalization(name="bn")(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded.get_layer("bn"), BatchNormalization)
