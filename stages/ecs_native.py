"""Deploy through ECS's own blue/green, canary or linear strategy (``strategy: ecs``).

The write registers a revision naming the new image (as strategy task-definition does) and
updates the service with it and the environment's ``deploymentConfiguration``: ``strategy``
(BLUE_GREEN, CANARY, LINEAR), ``bakeTimeInMinutes``, ``canaryConfiguration`` /
``linearConfiguration``, ``lifecycleHooks`` and ``alarms``. ECS answers with a ServiceDeployment,
followed (DescribeServiceDeployments) until it ends: SUCCESSFUL is completed; STOPPED is failed;
ROLLBACK_* is ``rolled_back_by_ecs`` (ECS put the source revision back), followed until the
rollback settles. While it runs, its lifecycle stage and the new revision's share of production
traffic are reported, and a deployment waiting at a PAUSE hook says so, with how to continue.

A rollback asks ECS to stop the deployment with a rollback (StopServiceDeployment) where it
still runs, and otherwise deploys the previous revision again. `tierup rollback` does the same:
a service whose newest deployment is still PENDING or IN_PROGRESS (a paused one too), from the
revision the rollback goes back to, is rolled back by stopping that deployment (``running``,
then ``stop_running``), followed until ROLLBACK_SUCCESSFUL.

Beside this module: ``ecs_service_deployments`` (ECS's service deployments: read, newest, stop,
continue) and ``ecs_native_follow`` (following one until it ends).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from tierup.stages import deploy as deploy_stage
from tierup.stages import wait as wait_stage
from tierup.stages.adapters.aws import raise_translated
from tierup.stages.deploy import Applied, DeployError, ServicePlan, registration_input, with_images
from tierup.stages.ecs_native_follow import follow, stopped_outcome
from tierup.stages.ecs_service_deployments import STOPPABLE, latest, read, stop
from tierup.stages.errors import TierupError
from tierup.stages.rollback import STOP, rollback_service
from tierup.stages.strategy import (
    SERVICE_DEPLOYMENTS,
    Capabilities,
    Context,
    EcsSettings,
    OnChange,
    Planned,
    RestoreTarget,
    Running,
    Target,
    plan_rolling,
)
from tierup.stages.types import ServiceRevision

STRATEGY = "ecs"
DEPLOY = "ecs-native-deployment"
WRITE = "ecs:RegisterTaskDefinition+ecs:UpdateService(deploymentConfiguration.strategy)"


def configuration(settings: EcsSettings, current: Mapping[str, Any]) -> dict[str, Any]:
    """The service's deploymentConfiguration with the environment's strategy settings."""
    keep = ("maximumPercent", "minimumHealthyPercent", "deploymentCircuitBreaker")
    out = {k: current[k] for k in keep if k in current}
    out.update(settings.configuration)
    return out


def _running(ctx: Context, service: str) -> tuple[Running, ServiceRevision | None] | None:
    """The service's newest deployment when a stop can still roll it back, and the revision
    it deploys from (what stopping it with its rollback puts back)."""
    now = latest(ctx.client("ecs"), ctx.cluster, service)
    if now is None or now.status not in STOPPABLE:
        return None
    revision = None
    if len(now.sources) == 1:
        revision = ctx.ecs.service_revisions(list(now.sources)).get(now.sources[0])
    words = now.describe()
    if now.paused:
        words += f", paused at a PAUSE hook in stage {now.stage}"
    source = revision.task_definition if revision is not None else None
    return Running(now.arn, words, source_task_definition=source), revision


def _going_back(ctx: Context, plan: ServicePlan) -> Running | None:
    """The service's deployment still runs from exactly the images ``plan`` wants (a rollback
    of the tier, a promotion back): stopping it with its rollback gets there."""
    try:
        found = _running(ctx, plan.service)
    except TierupError:
        return None  # not known: deploy, as without a running deployment
    if found is None or found[1] is None or not plan.containers:
        return None
    ran = {i.container: i.digest for i in found[1].images}
    if any(ran.get(c.container) != c.target.digest for c in plan.containers):
        return None
    return found[0]


def _settings(ctx: Context, target: Target | None = None) -> EcsSettings:
    settings = target.ecs if target is not None else ctx.native
    if settings is None:
        raise DeployError(
            f"environment {ctx.environment!r} uses strategy ecs without `ecs: {{mode, ...}}`",
            hint="add it to the environment (or its tier) in envs.yaml",
        )
    return settings


def _update(
    ctx: Context, service: str, task_definition: str, settings: EcsSettings
) -> tuple[str | None, str | None]:
    """UpdateService with the revision and the strategy; (ECS deployment id, service
    deployment ARN)."""
    ecs = ctx.client("ecs")
    try:
        found = ecs.describe_services(cluster=ctx.cluster, services=[service])["services"]
    except Exception as e:
        raise_translated(e, f"describing service {service} in {ctx.cluster}")
    current = found[0] if found else {}
    params: dict[str, Any] = {
        "cluster": ctx.cluster,
        "service": service,
        "taskDefinition": task_definition,
        "deploymentConfiguration": configuration(
            settings, current.get("deploymentConfiguration") or {}
        ),
    }
    balancers = current.get("loadBalancers") or []
    if balancers and (settings.alternate_target_group or settings.test_listener_rule):
        advanced = {
            k: v
            for k, v in (
                ("alternateTargetGroupArn", settings.alternate_target_group),
                ("testListenerRule", settings.test_listener_rule),
            )
            if v
        }
        params["loadBalancers"] = [
            {**b, "advancedConfiguration": {**(b.get("advancedConfiguration") or {}), **advanced}}
            for b in balancers
        ]
    try:
        resp = ecs.update_service(**params)
    except Exception as e:
        raise_translated(e, f"updating service {service} in {ctx.cluster}")
    primary = next(
        (d for d in resp["service"].get("deployments") or [] if d.get("status") == "PRIMARY"),
        None,
    )
    now = latest(ecs, ctx.cluster, service)
    return (primary.get("id") if primary else None), (now.arn if now is not None else None)


class EcsNativeStrategy:
    """``ecs``: ECS's own blue/green, canary or linear deployment."""

    name = STRATEGY
    capabilities = Capabilities(
        settings="ecs", release_control=SERVICE_DEPLOYMENTS, stops_running=True
    )

    def running(self, ctx: Context, service: str) -> Running | None:
        """The service's newest deployment when it has not ended, and the revision stopping it
        with its rollback goes back to (reads only)."""
        found = _running(ctx, service)
        return None if found is None else found[0]

    def stop_running(
        self, ctx: Context, service: str, running: Running, *, previous_task_definition: str
    ) -> Applied:
        """StopServiceDeployment with its rollback; follow it with ``wait``."""
        if not stop(ctx.client("ecs"), running.deployment, rollback=True):
            raise DeployError(
                f"service deployment {running.deployment} of {service} ended before it could "
                "be stopped",
                hint="run the rollback again: it deploys the earlier revision",
            )
        return Applied(
            service,
            running.deployment,
            running.source_task_definition or previous_task_definition,
            previous_task_definition,
            extra={"service_deployment": running.deployment, "stopped": True, "written": True},
        )

    def plan(self, ctx: Context, target: Target) -> Planned:
        out = Planned()
        for s in target.services:
            try:
                settings = _settings(ctx, target)
                rolling = plan_rolling(target, s, deploy_stage.TASK_DEFINITION)
            except TierupError as e:
                out.errors[s.service] = e
                continue
            running = _going_back(ctx, rolling) if rolling.writes else None
            if running is not None:
                source = (running.source_task_definition or "?").rsplit("/", 1)[-1]
                reason = (
                    f"{running.description} deploys from {source}, which runs what is wanted: "
                    "stop it with its rollback (StopServiceDeployment ROLLBACK)"
                )
                step = {
                    "write": "ecs:StopServiceDeployment",
                    "environment": target.environment,
                    "cluster": target.cluster,
                    "service": s.service,
                    "action": STOP,
                    "reason": reason,
                    "deployment": running.deployment,
                    "task_definition": running.source_task_definition,
                    "images": {c.container: c.reference for c in rolling.containers},
                }
                out.services.append(
                    replace(
                        rolling,
                        strategy=STRATEGY,
                        action=STOP,
                        reason=reason,
                        step=step,
                        payload=running,
                    )
                )
                continue
            action = "skip" if not rolling.writes else rolling.action
            step = {
                "write": WRITE,
                "environment": target.environment,
                "cluster": target.cluster,
                "service": s.service,
                "action": "skip" if action == "skip" else DEPLOY,
                "reason": rolling.reason,
                "task_definition": s.task_def.arn,
                "images": {c.container: c.reference for c in rolling.containers},
                "ecs": dict(settings.configuration),
            }
            out.services.append(
                replace(rolling, strategy=STRATEGY, action=action, step=step, payload=settings)
            )
        return out

    def apply(self, ctx: Context, plans: Sequence[ServicePlan]) -> dict[str, Applied]:
        out: dict[str, Applied] = {}
        for p in plans:
            if p.action == STOP and isinstance(p.payload, Running):
                out[p.service] = self.stop_running(
                    ctx, p.service, p.payload, previous_task_definition=p.task_definition
                )
                continue
            settings = p.payload if isinstance(p.payload, EcsSettings) else _settings(ctx)
            if not p.writes:
                out[p.service] = Applied(p.service, None, p.task_definition, p.task_definition)
                continue
            current = ctx.task_defs.get(p.task_definition)
            if current is None or not current.raw:
                current = ctx.ecs.describe_task_definition(p.task_definition)
            params = with_images(
                registration_input(ctx.ecs, current),
                {c.container: c.reference for c in p.containers},
            )
            new_arn = ctx.ecs.register_task_definition(params).arn
            deployment, arn = _update(ctx, p.service, new_arn, settings)
            out[p.service] = Applied(
                p.service,
                deployment,
                new_arn,
                p.task_definition,
                registered=True,
                extra={
                    "service_deployment": arn,
                    "strategy": settings.configuration.get("strategy"),
                },
            )
        return out

    def wait(
        self,
        ctx: Context,
        applied: Mapping[str, Applied],
        *,
        timeout: float,
        on_change: OnChange | None = None,
    ) -> dict[str, wait_stage.RolloutState]:
        ecs = ctx.client("ecs")
        deadline = ctx.clock() + timeout
        out: dict[str, wait_stage.RolloutState] = {}
        for service, a in applied.items():
            if a.deployment_id is None and not a.extra.get("service_deployment"):
                continue
            arn = a.extra.get("service_deployment")
            if not arn:
                found = ctx.poll(
                    lambda service=service: latest(ecs, ctx.cluster, service),  # type: ignore[misc]
                    what=f"listing the deployments of service {service}",
                )
                if found is None:
                    continue
                arn = found.arn
            state = follow(
                ctx,
                service,
                str(arn),
                a.deployment_id or str(arn),
                deadline=deadline,
                timeout=timeout,
                on_change=on_change,
            )
            out[service] = stopped_outcome(state) if a.extra.get("stopped") else state
        return out

    def rollback(self, ctx: Context, applied: Mapping[str, Applied]) -> dict[str, Applied]:
        ecs = ctx.client("ecs")
        out: dict[str, Applied] = {}
        for service, a in applied.items():
            arn = a.extra.get("service_deployment")
            if arn and read(ecs, str(arn)).running and stop(ecs, str(arn), rollback=True):
                out[service] = replace(a, extra={**a.extra, "written": True, "followed": arn})
                continue
            out[service] = rollback_service(
                ctx.ecs, ctx.cluster, service, a.previous_task_definition
            )
        return out

    def restore(self, ctx: Context, targets: Mapping[str, RestoreTarget]) -> dict[str, Applied]:
        settings = _settings(ctx)
        out: dict[str, Applied] = {}
        states = ctx.ecs.describe_services(ctx.cluster, list(targets))
        for service, t in targets.items():
            td = ctx.task_definition(t.task_definition)
            images = {c: ref for c, ref in t.images.items() if td.image_of(c) != ref}
            arn = td.arn
            if images:
                arn = ctx.ecs.register_task_definition(
                    with_images(registration_input(ctx.ecs, td), images)
                ).arn
            deployment, sd = _update(ctx, service, arn, settings)
            out[service] = Applied(
                service,
                deployment,
                arn,
                states[service].task_definition,
                registered=bool(images),
                extra={"service_deployment": sd},
            )
        return out

    def discard(self, ctx: Context, plans: Sequence[ServicePlan]) -> None:
        return None
