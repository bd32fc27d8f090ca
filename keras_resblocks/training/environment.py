"""What a run ran on: devices and library versions, recorded with checkpoints and benchmarks."""

from __future__ import annotations

import os
import platform
from importlib import metadata

import keras


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows.

    Example:

    >>> from keras_resblocks.training.environment import cpu_model
    >>> isinstance(cpu_model(), str)
    True
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_description():
    """A short description of the devices Keras trains on.

    Example:

    >>> from keras_resblocks.training.environment import hardware_description
    >>> sorted(hardware_description())
    ['backend', 'cpu', 'cpu_count', 'devices', 'machine']
    """
    backend = keras.backend.backend()
    devices = []
    if backend == "jax":
        import jax

        devices = [f"{d.platform}:{d.device_kind}" for d in jax.devices()]
    elif backend == "tensorflow":
        import tensorflow as tf

        devices = [f"{d.device_type}:{d.name}" for d in tf.config.list_logical_devices()]
    return {
        "backend": backend,
        "devices": devices,
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}".strip(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
    }


def software_versions():
    """Versions of Python and of the libraries a run can use (the backends that are installed).

    Example:

    >>> from keras_resblocks.training.environment import software_versions
    >>> {"keras", "numpy", "python", "keras_resblocks"} <= set(software_versions())
    True
    """
    versions = {"python": platform.python_version()}
    for name in ("keras_resblocks", "keras", "tensorflow", "jax", "numpy"):
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            pass
    return versions
