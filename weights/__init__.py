"""Data only: the catalogue of pretrained checkpoints and the bundled ones."""
