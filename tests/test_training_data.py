"""Image-folder datasets (tiny generated JPEGs) and the figure-6 plot script."""

import os
import pathlib
import tarfile

import numpy as np
import pytest
from PIL import Image

from keras_resblocks.training import DatasetError, load_dataset, load_image_folder

DATA = pathlib.Path(__file__).parent / "data"
REPO = pathlib.Path(__file__).resolve().parents[1]


def _write_folder(root, classes=("cat", "dog"), per_class=(3, 2), size=(6, 6)):
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per_class):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 255, size + (3,), dtype="uint8")
                Image.fromarray(pixels).save(root / split / c / f"{i:04d}.png")
    return root


def test_image_folder_is_decoded_once_and_cached(tmp_path):
    root = _write_folder(tmp_path / "pets")
    cache = tmp_path / "cache"
    x_train, y_train, x_test, y_test, labels = load_image_folder(root, cache_dir=cache)
    assert labels == ["cat", "dog"]
    assert tuple(x_train.shape) == (6, 6, 6, 3) and x_train.dtype == np.uint8
    assert list(y_train) == [0, 0, 0, 1, 1, 1] and list(y_test) == [0, 0, 1, 1]
    np.testing.assert_array_equal(x_train[0], np.asarray(Image.open(root / "train/cat/0000.png")))
    (cached,) = cache.glob("pets-*.npz")
    umask = os.umask(0o022)
    os.umask(umask)
    assert cached.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600

    # The second load reads the cache, not the images: doctor the cache and see it.
    with np.load(cached) as arrays:
        doctored = dict(arrays)
    doctored["x_train"] = np.zeros_like(doctored["x_train"])
    np.savez(cached, **doctored)
    assert not load_image_folder(root, cache_dir=cache)[0].any()
    np.savez(cached, **dict(doctored, x_train=x_train))

    # A .tar.gz of the same folder (with a top-level directory) gives the same arrays.
    archive = tmp_path / "pets.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="pets")
    from_tar = load_image_folder(archive, cache_dir=tmp_path / "cache2")
    for a, b in zip(from_tar[:4], (x_train, y_train, x_test, y_test)):
        np.testing.assert_array_equal(a, b)

    data = load_dataset(str(root), validation=5000, cache_dir=cache)
    assert (len(data.x_train), len(data.x_val), data.labels) == (6, 0, ["cat", "dog"])


def test_missing_and_malformed_folders_name_the_path(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere does not exist; expected .*train/<class>"):
        load_image_folder(tmp_path / "nowhere", cache_dir=tmp_path)

    only_train = tmp_path / "only_train"
    (only_train / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"only_train has no 'test' directory"):
        load_image_folder(only_train, cache_dir=tmp_path)

    mismatch = _write_folder(tmp_path / "mismatch")
    (mismatch / "test" / "dog").rename(mismatch / "test" / "wolf")
    with pytest.raises(
        DatasetError, match=r"same classes .*\['cat', 'dog'\], test classes \['cat', 'wolf'\]"
    ):
        load_image_folder(mismatch, cache_dir=tmp_path)

    broken = _write_folder(tmp_path / "broken")
    (broken / "train" / "cat" / "0001.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"Could not decode image .*broken/train/cat/0001.png"):
        load_image_folder(broken, cache_dir=tmp_path)

    ragged = _write_folder(tmp_path / "ragged")
    Image.new("RGB", (5, 5)).save(ragged / "test" / "dog" / "0000.png")
    with pytest.raises(DatasetError, match=r"same size; .*ragged/test/dog/0000.png"):
        load_image_folder(ragged, cache_dir=tmp_path)

    not_tar = tmp_path / "data.tar.gz"
    not_tar.write_bytes(b"plain bytes")
    with pytest.raises(DatasetError, match=r"data.tar.gz is not a tar archive"):
        load_image_folder(not_tar, cache_dir=tmp_path)


def test_plot_command_draws_figure_6(tmp_path):
    from keras_resblocks.cli import main

    output = tmp_path / "fig6.png"
    histories = [
        str(DATA / "plain20.work" / "history.csv"),
        str(DATA / "resnet20.work" / "history.csv"),
    ]
    assert main(["plot", *histories, "--output", str(output)]) == 0
    image = Image.open(output)
    assert image.format == "PNG" and image.size[0] > image.size[1]

    from keras_resblocks.plotting import plot_degradation

    fig = plot_degradation(histories[:1], histories[1:])
    left, right = fig.axes
    assert [line.get_label() for line in left.get_lines()] == ["_plain20 train", "plain20"]
    assert [line.get_label() for line in right.get_lines()] == ["_resnet20 train", "resnet20"]
    # Test error bold, training error thin and dashed; x in units of 1e4 iterations.
    train_line, test_line = right.get_lines()
    assert (
        test_line.get_linewidth() > train_line.get_linewidth()
        and train_line.get_linestyle() == "--"
    )
    assert test_line.get_xdata()[-1] == pytest.approx(5 * 351 / 1e4)


def test_a_mistyped_dataset_name_suggests_the_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no folder called cifar-10 here
    with pytest.raises(DatasetError, match=r"Unknown dataset 'cifar-10'.*Did you mean 'cifar10'"):
        load_dataset("cifar-10")
