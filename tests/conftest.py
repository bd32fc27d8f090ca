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
