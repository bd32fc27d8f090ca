"""A loopback Hugging Face Hub for tests: just the download API huggingface_hub uses.

The real ``huggingface_hub`` client talks to it through ``HF_ENDPOINT``; repos are
in-memory commits that a test creates, a branch can be moved, every request is
recorded, and faults (a truncated body) can be switched on per file. Routes:

- ``GET /api/models/{owner}/{repo}[/revision/{rev}]``: repo info (``sha``, ``siblings``);
  ``HfApi.repo_info`` / ``resolve_revision`` / ``model_info`` call it.
- ``HEAD|GET /{owner}/{repo}/resolve/{rev}/{path}``: the file, with the ``ETag``,
  ``X-Repo-Commit`` and ``Content-Length`` headers ``hf_hub_download`` requires.

Errors carry the ``X-Error-Code`` header (``RepoNotFound``, ``RevisionNotFound``,
``EntryNotFound``) from which the client picks its exception class.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import threading
import time
from urllib.parse import unquote, urlsplit


@dataclasses.dataclass
class _Repo:
    commits: dict = dataclasses.field(default_factory=dict)  # sha -> {path: bytes}
    refs: dict = dataclasses.field(default_factory=dict)  # branch -> sha


class FakeHub:
    """Start with ``FakeHub().start()``; ``url`` is the value for ``HF_ENDPOINT``."""

    def __init__(self):
        self.repos: dict[str, _Repo] = {}
        self.requests: list[tuple[str, str]] = []
        # (repo_id, path) -> number of bytes actually sent by GET, while the
        # headers keep announcing the full size: a connection cut mid-file.
        self.truncate: dict[tuple[str, str], int] = {}
        # (repo_id, path) -> seconds a GET of that file waits before answering, so
        # that concurrent clients overlap.
        self.delay: dict[tuple[str, str], float] = {}
        # (repo_id, path) -> the ETag (for a large file: the sha256 the Hub reports) sent
        # instead of the file's own sha256: a Hub whose record and bytes disagree.
        self.etag: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._server = None
        self._thread = None

    # -- repos -------------------------------------------------------------------
    def commit(self, repo_id, files, branch="main"):
        """Add a commit holding exactly ``files`` ({path: bytes}) and move ``branch`` to it."""
        with self._lock:
            repo = self.repos.setdefault(repo_id, _Repo())
            digest = hashlib.sha1(repr((repo_id, len(repo.commits))).encode())
            for path in sorted(files):
                digest.update(path.encode() + b"\0" + hashlib.sha1(files[path]).digest())
            sha = digest.hexdigest()
            repo.commits[sha] = dict(files)
            repo.refs[branch] = sha
            return sha

    def commit_dir(self, repo_id, directory, branch="main"):
        """Commit every file of a local directory (e.g. one written by save_pretrained)."""
        from pathlib import Path

        files = {p.name: p.read_bytes() for p in sorted(Path(directory).iterdir()) if p.is_file()}
        return self.commit(repo_id, files, branch=branch)

    def _lookup(self, repo_id, revision):
        repo = self.repos.get(repo_id)
        if repo is None:
            return None, "RepoNotFound"
        sha = repo.refs.get(revision, revision if revision in repo.commits else None)
        if sha is None:
            return None, "RevisionNotFound"
        return sha, None

    def count(self, method=None):
        with self._lock:
            return sum(1 for m, _ in self.requests if method in (None, m))

    # -- server --------------------------------------------------------------------
    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_HEAD(self):
                hub._handle(self, body=False)

            def do_GET(self):
                hub._handle(self, body=True)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Shut down and close the port, so clients get "connection refused"."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None

    # -- routing -------------------------------------------------------------------
    def _handle(self, handler, body):
        path = urlsplit(handler.path).path
        with self._lock:
            self.requests.append((handler.command, path))
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id = "/".join(parts[2:4])
            revision = parts[5] if len(parts) == 6 and parts[4] == "revision" else "main"
            return self._repo_info(handler, repo_id, revision, body)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id = "/".join(parts[:2])
            return self._resolve(handler, repo_id, parts[3], "/".join(parts[4:]), body)
        return self._error(handler, 404, None, "no such route", body)

    def _repo_info(self, handler, repo_id, revision, body):
        sha, error = self._lookup(repo_id, revision)
        if error:
            return self._error(handler, 404, error, f"{error}: {repo_id}@{revision}", body)
        files = self.repos[repo_id].commits[sha]
        payload = json.dumps(
            {"id": repo_id, "sha": sha, "siblings": [_sibling(f, files[f]) for f in sorted(files)]}
        ).encode()
        self._send(handler, 200, {"Content-Type": "application/json"}, payload, body)

    def _resolve(self, handler, repo_id, revision, filename, body):
        sha, error = self._lookup(repo_id, revision)
        if error:
            return self._error(handler, 404, error, f"{error}: {repo_id}@{revision}", body)
        files = self.repos[repo_id].commits[sha]
        if filename not in files:
            return self._error(
                handler, 404, "EntryNotFound", filename, body, {"X-Repo-Commit": sha}
            )
        data = files[filename]
        headers = {
            "ETag": f'"{self.etag.get((repo_id, filename), hashlib.sha256(data).hexdigest())}"',
            "X-Repo-Commit": sha,
            "Content-Type": "application/octet-stream",
        }
        # Content-Length always announces the whole file; a truncated GET sends less.
        sent = (
            data[: self.truncate[(repo_id, filename)]]
            if (repo_id, filename) in self.truncate
            else data
        )
        self._send(
            handler,
            200,
            headers,
            sent,
            body,
            length=len(data),
            delay=self.delay.get((repo_id, filename), 0),
        )

    def _error(self, handler, status, code, message, body, extra=None):
        headers = {"Content-Type": "application/json", **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._send(handler, status, headers, json.dumps({"error": message}).encode(), body)

    @staticmethod
    def _send(handler, status, headers, payload, body, length=None, delay=0):
        """Answer with ``payload`` (on GET, after ``delay`` s), announcing ``length`` bytes
        (default: the payload's)."""
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(payload) if length is None else length))
        handler.send_header("Connection", "close")
        handler.end_headers()
        if body:
            time.sleep(delay)
            handler.wfile.write(payload)
        handler.close_connection = True


