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

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tierup.stages import deploy as deploy_stage
from tierup.stages import rollback as rb
from tierup.stages import wait as wait_stage
from tierup.stages.adapters.codedeploy import CodeDeploy, DeploymentStatus, TargetProgress
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.deploy import Applied, DeployError, ServicePlan, registration_input, with_images
from tierup.stages.errors import TierupError
from tierup.stages.rollback import pinned_reference
from tierup.stages.strategy import (
    DEPLOYMENT_GROUP,
    Capabilities,
    CodeDeploySettings,
    Context,
    OnChange,
    Planned,
    RestoreTarget,
    Settings,
    Target,
    plan_rolling,
)
from tierup.stages.types import ECS_LIFECYCLE_HOOKS, ImageRef, TaskDefinition

STRATEGY = "codedeploy"
DEPLOY = "codedeploy-deployment"
WRITE = "ecs:RegisterTaskDefinition+codedeploy:CreateDeployment"
NEW_REVISION = "<the revision registered by this deployment>"


def appspec(
    task_definition: str,
    container: str,
    port: int,
    hooks: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The AppSpec of an ECS deployment: the service's new task definition and its route."""
    spec: dict[str, Any] = {
        "version": 0.0,
        "Resources": [
            {
                "TargetService": {
                    "Type": "AWS::ECS::Service",
                    "Properties": {
                        "TaskDefinition": task_definition,
                        "LoadBalancerInfo": {"ContainerName": container, "ContainerPort": port},
                    },
                }
            }
        ],
    }
    order = {e: i for i, e in enumerate(ECS_LIFECYCLE_HOOKS)}
    if hooks:
        spec["Hooks"] = [{event: fn} for event, fn in sorted(hooks, key=lambda h: order[h[0]])]
    return spec


def appspec_content(
    task_definition: str, container: str, port: int, hooks: Sequence[tuple[str, str]] = ()
) -> str:
    return json.dumps(appspec(task_definition, container, port, hooks), indent=2)


@dataclass(frozen=True)
class CodeDeployPlan:
    """Where a deployment goes and how CodeDeploy routes to it."""

    application: str
    deployment_group: str
    deployment_config: str | None
    container: str
    container_port: int
    hooks: tuple[tuple[str, str], ...]
    cluster: str
    service: str

    @property
    def target_id(self) -> str:
        return f"{self.cluster.rsplit('/', 1)[-1]}:{self.service}"

    def describe(self) -> dict[str, Any]:
        return {
            "application": self.application,
            "deployment_group": self.deployment_group,
            "deployment_config": self.deployment_config,
            "container": self.container,
            "container_port": self.container_port,
            "hooks": dict(self.hooks),
            "appspec": appspec(NEW_REVISION, self.container, self.container_port, self.hooks),
        }


def _port_of(task_def: TaskDefinition, container: str) -> int | None:
    for c in task_def.raw.get("containerDefinitions") or []:  # type: ignore[attr-defined]
        if isinstance(c, dict) and c.get("name") == container:
            for mapping in c.get("portMappings") or []:
                port = mapping.get("containerPort")
                if isinstance(port, int):
                    return port
    return None


def plan_deployment(
    cd: CodeDeploy,
    *,
    settings: CodeDeploySettings,
    cluster: str,
    service: str,
    controller: str,
    task_def: TaskDefinition,
    containers: Sequence[str],
) -> CodeDeployPlan:
    """Check the deployment group deploys this service and can start now; resolve the route."""
    group = cd.deployment_group(settings.application, settings.deployment_group)
    where = f"deployment group {settings.application}/{settings.deployment_group}"
    if group.compute_platform and group.compute_platform != "ECS":
        raise DeployError(
            f"{where} deploys to {group.compute_platform}, not ECS",
            hint="name an ECS deployment group in codedeploy.deployment_group",
        )
    cluster_name = cluster.rsplit("/", 1)[-1]
    targets = {(c.rsplit("/", 1)[-1], s) for c, s in group.ecs_services}
    if (cluster_name, service) not in targets:
        deploys = ", ".join(f"{c}/{s}" for c, s in sorted(targets)) or "no ECS service"
        raise DeployError(
            f"{where} deploys {deploys}, not {cluster_name}/{service}",
            hint="each CodeDeploy deployment group deploys one service: give the others their "
            "own environments, or fix codedeploy.deployment_group",
        )
    if controller != "CODE_DEPLOY":
        raise DeployError(
            f"service {service!r} uses the {controller} deployment controller; CodeDeploy "
            "deploys only services created with the CODE_DEPLOY controller",
            hint="use strategy task-definition for it, or recreate it with the CODE_DEPLOY "
            "deployment controller",
        )
    container = settings.container
    if container is None:
        if len(set(containers)) != 1:
            raise DeployError(
                f"service {service!r}: which container does the load balancer route to? "
                f"(containers: {', '.join(sorted(set(containers)))})",
                hint="set codedeploy.container in envs.yaml",
            )
        container = containers[0]
    if task_def.image_of(container) is None:
        raise DeployError(
            f"service {service!r}: task definition {task_def.arn} has no container {container!r}",
            hint="fix codedeploy.container in envs.yaml",
        )
    port = settings.container_port or _port_of(task_def, container)
    if port is None:
        raise DeployError(
            f"service {service!r}: container {container!r} maps no port for the load balancer",
            hint="set codedeploy.container_port in envs.yaml",
        )
    active = cd.active_deployments(settings.application, settings.deployment_group)
    if active:
        raise DeployError(
            f"{where} has an active deployment ({', '.join(active)})",
            hint="wait until it ends (or stop it: aws deploy stop-deployment), then run tierup "
            "again",
        )
    return CodeDeployPlan(
        application=settings.application,
        deployment_group=settings.deployment_group,
        deployment_config=settings.deployment_config or group.config_name,
        container=container,
        container_port=port,
        hooks=tuple(sorted(settings.hooks, key=lambda h: ECS_LIFECYCLE_HOOKS.index(h[0]))),
        cluster=cluster,
        service=service,
    )


def start(
    ecs: Ecs,
    cd: CodeDeploy,
    plan: CodeDeployPlan,
    task_def: TaskDefinition,
    images: Mapping[str, str],
    *,
    description: str,
) -> Applied:
    """Deploy ``task_def``, through a copy naming ``images`` where it needs one.

    An INACTIVE revision (a cleanup deregistered it) cannot be deployed: it is registered again.
    """
    revision = task_def
    register = task_def.status != "ACTIVE" or bool(images)
    if register:
        revision = ecs.register_task_definition(
            with_images(registration_input(ecs, task_def), dict(images))
        )
    content = appspec_content(revision.arn, plan.container, plan.container_port, plan.hooks)
    try:
        deployment_id = cd.create_deployment(
            plan.application,
            plan.deployment_group,
            appspec=content,
            config=plan.deployment_config,
            description=description,
        )
    except TierupError:
        if register:
            with contextlib.suppress(TierupError):  # nothing runs it: do not leave it behind
                ecs.deregister_task_definition(revision.arn)
        raise
    return Applied(
        service=plan.service,
        deployment_id=deployment_id,
        task_definition=revision.arn,
        previous_task_definition=task_def.arn,
        registered=register,
        extra={
            "application": plan.application,
            "deployment_group": plan.deployment_group,
            "deployment_config": plan.deployment_config,
            "container": plan.container,
            "container_port": plan.container_port,
            "hooks": dict(plan.hooks),
            "target": plan.target_id,
            "appspec": content,
            "written": True,
        },
    )


def describe_progress(status: DeploymentStatus, target: TargetProgress | None) -> str:
    parts = [f"CodeDeploy {status.deployment_id} {status.status}"]
    if target is not None:
        if target.lifecycle_event:
            parts.append(target.lifecycle_event)
        if target.replacement_traffic is not None:
            parts.append(f"{target.replacement_traffic:.0f}% of traffic on the replacement tasks")
    return ", ".join(parts)


def failure_reason(status: DeploymentStatus, target: TargetProgress | None = None) -> str:
    what = f"CodeDeploy deployment {status.deployment_id} {status.status}"
    if target is not None and target.failed_event:
        what += f" in {target.failed_event}"
    if status.error_code or status.error_message:
        what += f": {status.error_code or 'error'}: {status.error_message or 'no message'}"
    if status.rollback_message:
        what += f" ({status.rollback_message})"
    elif status.rollback_deployment_id:
        what += f" (rolled back by deployment {status.rollback_deployment_id})"
    return what


def wait_deployment(
    cd: CodeDeploy,
    deployment_id: str,
    *,
    target_id: str | None,
    timeout: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    interval: float = 15.0,
    on_change: Callable[[DeploymentStatus, TargetProgress | None], None] | None = None,
    retries: wait_stage.RetryLog | None = None,
    environment: str = "",
) -> tuple[str, DeploymentStatus, TargetProgress | None]:
    """Poll GetDeployment until Succeeded, Failed or Stopped, or ``timeout`` (no other cap).

    Returns stages.wait's state (completed | failed | timed_out), the last status and progress.
    A poll that fails (throttled, a 5xx) is tried again within the deadline.
    """
    deadline = clock() + timeout
    seen: str | None = None
    last: tuple[DeploymentStatus, TargetProgress | None] | None = None

    def read() -> tuple[DeploymentStatus, TargetProgress | None]:
        status = cd.get_deployment(deployment_id)
        return status, (cd.target_progress(deployment_id, target_id) if target_id else None)

    while True:
        try:
            status, target = wait_stage.poll(
                read,
                what=f"reading CodeDeploy deployment {deployment_id}",
                deadline=deadline,
                sleep=sleep,
                clock=clock,
                interval=interval,
                retries=retries,
                target=environment,
            )
        except wait_stage.PollGaveUp as e:
            # not read once before the deadline: where it stands is unknown, not failed
            known = last or (
                DeploymentStatus(deployment_id, "unknown", error_message=e.message),
                None,
            )
            return wait_stage.TIMED_OUT, known[0], known[1]
        last = (status, target)
        shown = describe_progress(status, target)
        if on_change is not None and shown != seen:
            on_change(status, target)
        seen = shown
        if status.final:
            state = wait_stage.COMPLETED if status.status == "Succeeded" else wait_stage.FAILED
            return state, status, target
        if clock() >= deadline:
            return wait_stage.TIMED_OUT, status, target
        sleep(min(interval, max(0.0, deadline - clock())))


def _pins(task_def: TaskDefinition, digests: Mapping[str, str | None]) -> dict[str, str]:
    """Container -> ``repo@digest`` for the containers naming a tag whose digest is known."""
    out: dict[str, str] = {}
    for c in task_def.containers:
        ref = ImageRef.parse(c.image)
        digest = digests.get(c.name)
        if digest and ref.digest is None:
            out[c.name] = pinned_reference(c.image, digest)
    return out


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
                "action": DEPLOY,
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
                plan = plan_deployment(
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
            action = "skip" if not rolling.writes else DEPLOY
            step = {
                "write": WRITE,
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
            if not isinstance(plan, CodeDeployPlan):
                raise DeployError(f"service {p.service!r}: a codedeploy plan without its route")
            started = start(
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
                    detail = describe_progress(status, target)
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

            state, status, target = wait_deployment(
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
                reason = failure_reason(status, target)
            elif state == wait_stage.TIMED_OUT:
                reason = f"{describe_progress(status, target)} after {int(timeout)}s"
            now = wait_stage.settled(
                service,
                deployment_id,
                state,
                svc,
                reason=reason,
                events=tuple(e.message for e in svc.events[:5]) if svc and reason else (),
                detail=describe_progress(status, target),
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
            plan = CodeDeployPlan(
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
            pinned = _pins(previous, dict(extra.get("previous_digests") or {}))
            # an INACTIVE revision (a cleanup deregistered it) is registered again as a copy;
            # one naming a tag is copied naming the digest that ran (the tag has moved on)
            started = start(
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
            plan = plan_deployment(
                ctx.codedeploy(),
                settings=settings,
                cluster=ctx.cluster,
                service=service,
                controller=states[service].deployment_controller,
                task_def=td,
                containers=[c.name for c in td.containers],
            )
            started = start(
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
