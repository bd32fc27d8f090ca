"""Training ResNets: datasets, recipes (budget, he2015, cosine, quick) and the training loop.

``keras-resblocks train`` is a thin wrapper around :func:`keras_resblocks.training.cli.run_train`.
The parts: ``data`` (datasets), ``recipes`` (hyper-parameters and schedules), ``augment`` (the
in-graph input pipeline), ``losses``, ``callbacks`` (stopping rules and the per-epoch record),
``history`` (history.csv, readable without Keras), ``environment`` (what a run ran on) and
``trainer`` (:func:`train`, the loop that puts them together).
"""

from keras_resblocks.training.data import Dataset, DatasetError, load_dataset, load_image_folder
from keras_resblocks.training.history import read_history
from keras_resblocks.training.recipes import (
    PRESETS,
    Recipe,
    get_recipe,
    learning_rate_schedule,
    list_recipes,
)
from keras_resblocks.training.trainer import NonFiniteLossError, TrainResult, train

__all__ = [
    "PRESETS", "Dataset", "DatasetError", "NonFiniteLossError", "Recipe", "TrainResult",
    "get_recipe", "learning_rate_schedule", "list_recipes", "load_dataset", "load_image_folder",
    "read_history", "train",
]
