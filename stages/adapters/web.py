"""Plain HTTP for the steps that call URLs (a smoke check, a webhook), through urllib.

Errors never carry the URL: a webhook's URL is a secret.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_BODY = 1 << 20  # what a check reads of a body


@dataclass(frozen=True)
class Response:
    status: int
    body: str


class HttpError(Exception):
    """No answer (refused, timed out, not HTTP): the reason, never the URL."""


def request(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    timeout: float = 10.0,
) -> Response:
    """One request; any HTTP status is an answer (4xx and 5xx included)."""
    data = None
    sent = dict(headers or {})
    if json_body is not None:
        data = json.dumps(json_body).encode()
        sent.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, headers=sent, method=method)
    try:
        with urllib.request.urlopen(req, timeout=max(timeout, 0.1)) as resp:
            return Response(resp.status, _text(resp.read(MAX_BODY)))
    except urllib.error.HTTPError as e:
        with e:
            return Response(e.code, _text(e.read(MAX_BODY)))
    except urllib.error.URLError as e:
        raise HttpError(f"no answer: {e.reason}") from None
    except (TimeoutError, OSError, ValueError) as e:
        raise HttpError(f"no answer: {type(e).__name__}") from None


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")
