"""Offline: every download that cannot happen ends in one `error: ...` line, exit code 1.

Nothing here touches the internet: keras' downloader gets the error urllib raises
when a name cannot be resolved, and the Hub is a loopback server whose port is closed.
"""

import socket
import urllib.error

import pytest
from tests._hubserver import fake_hub, tiny_model  # noqa: F401  (fake_hub is a fixture)

from keras_resblocks import (
    CheckpointDownloadError,
    HubUnavailableError,
    from_pretrained,
    save_pretrained,
)
from keras_resblocks.cli import main
from keras_resblocks.training import DatasetDownloadError, load_dataset

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """keras.utils.get_file as on a machine without network, with an empty Keras cache."""
    from keras.src.backend import config
    from keras.src.utils import file_utils

    def urlretrieve(url, *args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(file_utils, "urlretrieve", urlretrieve)
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path / "keras_home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


def _one_error_line(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_dataset_download_offline(offline, capsys, tmp_path):
    with pytest.raises(DatasetDownloadError, match="offline") as info:
        load_dataset("cifar10")
    assert isinstance(info.value, ConnectionError)

    checkpoint = save_pretrained(tiny_model(), tmp_path / "tiny")
    assert main(["evaluate", str(checkpoint), "--dataset", "cifar10"]) == 1
    line = _one_error_line(capsys)
    assert CIFAR_URL in line and "offline" in line and "--dataset PATH" in line
    assert ".tar.gz" in line and "image folder" in line

    assert main(["train", "--dataset", "cifar10", "--output", str(tmp_path / "out")]) == 1
    line = _one_error_line(capsys)
    assert CIFAR_URL in line and "--dataset PATH" in line


def test_keras_applications_download_offline(offline, capsys, tmp_path):
    image = tmp_path / "cat.png"
    image.write_bytes(b"")  # never read: the model cannot be had
    with pytest.raises(CheckpointDownloadError, match="offline"):
        from_pretrained("resnet50_imagenet", cache_dir=tmp_path / "ported")
    assert main(["predict", "resnet50_imagenet", str(image)]) == 1
    line = _one_error_line(capsys)
    assert "https://storage.googleapis.com/" in line and "offline" in line
    assert "local checkpoint directory" in line
    assert "resnet50_weights_tf_dim_ordering_tf_kernels.h5" in line


def test_hub_unreachable(fake_hub, capsys, tmp_path):  # noqa: F811
    fake_hub.stop()  # the port is closed: connection refused
    with pytest.raises(HubUnavailableError) as info:
        from_pretrained("hf://owner/tiny")
    assert isinstance(info.value, CheckpointDownloadError)
    assert main(["predict", "hf://owner/tiny", str(tmp_path / "cat.png")]) == 1
    line = _one_error_line(capsys)
    assert "owner/tiny" in line and "offline" in line
    assert "local checkpoint directory" in line and "HF_HUB_OFFLINE=1" in line
