"""The base install (no scikit-learn, no matplotlib) loads and runs models; what needs an
extra says which, in one line."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

# Makes the named top-level modules look not installed, as in a base install.
_BLOCKER = """
import sys
class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _NotInstalled())
"""


def _run(blocked, code, *args):
    done = subprocess.run(
        [sys.executable, "-c", _BLOCKER.format(blocked=blocked) + code, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


_WITHOUT_TRAIN_EXTRA = """
import contextlib, io, json
import numpy as np
import keras_resblocks
from keras_resblocks import from_pretrained
from keras_resblocks.cli import main

model = from_pretrained("resnet20_cifar10_akamaster")
probabilities = model.predict(np.zeros((1, 32, 32, 3), "float32"), verbose=0)
results = {"predicted": int(probabilities.argmax()) in range(10)}
for name, argv in [("train", ["train", "--output", sys.argv[1] + "/out"]),
                   ("evaluate", ["evaluate", "resnet20_cifar10_akamaster", "--dataset", "digits"]),
                   ("plot", ["plot", "plain20.csv", "--output", sys.argv[1] + "/fig.png"])]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    results[name] = [code, err.getvalue()]
results["loaded"] = sorted(m for m in ("sklearn", "matplotlib") if m in sys.modules)
print(json.dumps(results))
"""


def test_models_load_and_run_without_the_train_extra(tmp_path):
    results = _run(("sklearn", "matplotlib"), _WITHOUT_TRAIN_EXTRA, str(tmp_path))
    assert results.pop("predicted") is True and results.pop("loaded") == []
    needs = {"train": "scikit-learn", "evaluate": "scikit-learn", "plot": "matplotlib"}
    for command, (code, err) in results.items():
        assert code == 1, (command, err)
        assert err.count("\n") == 1 and err.startswith("error: "), (command, err)
        assert f"needs {needs[command]}, which is not installed" in err, (command, err)
        assert 'pip install "keras-resblocks[train]"' in err, (command, err)


def test_a_missing_backend_names_its_extra(tmp_path):
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    image = tmp_path / "cat.png"
    Image.fromarray(np.zeros((32, 32, 3), "uint8")).save(image)
    code = """
import contextlib, io, json
from keras_resblocks.cli import main
err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = main(["predict", "resnet20_cifar10_akamaster", sys.argv[1]])
print(json.dumps([code, err.getvalue()]))
"""
    status, err = _run((backend,), code, str(image))
    assert status == 1 and err.count("\n") == 1
    assert f'pip install "keras-resblocks[{backend}]"' in err, err
