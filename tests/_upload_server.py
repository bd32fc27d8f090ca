"""A minimal Hugging Face Hub on 127.0.0.1 for upload tests.

It speaks just enough of the Hub's HTTP API for the real ``huggingface_hub``
client to create a repo, read its refs and make a commit:

- ``POST /api/repos/create``                        -> 200, or 409 if it exists
- ``GET  /api/models/{owner}/{name}/refs``          -> branches and their heads
- ``POST /api/validate-yaml``                       -> always valid
- ``POST /api/models/{owner}/{name}/preupload/{rev}`` -> every file "regular", so
  its content travels base64-encoded inside the commit (no LFS, no Xet)
- ``POST /api/models/{owner}/{name}/commit/{rev}``  -> ndjson commit of inline files and
  deleted files; 412 when ``parentCommit`` is not the branch head, as the real Hub answers
- ``HEAD /{owner}/{name}/resolve/{rev}/{path}``      -> 200 with the file's headers, or 404
  ``EntryNotFound`` (what ``HfApi.file_exists`` asks)

Commits are kept in memory, whole: a commit is applied only once its entire
body has been read and parsed, like the Hub's all-or-nothing commits. Every
request is logged in ``hub.requests`` so tests can assert that none was made.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

TOKEN = "hf_fake_write_token"
_REPO = r"(?P<repo>[^/]+/[^/]+)"


@dataclasses.dataclass
class Commit:
    sha: str
    parent: str | None
    message: str
    files: dict  # the whole tree after this commit: path -> bytes
    changed: dict  # only what this commit added: path -> bytes
    deleted: tuple = ()  # the paths this commit removed


@dataclasses.dataclass
class Repo:
    private: bool
    branches: dict = dataclasses.field(default_factory=dict)  # name -> commit sha
    commits: dict = dataclasses.field(default_factory=dict)  # sha -> Commit


class FakeHub:
    """The server plus its state. Use as a context manager.

    ``fail_next_commit``: ``500`` answers the next commit with a server error;
    ``"drop"`` reads half of its body and closes the connection without answering;
    ``"race"`` lets another publisher commit to the branch just before it is handled.
    """

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.fail_next_commit = None
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    # -- state, for tests ------------------------------------------------------------
    def create_repo(self, repo_id, private=False):
        """A new repo holds one commit with .gitattributes, as on the Hub."""
        repo = self.repos[repo_id] = Repo(private=private)
        self.commit(repo_id, {".gitattributes": b"*.safetensors filter=lfs\n"}, "initial commit")
        return repo

    def commit(self, repo_id, changed, message, branch="main", deleted=()):
        """Apply a commit directly (e.g. another publisher's) and return its sha."""
        repo = self.repos[repo_id]
        parent = repo.branches.get(branch)
        files = dict(repo.commits[parent].files) if parent else {}
        for path in deleted:
            del files[path]
        files.update(changed)
        digest = hashlib.sha1((parent or "").encode() + message.encode())
        for path in sorted(changed):
            digest.update(path.encode() + b"\0" + changed[path])
        for path in sorted(deleted):
            digest.update(b"-" + path.encode())
        sha = digest.hexdigest()
        repo.commits[sha] = Commit(sha, parent, message, files, dict(changed), tuple(deleted))
        repo.branches[branch] = sha
        return sha

    def head(self, repo_id, branch="main"):
        return self.repos[repo_id].branches[branch]

    def files(self, repo_id, revision="main"):
        repo = self.repos[repo_id]
        return repo.commits[repo.branches.get(revision, revision)].files

    def paths_requested(self, method=None):
        return [path for m, path in self.requests if method in (None, m)]


def _make_handler(hub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        # -- plumbing --------------------------------------------------------------
        def _reply(self, status, body=None, headers=()):
            data = json.dumps(body if body is not None else {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers:
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status, message, code=None):
            self._reply(status, {"error": message}, [("X-Error-Code", code)] if code else ())

        def _body(self):
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def _authorized(self):
            if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                return True
            self._error(401, "Invalid username or password.")
            return False

        def _repo(self, repo_id):
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "Repository not found", code="RepoNotFound")
            return repo

        def _route(self, method):
            path = urlsplit(self.path).path
            with hub.lock:
                hub.requests.append((method, path))
            for route_method, pattern, handler in ROUTES:
                match = re.fullmatch(pattern, path)
                if route_method == method and match:
                    return handler(self, **{k: unquote(v) for k, v in match.groupdict().items()})
            self._error(404, f"fake hub has no route for {method} {path}")

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

        def do_HEAD(self):
            self._route("HEAD")

        # -- endpoints -------------------------------------------------------------
        def create_repo(self):
            if not self._authorized():
                return
            payload = json.loads(self._body())
            repo_id = f"{payload['organization']}/{payload['name']}"
            with hub.lock:
                if repo_id in hub.repos:
                    # The Hub names the existing repo; create_repo(exist_ok=True) reads it.
                    body = {
                        "error": "You already created this model repo",
                        "url": f"{hub.url}/{repo_id}",
                    }
                    return self._reply(409, body)
                hub.create_repo(repo_id, private=payload.get("visibility") == "private")
            self._reply(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})

        def head_file(self, repo, revision, path):
            with hub.lock:
                found = hub.repos.get(repo)
                sha = found and found.branches.get(revision, revision)
                if found is None or sha not in found.commits:
                    status, headers = (
                        404,
                        {"X-Error-Code": "RevisionNotFound" if found else "RepoNotFound"},
                    )
                elif path not in found.commits[sha].files:
                    status, headers = 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": sha}
                else:
                    data = found.commits[sha].files[path]
                    status, headers = (
                        200,
                        {
                            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                            "X-Repo-Commit": sha,
                            "Content-Length": str(len(data)),
                        },
                    )
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", "0")
            self.end_headers()

        def refs(self, repo):
            with hub.lock:
                found = self._repo(repo)
                if found is None:
                    return
                branches = [
                    {"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha}
                    for name, sha in found.branches.items()
                ]
            self._reply(200, {"branches": branches, "converts": [], "tags": []})

        def validate_yaml(self):
            self._body()
            self._reply(200, {"errors": [], "warnings": []})

        def preupload(self, repo, revision):
            if not self._authorized():
                return
            payload = json.loads(self._body())
            with hub.lock:
                if self._repo(repo) is None:
                    return
            files = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                for f in payload["files"]
            ]
            self._reply(200, {"files": files, "commitOid": None})

        def commit(self, repo, revision):
            if not self._authorized():
                return
            with hub.lock:
                failure, hub.fail_next_commit = hub.fail_next_commit, None
            if failure == "drop":
                # The publisher's connection dies mid-upload: half the body arrives.
                self.rfile.read(int(self.headers["Content-Length"]) // 2)
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
            if failure == "race":
                with hub.lock:
                    hub.commit(repo, {"README.md": b"another publisher"}, "racing commit", revision)
            elif failure is not None:
                return self._error(int(failure), "Internal Error - We're working hard to fix this")
            header = next(line["value"] for line in lines if line["key"] == "header")
            changed, deleted = {}, []
            for line in lines:
                if line["key"] == "file":
                    value = line["value"]
                    assert value["encoding"] == "base64", value
                    changed[value["path"]] = base64.b64decode(value["content"])
                elif line["key"] == "deletedFile":
                    deleted.append(line["value"]["path"])
                elif line["key"] != "header":
                    return self._error(400, f"fake hub only accepts inline files: {line['key']}")
            with hub.lock:
                found = self._repo(repo)
                if found is None:
                    return
                if revision not in found.branches:
                    return self._error(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
                parent = header.get("parentCommit")
                if parent is not None and not found.branches[revision].startswith(parent):
                    return self._error(
                        412, "A commit has happened since. Please refresh and try again."
                    )
                missing = [
                    p for p in deleted if p not in found.commits[found.branches[revision]].files
                ]
                if missing:  # the Hub refuses to delete what is not there
                    return self._error(404, f"File not found: {missing[0]}", code="EntryNotFound")
                sha = hub.commit(repo, changed, header["summary"], branch=revision, deleted=deleted)
            self._reply(
                200,
                {
                    "commitUrl": f"{hub.url}/{repo}/commit/{sha}",
                    "commitOid": sha,
                    "success": True,
                    "pullRequestUrl": None,
                },
            )

    ROUTES = (
        ("POST", r"/api/repos/create", Handler.create_repo),
        ("GET", rf"/api/models/{_REPO}/refs", Handler.refs),
        ("POST", r"/api/validate-yaml", Handler.validate_yaml),
        ("POST", rf"/api/models/{_REPO}/preupload/(?P<revision>[^/]+)", Handler.preupload),
        ("POST", rf"/api/models/{_REPO}/commit/(?P<revision>[^/]+)", Handler.commit),
        ("HEAD", rf"/{_REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)", Handler.head_file),
    )
    return Handler
