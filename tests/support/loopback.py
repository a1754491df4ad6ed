"""An HTTP server on loopback for the steps that call URLs (smoke checks, webhooks)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Loopback:
    """An HTTP server on 127.0.0.1: what it answers per path, and every request it saw."""

    answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def posts(self, path: str) -> list[Any]:
        return [b for m, p, b in self.requests if m == "POST" and p == path]

    def gets(self) -> list[str]:
        return [p for m, p, _ in self.requests if m == "GET"]


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    state = Loopback()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: Any) -> None:
            with lock:
                state.requests.append((self.command, self.path, body))
                state.headers.append(dict(self.headers.items()))
                status, text = state.answers.get(self.path, (200, '{"status": "ok"}'))
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._answer(json.loads(self.rfile.read(length) or b"null"))

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
