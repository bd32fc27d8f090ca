"""Public names that import their module on first use, so that ``import keras_resblocks``
(and the ``keras-resblocks`` command's ``--help``, ``list`` and ``info``) do not load Keras
or a deep-learning backend until something needs one."""

from __future__ import annotations

import importlib
import importlib.util
import sys


def lazy_names(package, exports):
    """The module ``__getattr__`` and ``__dir__`` of ``package`` serving ``exports``.

    ``exports`` maps each public name to the module that defines it; the module is
    imported when the name is first read, and the name is then kept on the package.

    Example:

    >>> getattr_, dir_ = lazy_names("keras_resblocks", {"list_models": "keras_resblocks.architecture"})
    >>> "resnet20" in getattr_("list_models")()
    True
    >>> getattr_("nope")
    Traceback (most recent call last):
    ...
    AttributeError: module 'keras_resblocks' has no attribute 'nope'
    """

    def __getattr__(name):
        module = exports.get(name)
        if module is None:
            # A submodule reached as an attribute (``keras_resblocks.hub``) without
            # an import, as worked when the package imported everything eagerly.
            if not name.startswith("__") and importlib.util.find_spec(f"{package}.{name}"):
                return importlib.import_module(f"{package}.{name}")
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
