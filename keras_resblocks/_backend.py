"""Importing the deep-learning backend quietly: what every command that computes does first."""

from __future__ import annotations

import os
import sys


def quiet_backend_logs(debug=False):
    """Silence the deep-learning backend's own log for this process, unless ``debug``.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` (only where the user has not set it) and the
    Python loggers of TensorFlow, absl and JAX to errors. Must run before the
    backend is imported to take full effect; the command calls it first thing.
    """
    import logging

    if debug:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("tensorflow", "absl", "jax._src.xla_bridge"):
        logging.getLogger(name).setLevel(logging.ERROR)


def import_backend(quietly=True):
    """Import Keras, and with it the backend; ``quietly``, without its start-up log.

    TensorFlow's C++ core writes a few lines to file descriptor 2 while it loads,
    before any setting can silence them ("All log messages before
    absl::InitializeLog() ...", oneDNN, CUDA drivers); ``quietly``, that descriptor
    points to /dev/null for the import only. Python's own errors are unaffected.
    A backend that is not installed raises :class:`MissingExtraError` naming the
    extra that installs it.
    """
    if "keras" in sys.modules:
        return
    try:
        _import_keras(quietly)
    except ModuleNotFoundError as error:
        from keras_resblocks._extras import missing_extra

        backend = (error.name or "").split(".")[0]
        if backend not in ("tensorflow", "jax"):
            raise
        raise missing_extra(
            backend,
            f"Keras' {backend} backend (KERAS_BACKEND="
            f"{os.environ.get('KERAS_BACKEND', 'tensorflow')})",
        ) from None


def _import_keras(quietly):
    try:
        saved = os.dup(2) if quietly else None
    except OSError:  # no file descriptor 2 (a closed stderr): nothing to silence
        saved = None
    if saved is None:
        import keras  # noqa: F401

        return
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
