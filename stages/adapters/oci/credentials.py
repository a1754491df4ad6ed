"""Credentials from Docker's own configuration: ``credHelpers``, ``credsStore``, ``auths``."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tierup.stages.adapters.oci.endpoint import DOCKER_HUB_HOSTS, TIMEOUT
from tierup.stages.errors import RegistryError

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
IDENTITY_TOKEN_USER = "<token>"


@dataclass(frozen=True)
class Credentials:
    """A username and secret for one registry; the secret never appears in a repr."""

    username: str
    password: str = field(repr=False)

    @property
    def identity_token(self) -> bool:
        """An OAuth2 refresh token (``docker login`` to some registries stores one)."""
        return self.username == IDENTITY_TOKEN_USER


Runner = Callable[..., subprocess.CompletedProcess[str]]


def docker_config_path(config_dir: str | None = None) -> Path:
    base = config_dir or os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(base) / "config.json"


def _key_host(key: str) -> str:
    """An ``auths``/``credHelpers`` key as a bare ``host[:port]``."""
    text = key.strip()
    if "://" in text:
        text = urlsplit(text).netloc
    return text.split("/", 1)[0].lower()


def _matches(key: str, netloc: str) -> bool:
    host = _key_host(key)
    wanted = netloc.lower()
    if wanted in DOCKER_HUB_HOSTS:
        return host in DOCKER_HUB_HOSTS
    return host == wanted


def _decode_auth(entry: Mapping[str, Any], where: str) -> Credentials | None:
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Credentials(IDENTITY_TOKEN_USER, token)
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            user, sep, secret = base64.b64decode(encoded).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError) as e:
            raise RegistryError(
                f"{where}: the `auth` entry is not base64 of user:password",
                hint="log in again with `docker login`",
            ) from e
        if not sep:
            raise RegistryError(f"{where}: the `auth` entry is not base64 of user:password")
        return Credentials(user, secret)
    name, password = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(password, str) and name:
        return Credentials(name, password)
    return None


def run_credential_helper(
    helper: str, server: str, *, runner: Runner = subprocess.run
) -> Credentials | None:
    """``docker-credential-<helper> get`` for ``server``; None when it has nothing stored."""
    program = f"docker-credential-{helper}"
    try:
        done = runner(
            [program, "get"],
            input=server,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except FileNotFoundError as e:
        raise RegistryError(
            f"Docker's config names the credential helper {helper!r}, but {program} is not on PATH",
            hint=f"install {program}, or remove it from Docker's config.json",
        ) from e
    except subprocess.TimeoutExpired as e:
        raise RegistryError(f"{program} get did not answer within {TIMEOUT:.0f}s") from e
    if done.returncode != 0:
        said = (done.stdout or done.stderr or "").strip()
        if "not found" in said.lower() or not said:
            return None
        raise RegistryError(
            f"{program} get failed for {server}: {said.splitlines()[0][:200]}",
            hint="check the helper works: echo HOST | " + program + " get",
        )
    try:
        data = json.loads(done.stdout)
        user, secret = str(data["Username"]), str(data["Secret"])
    except (ValueError, KeyError, TypeError) as e:
        raise RegistryError(f"{program} get answered something other than its JSON") from e
    if not user and not secret:
        return None
    return Credentials(user, secret)


def docker_credentials(
    netloc: str, config_dir: str | None = None, *, runner: Runner = subprocess.run
) -> Credentials | None:
    """What Docker itself would send to ``netloc``: credHelpers, then credsStore, then auths."""
    path = docker_config_path(config_dir)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise RegistryError(
            f"{path}: cannot read Docker's config: {e}",
            hint="fix or remove the file, then `docker login` again",
        ) from e
    if not isinstance(config, dict):
        raise RegistryError(f"{path}: Docker's config is not a JSON object")
    auths = config.get("auths") if isinstance(config.get("auths"), dict) else {}
    helpers = config.get("credHelpers") if isinstance(config.get("credHelpers"), dict) else {}
    assert isinstance(auths, dict) and isinstance(helpers, dict)
    auth_key = next((k for k in auths if _matches(k, netloc)), None)
    server = auth_key or (DOCKER_HUB_KEY if netloc.lower() in DOCKER_HUB_HOSTS else netloc)

    helper_key = next((k for k in helpers if _matches(k, netloc)), None)
    if helper_key is not None and helpers[helper_key]:
        return run_credential_helper(str(helpers[helper_key]), helper_key, runner=runner)
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        found = run_credential_helper(store, server, runner=runner)
        if found is not None:
            return found
    if auth_key is not None and isinstance(auths[auth_key], dict):
        return _decode_auth(auths[auth_key], f"{path}: auths.{auth_key}")
    return None
