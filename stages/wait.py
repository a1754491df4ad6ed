"""Follow the deployments a write created until each is stable, failed, or out of time.

The truth of a rollout (DESIGN.md): success when that deployment is PRIMARY, COMPLETED and
running = desired; failure when it reaches FAILED or stops being PRIMARY (the circuit breaker
rolled it back), however healthy the service looks afterwards.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from tierup.stages.adapters.aws import THROTTLING, error_code
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.errors import AwsError
from tierup.stages.types import Deployment, ServiceState

log = logging.getLogger(__name__)
T = TypeVar("T")

COMPLETED = "completed"
FAILED = "failed"
ROLLED_BACK = "rolled_back_by_ecs"
TIMED_OUT = "timed_out"
IN_PROGRESS = "in_progress"

EVENTS_SHOWN = 5
# a poll that failed for one of these is tried again within the wait's deadline
TRANSIENT_CODES = THROTTLING | frozenset(
    {
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "ServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
CONNECTION_ERRORS = frozenset(
    {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ConnectionError",
        "ProxyConnectionError",
    }
)
RETRY_DELAY_MAX = 30.0

# what ECS says about every rollout; the reasons a rollout is stuck or failed are the others
ROUTINE_EVENTS = (
    "has started",
    "has stopped",
    "has reached a steady state",
    "deployment completed",
)


@dataclass(frozen=True)
class RolloutState:
    service: str
    deployment_id: str
    state: str  # in_progress | completed | failed | rolled_back_by_ecs | timed_out
    running: int = 0
    desired: int = 0
    reason: str | None = None
    events: tuple[str, ...] = ()
    # when ECS rolled the deployment back: the deployment it started, and where that stands
    rollback_deployment: str | None = None
    rollback_state: str | None = None  # in_progress | completed | failed
    # what the service runs once done, when the write could not know it (a stack update
    # registers its own revision), and a strategy's own words for where it stands
    task_definition: str | None = None
    detail: str | None = None

    @property
    def done(self) -> bool:
        if self.state == ROLLED_BACK:
            # the answer is known (a failure); keep watching until ECS's own rollback settles
            return self.rollback_state != IN_PROGRESS
        return self.state != IN_PROGRESS

    @property
    def succeeded(self) -> bool:
        return self.state == COMPLETED


def settled(
    service: str,
    deployment_id: str,
    state: str,
    found: ServiceState | None,
    *,
    reason: str | None = None,
    events: tuple[str, ...] = (),
    detail: str | None = None,
) -> RolloutState:
    """A strategy's own answer for ``service``, with what the service (``found``) runs now."""
    return RolloutState(
        service,
        deployment_id,
        state,
        running=found.running if found else 0,
        desired=found.desired if found else 0,
        reason=reason,
        events=events,
        task_definition=found.task_definition if found else None,
        detail=detail,
    )


# -- polls that fail: retried within the deadline, counted -----------------------------------


@dataclass(frozen=True)
class Retry:
    """One poll that failed and was tried again."""

    target: str  # the environment
    what: str
    error: str
    attempt: int


@dataclass
class RetryLog:
    """Every retried poll of a command, by environment (thread-safe)."""

    items: list[Retry] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, retry: Retry) -> None:
        with self._lock:
            self.items.append(retry)

    def count(self, target: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.items if target is None or r.target == target)


class PollGaveUp(AwsError):
    """A poll kept failing (throttled, 5xx, unreachable) until the wait's deadline."""


def transient(exc: BaseException) -> bool:
    """A failure worth another try: throttling, a 5xx, a lost connection (or what they caused)."""
    seen: BaseException | None = exc
    while seen is not None:
        if error_code(seen) in TRANSIENT_CODES or type(seen).__name__ in CONNECTION_ERRORS:
            return True
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            if isinstance(status, int) and status >= 500:
                return True
        seen = seen.__cause__ or seen.__context__
    return False


def poll(
    read: Callable[[], T],
    *,
    what: str,
    deadline: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    interval: float = 5.0,
    retries: RetryLog | None = None,
    target: str = "",
) -> T:
    """``read()``, tried again after a transient failure until ``deadline``.

    A failure that is not transient is raised at once; one that still happens at the deadline
    raises PollGaveUp. Every retry is logged (``--verbose`` shows it) and counted in ``retries``.
    """
    attempt = 0
    while True:
        try:
            return read()
        except Exception as e:
            if not transient(e):
                raise
            left = deadline - clock()
            message = str(e)
            if left <= 0:
                raise PollGaveUp(
                    f"{what}: still failing when the wait's time ran out ({message})",
                    hint="the rollout may have finished: `tierup where` shows what runs",
                ) from e
            attempt += 1
            if retries is not None:
                retries.add(Retry(target, what, message, attempt))
            delay = min(RETRY_DELAY_MAX, max(interval, 0.2) * 2 ** (attempt - 1), left)
            log.info(
                "%s%s failed (%s): retry %d in %.1fs",
                f"{target}: " if target else "",
                what,
                message,
                attempt,
                delay,
            )
            sleep(delay)


def telling_events(service: ServiceState) -> tuple[str, ...]:
    """The latest events, those that explain something first (routine ones only if none do)."""
    messages = [e.message for e in service.events]
    telling = [m for m in messages if not any(r in m for r in ROUTINE_EVENTS)]
    return tuple((telling or messages)[:EVENTS_SHOWN])


def stable(service: ServiceState, deployment: Deployment) -> bool:
    """PRIMARY, COMPLETED (or the only one, for controllers without rolloutState), all running."""
    if deployment.status != "PRIMARY":
        return False
    done = deployment.rollout_state == "COMPLETED" or (
        deployment.rollout_state is None and len(service.deployments) == 1
    )
    return done and deployment.running == deployment.desired


