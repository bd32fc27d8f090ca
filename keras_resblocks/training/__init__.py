"""Training ResNets: datasets, recipes (he2015, cosine, quick) and the training loop.

``scripts/train.py`` and ``keras-resblocks train`` are thin wrappers around
:func:`keras_resblocks.training.cli.main`.
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
    "NonFiniteLossError": "keras_resblocks.training.trainer",
    "read_history": "keras_resblocks.training.trainer",
    "train": "keras_resblocks.training.trainer",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_names(__name__, _EXPORTS)
