"""A registry that speaks the distribution spec's bearer-token flow, as GHCR and Docker Hub do.

One small HTTP server in a thread plays both parts:
- ``/token``: the token service. ``GET`` with HTTP basic credentials, or ``POST`` with an
  OAuth2 refresh token (``grant_type=refresh_token``), returns a token for the asked scope.
- ``/v2/...``: a front for a real registry. A request without a token it issued for the
  repository and action gets ``401`` with ``WWW-Authenticate: Bearer realm=...,service=...,
  scope=repository:<name>:<actions>``; one with such a token is passed to the real registry.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SERVICE = "tierup-test-registry"
_REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?:manifests|blobs|tags)(?:/|$)")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class TokenRequest:
    """What the token service was asked: by whom, for which scope, and what it answered."""

    method: str
    username: str | None
    scope: str
    granted: bool


@dataclass
class TokenRegistry:
    """The token service plus registry front; ``url`` is ``127.0.0.1:PORT``."""

    upstream: str
    username: str
    password: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    token_requests: list[TokenRequest] = field(default_factory=list)
    _tokens: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> TokenRegistry:
        owner = self

        class Handler(_Handler):
            registry = owner

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- token bookkeeping --------------------------------------------------------

    def issue(self, scope: str) -> str:
        token = secrets.token_urlsafe(24)
        grants: set[tuple[str, str]] = set()
        for item in scope.split():
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind == "repository" and name:
                grants |= {(name, a) for a in actions.split(",") if a}
        with self._lock:
            self._tokens[token] = grants
        return token

    def allows(self, token: str, repository: str | None, action: str) -> bool:
        with self._lock:
            grants = self._tokens.get(token)
        if grants is None:
            return False
        return repository is None or (repository, action) in grants


class _Handler(BaseHTTPRequestHandler):
    registry: TokenRegistry

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- token service ------------------------------------------------------------

    def _token_get(self, query: dict[str, list[str]]) -> None:
        scope = " ".join(query.get("scope", []))
        user = None
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            ok = user == self.registry.username and secret == self.registry.password
        else:
            ok = False
        self.registry.token_requests.append(TokenRequest("GET", user, scope, ok))
        if not ok:
            self._json(401, {"details": "incorrect username or password"})
            return
        token = self.registry.issue(scope)
        self._json(200, {"token": token, "expires_in": 300})

    def _token_post(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        scope = " ".join(form.get("scope", []))
        ok = (
            form.get("grant_type") == ["refresh_token"]
            and self.registry.refresh_token is not None
            and form.get("refresh_token") == [self.registry.refresh_token]
        )
        self.registry.token_requests.append(TokenRequest("POST", None, scope, ok))
        if not ok:
            self._json(401, {"error": "invalid_grant"})
            return
        self._json(200, {"access_token": self.registry.issue(scope), "expires_in": 300})

    # -- registry front -----------------------------------------------------------

    def _front(self) -> None:
        path = urlsplit(self.path).path
        match = _REPO_PATH.match(path)
        repository = match.group("name") if match else None
        action = "pull" if self.command in ("GET", "HEAD") else "push"
        header = self.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if not self.registry.allows(token, repository, action):
            actions = "pull" if action == "pull" else "pull,push"
            host, port = self.server.server_address[:2]
            challenge = f'Bearer realm="http://{host!s}:{port}/token",service="{SERVICE}"'
            if repository:
                challenge += f',scope="repository:{repository}:{actions}"'
            body = json.dumps(
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
            ).encode()
            self.send_response(401)
            self.send_header("WWW-Authenticate", challenge)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        self._forward()

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in _HOP_BY_HOP and k.lower() not in ("authorization", "content-length")
        }
        conn = http.client.HTTPConnection(self.registry.upstream, timeout=30)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            length_header = resp.getheader("Content-Length")
            self.send_header("Content-Length", length_header or str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            conn.close()

    def _json(self, status: int, doc: dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/token":
            if self.command == "GET":
                self._token_get(parse_qs(parts.query))
            elif self.command == "POST":
                self._token_post()
            else:
                self._json(405, {})
            return
        self._front()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _dispatch
