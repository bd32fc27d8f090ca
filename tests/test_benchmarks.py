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
        np.asarray(package(x, training=False)),
        np.asarray(twin(x, training=False)),
        rtol=1e-4,
        atol=1e-6,
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
    assert results["meta"]["command"].endswith(
        "python benchmarks/run.py --quick --json .../quick.json"
    )
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
    from benchmarks.report import splice, splice_between, table

    assert (
        splice_between("a\n<!-- x -->\nold\n<!-- /x -->\nb", "x", "new")
        == "a\n<!-- x -->\nnew\n<!-- /x -->\nb"
    )

    doc = "intro\n<!-- results:cpu -->\nold\n<!-- /results:cpu -->\noutro\n"
    new = splice(doc, "cpu", table(["a", "b"], [{"a": 1, "b": 0.5}]))
    assert "old" not in new and "| 1 | 0.500 |" in new and new.endswith("outro\n")
    with pytest.raises(ValueError, match="<!-- results:gpu -->"):
        splice(doc, "gpu", "x")


def test_report_splices_only_the_sections_asked_for(tmp_path):
    from benchmarks.report import main

    section = {"status": "skipped", "reason": "no GPU", "tables": {}, "skipped": [], "notes": []}
    run = {"meta": {"backend": "jax", "date": "today"}, "sections": {"layers": section}}
    run["sections"]["training"] = {**section, "reason": "no trainer"}
    (tmp_path / "run.json").write_text(json.dumps(run))
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- results:x -->\nold\n<!-- /results:x -->\n")
    main([str(tmp_path / "run.json"), "--section", "training", "--into", str(doc), "--marker", "x"])
    assert "##### training" in doc.read_text() and "layers" not in doc.read_text()
    with pytest.raises(SystemExit):
        main([str(tmp_path / "run.json"), "--section", "loading"])


def test_numpy_pipeline_crops_flips_and_normalizes_like_the_trainer():
    from benchmarks.trainer_runs import NumpyCifarPipeline

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8)
    pipeline = NumpyCifarPipeline(images, np.arange(64), 16, padding=2)
    assert len(pipeline) == 4
    x, y = pipeline[1]
    assert x.shape == (16, 8, 8, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(y, pipeline.order[16:32])  # labels follow their images
    # Each output is a window of the zero-padded source, maybe mirrored.
    padded = np.pad(images.astype("float32") / 255.0, ((0, 0), (2, 2), (2, 2), (0, 0)))
    padded = (padded - pipeline.mean) / pipeline.std
    for out, index in zip(x, y):
        windows = [padded[index, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
        windows += [w[:, ::-1] for w in windows]
        assert min(np.abs(w - out).max() for w in windows) < 1e-5


def test_time_to_accuracy_stops_the_run_at_the_first_epoch_that_reaches_the_target(tmp_path):
    from benchmarks.trainer_runs import time_to_accuracy

    tiny = [
        "--model-overrides",
        json.dumps({"stage_depths": [1, 1, 1], "stage_widths": [8, 8, 16], "stem_width": 8}),
    ]
    # Digits, 8 epochs of 20 iterations planned; a tiny net passes 30% within a few.
    result = time_to_accuracy("digits", 0.3, tmp_path, recipe="quick", extra_args=tiny)
    assert result["reached"] and result["test_accuracy"] >= 0.3, result
    assert 1 <= result["epoch"] < 8 and result["iterations"] == 20 * result["epoch"]
    assert result["seconds"] > 0 and "--recipe quick" in result["command"]
    assert result["command"].startswith("keras-resblocks train --dataset digits")
    (work,) = tmp_path.iterdir()
    rows = (work / "history.csv").read_text().strip().splitlines()
    assert len(rows) - 1 < 8  # stopped, not run to the end

    missed = time_to_accuracy(
        "digits", 1.01, tmp_path, recipe="quick", extra_args=[*tiny, "--iterations", "20"]
    )
    assert not missed["reached"] and missed["epoch"] == 1 and 0 <= missed["test_accuracy"] <= 1


def test_cpu_training_quick_run_reports_every_section(tmp_path):
    # In this process, like the harness's quick run; the trainer runs (and PyTorch's,
    # where a Python with torch is found: CI has none) start fresh processes.
    from benchmarks import cpu_training

    out = tmp_path / "cpu.json"
    assert (
        cpu_training.main(["--quick", "--json", str(out), "--markdown", str(tmp_path / "cpu.md")])
        == 0
    )
    results = json.loads(out.read_text())
    assert "python benchmarks/cpu_training.py --quick --json" in results["meta"]["command"]
    sections = results["sections"]
    assert set(sections) == {"contest", "breakdown", "peak"}
    expected_ok = {"contest", "peak"} | (
        {"breakdown"} if keras.backend.backend() == "tensorflow" else set()
    )
    for name, section in sections.items():
        assert section["status"] == ("ok" if name in expected_ok else "skipped"), (
            name,
            section["reason"],
        )
    contest = sections["contest"]["tables"]["images_per_second"]["rows"]
    contenders = {(r["contender"], r["precision"]) for r in contest}
    assert (cpu_training.TRAINER, "float32") in contenders
    torch_ran = (cpu_training.TORCH, "float32") in contenders
    assert torch_ran != any("PyTorch" in s["what"] for s in sections["contest"]["skipped"])
    for name in expected_ok:
        for table in sections[name]["tables"].values():
            assert table["rows"], name
            for key, value in _numbers(table["rows"]):
                assert math.isfinite(value), (name, key, value)
                # An increment of a step's breakdown is a difference of two noisy times.
                if key not in ("added_ms", "share"):
                    assert value > 0, (name, key, value)
    fractions = sections["peak"]["tables"]["fraction_of_peak"]["rows"]
    assert len(fractions) == len(contest) and all(r["fraction_of_peak"] < 1 for r in fractions)
    if "breakdown" in expected_ok:
        parts = [r["part"] for r in sections["breakdown"]["tables"]["step_breakdown"]["rows"]]
        assert parts == [*cpu_training.PARTS, cpu_training.KERAS_STEP]
    markdown = (tmp_path / "cpu.md").read_text()
    assert "| resnet20 | trainer" in markdown and "*fraction_of_peak*" in markdown


def test_cpu_training_reports_a_missing_torch_instead_of_failing(tmp_path):
    from benchmarks.cpu_training import torch_python_or_reason

    python, reason = torch_python_or_reason(tmp_path / "no-python")
    assert python is None and "--torch-python" in reason
    no_torch = tmp_path / "python"
    no_torch.write_text("#!/bin/sh\necho \"No module named 'torch'\" >&2\nexit 1\n")
    no_torch.chmod(0o755)
    python, reason = torch_python_or_reason(no_torch)
    assert python is None and "cannot import torch: No module named 'torch'" in reason
