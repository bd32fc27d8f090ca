import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--large",
        action="store_true",
        help="also run the `large` tests (need ../shared/data or long runs)",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--large"):
        return
    skip = pytest.mark.skip(reason="large test: opt in with --large")
    for item in items:
        if "large" in item.keywords:
            item.add_marker(skip)


_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Fail any test that looks up a host other than this machine's loopback.

    Tests talk to servers on 127.0.0.1 only. A lookup of another name (the real
    Hub, a download) is refused here, so it cannot reach the network where one
    exists, and the test fails even if the code under test swallowed the error.
    """
    import socket

    real = socket.getaddrinfo
    tried = []

    def loopback_only(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in _LOOPBACK:
            tried.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"tests may not resolve {name!r}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    yield tried
    assert not tried, f"the test tried to reach {sorted(set(tried))}; tests use 127.0.0.1 only"
