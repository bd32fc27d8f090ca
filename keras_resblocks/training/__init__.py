"""Training ResNets: datasets, recipes (budget, he2015, cosine, quick) and the training loop.

``keras-resblocks train`` is a thin wrapper around :func:`keras_resblocks.training.command.run_train`.
The parts: ``data`` (datasets), ``recipes`` (hyper-parameters and schedules), ``augment`` (the
in-graph input pipeline), ``losses``, ``callbacks`` (stopping rules and the per-epoch record),
``history`` (history.csv, readable without Keras), ``environment`` (what a run ran on) and
``trainer`` (:func:`train`, the loop that puts them together).
"""

from keras_resblocks._lazy import lazy_names

# Imported on first use: the trainer needs Keras, and `keras-resblocks --help` should not.
_EXPORTS = {
    "Dataset": "keras_resblocks.training.data",
    "DatasetDownloadError": "keras_resblocks.training.data",
    "DatasetError": "keras_resblocks.training.data",
    "load_dataset": "keras_resblocks.training.data",
    "load_image_folder": "keras_resblocks.training.data",
    "PRESETS": "keras_resblocks.training.recipes",
    "Recipe": "keras_resblocks.training.recipes",
    "get_recipe": "keras_resblocks.training.recipes",
    "learning_rate_schedule": "keras_resblocks.training.recipes",
    "list_recipes": "keras_resblocks.training.recipes",
    "NonFiniteLossError": "keras_resblocks.training.callbacks",
    "TrainResult": "keras_resblocks.training.trainer",
    "read_history": "keras_resblocks.training.history",
    "train": "keras_resblocks.training.trainer",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_names(__name__, _EXPORTS)
