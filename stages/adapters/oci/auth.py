"""Answers to a registry's 401 challenge: HTTP basic, or the distribution spec's bearer token."""

from __future__ import annotations

import base64
import re
from urllib.parse import urlsplit

import requests

from tierup.stages.adapters.oci.credentials import Credentials, docker_credentials
from tierup.stages.adapters.oci.endpoint import TIMEOUT, is_loopback, split_host
from tierup.stages.errors import RegistryError

LOGIN_HINT = (
    "log in with `docker login {host}` (tierup reads Docker's config: DOCKER_CONFIG or "
    "~/.docker/config.json, with its credential helpers)"
)

_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="...",scope="..."`` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


class TokenAuth:
    """The Authorization header for each repository, from Docker's credentials and the
    registry's token service (a part of ``OciTransport``, which sets these attributes)."""

    host: str
    insecure: bool
    docker_config_dir: str | None
    _session: requests.Session
    _credentials: Credentials | None
    _credentials_loaded: bool
    _authorization: dict[str, str]

    def credentials(self) -> Credentials | None:
        """What Docker's config holds for this registry (read once)."""
        if not self._credentials_loaded:
            self._credentials = docker_credentials(self.host, self.docker_config_dir)
            self._credentials_loaded = True
        return self._credentials

    def _answer(self, challenge: str, repository: str, *, push: bool) -> str | None:
        """The Authorization header that answers a 401's challenge, or None if we have none."""
        scheme, params = parse_challenge(challenge)
        creds = self.credentials()
        if scheme == "basic":
            if creds is None or creds.identity_token:
                return None
            raw = f"{creds.username}:{creds.password}".encode()
            value = "Basic " + base64.b64encode(raw).decode("ascii")
            self._authorization[""] = value
            return value
        if scheme == "bearer" and params.get("realm"):
            actions = "pull,push" if push else "pull"
            scope = params.get("scope") or f"repository:{repository}:{actions}"
            token = self._fetch_token(params["realm"], params.get("service"), scope, creds)
            value = f"Bearer {token}"
            self._authorization[repository] = value
            return value
        return None

    def _fetch_token(
        self, realm: str, service: str | None, scope: str, creds: Credentials | None
    ) -> str:
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryError(f"registry {self.host} named an unusable token realm {realm!r}")
        if parts.scheme == "http" and not (self.insecure or is_loopback(split_host(parts.netloc))):
            raise RegistryError(
                f"registry {self.host} asks for credentials at a plain-http token service "
                f"({parts.netloc}); refused",
                hint="set `insecure: true` only if you trust the network",
            )
        query = {"scope": scope, **({"service": service} if service else {})}
        try:
            if creds is not None and creds.identity_token:
                form = {
                    **query,
                    "grant_type": "refresh_token",
                    "refresh_token": creds.password,
                    "client_id": "tierup",
                }
                resp = self._session.post(
                    realm, data=form, timeout=TIMEOUT, verify=not self.insecure
                )
            else:
                auth = (creds.username, creds.password) if creds is not None else None
                resp = self._session.get(
                    realm, params=query, auth=auth, timeout=TIMEOUT, verify=not self.insecure
                )
        except requests.exceptions.RequestException as e:
            raise RegistryError(
                f"cannot reach the token service of registry {self.host} ({parts.netloc}): "
                f"{type(e).__name__}"
            ) from e
        if resp.status_code in (401, 403):
            who = "the credentials in Docker's config" if creds else "anonymous access"
            raise RegistryError(
                f"the token service of registry {self.host} refused {who} for {scope}",
                hint=LOGIN_HINT.format(host=self.host),
            )
        if resp.status_code != 200:
            raise RegistryError(
                f"the token service of registry {self.host} answered HTTP {resp.status_code}"
            )
        try:
            payload = resp.json()
            token = payload.get("token") or payload.get("access_token")
        except (ValueError, AttributeError) as e:
            raise RegistryError(f"the token service of registry {self.host} sent no JSON") from e
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token service of registry {self.host} sent no token")
        return token
