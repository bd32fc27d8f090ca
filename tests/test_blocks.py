"""The four blocks: shapes, configs, training, gradients, mixed precision, the formula."""

import numpy as np
import keras
import pytest

from keras_resblocks import DensePlainBlock, DenseResidualBlock, PlainBlock, ResidualBlock
from tests._helpers import config_round_trip, snapshot, train_steps

CONV = (2, 8, 8, 8)
VEC = (4, 6)

CASES = {
    "residual": (ResidualBlock, dict(filters=8), CONV),
    "residual-projection": (ResidualBlock, dict(filters=16, strides=2), CONV),
    "residual-zero-pad": (ResidualBlock, dict(filters=16, strides=2, shortcut="zero_pad"), CONV),
    "residual-always-project": (ResidualBlock, dict(filters=8, shortcut="projection"), CONV),
    "residual-bottleneck": (ResidualBlock, dict(filters=2, bottleneck=True), CONV),
    "residual-bottleneck-1x1-stride": (
        ResidualBlock,
        dict(filters=4, bottleneck=True, strides=2, stride_in_1x1=True),
        CONV,
    ),
    "residual-preact": (ResidualBlock, dict(filters=8, preact=True), CONV),
    "residual-preact-bottleneck": (
        ResidualBlock,
        dict(filters=4, bottleneck=True, preact=True, strides=2),
        CONV,
    ),
    "residual-5x5": (ResidualBlock, dict(filters=8, kernel_size=5), CONV),
    "plain": (PlainBlock, dict(filters=8), CONV),
    "plain-strided": (PlainBlock, dict(filters=16, strides=2), CONV),
    "plain-preact-bottleneck": (PlainBlock, dict(filters=4, bottleneck=True, preact=True), CONV),
    "dense-residual": (DenseResidualBlock, dict(units=6), VEC),
    "dense-residual-projection": (DenseResidualBlock, dict(units=10), VEC),
    "dense-residual-batchnorm": (DenseResidualBlock, dict(units=6, normalization="batch"), VEC),
    "dense-residual-layernorm": (DenseResidualBlock, dict(units=6, normalization="layer"), VEC),
    "dense-plain": (DensePlainBlock, dict(units=3), VEC),
}


def _inputs(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _wrap(block, shape):
    """Block -> pooled -> one output: a tiny model to train the block in."""
    inputs = keras.Input(shape[1:])
    x = block(inputs)
    if len(shape) == 4:
        x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(1, dtype="float32")(x))


@pytest.fixture(params=sorted(CASES), ids=sorted(CASES))
def case(request):
    return CASES[request.param]


def test_output_shape_matches_compute_output_shape(case):
    cls, kwargs, shape = case
    block = cls(**kwargs)
    out = block(_inputs(shape))
    assert tuple(out.shape) == tuple(block.compute_output_shape(shape))


def test_config_round_trip_gives_the_same_layer(case):
    cls, kwargs, shape = case
    block = cls(**kwargs)
    x = _inputs(shape)
    y = block(x, training=False)
    clone = config_round_trip(block)
    clone.build(shape)
    clone.set_weights(block.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(clone(x, training=False)),
        keras.ops.convert_to_numpy(y),
        rtol=1e-6,
        atol=1e-6,
    )


def test_fit_steps_lower_the_loss_and_every_weight_gets_a_gradient(case):
    cls, kwargs, shape = case
    model = _wrap(cls(**kwargs), shape)
    x, y = _inputs(shape), _inputs((shape[0], 1), seed=1)
    before = snapshot(model.trainable_weights)
    losses = train_steps(model, x, y, steps=4, lr=0.02)
    assert losses[-1] < losses[0], losses
    # With plain SGD a weight moves exactly when its gradient is non-zero.
    unchanged = [
        w.path
        for w, b in zip(model.trainable_weights, before)
        if np.array_equal(keras.ops.convert_to_numpy(w), b)
    ]
    assert unchanged == []


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(case, policy):
    cls, kwargs, shape = case
    block = cls(**kwargs, dtype=policy)
    out = block(_inputs(shape))
    assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
    assert all(w.dtype == "float32" for w in block.weights)
    model = _wrap(block, shape)
    losses = train_steps(model, _inputs(shape), _inputs((shape[0], 1), 1), steps=2, lr=0.01)
    assert np.all(np.isfinite(losses))


