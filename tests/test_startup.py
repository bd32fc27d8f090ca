"""The command's start-up: what answers without a backend does not load one, and a command
that needs one does not print the backend's start-up log."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from tests._hubserver import tiny_model

from keras_resblocks import save_pretrained

BACKENDS = ("keras", "tensorflow", "jax")
_PROBE = """
import contextlib, io, json, sys
from keras_resblocks.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exit:
        code = exit.code
print(json.dumps({"code": code, "loaded": sorted(m for m in %r if m in sys.modules)}))
"""


def _run(*args, env=None):
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["list"],
        ["info", "resnet20"],
        ["info", "resnet56_cifar10_akamaster"],
        ["train", "--help"],
    ],
)
def test_answers_without_importing_a_backend(argv):
    done = _run("-c", _PROBE % (BACKENDS,), *argv)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"code": 0, "loaded": []}


def test_importing_the_package_imports_no_backend_until_a_name_needs_one():
    done = _run(
        "-c",
        "import sys, keras_resblocks as k; k.Architecture; k.list_pretrained();"
        "k.parameter_count(k.Architecture(**k.variants.ARCHITECTURES['resnet20']));"
        f"print([m for m in {BACKENDS!r} if m in sys.modules]);"
        "k.ResNet; print('keras' in sys.modules)",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "True"]


def test_predict_prints_no_backend_log(tmp_path):
    checkpoint = save_pretrained(tiny_model(), tmp_path / "tiny")
    image = tmp_path / "cat.png"
    Image.fromarray(np.zeros((8, 8, 3), "uint8")).save(image)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_RESBLOCKS_DEBUG")
    }
    done = _run("-m", "keras_resblocks", "predict", str(checkpoint), str(image), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{image}: ")
    assert done.stderr == ""


def test_a_keras_file_of_the_blocks_loads_after_import_keras_then_keras_resblocks(tmp_path):
    import keras

    from keras_resblocks import ResidualBlock

    inputs = keras.Input((8, 8, 4))
    model = keras.Model(inputs, ResidualBlock(4)(inputs))
    model.save(tmp_path / "blocks.keras")
    code = (
        "import keras, keras_resblocks, sys\n"
        "model = keras.saving.load_model(sys.argv[1], safe_mode=True)\n"
        "print(type(model.layers[-1]).__name__)"
    )
    done = _run("-c", code, str(tmp_path / "blocks.keras"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ResidualBlock")
