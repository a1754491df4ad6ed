"""Requests to a registry's ``/v2/`` API: retries, the challenge answered, errors in our words."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urljoin

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_random_exponential,
)

from tierup.stages.adapters.oci.auth import LOGIN_HINT, TokenAuth
from tierup.stages.adapters.oci.credentials import Credentials
from tierup.stages.adapters.oci.endpoint import (
    DOCKER_HUB_API,
    DOCKER_HUB_HOSTS,
    TIMEOUT,
    registry_endpoint,
)
from tierup.stages.errors import RegistryError, RepositoryMissing

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


def error_text(resp: requests.Response) -> str:
    try:
        errors = resp.json().get("errors") or []
        parts = [f"{e.get('code', '?')}: {e.get('message', '')}".strip() for e in errors]
        if parts:
            return "; ".join(parts)
    except (ValueError, AttributeError):
        pass
    return f"HTTP {resp.status_code} {resp.reason or ''}".strip()


def error_codes(resp: requests.Response) -> set[str]:
    try:
        return {str(e.get("code")) for e in resp.json().get("errors") or []}
    except (ValueError, AttributeError):
        return set()


class OciTransport(TokenAuth):
    """One registry's HTTP API, through an optional requests session."""

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
        self._session = session if session is not None else requests.Session()
        self._credentials: Credentials | None = None
        self._credentials_loaded = False
        self._authorization: dict[str, str] = {}  # repository -> Authorization header value

    # -- HTTP ---------------------------------------------------------------------

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

    def _failure(
        self, resp: requests.Response, repository: str, action: str
    ) -> RegistryError | RepositoryMissing:
        codes = error_codes(resp)
        if resp.status_code == 404 or "NAME_UNKNOWN" in codes:
            # exit 2 as on ECR: a configuration to fix, found before any write
            return RepositoryMissing(
                f"repository {repository!r} does not exist in registry {self.host}",
                hint="push an image to it first, or fix images.<name>.repository in envs.yaml",
            )
        if resp.status_code in (401, 403) or codes & {"UNAUTHORIZED", "DENIED"}:
            who = "with the credentials in Docker's config" if self.credentials() else "anonymously"
            return RegistryError(
                f"{action}: registry {self.host} denied access {who} ({error_text(resp)})",
                hint=LOGIN_HINT.format(host=self.host),
            )
        if resp.status_code == 429:
            return RegistryError(
                f"{action}: registry {self.host} is rate limiting (HTTP 429), still after "
                f"{RETRY_ATTEMPTS} tries",
                hint="retry later; the run is safe to repeat",
            )
        return RegistryError(f"{action}: registry {self.host} answered {error_text(resp)}")
