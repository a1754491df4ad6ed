"""Faults moto cannot produce on its own: moto's backend methods wrapped, and a fault proxy.

Only moto's methods are wrapped, never tierup's or boto3's: the product sees a real
HTTP error from a real server. What happens between the product and the server (throttling,
a 500, an answer lost after the write happened, an error quoting the request) comes from
``FaultProxy``, an HTTP proxy on loopback in front of moto's server.
"""

from __future__ import annotations

import contextlib
import functools
import html
import http.client
import http.server
import json
import random
import re
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from moto.core.exceptions import AccessDeniedError, JsonRESTError
from moto.ecr.models import ECRBackend
from moto.sts.models import STSBackend


@pytest.fixture
def deny_assume_role(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Role ARNs added to the set cannot be assumed (AccessDenied from STS)."""
    denied: set[str] = set()
    original = STSBackend.assume_role

    @functools.wraps(original)
    def assume_role(self: STSBackend, *args: Any, **kwargs: Any) -> Any:
        role_arn = kwargs.get("role_arn", args[2] if len(args) > 2 else None)
        if role_arn in denied:
            raise AccessDeniedError(
                user_arn="arn:aws:iam::012345678922:user/ci",
                action=f"sts:AssumeRole on resource: {role_arn}",
            )
        return original(self, *args, **kwargs)

    monkeypatch.setattr(STSBackend, "assume_role", assume_role)
    yield denied


@pytest.fixture
def throttle(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """ECR operations added to the set always answer ThrottlingException."""
    throttled: set[str] = set()
    original = ECRBackend.batch_get_image

    @functools.wraps(original)
    def batch_get_image(self: ECRBackend, *args: Any, **kwargs: Any) -> Any:
        if "BatchGetImage" in throttled:
            raise JsonRESTError("ThrottlingException", "Rate exceeded")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ECRBackend, "batch_get_image", batch_get_image)
    yield throttled


# -- a fault proxy on loopback, in front of moto's server ---------------------------------------

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "host",
        "expect",
    }
)
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")
JSON_SERVICES = frozenset({"ecs", "ecr", "codedeploy", "logs", "lambda"})
THROTTLE = "throttle"  # answered at once with the service's throttling error; not forwarded
ERROR = "error"  # answered at once with a 500; not forwarded
DROP = "drop"  # forwarded, then the answer is lost: the connection closes with no reply
KINDS = (THROTTLE, ERROR, DROP)


@dataclass(frozen=True)
class Call:
    """One request the proxy received: which service and operation, and what it carried."""

    service: str
    operation: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Answer:
    """A made-up answer sent instead of forwarding (``forward``: after forwarding)."""

    status: int
    body: bytes
    content_type: str = "application/xml"
    forward: bool = False


Fault = str | Answer
Rule = Callable[[Call], Fault | None]


def _operation(service: str, method: str, path: str, headers: dict[str, str], body: bytes) -> str:
    target = headers.get("x-amz-target")
    if target:
        return target.rsplit(".", 1)[-1]
    if service == "s3":
        parts = urllib.parse.urlsplit(path)
        key = parts.path.lstrip("/").partition("/")[2]
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        if not key:
            return {"GET": "ListObjectsV2" if "list-type" in query else "ListObjects"}.get(
                method, f"{method}Bucket"
            )
        return {
            "GET": "GetObject",
            "PUT": "PutObject",
            "DELETE": "DeleteObject",
            "HEAD": "HeadObject",
        }.get(method, f"{method}Object")
    query = urllib.parse.parse_qs(
        body.decode("utf-8", "replace") if method == "POST" else urllib.parse.urlsplit(path).query
    )
    return (query.get("Action") or [method])[0]


def error_answer(service: str, status: int, code: str, message: str) -> Answer:
    """The error ``service`` would answer, in its protocol (JSON, query XML, S3's XML)."""
    if service in JSON_SERVICES:
        doc = json.dumps({"__type": code, "message": message}).encode()
        return Answer(status, doc, "application/x-amz-json-1.1")
    text = html.escape(message, quote=False)
    if service == "s3":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{text}</Message>"
            "<RequestId>tierup-fault-proxy</RequestId></Error>"
        )
        return Answer(status, body.encode())
    body = (
        "<ErrorResponse><Error><Type>Sender</Type>"
        f"<Code>{code}</Code><Message>{text}</Message></Error>"
        "<RequestId>tierup-fault-proxy</RequestId></ErrorResponse>"
    )
    return Answer(status, body.encode(), "text/xml")


def fault_answer(kind: str, service: str) -> Answer:
    if kind == THROTTLE:
        if service == "s3":
            return error_answer(service, 503, "SlowDown", "Please reduce your request rate.")
        code = "ThrottlingException" if service in JSON_SERVICES else "Throttling"
        return error_answer(service, 400, code, "Rate exceeded")
    code = "InternalError" if service in ("s3", "sts") else "InternalFailure"
    return error_answer(service, 500, code, "We encountered an internal error. Try again.")


@dataclass
class FaultStats:
    calls: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    by_operation: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str, operation: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1
        key = f"{kind}:{operation}"
        self.by_operation[key] = self.by_operation.get(key, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.faults.values())


class FaultProxy:
    """An HTTP proxy on loopback in front of moto's server that injects faults by rule.

    Each request is matched against ``rules`` (first answer wins): ``THROTTLE`` and ``ERROR``
    answer at once without forwarding; ``DROP`` forwards the request (the write happens) and
    closes the connection without the answer; an ``Answer`` is sent as it is. The product
    only ever sees what a real endpoint could send.

        with FaultProxy(moto_url, rules=[random_faults(0.1, seed=7)]) as proxy:
            ... AWS_ENDPOINT_URL=proxy.url ...
    """

    def __init__(self, upstream: str, rules: Sequence[Rule] = (), *, port: int = 0) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules: list[Rule] = list(rules)
        self.stats = FaultStats()
        self.calls: list[Call] = []
        self.answers: list[tuple[Call, int, bytes]] = []  # what was forwarded and answered
        self._lock = threading.Lock()
        self._port = port
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                proxy._serve(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def clear(self) -> None:
        """No more faults (the calls seen and the figures stay)."""
        with self._lock:
            self.rules.clear()

    def _decide(self, call: Call) -> Fault | None:
        with self._lock:
            self.stats.calls += 1
            self.calls.append(call)
            for rule in self.rules:
                fault = rule(call)
                if fault is not None:
                    self.stats.count(fault if isinstance(fault, str) else "answer", call.operation)
                    return fault
        return None

    def _serve(self, h: http.server.BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in h.headers.items()}
        scope = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
        service = scope.group(1) if scope else "unknown"
        call = Call(
            service,
            _operation(service, h.command, h.path, headers, body),
            h.command,
            h.path,
            headers,
            body,
        )
        fault = self._decide(call)
        if isinstance(fault, Answer) and not fault.forward:
            self._reply(h, fault.status, fault.body, {"Content-Type": fault.content_type})
            return
        if fault in (THROTTLE, ERROR):
            answer = fault_answer(str(fault), service)
            self._reply(h, answer.status, answer.body, {"Content-Type": answer.content_type})
            return
        status, reason, out_headers, out_body = self._forward(h, body)
        with self._lock:
            self.answers.append((call, status, out_body))
        if fault == DROP:
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(fault, Answer):
            self._reply(h, fault.status, fault.body, {"Content-Type": fault.content_type})
            return
        self._reply(h, status, out_body, out_headers, reason, head=h.command == "HEAD")

    def _forward(
        self, h: http.server.BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, str, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Host"] = h.headers.get("Host", f"{self.upstream[0]}:{self.upstream[1]}")
            if body or h.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            conn.request(h.command, h.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP}
            if h.command == "HEAD" and resp.getheader("Content-Length"):
                out["Content-Length"] = str(resp.getheader("Content-Length"))
            return resp.status, resp.reason, out, data
        finally:
            conn.close()

    @staticmethod
    def _reply(
        h: http.server.BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: Mapping[str, str],
        reason: str | None = None,
        *,
        head: bool = False,
    ) -> None:
        h.send_response(status, reason)
        for k, v in headers.items():
            if k.lower() != "content-length":
                h.send_header(k, v)
        h.send_header(
            "Content-Length",
            headers.get("Content-Length", str(len(body))) if head else str(len(body)),
        )
        h.end_headers()
        if not head:
            h.wfile.write(body)


def drop_answer(service: str, operation: str, *, path: str = "", times: int = 1) -> Rule:
    """Forward the first ``times`` matching calls and lose their answers."""
    left = [times]

    def rule(call: Call) -> Fault | None:
        matched = call.service == service and call.operation == operation and path in call.path
        if matched and left[0] > 0:
            left[0] -= 1
            return DROP
        return None

    return rule


def random_faults(
    rate: float,
    *,
    seed: int,
    kinds: Sequence[str] = KINDS,
    limit: int | None = None,
    only: Callable[[Call], bool] | None = None,
    first: bool = False,
) -> Rule:
    """Each call (matching ``only``) gets a fault with probability ``rate``, kinds at random.

    ``limit`` caps how many faults are made; an answer may be lost on a read as on a write.
    ``first``: the first matching call gets one whatever the draw (a run is never fault-free).
    Seeded: the same calls in the same order get the same faults.
    """
    rng = random.Random(seed)
    made = [0]

    def rule(call: Call) -> Fault | None:
        if only is not None and not only(call):
            return None
        if limit is not None and made[0] >= limit:
            return None
        if rng.random() >= rate and not (first and made[0] == 0):
            return None
        made[0] += 1
        return rng.choice(list(kinds))

    return rule


@pytest.fixture
def fault_proxy(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A FaultProxy in front of moto's server; AWS_ENDPOINT_URL points at it. Add rules to it."""
    with FaultProxy(aws_env) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        yield proxy
