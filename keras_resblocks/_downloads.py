"""Recognising a download that failed for want of a network, and saying so in one line.

``keras.utils.get_file`` (behind ``keras.datasets`` and ``keras.applications``)
turns urllib's errors into a bare ``Exception("URL fetch failure on URL: ...")``;
other clients raise ``urllib.error.URLError``, ``ConnectionError`` or a timeout.
"""

from __future__ import annotations

import re
import socket
import urllib.error

_KERAS_FAILURE = re.compile(r"^URL fetch failure on (\S+): (.*)$", re.S)


def is_network_error(error):
    """True if ``error`` is what a download raises offline or with its server unreachable.

    >>> import urllib.error
    >>> is_network_error(Exception("URL fetch failure on https://x/y.tgz: None -- offline"))
    True
    >>> is_network_error(urllib.error.URLError("no route")), is_network_error(OSError("disk"))
    (True, False)
    """
    if isinstance(error, (urllib.error.URLError, ConnectionError, TimeoutError, socket.gaierror)):
        return True
    return bool(_KERAS_FAILURE.match(str(error)))


def download_failure(what, error, url=None):
    """One line: ``what`` could not be downloaded from the URL, why, and that the network is
    the likely cause. The URL is ``url`` or the one in ``keras.utils.get_file``'s message.

    >>> print(download_failure("cifar10", Exception(
    ...     "URL fetch failure on https://x/c.tgz: None -- [Errno -3] name resolution")))
    Cannot download cifar10 from https://x/c.tgz: this machine seems to be offline or the server cannot be reached ([Errno -3] name resolution).
    """
    match = _KERAS_FAILURE.match(str(error))
    if match:
        url = url or match.group(1)
        reason = match.group(2).split(" -- ", 1)[-1]
    else:
        reason = f"{type(error).__name__}: {error}"
    where = f" from {url}" if url else ""
    return one_line(
        f"Cannot download {what}{where}: this machine seems to be offline or the "
        f"server cannot be reached ({reason})."
    )


def url_of(error):
    """The URL named in ``keras.utils.get_file``'s failure message, or None."""
    match = _KERAS_FAILURE.match(str(error))
    return match.group(1) if match else None


def one_line(text):
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())
