"""The test suite's own guard (conftest.no_internet): no test reaches past 127.0.0.1."""

import os
import socket
import subprocess
import sys

import pytest
from huggingface_hub import HfApi


def test_other_hosts_cannot_be_resolved_and_are_recorded(no_internet):
    with pytest.raises(socket.gaierror, match="tests may not resolve 'huggingface.co'"):
        socket.getaddrinfo("huggingface.co", 443)
    # Through the real client, as a leak would happen: the error is raised, and recorded
    # even though the caller catches it.
    try:
        HfApi(endpoint="https://huggingface.co").model_info("bert-base-uncased")
    except Exception:
        pass
    assert len(no_internet) >= 2 and set(no_internet) == {"huggingface.co"}
    no_internet.clear()  # recorded on purpose here; any other test with a record fails
    assert socket.getaddrinfo("127.0.0.1", 80)


def test_child_processes_are_guarded_too(no_internet):
    code = (
        "import socket\n"
        "socket.getaddrinfo('127.0.0.1', 80)\n"
        "try:\n"
        "    socket.getaddrinfo('huggingface.co', 443)\n"
        "except socket.gaierror as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "tests may not resolve 'huggingface.co'" in done.stdout
    log = os.environ["KERAS_RESBLOCKS_TEST_NET_LOG"]
    with open(log) as f:
        assert f.read().split() == ["huggingface.co"]
    os.remove(log)  # recorded on purpose here; in any other test it fails the test
