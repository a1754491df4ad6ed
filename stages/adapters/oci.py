"""Any OCI distribution registry behind the Registry interface, over its HTTP API.

Manifests move byte for byte: the body a GET returns is the body a PUT sends, with the
Content-Type it came with, so the digest cannot change. Credentials come from Docker's own
configuration (``auths``, ``credHelpers``, ``credsStore``) and are answered to the registry's
challenge: HTTP basic, or the distribution spec's bearer-token flow (GHCR, Docker Hub).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import ipaddress
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_random_exponential,
)

from tierup.stages.adapters.registry import UNREAD, Current, TagWrite
from tierup.stages.errors import ConfigError, ConflictError, RegistryError, RepositoryMissing
from tierup.stages.parallel import each
from tierup.stages.types import (
    MANIFEST_MEDIA_TYPES,
    ImageInfo,
    Manifest,
    RepositoryInfo,
    manifest_media_type,
)

ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
TIMEOUT = 30.0
# tags read at once when listing a repository's images
HEAD_AT_ONCE = 8
TAGS_PAGE_SIZE = 1000
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_API = "registry-1.docker.io"  # docker.io names images; this host serves /v2/
IDENTITY_TOKEN_USER = "<token>"

LOGIN_HINT = (
    "log in with `docker login {host}` (tierup reads Docker's config: DOCKER_CONFIG or "
    "~/.docker/config.json, with its credential helpers)"
)

# answers worth another try: rate limiting and the server's own trouble
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_ATTEMPTS = 5  # the first request and four more
RETRY_MAX_WAIT = 30.0  # seconds, however long a Retry-After asks for


def retry_after(resp: requests.Response) -> float | None:
    """The ``Retry-After`` of an answer in seconds (delay-seconds or an HTTP date)."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class _WaitRetryAfter:
    """tenacity's wait: the registry's Retry-After when it gives one, else exponential backoff
    with jitter; never more than RETRY_MAX_WAIT."""

    def __init__(self) -> None:
        self._backoff = wait_random_exponential(multiplier=0.5, max=RETRY_MAX_WAIT)

    def __call__(self, state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            asked = retry_after(outcome.result())
            if asked is not None:
                return min(asked, RETRY_MAX_WAIT)
        return float(min(self._backoff(state), RETRY_MAX_WAIT))


def _last_answer(state: RetryCallState) -> requests.Response:
    """After the last try: its answer (an error status is reported by the caller)."""
    assert state.outcome is not None
    return state.outcome.result()  # type: ignore[no-any-return]  # re-raises an exception


_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1 (``host`` without port; IPv6 with or without brackets)."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def split_host(netloc: str) -> str:
    """The host part of ``host[:port]`` (``[v6]:port`` too)."""
    if netloc.startswith("["):
        return netloc[1 : netloc.index("]")] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def registry_endpoint(url: str, *, insecure: bool = False) -> tuple[str, str]:
    """``[http(s)://]host[:port]`` -> (scheme, ``host[:port]``).

    Without a scheme: https, or http for a loopback host. Plain http is refused unless the
    host is loopback or ``insecure`` is set.
    """
    text = url.strip().rstrip("/")
    if "://" in text:
        parts = urlsplit(text)
        scheme, netloc = parts.scheme.lower(), parts.netloc
        if scheme not in ("http", "https") or not netloc or parts.path.strip("/"):
            raise ConfigError(
                f"registry url {url!r} must be [http(s)://]host[:port]",
                hint="e.g. https://ghcr.io or 127.0.0.1:5000",
            )
    else:
        netloc = text
        if not netloc or "/" in netloc:
            raise ConfigError(f"registry url {url!r} must be [http(s)://]host[:port]")
        scheme = "http" if is_loopback(split_host(netloc)) else "https"
    if "@" in netloc:
        raise ConfigError(
            "registry url must not carry credentials",
            hint="put them in Docker's config with `docker login`",
        )
    host = split_host(netloc)
    if scheme == "http" and not (insecure or is_loopback(host)):
        raise ConfigError(
            f"plain http to registry {netloc} is refused: credentials and manifests would "
            "travel unencrypted",
            hint="use https://, or set `insecure: true` on the registry in envs.yaml "
            "(only for a registry on a network you trust)",
        )
    return scheme, netloc


# -- credentials from Docker's config --------------------------------------------------


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


# -- the registry ---------------------------------------------------------------------


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="...",scope="..."`` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


def _error_text(resp: requests.Response) -> str:
    try:
        errors = resp.json().get("errors") or []
        parts = [f"{e.get('code', '?')}: {e.get('message', '')}".strip() for e in errors]
        if parts:
            return "; ".join(parts)
    except (ValueError, AttributeError):
        pass
    return f"HTTP {resp.status_code} {resp.reason or ''}".strip()


def _error_codes(resp: requests.Response) -> set[str]:
    try:
        return {str(e.get("code")) for e in resp.json().get("errors") or []}
    except (ValueError, AttributeError):
        return set()


def _media_type(resp: requests.Response, body: bytes) -> str:
    content_type = resp.headers.get("Content-Type", "").split(";", 1)[0].strip()
    if content_type in MANIFEST_MEDIA_TYPES:
        return content_type
    return manifest_media_type(body)


def _pushed_at(resp: requests.Response) -> datetime | None:
    stamp = resp.headers.get("Last-Modified")
    if not stamp:
        return None
    try:
        return email.utils.parsedate_to_datetime(stamp).astimezone(UTC)
    except (TypeError, ValueError):
        return None


class OciRegistry:
    """One OCI distribution registry (``/v2/`` API), through an optional requests session."""

    def __init__(
        self,
        url: str,
        *,
        insecure: bool = False,
        docker_config_dir: str | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.scheme, self.host = registry_endpoint(url, insecure=insecure)
        self._sleep = sleep or time.sleep
        self.insecure = insecure
        api_host = DOCKER_HUB_API if self.host.lower() in DOCKER_HUB_HOSTS else self.host
        self.base_url = f"{self.scheme}://{api_host}"
        self.docker_config_dir = docker_config_dir
        self.tags_page_size: int | None = TAGS_PAGE_SIZE
        self._session = session if session is not None else requests.Session()
        self._credentials: Credentials | None = None
        self._credentials_loaded = False
        self._authorization: dict[str, str] = {}  # repository -> Authorization header value

    # -- Registry -----------------------------------------------------------------

    def describe_repository(self, repository: str) -> RepositoryInfo:
        resp = self._request("GET", f"/v2/{repository}/tags/list", repository, params={"n": "1"})
        if resp.status_code != 200:
            raise self._failure(resp, repository, f"reading repository {repository}")
        return RepositoryInfo(
            name=repository, immutable_tags=False, uri=f"{self.host}/{repository}"
        )

    def get_manifest(self, repository: str, reference: str) -> Manifest | None:
        resp = self._request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            headers={"Accept": ACCEPT},
        )
        if resp.status_code == 404 and "NAME_UNKNOWN" not in _error_codes(resp):
            return None
        if resp.status_code != 200:
            raise self._failure(resp, repository, f"reading {repository}:{reference}")
        body = resp.content
        return Manifest(
            repository=repository,
            digest=self._digest(resp, body),
            media_type=_media_type(resp, body),
            body=body,
        )

    def put_tag(
        self, repository: str, tag: str, manifest: Manifest, *, current: Current = UNREAD
    ) -> TagWrite:
        if tag.startswith("sha256:"):
            raise RegistryError(f"cannot put a tag named like a digest: {tag}")
        if current is UNREAD:
            head = self._head_digest(repository, tag)
            current = head[0] if head is not None else None
        if current == manifest.digest:
            return TagWrite.UNCHANGED
        resp = self._request(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            repository,
            headers={"Content-Type": manifest.media_type},
            data=manifest.body,
            push=True,
        )
        if resp.status_code not in (200, 201):
            if resp.status_code == 409 or _error_codes(resp) & {"TAG_INVALID", "TAG_IMMUTABLE"}:
                raise ConflictError(
                    f"registry {self.host} refused to move {repository}:{tag}: {_error_text(resp)}",
                    hint="the repository keeps its tags immutable; use a new tag",
                )
            raise self._failure(resp, repository, f"putting {repository}:{tag}")
        written = resp.headers.get("Docker-Content-Digest")
        if written and written != manifest.digest:
            raise RegistryError(
                f"registry {self.host} stored {repository}:{tag} as {written}, not "
                f"{manifest.digest}: it rewrote the manifest",
                hint="the registry does not keep manifests byte for byte; report it",
            )
        return TagWrite.CREATED if current is None else TagWrite.MOVED

    def list_images(self, repository: str) -> list[ImageInfo]:
        tags: dict[str, list[str]] = {}
        media_types: dict[str, str | None] = {}
        pushed: dict[str, datetime | None] = {}
        names = self.list_tags(repository)
        # one HEAD per tag (the tags list says nothing else), a few at a time; requests'
        # connection pool keeps HEAD_AT_ONCE connections to the registry
        heads = each(lambda tag: self._head_digest(repository, tag), names, HEAD_AT_ONCE)
        for tag, found in zip(names, heads, strict=True):
            if found is None:
                continue  # deleted between the listing and now
            digest, media_type, pushed_at = found
            tags.setdefault(digest, []).append(tag)
            media_types.setdefault(digest, media_type or None)
            latest = pushed.get(digest)
            if pushed_at is not None and (latest is None or pushed_at > latest):
                pushed[digest] = pushed_at
        return [
            ImageInfo(
                digest=digest,
                tags=tuple(sorted(names)),
                pushed_at=pushed.get(digest),
                media_type=media_types.get(digest),
            )
            for digest, names in tags.items()
        ]

    def image_uri(self, repository: str, reference: str) -> str:
        sep = "@" if reference.startswith("sha256:") else ":"
        return f"{self.host}/{repository}{sep}{reference}"

    # -- beyond the protocol ------------------------------------------------------

    def list_tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``, following the ``Link: <...>; rel="next"`` pages."""
        params = {"n": str(self.tags_page_size)} if self.tags_page_size else None
        url: str | None = f"/v2/{repository}/tags/list"
        tags: list[str] = []
        while url is not None:
            resp = self._request("GET", url, repository, params=params)
            if resp.status_code != 200:
                raise self._failure(resp, repository, f"listing the tags of {repository}")
            try:
                page = resp.json().get("tags") or []
            except (ValueError, AttributeError) as e:
                raise RegistryError(
                    f"registry {self.host} answered the tag list of {repository} with non-JSON"
                ) from e
            tags.extend(str(t) for t in page)
            following = resp.links.get("next", {}).get("url")
            url = urljoin(resp.url, following) if following else None
            params = None
        return tags

    def credentials(self) -> Credentials | None:
        """What Docker's config holds for this registry (read once)."""
        if not self._credentials_loaded:
            self._credentials = docker_credentials(self.host, self.docker_config_dir)
            self._credentials_loaded = True
        return self._credentials

    # -- HTTP ---------------------------------------------------------------------

    def _digest(self, resp: requests.Response, body: bytes) -> str:
        header = resp.headers.get("Docker-Content-Digest")
        if header:
            return header
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def _head_digest(
        self, repository: str, reference: str
    ) -> tuple[str, str, datetime | None] | None:
        """(digest, media type, push time) of a tag, or None when it does not exist."""
        resp = self._request(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            headers={"Accept": ACCEPT},
        )
        if resp.status_code == 404:
            return None
        if resp.status_code == 200 and resp.headers.get("Docker-Content-Digest"):
            content_type = resp.headers.get("Content-Type", "").split(";", 1)[0].strip()
            return resp.headers["Docker-Content-Digest"], content_type, _pushed_at(resp)
        if resp.status_code not in (200, 405):
            raise self._failure(resp, repository, f"reading {repository}:{reference}")
        manifest = self.get_manifest(repository, reference)
        if manifest is None:
            return None
        return manifest.digest, manifest.media_type, None

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        *,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> requests.Response:
        # 429 and 5xx answers and lost connections are tried again, RETRY_ATTEMPTS times in
        # all: every request here is a read or an idempotent PUT of the same manifest
        retrying = Retrying(
            retry=retry_if_result(lambda r: r.status_code in RETRY_STATUSES)
            | retry_if_exception_type(
                (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
            ),
            wait=_WaitRetryAfter(),
            stop=stop_after_attempt(RETRY_ATTEMPTS),
            retry_error_callback=_last_answer,
            reraise=True,
            sleep=self._sleep,
        )
        try:
            return retrying(
                self._session.request,
                method,
                url,
                headers=headers,
                params=params,
                data=data,
                timeout=TIMEOUT,
                verify=not self.insecure,
                allow_redirects=True,
            )
        except requests.exceptions.SSLError as e:
            raise RegistryError(
                f"TLS to registry {self.host} failed: {type(e).__name__}",
                hint="if the registry uses a self-signed certificate, trust its CA "
                "(REQUESTS_CA_BUNDLE) or set `insecure: true`",
            ) from e
        except requests.exceptions.RequestException as e:
            raise RegistryError(
                f"cannot reach registry {self.host}: {type(e).__name__}",
                hint=f"check the url ({self.base_url}) and that the registry is up",
            ) from e

    def _request(
        self,
        method: str,
        path_or_url: str,
        repository: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
        push: bool = False,
    ) -> requests.Response:
        url = urljoin(self.base_url + "/", path_or_url)
        sent = dict(headers or {})
        known = self._authorization.get(repository) or self._authorization.get("")
        if known:
            sent["Authorization"] = known
        resp = self._send(method, url, sent, params=params, data=data)
        if resp.status_code != 401:
            return resp
        answer = self._answer(resp.headers.get("WWW-Authenticate", ""), repository, push=push)
        if answer is None or answer == known:
            return resp
        sent["Authorization"] = answer
        return self._send(method, url, sent, params=params, data=data)

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

    def _failure(
        self, resp: requests.Response, repository: str, action: str
    ) -> RegistryError | RepositoryMissing:
        codes = _error_codes(resp)
        if resp.status_code == 404 or "NAME_UNKNOWN" in codes:
            # exit 2 as on ECR: a configuration to fix, found before any write
            return RepositoryMissing(
                f"repository {repository!r} does not exist in registry {self.host}",
                hint="push an image to it first, or fix images.<name>.repository in envs.yaml",
            )
        if resp.status_code in (401, 403) or codes & {"UNAUTHORIZED", "DENIED"}:
            who = "with the credentials in Docker's config" if self.credentials() else "anonymously"
            return RegistryError(
                f"{action}: registry {self.host} denied access {who} ({_error_text(resp)})",
                hint=LOGIN_HINT.format(host=self.host),
            )
        if resp.status_code == 429:
            return RegistryError(
                f"{action}: registry {self.host} is rate limiting (HTTP 429), still after "
                f"{RETRY_ATTEMPTS} tries",
                hint="retry later; the run is safe to repeat",
            )
        return RegistryError(f"{action}: registry {self.host} answered {_error_text(resp)}")
