"""The keras-resblocks command, run in-process through its entry point."""

import json
import re

import keras
import numpy as np
import pytest
from PIL import Image

from keras_resblocks import Architecture, ResNet, save_pretrained
from keras_resblocks.cli import main
from tests._helpers import rewrite_reference, rehash

TINY = Architecture(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = ResNet(
        TINY,
        num_classes=3,
        input_shape=(16, 16, 3),
        preprocessing={"scale": 1 / 255, "mean": [0.5] * 3, "std": [0.25] * 3},
    )
    return save_pretrained(
        model,
        tmp_path_factory.mktemp("ckpt") / "tiny",
        labels=["cat", "dog", "fish"],
        dataset="generated",
        metrics={"test_accuracy": 0.5},
        command="made by tests/test_cli.py",
    )


def test_list_json_has_architectures_and_checkpoints(capsys):
    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in listing["architectures"]}
    assert rows["resnet50"]["parameters"] == 25_636_712
    assert rows["resnet20"]["depth"] == 20
    assert "resnet50_imagenet" in {r["name"] for r in listing["checkpoints"]}
    ported = {r["name"]: r for r in listing["checkpoints"]}["resnet20_cifar10_akamaster"]
    assert ported["parameters"] == 271_098 and ported["size_mb"] == 1.1
    assert ported["accuracy"] == 0.8103 and "10,000 images" in ported["measured_on"]
    assert ported["source"] == "bundled" and ported["origin"] == "ported"
    assert ported["ported_from"].startswith("akamaster/pytorch_resnet_cifar10@")


def test_list_shows_what_a_user_scans(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("NAME") and "DATASET" in line)
    assert header.split() == [
        *("NAME", "ARCHITECTURE", "PARAMETERS", "MACS", "FILE", "DATASET", "ACCURACY"),
        *("SEEDS", "MEASURED", "ON", "ORIGIN", "SOURCE"),
    ]
    row = next(line for line in lines if line.startswith("resnet56_cifar10_akamaster "))
    for cell in ("resnet56", "0.86M", "125M", "3.5 MB", "cifar10", "83.20%"):
        assert cell in row
    for cell in ("test (JPEG q75 copy) split", "ported", "bundled"):
        assert cell in row
    row = next(line for line in lines if line.startswith("resnet50_imagenet "))
    assert "keras.applications (download)" in row and "3.86G" in row


