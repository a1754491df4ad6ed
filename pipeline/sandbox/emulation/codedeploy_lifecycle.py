"""A CodeDeploy deployment's lifecycle on the emulation: one step each time it is read.

Created -> InProgress (the revision is checked) -> the replacement task set starts as a new
PRIMARY deployment of the group's ECS service through the ECS emulation (Install) -> the
lifecycle hooks -> traffic shifts by the deployment configuration (one step per read) ->
Succeeded. A failure (the replacement tasks do not start, a hook told to fail, a stop) sends
traffic back to the original task set: with the group's automatic rollback a rollback
deployment (creator codeDeployRollback, rollbackInfo on both) deploys it again with the digests
it ran, otherwise the service is put back at once. A group whose `deploymentReadyOption` says
STOP_DEPLOYMENT waits at Ready before the traffic shift.
"""

from __future__ import annotations

import json
from typing import Any

from moto.codedeploy.models import CodeDeployBackend, codedeploy_backends
from moto.core.utils import utcnow
from moto.ecs.models import ecs_backends

from tierup.pipeline.sandbox.emulation.codedeploy_runs import (
    ACTIVE,
    LIFECYCLE,
    ROLLBACK_CREATOR,
    Run,
    traffic_steps,
    waits_at_ready,
)
from tierup.pipeline.sandbox.emulation.ecs import Emulation

__all__ = ["Lifecycle", "mark"]


