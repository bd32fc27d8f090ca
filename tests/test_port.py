"""Porting keras.applications weights gives the same function."""

import numpy as np
import keras
import pytest

from keras_resblocks import create_model, port_keras_applications


def _randomize_batchnorm(model, rng):
    # Fresh BatchNorm layers are the identity in inference; random statistics make
    # the comparison see every weight.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = (w.shape for w in layer.get_weights())
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma),
                    rng.normal(0, 0.1, beta),
                    rng.normal(0, 0.1, mean),
                    rng.uniform(0.5, 1.5, var),
                ]
            )


@pytest.mark.parametrize("reference", ["ResNet50", "ResNet50V2"])
@pytest.mark.parametrize("include_top", [True, False])
def test_port_reproduces_keras_applications(reference, include_top):
    rng = np.random.default_rng(0)
    kwargs = dict(weights=None, input_shape=(64, 64, 3), include_top=include_top)
    if include_top:
        kwargs["classifier_activation"] = None  # compare logits, not saturated softmax
    else:
        kwargs["pooling"] = "avg"
    source = getattr(keras.applications, reference)(**kwargs)
    _randomize_batchnorm(source, rng)
    ours = port_keras_applications(source)
    assert ours.name == reference.lower()
    x = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(source(x, training=False))
    received = keras.ops.convert_to_numpy(ours(x, training=False))
    assert received.shape == expected.shape
    assert np.abs(received - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())


def test_port_refuses_a_model_it_does_not_know():
    source = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="Received: source.name='mobilenetv2"):
        port_keras_applications(source)


def test_port_refuses_a_mismatched_target():
    source = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3))
    target = create_model("resnet50v2", input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="Received"):
        port_keras_applications(source, target)
