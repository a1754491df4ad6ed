"""Following an ECS service deployment until it ends (a rollback until it settles) or time is up."""

from __future__ import annotations

from dataclasses import replace

from tierup.stages import wait as wait_stage
from tierup.stages.ecs_service_deployments import ServiceDeployment, read
from tierup.stages.strategy import Context, OnChange

ROLLBACK = {
    "ROLLBACK_REQUESTED": wait_stage.IN_PROGRESS,
    "ROLLBACK_IN_PROGRESS": wait_stage.IN_PROGRESS,
    "ROLLBACK_SUCCESSFUL": wait_stage.COMPLETED,
    "ROLLBACK_FAILED": wait_stage.FAILED,
}


def follow(
    ctx: Context,
    service: str,
    arn: str,
    deployment_id: str,
    *,
    deadline: float,
    timeout: float,
    on_change: OnChange | None = None,
) -> wait_stage.RolloutState:
    """Read the service deployment until it ends (a rollback until it settles) or time is up."""
    ecs = ctx.client("ecs")
    told: str | None = None
    now = ctx.poll(lambda: read(ecs, arn), what=f"describing service deployment {arn}")
    while True:
        detail = now.describe()
        if now.paused:
            detail = (
                f"paused at a PAUSE hook in stage {now.stage}: run `tierup continue --env "
                f"{ctx.environment} --service {service}` (or `tierup stop`)"
            )
        final = not now.running and now.status not in ("ROLLBACK_IN_PROGRESS",)
        if final or ctx.clock() >= deadline:
            break
        if on_change is not None and detail != told:
            told = detail
            on_change(
                wait_stage.RolloutState(
                    service, deployment_id, wait_stage.IN_PROGRESS, detail=detail
                )
            )
        ctx.sleep(ctx.interval)
        now = ctx.poll(lambda: read(ecs, arn), what=f"describing service deployment {arn}")
    found = ctx.ecs.describe_services(ctx.cluster, [service], allow_missing=True).get(service)
    state = _state(now, final=final)
    reason = None
    if state == wait_stage.TIMED_OUT:
        reason = f"{now.describe()} after {int(timeout)}s"
        if now.paused:
            reason = f"still paused at a PAUSE hook in stage {now.stage} after {int(timeout)}s"
    elif state != wait_stage.COMPLETED:
        reason = now.reason or f"the service deployment ended {now.status}"
    result = wait_stage.settled(
        service, deployment_id, state, found, reason=reason, detail=now.describe()
    )
    if now.status in ROLLBACK:
        result = replace(result, rollback_deployment=arn, rollback_state=ROLLBACK[now.status])
    if on_change is not None:
        on_change(result)
    return result


def stopped_outcome(state: wait_stage.RolloutState) -> wait_stage.RolloutState:
    """A deployment stopped with its rollback: the rollback is the answer (completed once
    ROLLBACK_SUCCESSFUL, timed out while it still runs, failed otherwise)."""
    if state.rollback_state == wait_stage.COMPLETED:
        return replace(state, state=wait_stage.COMPLETED, reason=None)
    if state.rollback_state == wait_stage.IN_PROGRESS or state.state == wait_stage.TIMED_OUT:
        return replace(state, state=wait_stage.TIMED_OUT)
    return replace(state, state=wait_stage.FAILED)


def _state(now: ServiceDeployment, *, final: bool) -> str:
    if now.status in ROLLBACK:
        return wait_stage.ROLLED_BACK
    if not final:
        return wait_stage.TIMED_OUT
    if now.status == "SUCCESSFUL":
        return wait_stage.COMPLETED
    if now.status in ROLLBACK:
        return wait_stage.ROLLED_BACK
    return wait_stage.FAILED
