"""How far float32 inference of one checkpoint differs between Keras backends.

    KERAS_BACKEND=tensorflow python -m scripts.reference_diffs write OUT
    KERAS_BACKEND=jax        python -m scripts.reference_diffs write OUT
    KERAS_BACKEND=tensorflow python -m scripts.reference_diffs verify OUT
    KERAS_BACKEND=jax        python -m scripts.reference_diffs verify OUT

``write`` saves, under ``OUT/<backend>/``, checkpoints with a reference batch of 8
images: resnet20 trained 3 epochs on scikit-learn's digits, and resnet56, resnet110
and resnet50 with random weights whose BatchNorm statistics are those of real
activations. ``verify`` runs ``verify_reference`` on every checkpoint under ``OUT`` with
the current backend and prints one JSON line each: the largest absolute difference
per stored output, ``allclose`` at the default tolerances, and the largest |logit|.
The table in docs/checkpoints.md comes from these lines. Takes about 15 minutes on 2
CPU cores per backend (mostly the JAX compilations and resnet50).
"""

import json
import sys
from pathlib import Path

import keras
import numpy as np

from keras_resblocks import create_model, save_pretrained, verify_reference
from keras_resblocks.checkpoints import read_reference
from keras_resblocks.training import get_recipe, train


def _calibrated(name, shape, classes, rng):
    # Random weights, BatchNorm statistics of real activations: SGD with lr=0 leaves
    # the weights as they are and moves the moving statistics to the batches'.
    model = create_model(
        name,
        num_classes=classes,
        input_shape=shape,
        preprocessing={"scale": 1 / 255, "mean": [0.5] * 3, "std": [0.25] * 3},
    )
    x = rng.integers(0, 256, (256,) + shape, dtype="uint8").astype("float32")
    y = rng.integers(0, classes, 256)
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=6, verbose=0)
    return model, x[:8].astype("uint8")


def write(out):
    out = Path(out) / keras.backend.backend()
    rng = np.random.default_rng(0)
    train(
        "resnet20",
        "digits",
        recipe=get_recipe("quick", epochs=3),
        output=out / "resnet20_digits",
        seed=0,
        verbose=0,
        command="python -m scripts.reference_diffs write OUT",
    )
    for name, shape, classes in [
        ("resnet56", (32, 32, 3), 10),
        ("resnet110", (32, 32, 3), 100),
        ("resnet50", (64, 64, 3), 1000),
    ]:
        model, images = _calibrated(name, shape, classes, rng)
        save_pretrained(model, out / name, reference_inputs=images)
        print("wrote", out / name, flush=True)


def verify(out):
    for directory in sorted(p.parent for p in Path(out).glob("*/*/config.json")):
        report = verify_reference(directory, raise_on_mismatch=False)
        _, tensors = read_reference(directory)
        print(
            json.dumps(
                {
                    "checkpoint": f"{directory.parent.name}/{directory.name}",
                    "verified_on": report.backend,
                    "diffs": report.diffs,
                    "allclose": report.allclose,
                    "max_abs_logit": float(np.abs(tensors["logits"]).max()),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "verify"):
        sys.exit(__doc__)
    {"write": write, "verify": verify}[sys.argv[1]](sys.argv[2])
