"""The OCI registry client tries 429 and 5xx answers again, honouring Retry-After, a bounded
number of times; a repository that does not exist is exit 2, as on ECR.

A small registry on loopback answers what the test scripts, then a real manifest.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.oci_api import OCI_MANIFEST, sha256
from tierup.stages.adapters.oci.registry import OciRegistry
from tierup.stages.adapters.oci.transport import RETRY_ATTEMPTS, RETRY_MAX_WAIT
from tierup.stages.errors import RegistryError, RepositoryMissing

MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": "sha256:" + "4" * 64,
            "size": 2,
        },
        "layers": [],
    }
).encode()


class Scripted:
    """Answers (status, headers) from ``script`` in order, then 200 with MANIFEST."""

    def __init__(self, script: list[tuple[int, dict[str, str]]]) -> None:
        self.script = list(script)
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests += 1
                if outer.script:
                    status, headers = outer.script.pop(0)
                    body = json.dumps(
                        {
                            "errors": [
                                {
                                    "code": "TOOMANYREQUESTS" if status == 429 else "UNAVAILABLE",
                                    "message": "busy",
                                }
                            ]
                        }
                    ).encode()
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                elif "/manifests/" in self.path:
                    body = MANIFEST
                    self.send_response(200)
                    self.send_header("Content-Type", OCI_MANIFEST)
                    self.send_header("Docker-Content-Digest", sha256(MANIFEST))
                else:
                    body = json.dumps(
                        {
                            "errors": [
                                {"code": "NAME_UNKNOWN", "message": "repository name not known"}
                            ]
                        }
                    ).encode()
                    self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def scripted() -> Iterator[list[Scripted]]:
    made: list[Scripted] = []
    yield made
    for s in made:
        s.server.shutdown()
        s.server.server_close()


def _registry(server: Scripted, slept: list[float]) -> OciRegistry:
    return OciRegistry(server.url, sleep=slept.append)


def test_429_and_5xx_are_tried_again_with_retry_after(scripted: list[Scripted]) -> None:
    server = Scripted([(429, {"Retry-After": "3"}), (503, {}), (502, {"Retry-After": "0"})])
    scripted.append(server)
    slept: list[float] = []
    manifest = _registry(server, slept).get_manifest("api", "dev")
    assert manifest is not None and manifest.digest == sha256(MANIFEST)
    assert server.requests == 4
    assert slept[0] == 3  # what the registry asked for
    assert 0 <= slept[1] <= RETRY_MAX_WAIT  # backoff when it says nothing
    assert slept[2] == 0


def test_retries_are_bounded_and_end_in_one_error(scripted: list[Scripted]) -> None:
    server = Scripted([(429, {"Retry-After": "3600"})] * 10)
    scripted.append(server)
    slept: list[float] = []
    with pytest.raises(RegistryError, match="rate limiting") as info:
        _registry(server, slept).get_manifest("api", "dev")
    assert not info.value.refusal
    assert server.requests == RETRY_ATTEMPTS
    assert slept == [RETRY_MAX_WAIT] * (RETRY_ATTEMPTS - 1)  # an hour is not waited


def test_a_missing_repository_is_exit_2_as_on_ecr(scripted: list[Scripted]) -> None:
    server = Scripted([])
    scripted.append(server)
    registry = _registry(server, [])
    with pytest.raises(RepositoryMissing, match="does not exist") as info:
        registry.describe_repository("never-pushed")
    assert info.value.refusal
