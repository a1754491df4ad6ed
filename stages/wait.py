"""Follow the deployments a write created until each is stable, failed, or out of time.

The truth of a rollout (DESIGN.md): success when that deployment is PRIMARY, COMPLETED and
running = desired; failure when it reaches FAILED or stops being PRIMARY (the circuit breaker
rolled it back), however healthy the service looks afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stages.adapters.ecs import Ecs
from stages.types import Deployment, ServiceState

COMPLETED = "completed"
FAILED = "failed"
ROLLED_BACK = "rolled_back_by_ecs"
TIMED_OUT = "timed_out"
IN_PROGRESS = "in_progress"


@dataclass(frozen=True)
class RolloutState:
    service: str
    deployment_id: str
    state: str  # in_progress | completed | failed | rolled_back_by_ecs | timed_out
    running: int = 0
    desired: int = 0
    reason: str | None = None
    events: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        return self.state != IN_PROGRESS


def judge(service: ServiceState, deployment_id: str) -> RolloutState:
    """Where one deployment stands now."""
    mine: Deployment | None = next((d for d in service.deployments if d.id == deployment_id), None)
    events = tuple(e.message for e in service.events[:5])
    if mine is None or mine.status != "PRIMARY":
        reason = "ECS rolled the deployment back (it is no longer PRIMARY)"
        if mine is not None and mine.reason:
            reason += f": {mine.reason}"
        if mine is not None and mine.rollout_state == "FAILED":
            return RolloutState(
                service.name,
                deployment_id,
                FAILED,
                mine.running,
                mine.desired,
                mine.reason or reason,
                events,
            )
        return RolloutState(
            service.name, deployment_id, ROLLED_BACK, 0, service.desired, reason, events
        )
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
    done = mine.rollout_state == "COMPLETED" or (
        mine.rollout_state is None and len(service.deployments) == 1
    )
    if done and mine.running == mine.desired:
        return RolloutState(service.name, deployment_id, COMPLETED, mine.running, mine.desired)
    return RolloutState(
        service.name, deployment_id, IN_PROGRESS, mine.running, mine.desired, mine.reason, events
    )


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
) -> dict[str, RolloutState]:
    """Poll describe_services (10 a call) until every service's deployment has an answer."""
    deadline = clock() + timeout
    last: dict[str, RolloutState] = {}
    pending = dict(deployments)
    while True:
        states = ecs.describe_services(cluster, sorted(pending))
        for name, dep_id in list(pending.items()):
            now = judge(states[name], dep_id)
            before = last.get(name)
            if on_change is not None and (
                before is None or (before.state, before.running) != (now.state, now.running)
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
                timed = RolloutState(
                    name,
                    s.deployment_id,
                    TIMED_OUT,
                    s.running,
                    s.desired,
                    f"not stable after {int(timeout)}s ({s.running}/{s.desired} running)",
                    s.events,
                )
                last[name] = timed
                if on_change is not None:
                    on_change(timed)
            return last
        sleep(min(interval, max(0.0, deadline - clock())))
