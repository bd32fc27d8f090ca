"""keras-resblocks: residual networks for Keras 3, from blocks to pretrained checkpoints."""

__version__ = "0.1.0"

from keras_resblocks.blocks import (
    DensePlainBlock,
    DenseResidualBlock,
    PlainBlock,
    ResidualBlock,
)
from keras_resblocks.config import Architecture
from keras_resblocks.models import (
    Plain18,
    Plain20,
    Plain32,
    Plain34,
    Plain44,
    Plain56,
    Plain110,
    ResNet,
    ResNet18,
    ResNet20,
    ResNet32,
    ResNet34,
    ResNet44,
    ResNet50,
    ResNet50V2,
    ResNet56,
    ResNet101,
    ResNet101V2,
    ResNet110,
    ResNet152,
    ResNet152V2,
    ResNet1202,
    block_specs,
    cifar_architecture,
    create_model,
    feature_extractor,
    list_models,
    parameter_count,
)
from keras_resblocks.checkpoints import (
    CheckpointDownloadError,
    CheckpointError,
    ChecksumError,
    CheckpointNotFoundError,
    HubUnavailableError,
    LoadReport,
    MissingFileError,
    Provenance,
    ReferenceMismatchError,
    ReferenceReport,
    load_checkpoint,
    save_pretrained,
)
from keras_resblocks.port import import_keras_applications, port_keras_applications
from keras_resblocks.pretrained import from_pretrained, list_pretrained, resolve, verify_reference
from keras_resblocks.publish import push_to_hub, validate_checkpoint_dir
from keras_resblocks.transfer import freeze_backbone