class Lifecycle:
    """Moves the emulation's CodeDeploy deployments (`runs`, by id) through their lifecycle."""

    def __init__(
        self, ecs: Emulation, runs: dict[str, Run], fail_next: dict[str, tuple[str, str]]
    ) -> None:
        self._ecs = ecs
        self._runs = runs
        self._fail_next = fail_next

    def advance(self, backend: CodeDeployBackend, deployment_id: str) -> None:
        run = self._runs.get(deployment_id)
        if run is None or run.info.status not in ACTIVE:
            return
        info = run.info
        if info.status == "Ready":
            return  # the replacement task set waits for ContinueDeployment
        if info.status in ("Created", "Queued"):
            info.status = "InProgress"
            info.start_time = utcnow()
            self._begin(run)
            return
        name = LIFECYCLE[run.event]
        if name == "Install":
            self._install_step(run)
        elif name == "AllowTraffic":
            run.shifted += 1
            if run.shifted >= len(run.steps):
                mark(run, "AllowTraffic", "Succeeded")
                run.event += 1
                self._hook(run, "AfterAllowTraffic")
                if info.status == "InProgress":
                    info.status = "Succeeded"
                    info.complete_time = utcnow()
        else:
            # the hooks between Install and AllowTraffic run in one read
            while run.event < len(LIFECYCLE) and LIFECYCLE[run.event] not in (
                "AllowTraffic",
                "Install",
            ):
                event = LIFECYCLE[run.event]
                run.event += 1
                if event == "AllowTestTraffic":
                    mark(run, event, "Succeeded")
                else:
                    self._hook(run, event)
                if info.status != "InProgress":
                    return
            if run.event < len(LIFECYCLE) and LIFECYCLE[run.event] == "AllowTraffic":
                # a rollback puts the original back without waiting
                rollback = run.info.creator == ROLLBACK_CREATOR
                if waits_at_ready(run.group) and not run.ready_done and not rollback:
                    info.status = "Ready"
                    return
                mark(run, "AllowTraffic", "InProgress")

    def _begin(self, run: Run) -> None:
        for event in LIFECYCLE:
            run.events[event] = {"lifecycleEventName": event, "status": "Pending"}
        run.steps = traffic_steps(run.info.deployment_config_name)
        if run.invalid is not None:
            self._fail(run, "INVALID_REVISION", run.invalid)
            return
        group = run.group
        targets = group.ecs_services or []
        if len(targets) != 1:
            self._fail(
                run,
                "INVALID_ECS_SERVICE",
                f"The deployment group {group.deployment_group_name} names no ECS service",
            )
            return
        ecs = ecs_backends[run.account_id][run.region]
        cluster, name = targets[0].get("clusterName"), targets[0].get("serviceName")
        service = ecs.services.get(f"{cluster}:{name}")
        if service is None or service.status != "ACTIVE":
            self._fail(
                run,
                "INVALID_ECS_SERVICE",
                f"The ECS service {name} in cluster {cluster} does not exist",
            )
            return
        run.service = service
        if service.deployment_controller.get("type") != "CODE_DEPLOY":
            self._fail(
                run,
                "INVALID_ECS_SERVICE",
                f"The ECS service {name} does not use the CODE_DEPLOY deployment controller",
            )
            return
        problem = self._check_task_definition(ecs, run)
        if problem is not None:
            self._fail(run, "INVALID_REVISION", problem)
            return
        self._ecs.advance(ecs, service)
        run.original = self._ecs.rollout(service)
        self._hook(run, "BeforeInstall")
        if run.info.status != "InProgress":
            return
        run.event = LIFECYCLE.index("Install")
        mark(run, "Install", "InProgress")
        assert run.task_definition is not None
        run.ecs_deployment = self._ecs.deploy(
            ecs,
            service,
            ecs.describe_task_definition(run.task_definition).arn,
            images=run.images,
            is_rollback=run.info.creator == ROLLBACK_CREATOR,
        )

    @staticmethod
    def _check_task_definition(ecs: Any, run: Run) -> str | None:
        try:
            task_definition = ecs.describe_task_definition(run.task_definition)
        except Exception:
            return f"The task definition {run.task_definition} does not exist"
        if task_definition.status != "ACTIVE":
            return f"The task definition {task_definition.arn} is INACTIVE"
        container = next(
            (c for c in task_definition.container_definitions if c.get("name") == run.container),
            None,
        )
        if container is None:
            return (
                f"The container {run.container} does not exist in the task definition "
                f"{task_definition.arn}"
            )
        ports = {p.get("containerPort") for p in container.get("portMappings") or []}
        if run.port not in ports:
            return (
                f"The container {run.container} does not map port {run.port} "
                f"(mapped: {', '.join(str(p) for p in sorted(ports)) or 'none'})"
            )
        return None

    def _install_step(self, run: Run) -> None:
        assert run.service is not None
        ecs = ecs_backends[run.account_id][run.region]
        self._ecs.advance(ecs, run.service)
        view = self._ecs.rollout(run.service, run.ecs_deployment)
        if (
            view is None
            or view.status != "PRIMARY"
            or view.rollout == "FAILED"
            or view.failed_tasks
        ):
            why = (view.failure or view.reason) if view is not None else "it was replaced"
            self._fail(
                run,
                "ECS_UPDATE_ERROR",
                "The ECS service cannot reach a steady state: the replacement task set's tasks "
                f"did not start. {why}",
            )
            return
        if view.rollout == "COMPLETED":
            mark(run, "Install", "Succeeded")
            run.event += 1

    def _hook(self, run: Run, event: str) -> None:
        function = run.hooks.get(event)
        if (
            run.forced is not None
            and event != "BeforeInstall"
            and (function or event == "AfterAllowTraffic")
        ):
            reason, code = run.forced
            run.forced = None
            mark(run, event, "Failed")
            self._fail(run, code, reason)
            return
        mark(run, event, "Succeeded" if function else "Skipped")

    def _fail(self, run: Run, code: str, message: str, *, status: str = "Failed") -> None:
        info = run.info
        info.status = status
        info.complete_time = utcnow()
        run.error = (code, message)
        current = LIFECYCLE[run.event] if run.event < len(LIFECYCLE) else None
        if current is not None and run.events.get(current, {}).get("status") == "InProgress":
            mark(run, current, "Failed")
        self.reroute(run, automatic=status == "Failed")

    def reroute(self, run: Run, *, automatic: bool, requested: bool = False) -> None:
        """Traffic goes back to the original task set."""
        if run.service is None or run.ecs_deployment is None or run.original is None:
            return
        config = run.group.auto_rollback_configuration or {}
        wanted = requested or (
            automatic
            and config.get("enabled")
            and "DEPLOYMENT_FAILURE" in (config.get("events") or [])
        )
        ecs = ecs_backends[run.account_id][run.region]
        if not wanted or run.info.creator == ROLLBACK_CREATOR:
            self._ecs.deploy(
                ecs,
                run.service,
                run.original.task_definition,
                images=run.original.images,
                is_rollback=True,
            )
            return
        backend: CodeDeployBackend = _codedeploy_backend(run.account_id, run.region)
        content = json.dumps(
            {
                "version": 0.0,
                "Resources": [
                    {
                        "TargetService": {
                            "Type": "AWS::ECS::Service",
                            "Properties": {
                                "TaskDefinition": run.original.task_definition,
                                "LoadBalancerInfo": {
                                    "ContainerName": run.container,
                                    "ContainerPort": run.port,
                                },
                            },
                        }
                    }
                ],
            }
        )
        # the rollback is a deployment of its own; a failure meant for the next one waits
        pending = self._fail_next.pop(run.info.deployment_group_name, None)
        rollback_id = backend.create_deployment(
            application_name=run.info.application_name,
            deployment_group_name=run.info.deployment_group_name,
            revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": content}},
            deployment_config_name="CodeDeployDefault.ECSAllAtOnce",
            description=f"Rollback of {run.info.deployment_id}",
        )
        if pending is not None:
            self._fail_next[run.info.deployment_group_name] = pending
        rollback = self._runs[rollback_id]
        rollback.info.creator = ROLLBACK_CREATOR
        rollback.images = run.original.images
        what = "was stopped" if run.info.status == "Stopped" else "failed"
        message = (
            f"Deployment {run.info.deployment_id} {what} and was rolled back by "
            f"deployment {rollback_id}"
        )
        run.rollback = {"rollbackDeploymentId": rollback_id, "rollbackMessage": message}
        rollback.rollback = {
            "rollbackTriggeringDeploymentId": run.info.deployment_id,
            "rollbackMessage": message,
        }


def mark(run: Run, event: str, status: str) -> None:
    """Lifecycle event `event` of `run` is now `status`."""
    now = utcnow()
    entry = run.events.setdefault(event, {"lifecycleEventName": event})
    if status == "InProgress" or "startTime" not in entry:
        entry["startTime"] = now
    if status not in ("Pending", "InProgress"):
        entry["endTime"] = now
    entry["status"] = status


def _codedeploy_backend(account_id: str, region: str) -> CodeDeployBackend:
    return codedeploy_backends[account_id][region]
