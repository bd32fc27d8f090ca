"""The benchmark harness keeps working: its quick run, its FLOP counter, its twins."""

import json
import math
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import flops, run  # noqa: E402
from benchmarks.handwritten import cifar_resnet, copy_weights, handwritten_path  # noqa: E402
from benchmarks.report import to_markdown  # noqa: E402
from keras_resblocks import ResidualBlock, create_model  # noqa: E402

SECTIONS = {"layers", "training", "loading", "time_to_accuracy"}


def _numbers(rows):
    for row in rows:
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                yield key, value


def test_flops_of_a_small_model_match_the_hand_count():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    # strided zero-pad block: conv1 3x3/2 on 8x8x4 -> 4x4x8, conv2 3x3 on 4x4x8
    x = ResidualBlock(8, strides=2, shortcut="zero_pad")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2)(x)
    model = keras.Model(inputs, outputs)
    stem = 8 * 8 * 4 * (3 * 3 * 3)
    conv1 = 4 * 4 * 8 * (3 * 3 * 4)
    conv2 = 4 * 4 * 8 * (3 * 3 * 8)
    dense = 8 * 2
    assert flops.forward_macs(model) == stem + conv1 + conv2 + dense == 20752
    assert flops.training_flops_per_image(model) == 6 * 20752


def test_flops_need_known_spatial_sizes():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    with pytest.raises(ValueError, match="unknown spatial size"):
        flops.forward_macs(model)


def test_handwritten_twin_matches_the_package_model():
    package = create_model("resnet20")
    twin = cifar_resnet(20)
    assert package.count_params() == twin.count_params()
    rng = np.random.default_rng(0)
    for v in package.weights:
        v.assign(rng.uniform(0.5, 1.5, tuple(v.shape)).astype("float32"))
    copy_weights(package, twin)
    x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(package(x, training=False)), np.asarray(twin(x, training=False)),
        rtol=1e-4, atol=1e-6,
    )
    assert flops.forward_macs(package) == flops.forward_macs(twin)
    assert handwritten_path("stage2_block1/bn2/moving_mean") == "stage2_block1_2_bn/moving_mean"
    with pytest.raises(ValueError, match="different variables"):
        copy_weights(package, cifar_resnet(32))


def test_quick_run_reports_every_section(tmp_path, capsys):
    # In this process (the CI budget is tight); its cold-load timings still start
    # fresh processes of their own.
    assert run.main(["--quick", "--json", str(tmp_path / "quick.json")]) == 0
    out = tmp_path / "quick.json"
    results = json.loads(out.read_text())
    assert results["meta"]["backend"] == keras.backend.backend()
    assert set(results["sections"]) == SECTIONS
    for name, section in results["sections"].items():
        assert section["status"] in ("ok", "skipped"), (name, section["reason"])
        if section["status"] == "skipped":
            assert section["reason"], name
    # What needs nothing but a CPU must have run and measured something.
    for name in ("layers", "training", "loading"):
        section = results["sections"][name]
        assert section["status"] == "ok", (name, section["reason"])
        assert all(t["rows"] for t in section["tables"].values()), name
        for table in section["tables"].values():
            for key, value in _numbers(table["rows"]):
                if key.startswith("max_abs_diff"):
                    assert value < 1e-5, (name, key, value)
                else:
                    assert math.isfinite(value) and value > 0, (name, key, value)
    rows = results["sections"]["layers"]["tables"]["timings"]["rows"]
    assert {r["benchmark"] for r in rows} >= {"predict_on_batch", "train_on_batch"}
    markdown = to_markdown(results)
    assert "| resnet20 |" in markdown and "skipped" in markdown


def test_report_splices_tables_between_markers():
    from benchmarks.report import splice, table

    doc = "intro\n<!-- results:cpu -->\nold\n<!-- /results:cpu -->\noutro\n"
    new = splice(doc, "cpu", table(["a", "b"], [{"a": 1, "b": 0.5}]))
    assert "old" not in new and "| 1 | 0.500 |" in new and new.endswith("outro\n")
    with pytest.raises(ValueError, match="marker='gpu'"):
        splice(doc, "gpu", "x")
