"""'Did you mean ...?' for a name that is not known."""

from __future__ import annotations

import difflib

SEE_ALL = "See every name with `keras-resblocks list`."


def closest(name, choices, n=3):
    """The ``n`` names of ``choices`` closest to ``name``: those that extend it first
    (``resnet20`` -> ``resnet20_cifar10_akamaster``), then difflib's closest.

    >>> closest("renset20", ["resnet20", "resnet32", "plain20", "resnet110"])
    ['resnet20', 'resnet32', 'resnet110']
    >>> closest("resnet20", ["resnet20_cifar10_akamaster", "resnet50_imagenet"])
    ['resnet20_cifar10_akamaster']
    """
    choices = sorted(set(choices))
    if not isinstance(name, str) or not name:
        return []
    extending = [c for c in choices if c.startswith(name)]
    similar = difflib.get_close_matches(name, choices, n=n, cutoff=0.6)
    return list(dict.fromkeys(extending + similar))[:n]


def did_you_mean(name, choices):
    """``" Did you mean 'a' or 'b'?"`` (a leading space), or ``""`` when nothing is close.

    >>> did_you_mean("resnet21", ["resnet20", "plain110"])
    " Did you mean 'resnet20'?"
    """
    names = closest(name, choices)
    if not names:
        return ""
    quoted = [repr(n) for n in names]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f" Did you mean {listed}?"
