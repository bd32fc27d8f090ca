"""freeze_backbone: frozen weights and BatchNorm statistics stay put, the rest trains."""

import keras
import numpy as np
import pytest
from tests._hubserver import tiny_model

from keras_resblocks import freeze_backbone


def _values(model):
    return {v.path: keras.ops.convert_to_numpy(v).copy() for v in model.variables}


def test_frozen_part_and_its_batchnorm_do_not_change_during_fit():
    model = tiny_model()
    frozen = freeze_backbone(model, up_to="stage1")
    assert frozen == ["stem_conv", "stem_bn", "stem_relu", "stage1_block1"]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, (8,))
    before = _values(model)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    after = _values(model)
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    frozen_paths = {k for k in before if k.startswith(("stem_", "stage1_"))}
    assert (
        "stem_bn/moving_mean" in frozen_paths
        and "stage1_block1/bn1/moving_variance" in frozen_paths
    )
    assert not changed & frozen_paths
    # The rest trains, and its BatchNorm (training mode) updates its statistics.
    assert {
        "stage2_block1/conv1/kernel",
        "stage2_block1/bn1/moving_mean",
        "predictions/kernel",
        "predictions/bias",
    } <= changed


def test_whole_backbone_and_bad_stage():
    model = tiny_model()
    freeze_backbone(model)
    assert [v.path for v in model.trainable_weights] == ["predictions/kernel", "predictions/bias"]
    with pytest.raises(ValueError, match="stage3"):
        freeze_backbone(model, up_to="stage3")
