"""Optional dependencies: a one-line error naming the extra that installs a missing one."""

from __future__ import annotations

import importlib

# module -> (the pip package, the keras-resblocks extra that installs it)
OPTIONAL = {
    "sklearn": ("scikit-learn", "train"),
    "matplotlib": ("matplotlib", "train"),
    "tensorflow": ("tensorflow", "tensorflow"),
    "jax": ("jax", "jax"),
}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def missing_extra(module, needed_for):
    """The :class:`MissingExtraError` for ``module``, which ``needed_for`` needs.

    >>> print(missing_extra("sklearn", "the digits dataset"))
    the digits dataset needs scikit-learn, which is not installed: pip install "keras-resblocks[train]" (or pip install scikit-learn)
    """
    package, extra = OPTIONAL[module]
    return MissingExtraError(
        f"{needed_for} needs {package}, which is not installed: "
        f'pip install "keras-resblocks[{extra}]" (or pip install {package})'
    )


def require(module, needed_for):
    """Import ``module`` (a key of ``OPTIONAL``), or raise :func:`missing_extra`'s error."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing_extra(module, needed_for) from None
