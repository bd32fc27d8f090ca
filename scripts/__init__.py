"""Maintainer tools run on this repository's files: ``python -m scripts.NAME``."""
