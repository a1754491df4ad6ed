"""The Docker engine behind a small typed adapter: build an image, push a tag, log in to ECR.

The Docker SDK's streams (JSON chunks) are read here and nowhere else; the rest of the code
sees lines of progress, an image id, a digest, or a TierupError that says which step failed.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tierup.stages.adapters.aws import raise_translated
from tierup.stages.errors import RegistryError, TierupError

Progress = Callable[[str], None]

# Seconds between two chunks of a push before the engine counts as gone (builds: no limit,
# a RUN step may be silent for long).
ENGINE_TIMEOUT = 300
# How much of a failing step's output an error carries.
STEP_OUTPUT_LINES = 30
# Push statuses that repeat for every chunk of every layer: progress, not news.
_QUIET_PUSH_STATUSES = frozenset({"Preparing", "Waiting", "Pushing"})
# The legacy builder colours a step's stderr and narrates its own bookkeeping.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BOOKKEEPING = re.compile(r"^( ---> |Removing intermediate container )")


class BuildError(TierupError):
    """``docker build`` failed: the message names the step and carries its output."""

    default_hint = "fix the Dockerfile (or the build context) and run `tierup build` again"


class EngineError(TierupError):
    """The Docker engine cannot be reached or refused the request."""

    default_hint = "start Docker, or point DOCKER_HOST at a running engine"


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for one push; the password is never part of a repr, a log or a result."""

    username: str
    password: str = field(repr=False)
    server: str

    def to_docker(self) -> dict[str, str]:
        """The Docker SDK's ``auth_config``."""
        return {"username": self.username, "password": self.password, "serveraddress": self.server}


def ecr_login(ecr_client: Any, server: str) -> RegistryAuth:
    """Docker credentials for ECR from ``get_authorization_token`` (base64 ``AWS:<password>``).

    One token opens every ECR registry the caller may use; ``server`` is the registry host
    the image is pushed to (``<account>.dkr.ecr.<region>.amazonaws.com``).
    """
    try:
        data = ecr_client.get_authorization_token()["authorizationData"]
    except Exception as e:
        raise_translated(
            e,
            "logging in to ECR (get_authorization_token)",
            hint="the caller needs ecr:GetAuthorizationToken",
        )
    if not data:
        raise RegistryError("ECR returned no authorization data")
    try:
        decoded = base64.b64decode(data[0]["authorizationToken"]).decode("utf-8")
    except (KeyError, ValueError, UnicodeDecodeError) as e:
        raise RegistryError("ECR returned an authorization token that is not base64") from e
    username, sep, password = decoded.partition(":")
    if not sep or not password:
        raise RegistryError("ECR returned an authorization token that is not user:password")
    return RegistryAuth(username=username, password=password, server=f"https://{server}")


@dataclass(frozen=True)
class BuildRequest:
    """Everything ``docker build`` is given for one image."""

    context: Path
    dockerfile: str
    tag: str
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


