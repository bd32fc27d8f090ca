"""Data only: the registry of pretrained checkpoints and the bundled ones."""
