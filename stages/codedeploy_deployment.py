"""One CodeDeploy blue/green deployment of an ECS service: the AppSpec naming the revision,
container and port, planning it (reads only), starting it, and following it to CodeDeploy's
answer (Succeeded, or Failed / Stopped with its error information), with the ECS target's
lifecycle event and the replacement task set's share of traffic while it runs. The
codedeploy strategy deploys, rolls back and restores through these.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tierup.stages import wait as wait_stage
from tierup.stages.adapters.codedeploy import CodeDeploy, DeploymentStatus, TargetProgress
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.deploy import Applied, DeployError, registration_input, with_images
from tierup.stages.errors import TierupError
from tierup.stages.rollback import pinned_reference
from tierup.stages.strategy import (
    CodeDeploySettings,
)
from tierup.stages.types import ECS_LIFECYCLE_HOOKS, ImageRef, TaskDefinition

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


def pins(task_def: TaskDefinition, digests: Mapping[str, str | None]) -> dict[str, str]:
    """Container -> ``repo@digest`` for the containers naming a tag whose digest is known."""
    out: dict[str, str] = {}
    for c in task_def.containers:
        ref = ImageRef.parse(c.image)
        digest = digests.get(c.name)
        if digest and ref.digest is None:
            out[c.name] = pinned_reference(c.image, digest)
    return out