@pytest.mark.parametrize(
    "argv, suggested",
    [
        (["info", "resnt56"], "'resnet56'"),
        (["info", "resnet56_cifar10_akamastr"], "'resnet56_cifar10_akamaster'"),
        (["predict", "resnet50_imagnet", "cat.png"], "'resnet50_imagenet'"),
        (["evaluate", "resnet20_cifar100", "--dataset", "digits"], "'resnet20_cifar10'"),
    ],
)
def test_an_unknown_name_suggests_the_closest_and_how_to_see_all(argv, suggested, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert f"Did you mean {suggested}" in err and "`keras-resblocks list`" in err


def test_info_of_an_architecture_and_a_checkpoint(capsys, checkpoint):
    assert main(["info", "resnet56", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["architecture"]["stage_depths"] == [9, 9, 9]
    assert main(["info", str(checkpoint)]) == 0
    assert "library_name: keras-resblocks" in capsys.readouterr().out
    assert main(["info", "no-such-thing"]) == 1
    assert "unknown name 'no-such-thing'" in capsys.readouterr().err


def test_predict_answers_good_files_and_names_bad_ones(capsys, checkpoint, tmp_path):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((40, 30), 200, "uint8")).save(grey)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.zeros((8, 8, 4), "uint8")).save(rgba)
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    code = main(
        [
            "predict",
            str(checkpoint),
            str(grey),
            str(rgba),
            str(broken),
            str(tmp_path / "missing.png"),
            "--top-k",
            "2",
            "--json",
        ]
    )
    out = capsys.readouterr()
    assert code == 1
    results = json.loads(out.out)
    assert [r["file"] for r in results] == [str(grey), str(rgba)]
    for r in results:
        assert len(r["top"]) == 2 and {t["label"] for t in r["top"]} <= {"cat", "dog", "fish"}
        assert r["top"][0]["probability"] >= r["top"][1]["probability"]
    assert f"error: {broken}: not a readable image" in out.err
    assert "missing.png: no such file" in out.err
    assert "Traceback" not in out.err


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as info:
        main(["predict"])
    assert info.value.code == 2


def test_plot_writes_a_png(tmp_path, capsys):
    def write_history(path, error):
        path.parent.mkdir(parents=True)
        rows = [f"{e},{100 * e},{error / e},{error / e + 0.05}" for e in range(1, 4)]
        path.write_text("epoch,iterations,train_error,test_error\n" + "\n".join(rows) + "\n")

    plain, residual = tmp_path / "plain20" / "history.csv", tmp_path / "resnet20" / "history.csv"
    write_history(plain, error=0.2)
    write_history(residual, error=0.1)
    out = tmp_path / "fig.png"
    assert main(["plot", str(plain), str(residual), "--output", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(tmp_path / "nope.csv")]) == 1
    assert "not found" in capsys.readouterr().err


def test_verify_reruns_the_reference_batch_and_fails_on_a_difference(capsys, tmp_path):
    model = ResNet(TINY, num_classes=3, input_shape=(16, 16, 3))
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    path = save_pretrained(model, tmp_path / "with-reference", reference_inputs=images)
    assert main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert "reproduces its reference batch" in out and "logits: max |diff|" in out
    assert main(["verify", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["allclose"] is True

    # Outputs that the weights do not give (sha256 re-recorded, so only they are wrong).
    # Untrained and fed raw 0..255 pixels, the tiny net's logits run into the hundreds, so the
    # nudge is scaled to the value: 0.5 on a logit of 600 is within rtol=1e-3 and passes.
    def nudge(tensors):
        tensors["logits"][0, 0] += 0.5 + 0.01 * abs(float(tensors["logits"][0, 0]))

    rewrite_reference(path, nudge)
    assert main(["verify", str(path)]) == 1
    assert "DOES NOT reproduce" in capsys.readouterr().out

    without = save_pretrained(model, tmp_path / "without-reference")
    assert main(["verify", str(without)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "reference" in err and len(err.strip().splitlines()) == 1


def test_evaluate_gives_one_accuracy_whatever_the_batch_size(capsys, tmp_path):
    from keras_resblocks import from_pretrained
    from keras_resblocks.training import load_dataset

    keras.utils.set_random_seed(3)
    model = ResNet(
        TINY,
        num_classes=10,
        input_shape=(32, 32, 3),
        preprocessing={"scale": 1 / 255, "mean": [0.3] * 3, "std": [0.3] * 3},
    )
    path = save_pretrained(model, tmp_path / "digits-net", labels=[str(i) for i in range(10)])
    data = load_dataset("digits", validation=0)
    # The independent count: argmax of predict against the labels (360 test images).
    predicted = from_pretrained(str(path)).predict(data.x_test, verbose=0).argmax(-1)
    expected = float((predicted == data.y_test).mean())
    for batch_size in (360, 100, 7, 1000):  # 100 and 7 leave a partial last batch
        assert (
            main(
                [
                    "evaluate",
                    str(path),
                    "--dataset",
                    "digits",
                    "--batch-size",
                    str(batch_size),
                    "--json",
                ]
            )
            == 0
        )
        result = json.loads(capsys.readouterr().out)
        assert result["images"] == 360
        assert result["accuracy"] == pytest.approx(expected, abs=1e-6), batch_size


def test_info_validates_a_directory_before_printing_and_strips_control_characters(
    capsys, checkpoint, tmp_path
):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(checkpoint, copy)
    card = copy / "README.md"
    card.write_text(card.read_text() + "\x1b]0;pwned\x07\x1b[2J tail\n")
    rehash(copy)
    assert main(["info", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "tail" in out

    config = json.loads((copy / "config.json").read_text())
    config["architecture"]["stage_depths"] = [100000, 1]
    (copy / "config.json").write_text(json.dumps(config))
    rehash(copy)
    assert main(["info", str(copy)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "beyond the limit of 1,024" in err and err.count("\n") == 1


def test_predict_refuses_huge_images_by_their_header_and_scales_wide_ones(
    capsys, checkpoint, tmp_path
):
    from keras_resblocks.inference import MAX_IMAGE_PIXELS, load_image

    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # 400M pixels in a few KB
    big = tmp_path / "big.png"
    Image.new("1", (10000, 6000)).save(big)  # 60M: under Pillow's own limit, over ours
    assert bomb.stat().st_size < 200_000
    good = tmp_path / "good.png"
    Image.fromarray(np.full((16, 16, 3), 90, "uint8")).save(good)
    code = main(["predict", str(checkpoint), str(bomb), str(big), str(good), "--json"])
    out = capsys.readouterr()
    assert code == 1
    assert [r["file"] for r in json.loads(out.out)] == [str(good)]  # the others still answered
    assert f"beyond the limit of {MAX_IMAGE_PIXELS:,}" in out.err
    assert f"{bomb}: more pixels than the limit of {MAX_IMAGE_PIXELS:,}" in out.err

    sixteen = tmp_path / "sixteen.png"
    Image.fromarray(np.array([[0, 32896, 65535]], "uint16")).save(sixteen)
    assert load_image(sixteen)[0, :, 0].tolist() == [0, 128, 255]
    floats = tmp_path / "floats.tiff"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], "float32")).save(floats)
    assert load_image(floats)[0, :, 0].tolist() == [0, 128, 255]


def test_the_docs_table_of_command_inputs_lists_what_these_tests_check():
    from tests._docs import ROOT

    text = (ROOT / "docs" / "checkpoints.md").read_text()
    rows = dict(
        re.findall(r"^\| (`(?:predict|info|evaluate|plot)[^|]+) \| (.+?) \|$", text, re.MULTILINE)
    )
    assert list(rows)[:4] == [
        "`predict` of an image of more pixels than 50,000,000 (a 20000x20000 PNG of a few KB)",
        "`predict` of a 16-bit PNG or a floating-point TIFF",
        "`info DIR` of a checkpoint beyond its bounds",
        "`info DIR` of a card holding terminal escape codes",
    ]
    assert len(rows) == 9 and "is not a regular file, not an image" in list(rows.values())[4]
    said = list(rows.values())
    # The fragments the tests above assert on (huge images, scaling, info).
    from keras_resblocks.images import MAX_IMAGE_PIXELS

    assert (
        f"more pixels than the limit of {MAX_IMAGE_PIXELS:,}" in said[0] and "answered" in said[0]
    )
    assert "65535 and 1.0 become 255" in said[1]
    assert "beyond the limit of 1,024" in said[2]
    assert "without control characters" in said[3]


def test_the_recorded_command_line_keeps_no_path_of_this_machine(tmp_path, monkeypatch):
    from keras_resblocks._cli_common import command_line

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    argv = [
        "/home/me/.venv/bin/keras-resblocks",
        "train",
        "--dataset",
        str(tmp_path / "data"),
        "--output=/elsewhere/my run",
        "--epochs",
        "3",
    ]
    assert command_line(argv) == (
        "keras-resblocks train --dataset data '--output=.../my run' --epochs 3"
    )
    assert command_line(["run.py", "--json", "/tmp/x/r.json"], program="python b/run.py") == (
        "python b/run.py --json .../r.json"
    )


def test_list_filters_sorts_and_answers_with_the_rows_of_the_python_api(capsys):
    import keras_resblocks as kr
    from keras_resblocks.cli import main

    # The most accurate CIFAR-10 ResNet under a million parameters, in one command.
    argv = ["list", "resnet*", "--pretrained", "--where", "dataset=cifar10*"]
    argv += ["--where", "parameters<1M", "--sort", "accuracy", "--descending"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Pretrained checkpoints") and lines[1].startswith("NAME")
    names = [line.split()[0] for line in lines[2:-1]]
    rows = kr.list_checkpoints("resnet*", ["dataset=cifar10*", "parameters<1M"], "-accuracy")
    assert names == [r["name"] for r in rows] and names[0] == "resnet56_cifar10_90epochs"
    accuracies = [r["accuracy"] for r in rows if r["accuracy"] is not None]
    assert accuracies == sorted(accuracies, reverse=True)
    assert all(r["parameters"] < 1e6 and r["dataset"].startswith("cifar10") for r in rows)

    assert main(["list", "resnet5*", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in listed["architectures"]} == {
        "resnet50",
        "resnet50d",
        "resnet50v2",
        "resnet56",
    }
    assert all(r["name"].startswith("resnet5") for r in listed["checkpoints"])
    assert listed["checkpoints"] == kr.list_checkpoints("resnet5*")
    row = next(r for r in listed["checkpoints"] if r["name"] == "resnet56_cifar10")
    assert row["macs"] == kr.multiply_accumulates(kr.Architecture.named("resnet56"))
    assert row["accuracy_spread"]["seeds"] == [0, 1, 2] and row["origin"] == "trained here"
    assert row["accuracy_spread"]["min"] <= row["accuracy"] <= row["accuracy_spread"]["max"]
    assert row["command"].startswith("keras-resblocks train --model resnet56 ")
    assert "--work-dir" not in row["command"] and row["trained_on"].endswith("45,000 images")


@pytest.mark.parametrize(
    "argv,code,message",
    [
        (["--where", "size>3"], 1, "Unknown column in --where; the columns are ["),
        (["--where", "parameters<abc"], 1, "A number is needed to compare with. Received: 'abc'"),
        (["--where", "parameters"], 1, "A --where condition is COLUMN<VALUE"),
        (["--sort", "nope"], 1, "Unknown column in --sort"),
        (["--descending"], 2, "--descending needs --sort COLUMN"),
    ],
)
def test_list_refuses_bad_filters_in_one_line(argv, code, message, capsys):
    from keras_resblocks.cli import main

    assert main(["list", *argv]) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv,message",
    [
        (["predict", "NAME", "x.png", "--top-k", "0"], "--top-k: must be an integer of at least 1"),
        (
            ["predict", "NAME", "x.png", "--top-k", "-2"],
            "--top-k: must be an integer of at least 1",
        ),
        (
            ["predict", "NAME", "x.png", "--batch-size", "0"],
            "--batch-size: must be an integer from 1",
        ),
        (["predict", "NAME", "x.png", "--batch-size", "-1"], "--batch-size: must be an integer"),
        (
            ["evaluate", "NAME", "--dataset", "digits", "--batch-size", "0"],
            "must be an integer from",
        ),
        (
            ["evaluate", "NAME", "--dataset", "digits", "--batch-size", "999999999"],
            "from 1 to 4096",
        ),
        (["verify", "NAME", "--atol", "nan"], "--atol: must be a finite number of at least 0"),
        (["verify", "NAME", "--rtol", "-1"], "--rtol: must be a finite number of at least 0"),
    ],
)
def test_meaningless_numbers_are_usage_errors_before_any_work(argv, message, capsys, checkpoint):
    argv = [str(checkpoint) if a == "NAME" else a for a in argv]
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2 and message in capsys.readouterr().err


def test_predict_refuses_a_fifo_without_waiting_and_prints_no_forged_lines(
    capsys, checkpoint, tmp_path
):
    import os
    import shutil

    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    Image.fromarray(np.zeros((16, 16, 3), "uint8")).save(tmp_path / "ok\x1b[2J\nforged.png")
    # A checkpoint whose labels hold a newline and terminal escape codes.
    evil = tmp_path / "evil"
    shutil.copytree(checkpoint, evil)
    config = json.loads((evil / "config.json").read_text())
    config["labels"] = ["cat\nok.png: dog 1.000", "\x1b]0;pwned\x07dog", "fish"]
    (evil / "config.json").write_text(json.dumps(config))
    rehash(evil)
    images = [str(fifo), str(tmp_path / "ok\x1b[2J\nforged.png")]
    assert main(["predict", str(evil), *images, "--top-k", "3"]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"error: {fifo}: is not a regular file, not an image\n"
    lines = captured.out.splitlines()
    assert len(lines) == 1 and "\x1b" not in captured.out and "\x07" not in captured.out
    assert lines[0].startswith(f"{tmp_path}/ok[2J forged.png: ")
    assert "cat ok.png: dog 1.000" in lines[0] and "]0;pwneddog" in lines[0]


def test_a_truncated_archive_and_a_history_without_iterations_are_one_line_errors(
    capsys, checkpoint, tmp_path
):
    import io
    import tarfile

    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            for i in range(20):
                buffer = io.BytesIO()
                pixels = np.random.default_rng(i).integers(0, 255, (16, 16, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(buffer, format="PNG")
                info = tarfile.TarInfo(f"{split}/cat/{i}.png")
                info.size = buffer.tell()
                buffer.seek(0)
                tar.addfile(info, buffer)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    code = main(["evaluate", str(checkpoint), "--data", str(archive)])
    err = capsys.readouterr().err.splitlines()[-1]  # after the progress line
    assert code == 1 and err.startswith("error: "), err
    assert "Cannot read the archive data.tar.gz: it is truncated or not a .tar.gz" in err

    history = tmp_path / "history.csv"
    history.write_text("epoch,train_error\n1,0.5\n")
    assert main(["plot", str(history), "--output", str(tmp_path / "p.png")]) == 1
    err = capsys.readouterr().err
    assert "not a training history (no rows, or no column ['iterations'])" in err
    assert not (tmp_path / "p.png").exists()


def test_info_refuses_a_card_changed_after_the_checkpoint_was_written(capsys, checkpoint, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(checkpoint, copy)
    with open(copy / "README.md", "a") as card:
        card.write("\nThis model is 99.9% accurate.\n")
    assert main(["info", str(copy)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "sha256 mismatch for README.md" in captured.err
