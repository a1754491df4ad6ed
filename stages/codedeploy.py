"""Deploy through CodeDeploy: blue/green, with a test listener, hooks and automatic rollback.

Services with the CODE_DEPLOY deployment controller take a new task definition only from a
CodeDeploy deployment. The writes: register a revision naming the new image (as strategy
task-definition does), then create a deployment whose revision is AppSpec content (not a file
in S3) naming that revision, the container and port the load balancer routes to, and the
lifecycle hook functions. The answer is the deployment's own status (GetDeployment):
Succeeded, or Failed / Stopped with CodeDeploy's error information; while it runs, the ECS
target's lifecycle event and the replacement task set's share of traffic are reported. The wait
has no cap of its own: blue/green deployments with a long bake run as long as the timeout says.
A rollback asks CodeDeploy to stop with its automatic rollback where the deployment still runs,
and otherwise deploys the previous revision again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from tierup.stages import codedeploy_deployment as deployment
from tierup.stages import deploy as deploy_stage
from tierup.stages import rollback as rb
from tierup.stages import wait as wait_stage
from tierup.stages.adapters.codedeploy import DeploymentStatus, TargetProgress
from tierup.stages.deploy import Applied, DeployError, ServicePlan
from tierup.stages.errors import TierupError
from tierup.stages.strategy import (
    DEPLOYMENT_GROUP,
    Capabilities,
    Context,
    OnChange,
    Planned,
    RestoreTarget,
    Settings,
    Target,
    plan_rolling,
)

STRATEGY = "codedeploy"


class CodeDeployStrategy:
    """``strategy: codedeploy``: one service, deployed blue/green by its deployment group."""

    name = STRATEGY
    capabilities = Capabilities(
        owns_rollback=True, settings="codedeploy", release_control=DEPLOYMENT_GROUP
    )

    def describe_rollback(self, applied: Applied) -> str:
        """What a rollback of ``applied`` writes, in words (a compensation's reason)."""
        return f"CodeDeploy back to the revision it ran before, {applied.previous_task_definition}"

    def undo_steps(
        self,
        plans: Sequence[rb.RollbackPlan],
        *,
        environment: str,
        cluster: str,
        settings: Settings,
    ) -> list[dict[str, Any]]:
        """One CodeDeploy deployment per service a rollback or restore moves."""
        return [
            {
                **p.describe(),
                "write": ("ecs:RegisterTaskDefinition+" if p.action == rb.REGISTER else "")
                + "codedeploy:CreateDeployment",
                "action": deployment.DEPLOY,
            }
            for p in plans
        ]

    def validate_remote(self, ctx: Context, services: Sequence[str]) -> tuple[str, str] | None:
        """The deployment group exists and deploys the environment's services."""
        cd = ctx.route
        if cd is None:
            return None
        group = ctx.codedeploy().deployment_group(cd.application, cd.deployment_group)
        cluster = ctx.cluster.rsplit("/", 1)[-1]
        deployed = {s.rsplit("/", 1)[-1] for c, s in group.ecs_services if c.endswith(cluster)}
        missing = [s for s in services if s not in deployed]
        if missing:
            return (
                f"deployment group {cd.application}/{cd.deployment_group} does not deploy "
                f"{', '.join(missing)} of cluster {ctx.cluster!r} ({ctx.environment})",
                "point codedeploy.deployment_group at the group of this service",
            )
        return None

    def plan(self, ctx: Context, target: Target) -> Planned:
        out = Planned()
        settings = target.codedeploy
        for s in target.services:
            try:
                if settings is None:
                    raise DeployError(
                        f"environment {target.environment!r} uses strategy codedeploy without "
                        "`codedeploy: {application, deployment_group, ...}`",
                        hint="add it to the environment in envs.yaml",
                    )
                rolling = plan_rolling(target, s, deploy_stage.TASK_DEFINITION)
                plan = deployment.plan_deployment(
                    ctx.codedeploy(),
                    settings=settings,
                    cluster=target.cluster,
                    service=s.service,
                    controller=s.state.deployment_controller,
                    task_def=s.task_def,
                    containers=[c.container for c in rolling.containers],
                )
            except TierupError as e:
                out.errors[s.service] = e
                continue
            action = "skip" if not rolling.writes else deployment.DEPLOY
            step = {
                "write": deployment.WRITE,
                "environment": target.environment,
                "cluster": target.cluster,
                "service": s.service,
                "action": action,
                "reason": rolling.reason,
                "task_definition": s.task_def.arn,
                "images": {c.container: c.reference for c in rolling.containers},
                "codedeploy": plan.describe(),
            }
            out.services.append(
                ServicePlan(
                    environment=target.environment,
                    cluster=target.cluster,
                    service=s.service,
                    strategy=STRATEGY,
                    action=action,
                    reason=rolling.reason,
                    task_definition=s.task_def.arn,
                    containers=rolling.containers,
                    previous_digests=rolling.previous_digests,
                    step=step,
                    payload=plan,
                )
            )
        return out

    def apply(self, ctx: Context, plans: Sequence[ServicePlan]) -> dict[str, Applied]:
        out: dict[str, Applied] = {}
        for p in plans:
            plan = p.payload
            if not isinstance(plan, deployment.CodeDeployPlan):
                raise DeployError(f"service {p.service!r}: a codedeploy plan without its route")
            started = deployment.start(
                ctx.ecs,
                ctx.codedeploy(),
                plan,
                ctx.task_definition(p.task_definition),
                {c.container: c.reference for c in p.containers},
                description=f"tierup: {p.environment}/{p.service} {p.reason}",
            )
            # what ran before, so that a rollback runs those digests, not what a tag says now
            extra = {**started.extra, "previous_digests": dict(p.previous_digests)}
            out[p.service] = replace(started, extra=extra)
        return out

    def wait(
        self,
        ctx: Context,
        applied: Mapping[str, Applied],
        *,
        timeout: float,
        on_change: OnChange | None = None,
    ) -> dict[str, wait_stage.RolloutState]:
        out: dict[str, wait_stage.RolloutState] = {}
        for service, a in applied.items():
            if a.deployment_id is None:
                # a rollback with nothing to write: the service already runs that revision
                found = ctx.ecs.describe_services(ctx.cluster, [service], allow_missing=True)
                out[service] = wait_stage.settled(
                    service,
                    "",
                    wait_stage.COMPLETED,
                    found.get(service),
                    detail="it already runs the revision it ran before",
                )
                continue
            deployment_id = a.deployment_id

            def told(
                status: DeploymentStatus,
                target: TargetProgress | None,
                service: str = service,
                deployment_id: str = deployment_id,
            ) -> None:
                if on_change is not None and not status.final:
                    detail = deployment.describe_progress(status, target)
                    if status.status == "Ready":
                        detail += (
                            f"; waiting at Ready: run `tierup continue --env {ctx.environment}`"
                            " (or `tierup stop`)"
                        )
                    on_change(
                        wait_stage.RolloutState(
                            service, deployment_id, wait_stage.IN_PROGRESS, detail=detail
                        )
                    )

            state, status, target = deployment.wait_deployment(
                ctx.codedeploy(),
                deployment_id,
                target_id=str(a.extra.get("target") or f"{ctx.cluster}:{service}"),
                timeout=timeout,
                sleep=ctx.sleep,
                clock=ctx.clock,
                interval=ctx.interval,
                on_change=told,
                retries=ctx.retries,
                environment=ctx.environment,
            )
            current = ctx.poll(
                lambda service=service: ctx.ecs.describe_services(  # type: ignore[misc]
                    ctx.cluster, [service], allow_missing=True
                ),
                what=f"describing service {service} of cluster {ctx.cluster}",
            )
            svc = current.get(service)
            reason = None
            if state == wait_stage.FAILED:
                reason = deployment.failure_reason(status, target)
            elif state == wait_stage.TIMED_OUT:
                reason = f"{deployment.describe_progress(status, target)} after {int(timeout)}s"
            now = wait_stage.settled(
                service,
                deployment_id,
                state,
                svc,
                reason=reason,
                events=tuple(e.message for e in svc.events[:5]) if svc and reason else (),
                detail=deployment.describe_progress(status, target),
            )
            if on_change is not None:
                on_change(now)
            out[service] = now
        return out

    def rollback(self, ctx: Context, applied: Mapping[str, Applied]) -> dict[str, Applied]:
        out: dict[str, Applied] = {}
        cd = ctx.codedeploy()
        for service, a in applied.items():
            extra = a.extra
            plan = deployment.CodeDeployPlan(
                application=str(extra["application"]),
                deployment_group=str(extra["deployment_group"]),
                deployment_config=extra.get("deployment_config"),
                container=str(extra["container"]),
                container_port=int(extra["container_port"]),
                hooks=tuple((str(e), str(f)) for e, f in dict(extra.get("hooks") or {}).items()),
                cluster=ctx.cluster,
                service=service,
            )
            follow = None
            if a.deployment_id is not None:
                status = cd.get_deployment(a.deployment_id)
                if not status.final and cd.stop_deployment(a.deployment_id, auto_rollback=True):
                    status = cd.get_deployment(a.deployment_id)
                follow = status.rollback_deployment_id
            if follow is None:
                active = cd.active_deployments(plan.application, plan.deployment_group)
                follow = active[0] if active else None
            if follow is not None:
                out[service] = Applied(
                    service,
                    follow,
                    a.previous_task_definition,
                    a.task_definition,
                    extra={**extra, "written": False, "followed": follow},
                )
                continue
            state = ctx.ecs.describe_services(ctx.cluster, [service])[service]
            if state.task_definition == a.previous_task_definition:
                out[service] = Applied(
                    service,
                    None,
                    a.previous_task_definition,
                    a.task_definition,
                    extra={**extra, "written": False},
                )
                continue
            previous = ctx.ecs.describe_task_definition(a.previous_task_definition)
            pinned = deployment.pins(previous, dict(extra.get("previous_digests") or {}))
            # an INACTIVE revision (a cleanup deregistered it) is registered again as a copy;
            # one naming a tag is copied naming the digest that ran (the tag has moved on)
            started = deployment.start(
                ctx.ecs,
                cd,
                plan,
                previous,
                pinned,
                description=f"tierup: rollback of {ctx.environment}/{service} to {previous.arn}",
            )
            out[service] = replace(started, previous_task_definition=a.task_definition)
        return out

    def restore(self, ctx: Context, targets: Mapping[str, RestoreTarget]) -> dict[str, Applied]:
        """A deployment of each target revision (a copy where it names other images)."""
        settings = ctx.route
        if settings is None:
            raise DeployError(
                f"environment {ctx.environment!r} has no `codedeploy: {{application, "
                "deployment_group, ...}`",
                hint="add it to the environment in envs.yaml",
            )
        out: dict[str, Applied] = {}
        states = ctx.ecs.describe_services(ctx.cluster, list(targets))
        for service, t in targets.items():
            td = ctx.task_definition(t.task_definition)
            images = {c: ref for c, ref in t.images.items() if td.image_of(c) != ref}
            plan = deployment.plan_deployment(
                ctx.codedeploy(),
                settings=settings,
                cluster=ctx.cluster,
                service=service,
                controller=states[service].deployment_controller,
                task_def=td,
                containers=[c.name for c in td.containers],
            )
            started = deployment.start(
                ctx.ecs,
                ctx.codedeploy(),
                plan,
                td,
                images,
                description=f"tierup: restore of {ctx.environment}/{service} to {td.arn}",
            )
            out[service] = replace(
                started, previous_task_definition=states[service].task_definition
            )
        return out

    def discard(self, ctx: Context, plans: Sequence[ServicePlan]) -> None:
        return None
