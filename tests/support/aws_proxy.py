"""A loopback HTTP proxy in front of moto's server, for what moto cannot do by itself.

Point ``AWS_ENDPOINT_URL`` at ``proxy.url``: every request is forwarded to moto unchanged,
unless a rule answers it first (an expired session) or holds it (a slow PutImage while the test
moves a tag). Rules see the request as AWS would: the operation (``X-Amz-Target`` or the query
``Action``), the access key that signed it, the body.
"""

from __future__ import annotations

import http.client
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


@dataclass(frozen=True)
class Seen:
    """One request as the proxy saw it."""

    method: str
    path: str
    operation: str
    access_key: str | None
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/x-amz-json-1.1"


Rule = Callable[[Seen], Answer | None]
After = Callable[[Seen, int, bytes], None]
Rewrite = Callable[[Seen, int, bytes], bytes | None]  # a new body for moto's answer, or None


@dataclass
class AwsProxy:
    upstream: str  # http://127.0.0.1:PORT of moto's server
    rules: list[Rule] = field(default_factory=list)
    after: list[After] = field(default_factory=list)
    rewrites: list[Rewrite] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items()}
                seen = Seen(
                    method=self.command,
                    path=self.path,
                    operation=_operation(headers, body, self.path),
                    access_key=_access_key(headers),
                    body=body,
                    headers=headers,
                )
                with proxy._lock:
                    proxy.seen.append(seen)
                for rule in list(proxy.rules):
                    answer = rule(seen)
                    if answer is not None:
                        self._send(answer.status, answer.body, answer.content_type)
                        return
                status, out, content_type = proxy._forward(seen)
                for hook in list(proxy.after):
                    hook(seen, status, out)
                for rewrite in list(proxy.rewrites):
                    out = rewrite(seen, status, out) or out
                self._send(status, out, content_type)

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _forward(self, seen: Seen) -> tuple[int, bytes, str]:
        target = urllib.parse.urlsplit(self.upstream)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        try:
            headers = {k: v for k, v in seen.headers.items() if k.lower() != "connection"}
            conn.request(seen.method, seen.path, body=seen.body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read(), resp.getheader("Content-Type") or "text/plain"
        finally:
            conn.close()

    def calls(self, operation: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.operation == operation]


def _operation(headers: dict[str, str], body: bytes, path: str) -> str:
    target = next((v for k, v in headers.items() if k.lower() == "x-amz-target"), "")
    if target:
        return target.rsplit(".", 1)[-1]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    if "Action" in query:
        return query["Action"][0]
    try:
        form = urllib.parse.parse_qs(body.decode())
    except UnicodeDecodeError:
        return ""
    return form.get("Action", [""])[0]


def _access_key(headers: dict[str, str]) -> str | None:
    auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    m = _CREDENTIAL.search(auth)
    return m.group(1) if m else None


def json_error(code: str, message: str, status: int = 400) -> Answer:
    import json

    return Answer(status, json.dumps({"__type": code, "message": message}).encode())


@contextmanager
def aws_proxy(upstream: str) -> Iterator[AwsProxy]:
    proxy = AwsProxy(upstream)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
