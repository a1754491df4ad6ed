"""The one place that makes boto3 clients.

An environment with a ``role_arn`` is reached by assuming that role (cached per role
and external id) through refreshable credentials: botocore re-assumes the role before the
session expires (15 minutes ahead), with the same session name and external id, and a request
refused as ``ExpiredToken*`` re-assumes it once and is sent again. AWS_PROFILE,
AWS_ENDPOINT_URL and the standard credential chain work as they do for the aws CLI. boto3 is
imported lazily so that ``tierup --help`` stays fast.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tierup.pipeline import redaction
from tierup.stages.adapters.aws import raise_translated

if TYPE_CHECKING:
    from tierup.stages.adapters.sts import RoleCredentials

CI_RUN_ID_VARS = (
    "GITHUB_RUN_ID",
    "CI_PIPELINE_ID",
    "CI_JOB_ID",
    "BUILD_ID",
    "CODEBUILD_BUILD_NUMBER",
)
_SESSION_NAME_BAD = re.compile(r"[^\w+=,.@-]")
MAX_POOL = 64
# ECS requests are built from ECS's own descriptions (a task definition copied field by field)
# and ECS validates them again: checking them client-side too costs more CPU than anything else
# in a 50-service rollback, for no error it would catch first
UNVALIDATED = frozenset({"ecs"})


def session_name(environ: dict[str, str] | None = None) -> str:
    """``tierup`` plus the CI run id when there is one: 2-64 chars of ``[\\w+=,.@-]``."""
    env = os.environ if environ is None else environ
    run_id = next((env[v] for v in CI_RUN_ID_VARS if env.get(v)), None)
    name = f"tierup-{run_id}" if run_id else f"tierup-{os.getpid()}"
    return _SESSION_NAME_BAD.sub("-", name)[:64]


@dataclass(frozen=True)
class Target:
    """Where a client points: an account reached by an optional role, in a region."""

    region: str
    role_arn: str | None = None
    external_id: str | None = None


def _sibling_session(base: Any, profile: str | None) -> Any:
    """A new botocore session with ``base``'s event handlers, copied as botocore copies them for
    each client: registering its ~120 built-in handlers again costs ~5 ms of CPU per role."""
    import copy

    import botocore.session

    emitter = getattr(base.get_component("event_emitter"), "_emitter", None)
    if emitter is None:  # another botocore's layout: register them the usual way
        return botocore.session.Session(profile=profile)
    return botocore.session.Session(
        event_hooks=copy.copy(emitter), include_builtin_handlers=False, profile=profile
    )


class AwsSessions:
    """Creates and caches boto3 sessions and clients; thread-safe."""

    def __init__(
        self,
        *,
        profile: str | None = None,
        name: str | None = None,
        on_client: Callable[[str, Any], None] | None = None,
        duration: int | None = None,
    ) -> None:
        self._on_client = on_client
        self._profile = profile
        self._name = name or session_name()
        self._lock = threading.Lock()
        self._base: Any = None
        self._assumed: dict[tuple[str, str | None], Any] = {}
        self._role_credentials: dict[tuple[str, str | None], RoleCredentials] = {}
        self._duration = duration
        self._role_locks: dict[tuple[str, str | None], threading.Lock] = {}
        self._clients: dict[tuple[str, Target], Any] = {}
        self._config: Any = None

    def _botocore_config(self, service: str) -> Any:
        if service in UNVALIDATED:
            from botocore.config import Config

            return self._botocore_config("").merge(Config(parameter_validation=False))
        if self._config is None:
            from botocore.config import Config

            # AWS_RETRY_MODE / AWS_MAX_ATTEMPTS still win, as they do for the aws CLI
            retries: dict[str, Any] = {}
            if not os.environ.get("AWS_RETRY_MODE"):
                retries["mode"] = "adaptive"
            if not os.environ.get("AWS_MAX_ATTEMPTS"):
                retries["max_attempts"] = 6
            self._config = Config(
                retries=retries,
                max_pool_connections=MAX_POOL,
                connect_timeout=10,
                read_timeout=30,
            )
        return self._config

    def _base_session(self) -> Any:
        if self._base is None:
            # botocore's session, not boto3's: boto3 would import s3transfer on every run
            import botocore.session

            try:
                self._base = botocore.session.Session(profile=self._profile)
            except Exception as e:
                raise_translated(e, "loading AWS configuration")
        return self._base

    def _role_session(self, target: Target) -> Any:
        """A botocore session whose credentials are the role's, re-assumed before they expire.

        Cached per role and external id. The role is assumed here, once, so that a role that
        cannot be assumed fails where its first client is made.
        """
        assert target.role_arn is not None
        key = (target.role_arn, target.external_id)
        with self._lock:
            role_lock = self._role_locks.setdefault(key, threading.Lock())
        with role_lock:
            cached = self._assumed.get(key)
            if cached is not None:
                return cached
            from tierup.stages.adapters.sts import RoleCredentials, assume_role_fetcher, provider

            sts = self.client("sts", region=target.region)
            credentials = RoleCredentials(
                assume_role_fetcher(
                    sts,
                    target.role_arn,
                    self._name,
                    target.external_id,
                    self._duration,
                    on_credentials=redaction.remember,
                )
            )
            credentials.get_frozen_credentials()  # assume it now: a refusal shows here
            base = self._base_session()
            session = _sibling_session(base, self._profile)
            # service models and endpoints are read once, by the base session's loader
            session.register_component("data_loader", base.get_component("data_loader"))
            session.register_component("credential_provider", provider(credentials))
            self._assumed[key] = session
            self._role_credentials[key] = credentials
            return session

    def role_credentials(self, role_arn: str, external_id: str | None) -> RoleCredentials | None:
        """The refreshable credentials of a role assumed so far (None: not assumed yet)."""
        return self._role_credentials.get((role_arn, external_id))

    def client(
        self,
        service: str,
        *,
        region: str,
        role_arn: str | None = None,
        external_id: str | None = None,
    ) -> Any:
        target = Target(region=region, role_arn=role_arn, external_id=external_id)
        key = (service, target)
        cached = self._clients.get(key)
        if cached is not None:
            return cached
        session = self._role_session(target) if role_arn is not None else None
        with self._lock:
            cached = self._clients.get(key)
            if cached is not None:
                return cached
            if session is None:
                session = self._base_session()
            try:
                client = session.create_client(
                    service, region_name=region, config=self._botocore_config(service)
                )
            except Exception as e:
                raise_translated(e, f"creating the {service} client")
            if role_arn is not None:
                credentials = self._role_credentials[(role_arn, external_id)]
                client.meta.events.register(
                    f"needs-retry.{client.meta.service_model.service_id.hyphenize()}",
                    credentials.retry_expired,
                )
            if self._on_client is not None:
                self._on_client(service, client)
            self._clients[key] = client
            return client

    def caller_arn(self, *, region: str) -> str | None:
        """The STS caller identity ARN, or None when it cannot be had."""
        try:
            sts = self.client("sts", region=region)
            return str(sts.get_caller_identity()["Arn"])
        except Exception:
            return None
