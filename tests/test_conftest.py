"""The test suite's own guard: no test reaches past 127.0.0.1."""

import socket

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
