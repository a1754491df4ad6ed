"""``force-new-deployment`` and ``task-definition``: ECS's own rolling update as a strategy.

The plan is ``stages.deploy``'s per service; a write is followed by its deployment id through
``stages.wait``; a rollback goes to the previous revision through ``stages.rollback``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tierup.stages import deploy as deploy_stage
from tierup.stages import wait as wait_stage
from tierup.stages.deploy import Applied, DeployError, ServicePlan
from tierup.stages.errors import TierupError
from tierup.stages.rollback import rollback_service
from tierup.stages.strategy import (
    Capabilities,
    Context,
    OnChange,
    Planned,
    RestoreTarget,
    Target,
    plan_rolling,
)


class Rolling:
    """``force-new-deployment`` and ``task-definition``: ECS's own rolling update."""

    def __init__(self, name: str) -> None:
        self.name = name
        # a forced deployment keeps the revision: the services follow the tier's tag
        self.capabilities = Capabilities(follows_tag=name == deploy_stage.FORCE_NEW_DEPLOYMENT)

    def plan(self, ctx: Context, target: Target) -> Planned:
        out = Planned()
        for s in target.services:
            try:
                out.services.append(plan_rolling(target, s, self.name))
            except TierupError as e:
                out.errors[s.service] = e
        return out

    def apply(self, ctx: Context, plans: Sequence[ServicePlan]) -> dict[str, Applied]:
        return {
            p.service: deploy_stage.apply(ctx.ecs, p, ctx.task_defs.get(p.task_definition))
            for p in plans
        }

    def wait(
        self,
        ctx: Context,
        applied: Mapping[str, Applied],
        *,
        timeout: float,
        on_change: OnChange | None = None,
    ) -> dict[str, wait_stage.RolloutState]:
        deployments = {s: a.deployment_id for s, a in applied.items() if a.deployment_id}
        if not deployments:
            return {}
        return wait_stage.wait_for(
            ctx.ecs,
            ctx.cluster,
            deployments,
            timeout=timeout,
            sleep=ctx.sleep,
            clock=ctx.clock,
            interval=ctx.interval,
            on_change=on_change,
            retries=ctx.retries,
            target=ctx.environment,
        )

    def rollback(self, ctx: Context, applied: Mapping[str, Applied]) -> dict[str, Applied]:
        return {
            s: rollback_service(ctx.ecs, ctx.cluster, s, a.previous_task_definition)
            for s, a in applied.items()
        }

    def restore(self, ctx: Context, targets: Mapping[str, RestoreTarget]) -> dict[str, Applied]:
        # a rolling rollback or restore is planned per service (pinning, re-registering an
        # INACTIVE revision, following a deployment ECS already runs): that is stages.rollback
        raise DeployError(
            f"{self.name}: a rolling strategy restores through stages.rollback "
            "(plan_rollback, apply_rollback)",
            hint="use `tierup rollback` or `tierup restore`",
        )

    def discard(self, ctx: Context, plans: Sequence[ServicePlan]) -> None:
        return None