class _StepLog:
    """Assembles the build stream into lines and remembers the step each line belongs to."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._pending = ""
        self.step: str | None = None
        self.output: list[str] = []

    def feed(self, text: str) -> None:
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self._line(line)

    def flush(self) -> None:
        if self._pending:
            line, self._pending = self._pending, ""
            self._line(line)

    def _line(self, raw: str) -> None:
        line = _ANSI.sub("", raw).rstrip("\r").rstrip()
        if not line:
            return
        if line.startswith("Step ") and " : " in line:
            self.step = line
            self.output = []
        else:
            self.output.append(line)
        self._progress(line)


class DockerEngine:
    """The Docker SDK's low-level API client, for the two things tierup asks of it."""

    def __init__(self, client: Any) -> None:
        # a docker.DockerClient or its low-level docker.APIClient
        self._api = getattr(client, "api", client)

    @classmethod
    def from_env(cls) -> DockerEngine:
        """The engine DOCKER_HOST (or the default socket) points at."""
        import docker

        try:
            return cls(docker.from_env(timeout=ENGINE_TIMEOUT))
        except docker.errors.DockerException as e:
            raise EngineError(f"cannot reach the Docker engine: {e}") from e

    def build(self, request: BuildRequest, *, name: str, progress: Progress) -> str:
        """Build ``request.tag``; return the image id. ``name`` is the image's name in errors."""
        import docker

        log = _StepLog(progress)
        image_id: str | None = None
        try:
            stream: Iterable[dict[str, Any]] = self._api.build(
                path=str(request.context),
                dockerfile=request.dockerfile,
                tag=request.tag,
                target=request.target,
                buildargs=dict(request.build_args) or None,
                platform=request.platform,
                labels=dict(request.labels) or None,
                timeout=None,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
            )
            for chunk in stream:
                if "stream" in chunk:
                    log.feed(str(chunk["stream"]))
                if "error" in chunk or "errorDetail" in chunk:
                    log.flush()
                    detail = chunk.get("errorDetail") or {}
                    raise _step_failed(name, log, str(detail.get("message") or chunk["error"]))
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("ID"):
                    image_id = str(aux["ID"])
                if "status" in chunk and "stream" not in chunk:
                    progress(_status_line(chunk))
            log.flush()
        except BuildError:
            raise
        except docker.errors.APIError as e:
            raise BuildError(
                f"build of image {name!r} was refused by the Docker engine: {_explain(e)}"
            ) from e
        except (docker.errors.DockerException, requests.exceptions.ConnectionError) as e:
            raise EngineError(f"cannot reach the Docker engine to build {name!r}: {e}") from e
        if image_id is None:
            raise BuildError(f"build of image {name!r} ended without producing an image")
        return image_id

    def push(self, reference: str, *, auth: RegistryAuth | None, progress: Progress) -> str:
        """Push ``host/repo:tag``; return the digest the registry stored it under."""
        import docker

        repository, _, tag = reference.rpartition(":")
        if not repository or "/" in tag:
            raise RegistryError(f"cannot push {reference!r}: it names no tag")
        digest: str | None = None
        try:
            stream: Iterable[dict[str, Any]] = self._api.push(
                repository,
                tag=tag,
                stream=True,
                decode=True,
                auth_config=auth.to_docker() if auth is not None else None,
            )
            for chunk in stream:
                if "error" in chunk or "errorDetail" in chunk:
                    detail = chunk.get("errorDetail") or {}
                    message = str(detail.get("message") or chunk["error"])
                    raise RegistryError(
                        f"push of {reference} failed: {message}", hint=_push_hint(message)
                    )
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = str(aux["Digest"])
                status = chunk.get("status")
                if status and status not in _QUIET_PUSH_STATUSES:
                    progress(_status_line(chunk))
        except RegistryError:
            raise
        except docker.errors.APIError as e:
            raise RegistryError(f"push of {reference} was refused: {_explain(e)}") from e
        except (docker.errors.DockerException, requests.exceptions.ConnectionError) as e:
            raise EngineError(f"cannot reach the Docker engine to push {reference}: {e}") from e
        if digest is None:
            raise RegistryError(f"push of {reference} ended without a digest from the registry")
        return digest


def _step_failed(name: str, log: _StepLog, message: str) -> BuildError:
    where = f" at {log.step}" if log.step else ""
    lines = [line for line in log.output if not _BOOKKEEPING.match(line)][-STEP_OUTPUT_LINES:]
    text = f"build of image {name!r} failed{where}: {message}"
    if lines:
        text += "\n" + "\n".join(f"  | {line}" for line in lines)
    return BuildError(text)


def _status_line(chunk: Mapping[str, Any]) -> str:
    ident = chunk.get("id")
    status = str(chunk.get("status", ""))
    return f"{ident}: {status}" if ident else status


def _explain(e: Any) -> str:
    return str(getattr(e, "explanation", None) or e)


def _push_hint(message: str) -> str:
    lowered = message.lower()
    if "does not exist" in lowered or "name unknown" in lowered:
        return "create the repository first (ECR: aws ecr create-repository)"
    if "denied" in lowered or "unauthorized" in lowered or "authentication" in lowered:
        return (
            "check the push credentials: for ECR the caller needs ecr:InitiateLayerUpload, "
            "ecr:UploadLayerPart, ecr:CompleteLayerUpload and ecr:PutImage; for other "
            "registries, `docker login HOST`"
        )
    return "retry; if it persists, push by hand with `docker push` to see the registry's answer"
