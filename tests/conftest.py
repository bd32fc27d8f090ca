import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--large",
        action="store_true",
        help="also run the `large` tests (need the data in $KERAS_RESBLOCKS_TEST_DATA, or long runs)",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--large"):
        return
    skip = pytest.mark.skip(reason="large test: opt in with --large")
    for item in items:
        if "large" in item.keywords:
            item.add_marker(skip)


_NETGUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_netguard")


@pytest.fixture(autouse=True)
def no_internet(monkeypatch, tmp_path_factory):
    """Fail any test that looks up a host other than this machine's loopback.

    Tests talk to servers on 127.0.0.1 only. A lookup of another name (the real
    Hub, a download) is refused, so it cannot reach the network where one exists,
    and is recorded, so the test fails even if the code under test swallowed the
    error. Python processes the test starts get the same guard
    (``tests/_netguard/sitecustomize.py``) and record into a file read here.
    Yields the list of names this process tried.
    """
    import socket

    from tests._netguard.sitecustomize import loopback_only

    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([_NETGUARD, *([existing] if existing else [])])
    )
    log = tmp_path_factory.mktemp("netguard") / "tried.txt"
    monkeypatch.setenv("KERAS_RESBLOCKS_TEST_NET_LOG", str(log))
    tried = []
    monkeypatch.setattr(socket, "getaddrinfo", loopback_only(socket.getaddrinfo, tried.append))
    yield tried
    children = log.read_text().split() if log.exists() else []
    assert not tried and not children, (
        f"the test tried to reach {sorted(set(tried + children))}; tests use 127.0.0.1 only"
    )
