"""The tests' network guard, also loaded by every Python process the tests start.

conftest.py puts this folder on PYTHONPATH, so Python imports this file as
``sitecustomize`` at start-up. With ``KERAS_RESBLOCKS_TEST_NET_LOG`` set, a lookup of
any host but loopback is then refused and its name appended to that file, which the
test's ``no_internet`` fixture reads: a child process (scripts/train.py, the CLI, a
benchmark) cannot reach the network either.
"""

import os
import socket

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None})


def loopback_only(getaddrinfo, record):
    """``getaddrinfo`` that refuses, and passes to ``record``, every non-loopback name."""

    def guarded(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in LOOPBACK:
            record(name)
            raise socket.gaierror(socket.EAI_NONAME, f"tests may not resolve {name!r}")
        return getaddrinfo(host, *args, **kwargs)

    return guarded


def _append_to_log(name):
    with open(os.environ["KERAS_RESBLOCKS_TEST_NET_LOG"], "a") as log:
        log.write(f"{name}\n")


if __name__ == "sitecustomize" and os.environ.get("KERAS_RESBLOCKS_TEST_NET_LOG"):
    socket.getaddrinfo = loopback_only(socket.getaddrinfo, _append_to_log)