def _zero_norms(block):
    for layer in block._flatten_layers(include_self=False):
        if isinstance(layer, (keras.layers.BatchNormalization, keras.layers.LayerNormalization)):
            layer.gamma.assign(np.zeros(layer.gamma.shape, "float32"))
            layer.beta.assign(np.zeros(layer.beta.shape, "float32"))


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize(
    "cls, kwargs, shape",
    [
        (ResidualBlock, dict(filters=8), CONV),
        (ResidualBlock, dict(filters=2, bottleneck=True), CONV),
        (DenseResidualBlock, dict(units=6, normalization="batch"), VEC),
    ],
)
def test_shortcut_is_added_before_the_final_relu(cls, kwargs, shape, training):
    """With every norm zeroed the branch is 0: residual gives relu(x), plain gives 0."""
    x = _inputs(shape)
    residual = cls(**kwargs)
    residual.build(shape)
    _zero_norms(residual)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(residual(x, training=training)), np.maximum(x, 0)
    )
    plain_cls = {ResidualBlock: PlainBlock, DenseResidualBlock: DensePlainBlock}[cls]
    plain = plain_cls(**kwargs)
    plain.build(shape)
    _zero_norms(plain)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(plain(x, training=training)), np.zeros_like(x)
    )


def test_option_a_shortcut_is_a_strided_identity_with_zero_channels():
    x = _inputs(CONV)
    block = ResidualBlock(16, strides=2, shortcut="zero_pad")
    block.build(CONV)
    _zero_norms(block)
    expected = np.concatenate([x[:, ::2, ::2, :], np.zeros((2, 4, 4, 8), "float32")], axis=-1)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(block(x, training=False)), np.maximum(expected, 0)
    )


def test_dense_residual_block_computes_the_seed_formula():
    """out = g(W2 g(W1 a + b1) + b2 + a)."""
    a = _inputs(VEC)
    block = DenseResidualBlock(6)
    out = keras.ops.convert_to_numpy(block(a))
    weights = {w.path.split("/", 1)[1]: keras.ops.convert_to_numpy(w) for w in block.weights}
    w1, b1 = weights["dense1/kernel"], weights["dense1/bias"]
    w2, b2 = weights["dense2/kernel"], weights["dense2/bias"]
    relu = lambda z: np.maximum(z, 0)  # noqa: E731
    np.testing.assert_allclose(out, relu(relu(a @ w1 + b1) @ w2 + b2 + a), rtol=1e-5, atol=1e-5)
    plain = DensePlainBlock(6)
    plain.build(VEC)
    plain.set_weights(block.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(plain(a)),
        relu(relu(a @ w1 + b1) @ w2 + b2),
        rtol=1e-5,
        atol=1e-5,
    )


def test_zero_init_last_starts_as_relu_of_the_input():
    x = _inputs(CONV)
    for kwargs in (dict(filters=8), dict(filters=8, preact=True), dict(filters=2, bottleneck=True)):
        block = ResidualBlock(**kwargs, zero_init_last=True)
        out = keras.ops.convert_to_numpy(block(x, training=False))
        expected = x if kwargs.get("preact") else np.maximum(x, 0)
        np.testing.assert_allclose(out, expected, atol=1e-6)


def test_plain_block_has_no_shortcut_weights_and_matches_option_a_parameter_count():
    plain = PlainBlock(16, strides=2)
    plain.build(CONV)
    assert not [w.path for w in plain.weights if "shortcut" in w.path]
    residual = ResidualBlock(16, strides=2, shortcut="zero_pad")
    residual.build(CONV)
    assert residual.count_params() == plain.count_params()
    projected = ResidualBlock(16, strides=2)
    projected.build(CONV)
    assert projected.count_params() > plain.count_params()
    assert any("shortcut_conv" in w.path for w in projected.weights)


BAD = [
    (lambda: ResidualBlock(0), "filters=0"),
    (lambda: ResidualBlock(-3), "filters=-3"),
    (lambda: ResidualBlock(8, kernel_size=4), "kernel_size=4"),
    (lambda: ResidualBlock(8, strides=0), "strides=0"),
    (lambda: ResidualBlock(8, shortcut="sideways"), "shortcut='sideways'"),
    (lambda: ResidualBlock(8, normalization="group"), "normalization='group'"),
    (lambda: PlainBlock(8, shortcut="projection"), "shortcut='projection'"),
    (lambda: PlainBlock(8, zero_init_last=True), "zero_init_last=True"),
    (lambda: DenseResidualBlock(0), "units=0"),
    (lambda: DensePlainBlock(4, shortcut="auto"), "shortcut='auto'"),
    (lambda: ResidualBlock(16, shortcut="identity").build(CONV), "shortcut='identity'"),
    (lambda: ResidualBlock(4, shortcut="zero_pad").build(CONV), "output channels=4"),
    (lambda: ResidualBlock(8).build((2, 8, 8)), "input_shape=(2, 8, 8)"),
    (lambda: ResidualBlock(8).build((2, 8, 8, None)), "input_shape=(2, 8, 8, None)"),
]


@pytest.mark.parametrize("make, message", BAD, ids=[m for _, m in BAD])
def test_bad_arguments_raise_value_error_naming_the_value(make, message):
    with pytest.raises(ValueError, match="Received") as info:
        make()
    assert message in str(info.value)
