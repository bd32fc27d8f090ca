"""Training ResNets: datasets, recipes (he2015, cosine, quick) and the training loop.

``scripts/train.py`` and ``keras-resblocks train`` are thin wrappers around
:func:`keras_resblocks.training.cli.main`.
"""

from keras_resblocks.training.data import (
    Dataset,
    DatasetDownloadError,
    DatasetError,
    load_dataset,
    load_image_folder,
)
from keras_resblocks.training.recipes import (
    PRESETS,
    Recipe,
    get_recipe,
    learning_rate_schedule,
    list_recipes,
)
from keras_resblocks.training.trainer import NonFiniteLossError, read_history, train
