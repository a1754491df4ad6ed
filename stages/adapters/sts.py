"""Assumed-role credentials that refresh themselves, built on botocore's own machinery.

botocore refreshes credentials only through its refreshable credential objects: plain keys
handed to a client never do. ``RoleCredentials`` is botocore's deferred refreshable credential
fed by ``assume_role``: botocore re-assumes the role before the session expires (15 minutes
ahead, blocking 10 minutes ahead), with the same session name and external id. A session can
still end early (revoked, a clock that disagrees): a request refused as ``ExpiredToken*``
re-assumes the role once and is sent again (``retry_expired``, a botocore retry handler).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.credentials import (
    CredentialProvider,
    CredentialResolver,
    DeferredRefreshableCredentials,
)

from tierup.stages.adapters.aws import Client, error_code, raise_translated

EXPIRED = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})
# requests that fail with an expired token within this many seconds of a re-assumption are
# sent again with the new session, without assuming the role once more
REASSUME_SPACING = 5.0
Fetch = Callable[[], dict[str, Any]]


def assume_role_fetcher(
    sts: Client,
    role_arn: str,
    session_name: str,
    external_id: str | None,
    duration: int | None = None,
    on_credentials: Callable[[str, str, str], None] | None = None,
) -> Fetch:
    """A function that assumes the role and answers in botocore's refresh format.

    ``on_credentials`` hears every session's key id, secret and token (to keep them out of
    what is printed or stored).
    """
    params: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": session_name}
    if external_id:
        params["ExternalId"] = external_id
    if duration:
        params["DurationSeconds"] = duration

    def fetch() -> dict[str, Any]:
        try:
            creds = sts.assume_role(**params)["Credentials"]
        except Exception as e:
            raise_translated(
                e,
                f"assuming role {role_arn}",
                hint="check the role's trust policy allows the caller (and the external_id), "
                "and that the caller may sts:AssumeRole",
            )
        if on_credentials is not None:
            on_credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    return fetch


class RoleCredentials(DeferredRefreshableCredentials):  # type: ignore[misc]
    """A role's session: assumed on first use, re-assumed before it expires."""

    def __init__(self, fetch: Fetch, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(refresh_using=fetch, method="assume-role")
        self._clock = clock
        self._reassumed_at: float | None = None
        self._reassume_lock = threading.Lock()
        self.reassumed = 0  # how often a refused session was replaced

    def reassume(self) -> None:
        """Assume the role again now (the service said the session expired)."""
        with self._reassume_lock:
            now = self._clock()
            if self._reassumed_at is not None and now - self._reassumed_at < REASSUME_SPACING:
                return  # another request just did
            with self._refresh_lock:
                self._protected_refresh(is_mandatory=True)
            self._reassumed_at = self._clock()
            self.reassumed += 1

    def retry_expired(
        self,
        response: Any = None,
        request_dict: dict[str, Any] | None = None,
        **_: Any,
    ) -> float | None:
        """botocore's ``needs-retry`` hook: once per request, an expired session is replaced
        and the request sent again (signed anew with the new keys)."""
        if not response or request_dict is None:
            return None
        parsed = response[1] if isinstance(response, tuple) and len(response) > 1 else None
        if not isinstance(parsed, dict):
            return None
        code = parsed.get("Error", {}).get("Code")
        if code not in EXPIRED:
            return None
        context = request_dict.setdefault("context", {})
        if context.get("tierup_reassumed"):
            return None  # re-assumed once already: the refusal stands
        context["tierup_reassumed"] = True
        self.reassume()
        return 0


class _Provider(CredentialProvider):  # type: ignore[misc]
    METHOD = "assume-role"
    CANONICAL_NAME = "custom-tierup-assume-role"

    def __init__(self, credentials: RoleCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> RoleCredentials:
        return self._credentials


def provider(credentials: RoleCredentials) -> Any:
    """A credential resolver that always answers ``credentials`` (for a botocore session)."""
    return CredentialResolver([_Provider(credentials)])


def is_expired(exc: BaseException) -> bool:
    return error_code(exc) in EXPIRED