def judge(service: ServiceState, deployment_id: str) -> RolloutState:
    """Where one deployment stands now."""
    mine: Deployment | None = next((d for d in service.deployments if d.id == deployment_id), None)
    events = telling_events(service)
    if mine is None or mine.status != "PRIMARY":
        return _not_primary(service, deployment_id, mine, events)
    if mine.rollout_state == "FAILED":
        return RolloutState(
            service.name,
            deployment_id,
            FAILED,
            mine.running,
            mine.desired,
            mine.reason or "the deployment FAILED",
            events,
        )
    if stable(service, mine):
        return RolloutState(service.name, deployment_id, COMPLETED, mine.running, mine.desired)
    return RolloutState(
        service.name, deployment_id, IN_PROGRESS, mine.running, mine.desired, mine.reason, events
    )


def _not_primary(
    service: ServiceState, deployment_id: str, mine: Deployment | None, events: tuple[str, ...]
) -> RolloutState:
    primary = service.primary
    if mine is not None and mine.rollout_state != "FAILED":
        # another update of the service replaced it before it finished: not ours to report
        # as a success, and not the circuit breaker either
        other = f" by deployment {primary.id}" if primary else ""
        return RolloutState(
            service.name,
            deployment_id,
            FAILED,
            mine.running,
            mine.desired,
            f"the deployment was replaced{other} before it completed (another update of the "
            "service)",
            events,
        )
    reason = "ECS rolled the deployment back (it is no longer PRIMARY)"
    if mine is not None and mine.reason:
        reason += f": {mine.reason}"
    rb_state: str | None = None
    if primary is not None:
        if primary.rollout_state == "FAILED":
            rb_state = FAILED
        elif stable(service, primary):
            rb_state = COMPLETED
        else:
            rb_state = IN_PROGRESS
    return RolloutState(
        service.name,
        deployment_id,
        ROLLED_BACK,
        mine.running if mine else 0,
        mine.desired if mine else service.desired,
        reason,
        events,
        rollback_deployment=primary.id if primary else None,
        rollback_state=rb_state,
    )


def rolled_back_message(state: RolloutState) -> str:
    """The error a user reads for a deployment ECS rolled back."""
    out = state.reason or "ECS rolled the deployment back"
    if state.rollback_deployment:
        stable_now = {
            COMPLETED: "the service is stable again on the previous version",
            FAILED: "that rollback FAILED too",
            IN_PROGRESS: "that rollback had not finished",
        }.get(state.rollback_state or "", "")
        out += f"; ECS's rollback deployment {state.rollback_deployment}" + (
            f": {stable_now}" if stable_now else ""
        )
    return out


def wait_for(
    ecs: Ecs,
    cluster: str,
    deployments: dict[str, str],
    *,
    timeout: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    interval: float = 5.0,
    on_change: Callable[[RolloutState], None] | None = None,
    retries: RetryLog | None = None,
    target: str = "",
) -> dict[str, RolloutState]:
    """Poll describe_services (10 a call) until every service's deployment has an answer.

    A deployment ECS rolled back is a failure from the moment it is seen; the poll goes on
    until ECS's rollback deployment settles too (or time runs out), so that the result can
    say whether the service is stable again. A poll that fails (throttled, a 5xx) is tried
    again within the deadline: it never fails a rollout by itself.
    """
    deadline = clock() + timeout
    last: dict[str, RolloutState] = {}
    pending = dict(deployments)
    while True:
        try:
            states = poll(
                lambda: ecs.describe_services(cluster, sorted(pending)),
                what=f"describing the services of cluster {cluster}",
                deadline=deadline,
                sleep=sleep,
                clock=clock,
                interval=interval,
                retries=retries,
                target=target,
            )
        except PollGaveUp as e:
            return unread(last, pending, e, on_change)
        for name, dep_id in list(pending.items()):
            now = judge(states[name], dep_id)
            before = last.get(name)
            if before is not None and before.state == ROLLED_BACK and now.state == ROLLED_BACK:
                # the events that explain the failure, not those of ECS's rollback after it
                now = replace(now, events=before.events)
            if on_change is not None and (
                before is None
                or (before.state, before.running, before.rollback_state)
                != (now.state, now.running, now.rollback_state)
            ):
                on_change(now)
            last[name] = now
            if now.done:
                del pending[name]
        if not pending:
            return last
        if clock() >= deadline:
            for name in pending:
                s = last[name]
                if s.state == ROLLED_BACK:
                    continue  # already a failure; its rollback_state says it is not stable yet
                timed = replace(
                    s,
                    state=TIMED_OUT,
                    reason=f"not stable after {int(timeout)}s ({s.running}/{s.desired} running)",
                )
                last[name] = timed
                if on_change is not None:
                    on_change(timed)
            return last
        sleep(min(interval, max(0.0, deadline - clock())))


def unread(
    last: dict[str, RolloutState],
    pending: dict[str, str],
    error: PollGaveUp,
    on_change: Callable[[RolloutState], None] | None = None,
) -> dict[str, RolloutState]:
    """The services still pending when their state could not be read until the deadline: timed
    out (their rollout may well have finished), not failed."""
    out = dict(last)
    for name, dep_id in pending.items():
        before = out.get(name) or RolloutState(name, dep_id, IN_PROGRESS)
        if before.state == ROLLED_BACK:
            continue
        timed = replace(before, state=TIMED_OUT, reason=error.message)
        out[name] = timed
        if on_change is not None:
            on_change(timed)
    return out