def _sibling(path, data):
    """A file of the repo info; a weights file as Git LFS stores it, with its sha256."""
    if not path.endswith(".safetensors"):
        return {"rfilename": path, "size": len(data)}
    lfs = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return {"rfilename": path, "size": len(data), "lfs": lfs}


# -- fixtures and helpers shared by the checkpoint and hub tests ------------------------
import functools  # noqa: E402
import importlib  # noqa: E402

import pytest  # noqa: E402

TINY = dict(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2], stem_width=4)


def tiny_model(num_classes=3, **kwargs):
    """A two-stage ResNet small enough to build, save and load in well under a second."""
    from keras_resblocks import Architecture, ResNet

    arch = Architecture(**dict(TINY, **kwargs))
    return ResNet(arch, num_classes=num_classes, input_shape=(8, 8, 3))


def hf_environment(monkeypatch, **env):
    """Set Hub environment variables and make huggingface_hub read them now.

    huggingface_hub reads HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE... once, when
    ``huggingface_hub.constants`` is imported, so a test that changes them reloads
    that module (every client function looks them up there at call time).
    """
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, str(value))
    import huggingface_hub.constants

    importlib.reload(huggingface_hub.constants)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A started :class:`FakeHub` that huggingface_hub talks to, with its own HF_HOME."""
    import huggingface_hub.constants

    hub = FakeHub().start()
    with monkeypatch.context() as m:
        hf_environment(
            m,
            HF_ENDPOINT=hub.url,
            HF_HOME=tmp_path / "hf_home",
            HF_HUB_CACHE=None,
            HUGGINGFACE_HUB_CACHE=None,
            HF_HUB_OFFLINE=None,
            HF_TOKEN=None,
            HF_HUB_DISABLE_TELEMETRY=1,
            HF_HUB_DISABLE_PROGRESS_BARS=1,
        )
        # hub.set_env(HF_HUB_OFFLINE=1) switches a variable for the rest of the test.
        hub.set_env = functools.partial(hf_environment, m)
        try:
            yield hub
        finally:
            hub.stop()
    importlib.reload(huggingface_hub.constants)  # back to the real environment
