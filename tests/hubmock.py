"""A local HTTP server that answers like the Hugging Face hub, for tests (no network needed).

It serves what ``huggingface_hub`` asks for, with the headers it reads:

- ``HEAD`` / ``GET /{repo_id}/resolve/{revision}/{filename}``: ``ETag``, ``X-Repo-Commit``, ``Content-Length``,
  ``Accept-Ranges``; ``Range: bytes=a-b`` gives ``206`` with ``Content-Range``. Large files are answered with a
  ``302`` to ``/cdn/...`` and ``X-Linked-Etag`` / ``X-Linked-Size`` like LFS files on the real hub.
- ``GET /api/models/{repo_id}`` and ``/api/models/{repo_id}/revision/{revision}``: id, sha, siblings.
- Errors as the hub sends them, with the ``X-Error-Code`` header ``huggingface_hub.utils.hf_raise_for_status``
  maps to exceptions: unknown repo -> 401 ``RepoNotFound``; gated repo without a token -> 401 ``GatedRepo``,
  with a token that has no access -> 403 ``GatedRepo``; unknown revision -> 404 ``RevisionNotFound``;
  unknown file -> 404 ``EntryNotFound``.

Every request is recorded in ``HubMock.requests`` as ``(method, path, range header or None)``.

Usage::

    with HubMock() as hub:
        hub.add_repo("org/tiny", {"config.json": b"{...}", "model.safetensors": data})
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

#: Files above this size are served like LFS files (302 to a CDN path), as the real hub does.
LFS_THRESHOLD = 10_000


@dataclass
class MockRepo:
    files: dict[str, bytes]
    sha: str
    gated: bool = False
    tokens: tuple[str, ...] = ()  # tokens with access to a gated repo
    revisions: tuple[str, ...] = ("main",)
    failing: tuple[str, ...] = ()  # files whose GET answers 503 (HEAD still works)


@dataclass
class HubMock:
    repos: dict[str, MockRepo] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    auth_headers: list[str | None] = field(default_factory=list)

    def add_repo(self, repo_id: str, files: dict[str, bytes], *, gated: bool = False,
                 tokens: tuple[str, ...] = (), revisions: tuple[str, ...] = ("main",),
                 failing: tuple[str, ...] = ()) -> str:
        """Add a repo; returns its commit sha (derived from the content)."""
        h = hashlib.sha1(repo_id.encode())
        for name in sorted(files):
            h.update(name.encode() + hashlib.sha1(files[name]).digest())
        sha = h.hexdigest()
        self.repos[repo_id] = MockRepo(dict(files), sha, gated, tokens, revisions, failing)
        return sha

    # -- server lifecycle
    def start(self) -> HubMock:
        mock = self

        class Handler(_Handler):
            hub = mock

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HubMock:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+|[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_CDN = re.compile(r"^/cdn/(?P<repo>.+)/(?P<sha>[0-9a-f]{40})/(?P<file>[^/]+)$")
_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+|[^/]+?)(/revision/(?P<rev>[^/]+))?$")


class _Handler(BaseHTTPRequestHandler):
    hub: HubMock
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    # -- helpers
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              head: bool = False) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, head: bool) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(status, body, {"X-Error-Code": code, "X-Error-Message": message,
                                  "Content-Type": "application/json"}, head)

    def _authorized(self, repo: MockRepo) -> int:
        """0 when allowed, else the status to answer (401 no token, 403 token without access)."""
        if not repo.gated:
            return 0
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            return 401
        return 0 if auth[7:] in repo.tokens else 403

    def _serve(self, head: bool) -> None:
        path = unquote(self.path.split("?", 1)[0])
        self.hub.requests.append((self.command, path, self.headers.get("Range")))
        self.hub.auth_headers.append(self.headers.get("Authorization"))
        if m := _CDN.match(path):
            repo = self.hub.repos.get(m["repo"])
            if repo is None or repo.sha != m["sha"] or m["file"] not in repo.files:
                return self._send(404, b"not found", head=head)
            if m["file"] in repo.failing and not head:
                return self._send(503, b"Service Unavailable", head=head)
            return self._file(repo.files[m["file"]], repo, head)
        if m := _API.match(path):
            repo = self.hub.repos.get(m["repo"])
            if repo is None:
                return self._error(401, "RepoNotFound", "Repository not found", head)
            if m["rev"] and m["rev"] not in repo.revisions and m["rev"] != repo.sha:
                return self._error(404, "RevisionNotFound", "Invalid rev id", head)
            body = json.dumps({"id": m["repo"], "modelId": m["repo"], "sha": repo.sha, "gated": repo.gated,
                               "private": False,
                               "siblings": [{"rfilename": f} for f in sorted(repo.files)]}).encode()
            return self._send(200, body, {"Content-Type": "application/json"}, head)
        m = _RESOLVE.match(path)
        if not m:
            return self._send(404, b"not found", head=head)
        repo = self.hub.repos.get(m["repo"])
        if repo is None:
            return self._error(401, "RepoNotFound", "Repository not found", head)
        if denied := self._authorized(repo):
            return self._error(denied, "GatedRepo",
                               f"Access to model {m['repo']} is restricted. You must have access to it "
                               "and be authenticated to access it. Please log in.", head)
        if m["rev"] not in repo.revisions and m["rev"] != repo.sha:
            return self._error(404, "RevisionNotFound", "Invalid rev id: " + m["rev"], head)
        data = repo.files.get(m["file"])
        if data is None:
            return self._error(404, "EntryNotFound", "Entry not found", head)
        if m["file"] in repo.failing and not head:
            return self._send(503, b"Service Unavailable", head=head)
        etag = '"' + hashlib.sha256(data).hexdigest() + '"'
        if len(data) > LFS_THRESHOLD:  # LFS: redirect to the CDN with the linked etag and size
            return self._send(302, b"", {"Location": f"/cdn/{m['repo']}/{repo.sha}/{m['file']}",
                                         "X-Repo-Commit": repo.sha, "X-Linked-Etag": etag,
                                         "X-Linked-Size": str(len(data)), "ETag": etag}, head)
        self._file(data, repo, head, {"X-Repo-Commit": repo.sha})

    def _file(self, data: bytes, repo: MockRepo, head: bool, extra: dict[str, str] | None = None) -> None:
        headers = {"ETag": '"' + hashlib.sha256(data).hexdigest() + '"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream", **(extra or {})}
        rng = self.headers.get("Range")
        if rng and (r := re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())):
            start = int(r[1])
            end = min(int(r[2]) if r[2] else len(data) - 1, len(data) - 1)
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"}, head)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self._send(206, data[start:end + 1], headers, head)
        self._send(200, data, headers, head)
