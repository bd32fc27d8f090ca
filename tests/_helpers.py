"""Small test helpers shared by the test modules."""

import json

import numpy as np
import keras


def config_round_trip(layer):
    """Rebuild a layer from its config; the new config must be identical."""
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    return clone


def keras_round_trip(model, x, tmp_path):
    """Save as .keras, reload with safe_mode=True, compare outputs exactly."""
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(x, training=False)),
        keras.ops.convert_to_numpy(loaded(x, training=False)),
    )
    return loaded


def train_steps(model, x, y, steps=3, lr=0.05):
    """Losses of `steps` SGD steps on one batch (each measured before its update)."""
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    return [float(model.train_on_batch(x, y)) for _ in range(steps)]


def snapshot(weights):
    return [keras.ops.convert_to_numpy(w).copy() for w in weights]


def weight_signature(model):
    """`path [shape]` of every variable: what a checkpoint file is keyed by."""
    return [f"{w.path} {list(w.shape)}" for w in model.weights]


def rewrite_reference(directory, change):
    """Call ``change`` on a checkpoint's reference tensors, save them and re-record their
    sha256 in metadata.json, so that only what ``change`` did is wrong."""
    import safetensors.numpy

    from keras_resblocks.checkpoints import METADATA_FILE, REFERENCE_FILE, sha256_of

    path = directory / REFERENCE_FILE
    tensors = safetensors.numpy.load_file(str(path))
    change(tensors)
    safetensors.numpy.save_file(tensors, str(path))
    metadata = json.loads((directory / METADATA_FILE).read_text())
    metadata["reference"]["sha256"] = sha256_of(path)
    (directory / METADATA_FILE).write_text(json.dumps(metadata))


def rehash(directory):
    """Re-record the sha256 of config.json and README.md in metadata.json after a test edited
    them, as someone crafting a checkpoint would: the deeper checks must hold on their own."""
    from keras_resblocks.checkpoints.io import record_file_hashes

    record_file_hashes(directory)
