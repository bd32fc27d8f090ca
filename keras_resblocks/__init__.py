"""keras-resblocks: residual networks for Keras 3, from blocks to pretrained checkpoints.

Every public name is imported on first use, so ``import keras_resblocks`` (and the
command's ``--help``, ``list`` and ``info``) load no deep-learning backend.
"""

__version__ = "0.1.0"

from keras_resblocks._lazy import lazy_names

_EXPORTS = {
    "DensePlainBlock": "keras_resblocks.blocks",
    "DenseResidualBlock": "keras_resblocks.blocks",
    "PlainBlock": "keras_resblocks.blocks",
    "ResidualBlock": "keras_resblocks.blocks",
    "Architecture": "keras_resblocks.architecture",
    "Plain18": "keras_resblocks.models",
    "Plain20": "keras_resblocks.models",
    "Plain32": "keras_resblocks.models",
    "Plain34": "keras_resblocks.models",
    "Plain44": "keras_resblocks.models",
    "Plain56": "keras_resblocks.models",
    "Plain110": "keras_resblocks.models",
    "ResNet": "keras_resblocks.models",
    "ResNet18": "keras_resblocks.models",
    "ResNet20": "keras_resblocks.models",
    "ResNet32": "keras_resblocks.models",
    "ResNet34": "keras_resblocks.models",
    "ResNet44": "keras_resblocks.models",
    "ResNet50": "keras_resblocks.models",
    "ResNet50V2": "keras_resblocks.models",
    "ResNet56": "keras_resblocks.models",
    "ResNet101": "keras_resblocks.models",
    "ResNet101V2": "keras_resblocks.models",
    "ResNet110": "keras_resblocks.models",
    "ResNet152": "keras_resblocks.models",
    "ResNet152V2": "keras_resblocks.models",
    "ResNet1202": "keras_resblocks.models",
    "ResNet26": "keras_resblocks.models",
    "ResNet18D": "keras_resblocks.models",
    "ResNet34D": "keras_resblocks.models",
    "ResNet26D": "keras_resblocks.models",
    "ResNet50D": "keras_resblocks.models",
    "ResNet101D": "keras_resblocks.models",
    "ResNet152D": "keras_resblocks.models",
    "block_specs": "keras_resblocks.models",
    "cifar_architecture": "keras_resblocks.models",
    "create_model": "keras_resblocks.models",
    "feature_extractor": "keras_resblocks.models",
    "list_models": "keras_resblocks.architecture",
    "multiply_accumulates": "keras_resblocks.architecture",
    "parameter_count": "keras_resblocks.architecture",
    "CheckpointDownloadError": "keras_resblocks.checkpoints",
    "CheckpointError": "keras_resblocks.checkpoints",
    "ChecksumError": "keras_resblocks.checkpoints",
    "CheckpointNotFoundError": "keras_resblocks.checkpoints",
    "HubUnavailableError": "keras_resblocks.checkpoints",
    "LoadReport": "keras_resblocks.checkpoints",
    "MissingFileError": "keras_resblocks.checkpoints",
    "Provenance": "keras_resblocks.checkpoints",
    "ReferenceMismatchError": "keras_resblocks.checkpoints",
    "ReferenceReport": "keras_resblocks.checkpoints",
    "load_checkpoint": "keras_resblocks.checkpoints",
    "save_pretrained": "keras_resblocks.checkpoints",
    "import_keras_applications": "keras_resblocks.port",
    "port_keras_applications": "keras_resblocks.port",
    "Pretrained": "keras_resblocks.pretrained",
    "from_pretrained": "keras_resblocks.pretrained",
    "list_pretrained": "keras_resblocks.pretrained",
    "resolve": "keras_resblocks.pretrained",
    "verify_reference": "keras_resblocks.pretrained",
    "push_to_hub": "keras_resblocks.publish",
    "validate_checkpoint_dir": "keras_resblocks.publish",
    "freeze_backbone": "keras_resblocks.transfer",
    "list_architectures": "keras_resblocks.listing",
    "list_checkpoints": "keras_resblocks.listing",
}
__all__ = ["__version__", *_EXPORTS]
__getattr__, __dir__ = lazy_names(__name__, _EXPORTS)

import sys as _sys  # noqa: E402 (after the lazy names, which need no import)

if "keras" in _sys.modules:
    # Keras is already loaded, so registering the layers costs nothing more, and
    # keras.saving.load_model() of a .keras file made of them works right after
    # `import keras, keras_resblocks` (Keras finds custom layers only once registered).
    import keras_resblocks.models  # noqa: E402, F401
del _sys
