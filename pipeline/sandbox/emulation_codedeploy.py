"""CodeDeploy blue/green deployments of ECS services on moto, as CodeDeploy runs them.

moto 5.2 creates CodeDeploy deployments and leaves them "Created" for ever; it has no
StopDeployment, GetDeploymentTarget or ListDeploymentTargets and never touches ECS.
`install()` wraps moto's own methods (and adds the three operations) so that, seen through
moto's HTTP server, a deployment of an ECS deployment group whose revision is AppSpec content:

- gets an id like CodeDeploy's (`d-` and nine characters); CreateDeployment is refused with
  DeploymentLimitExceededException while the group has an active deployment;
- moves one step each time it is read (GetDeployment, BatchGetDeployments, ListDeployments):
  Created -> InProgress (the AppSpec is checked: one AWS::ECS::Service target, an ACTIVE task
  definition that has the container, the container port mapped; else Failed INVALID_REVISION)
  -> the replacement task set starts as a new PRIMARY deployment of the group's ECS service
  through the ECS emulation (Install) -> the lifecycle hooks -> traffic shifts by the
  deployment configuration (`...ECSAllAtOnce`, `...ECSCanary10Percent5Minutes`,
  `...ECSLinear10PercentEvery1Minutes`, one step per read) -> Succeeded;
- fails (Failed, with errorInformation) when the replacement tasks do not start (images marked
  bad, as by the `sandbox-fail` tag: ECS_UPDATE_ERROR) or when told to
  (`fail_next(group, reason, code)`: the first lifecycle hook after Install fails with it);
  traffic then goes back to the original task set: with the group's automatic rollback a
  rollback deployment (creator codeDeployRollback, rollbackInfo on both) deploys it again with
  the digests it ran, otherwise the service is put back at once;
- waits at Ready before the traffic shift when the group's `deploymentReadyOption` says
  STOP_DEPLOYMENT, until ContinueDeployment (UpdateDeploymentGroup sets that option);
- stops on StopDeployment (Stopped, MANUAL_STOP), rolling back the same way when asked;
- is described by GetDeploymentTarget (lifecycle events and the task sets' traffic weights).
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import yaml
from moto.codedeploy.exceptions import CodeDeployException, DeploymentDoesNotExistException
from moto.codedeploy.models import (
    CodeDeployBackend,
    DeploymentGroup,
    DeploymentInfo,
    codedeploy_backends,
)
from moto.codedeploy.responses import CodeDeployResponse
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ecs.models import Service, ecs_backends
from moto.moto_api._internal import mock_random

if TYPE_CHECKING:
    from tierup.pipeline.sandbox.emulation_core import Emulation, RolloutView

__all__ = ["LIFECYCLE", "CodeDeployEmulation", "install", "traffic_steps"]

LIFECYCLE = (
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "AllowTestTraffic",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AllowTraffic",
    "AfterAllowTraffic",
)
HOOK_EVENTS = frozenset(
    {
        "BeforeInstall",
        "AfterInstall",
        "AfterAllowTestTraffic",
        "BeforeAllowTraffic",
        "AfterAllowTraffic",
    }
)
ACTIVE = ("Created", "Queued", "InProgress", "Baking", "Ready")
ROLLBACK_CREATOR = "codeDeployRollback"


class DeploymentLimitExceededException(CodeDeployException):
    code = "DeploymentLimitExceededException"


class DeploymentAlreadyCompletedException(CodeDeployException):
    code = "DeploymentAlreadyCompletedException"


class DeploymentIsNotInReadyStateException(CodeDeployException):
    code = "DeploymentIsNotInReadyStateException"


def _waits_at_ready(group: DeploymentGroup) -> bool:
    """A blue/green group whose replacement waits for ContinueDeployment before rerouting."""
    option = (group.blue_green_deployment_configuration or {}).get("deploymentReadyOption") or {}
    return bool(option.get("actionOnTimeout") == "STOP_DEPLOYMENT")


class DeploymentTargetDoesNotExistException(CodeDeployException):
    code = "DeploymentTargetDoesNotExistException"


def traffic_steps(config_name: str | None) -> list[int]:
    """Percent of production traffic on the replacement task set after each shift."""
    name = config_name or ""
    canary = re.search(r"Canary(\d+)Percent", name)
    if canary:
        return [int(canary.group(1)), 100]
    linear = re.search(r"Linear(\d+)Percent", name)
    if linear:
        step = max(1, int(linear.group(1)))
        return [*range(step, 100, step), 100]
    return [100]


def _deployment_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "d-" + "".join(mock_random.choice(alphabet) for _ in range(9))


@dataclass(eq=False)
class _Run:
    info: DeploymentInfo
    account_id: str
    region: str
    group: DeploymentGroup
    task_definition: str | None = None
    container: str | None = None
    port: int | None = None
    hooks: dict[str, str] = field(default_factory=dict)
    service: Service | None = None
    images: Any = None  # what a rollback deploys: the original deployment's resolved images
    original: RolloutView | None = None
    ecs_deployment: str | None = None
    event: int = 0
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: list[int] = field(default_factory=list)
    shifted: int = 0
    error: tuple[str, str] | None = None
    rollback: dict[str, str] = field(default_factory=dict)
    forced: tuple[str, str] | None = None
    invalid: str | None = None
    ready_done: bool = False  # ContinueDeployment let it past Ready

    @property
    def traffic(self) -> int:
        return self.steps[self.shifted - 1] if self.shifted else 0

    @property
    def target_id(self) -> str:
        if self.service is None:
            return ""
        return f"{self.service.cluster_name}:{self.service.name}"


class CodeDeployEmulation:
    """State and settings of the CodeDeploy part of the emulation."""

    def __init__(self, ecs: Emulation) -> None:
        self._ecs = ecs
        self._runs: dict[str, _Run] = {}
        self._fail_next: dict[str, tuple[str, str]] = {}

    # -- settings ---------------------------------------------------------------------------

    def fail_next(self, deployment_group: str, reason: str, *, code: str) -> None:
        """The next deployment of `deployment_group` fails after Install with `code`: `reason`."""
        with self._ecs.lock:
            self._fail_next[deployment_group] = (reason, code)

    def reset(self) -> None:
        with self._ecs.lock:
            self._runs.clear()
            self._fail_next.clear()

    def install(self) -> None:
        wrap = self._ecs.wrap
        wrap(CodeDeployBackend, "create_deployment", self._create_deployment)
        wrap(CodeDeployBackend, "get_deployment", self._get_deployment)
        wrap(CodeDeployBackend, "batch_get_deployments", self._batch_get_deployments)
        wrap(CodeDeployBackend, "list_deployments", self._list_deployments)
        wrap(CodeDeployResponse, "get_deployment", self._response_deployment)
        wrap(CodeDeployResponse, "batch_get_deployments", self._response_deployments)
        add = self._ecs.add_method
        add(CodeDeployResponse, "stop_deployment", self._stop_deployment)
        add(CodeDeployResponse, "continue_deployment", self._continue_deployment)
        add(CodeDeployResponse, "update_deployment_group", self._update_deployment_group)
        add(CodeDeployResponse, "get_deployment_target", self._get_deployment_target)
        add(CodeDeployResponse, "list_deployment_targets", self._list_deployment_targets)

    # -- creating ---------------------------------------------------------------------------

    def _create_deployment(
        self, original: Any, backend: CodeDeployBackend, args: dict[str, Any]
    ) -> str:
        app, group_name = args["application_name"], args["deployment_group_name"]
        for run in self._runs.values():
            info = run.info
            if (
                run.account_id == backend.account_id
                and run.region == backend.region_name
                and info.application_name == app
                and info.deployment_group_name == group_name
                and info.status in ACTIVE
            ):
                raise DeploymentLimitExceededException(
                    f"The Deployment Group '{group_name}' already has an active Deployment "
                    f"'{info.deployment_id}'"
                )
        moto_id: str = original(**args)
        info = backend.deployments.pop(moto_id)
        info.deployment_id = _deployment_id()
        backend.deployments[info.deployment_id] = info
        run = _Run(info, backend.account_id, backend.region_name, info.deployment_group)
        run.forced = self._fail_next.pop(group_name, None)
        self._read_revision(run, args.get("revision") or {})
        self._runs[info.deployment_id] = run
        return info.deployment_id

    @staticmethod
    def _read_revision(run: _Run, revision: dict[str, Any]) -> None:
        kind = revision.get("revisionType")
        if kind not in ("AppSpecContent", "String"):
            run.invalid = f"revision type {kind} cannot be read by the sandbox; use AppSpecContent"
            return
        holder = revision.get("appSpecContent") or revision.get("string") or {}
        text = holder.get("content") if isinstance(holder, dict) else None
        try:
            spec = (
                json.loads(text)
                if text and text.lstrip().startswith("{")
                else yaml.safe_load(text or "")
            )
        except (ValueError, yaml.YAMLError) as e:
            run.invalid = f"The AppSpec file cannot be parsed: {e}"
            return
        resources = spec.get("Resources") if isinstance(spec, dict) else None
        targets = [
            next(iter(r.values()))
            for r in resources or []
            if isinstance(r, dict) and len(r) == 1 and isinstance(next(iter(r.values())), dict)
        ]
        if len(targets) != 1 or targets[0].get("Type") != "AWS::ECS::Service":
            run.invalid = (
                "The AppSpec file must name exactly one resource of type AWS::ECS::Service"
            )
            return
        props = targets[0].get("Properties") or {}
        lb = props.get("LoadBalancerInfo") or {}
        run.task_definition = props.get("TaskDefinition")
        run.container = lb.get("ContainerName")
        port = lb.get("ContainerPort")
        run.port = int(port) if isinstance(port, int | str) and str(port).isdigit() else None
        if not run.task_definition or not run.container or run.port is None:
            run.invalid = (
                "The AppSpec file's AWS::ECS::Service needs Properties.TaskDefinition and "
                "LoadBalancerInfo.ContainerName and ContainerPort"
            )
            return
        for hook in spec.get("Hooks") or []:
            if isinstance(hook, dict):
                for event, function in hook.items():
                    if event not in HOOK_EVENTS:
                        run.invalid = f"The AppSpec file names an unknown lifecycle hook {event}"
                        return
                    run.hooks[str(event)] = str(function)

    # -- reading ----------------------------------------------------------------------------

    def _get_deployment(
        self, original: Any, backend: CodeDeployBackend, args: dict[str, Any]
    ) -> DeploymentInfo:
        info: DeploymentInfo = original(**args)
        self._advance(backend, info.deployment_id)
        return info

    def _batch_get_deployments(
        self, original: Any, backend: CodeDeployBackend, args: dict[str, Any]
    ) -> list[DeploymentInfo]:
        infos: list[DeploymentInfo] = original(**args)
        for info in infos:
            self._advance(backend, info.deployment_id)
        return infos

    def _list_deployments(
        self, original: Any, backend: CodeDeployBackend, args: dict[str, Any]
    ) -> list[str]:
        for run in list(self._runs.values()):
            if run.account_id == backend.account_id and run.region == backend.region_name:
                self._advance(backend, run.info.deployment_id)
        return original(**args)  # type: ignore[no-any-return]

    def _response_deployment(
        self, original: Any, response: CodeDeployResponse, args: dict[str, Any]
    ) -> Any:
        result = original(**args)
        self._enrich(result.result.get("deploymentInfo"))
        return result

    def _response_deployments(
        self, original: Any, response: CodeDeployResponse, args: dict[str, Any]
    ) -> Any:
        result = original(**args)
        for doc in result.result.get("deploymentsInfo", []):
            self._enrich(doc)
        return result

    def _enrich(self, doc: dict[str, Any] | None) -> None:
        if not doc:
            return
        run = self._runs.get(doc.get("deploymentId", ""))
        if run is None:
            return
        if run.error is not None:
            doc["errorInformation"] = {"code": run.error[0], "message": run.error[1]}
        else:
            doc.pop("errorInformation", None)
        if run.rollback:
            doc["rollbackInfo"] = dict(run.rollback)
        else:
            doc.pop("rollbackInfo", None)
        overview = {"Pending": 0, "InProgress": 0, "Succeeded": 0, "Failed": 0, "Skipped": 0}
        status = run.info.status
        key = {"Succeeded": "Succeeded", "Failed": "Failed", "Stopped": "Failed"}.get(
            status, "InProgress" if status == "InProgress" else "Pending"
        )
        overview[key] = 1
        doc["deploymentOverview"] = overview

    # -- progress ---------------------------------------------------------------------------

    def _advance(self, backend: CodeDeployBackend, deployment_id: str) -> None:
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
                self._mark(run, "AllowTraffic", "Succeeded")
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
                    self._mark(run, event, "Succeeded")
                else:
                    self._hook(run, event)
                if info.status != "InProgress":
                    return
            if run.event < len(LIFECYCLE) and LIFECYCLE[run.event] == "AllowTraffic":
                # a rollback puts the original back without waiting
                rollback = run.info.creator == ROLLBACK_CREATOR
                if _waits_at_ready(run.group) and not run.ready_done and not rollback:
                    info.status = "Ready"
                    return
                self._mark(run, "AllowTraffic", "InProgress")

    def _begin(self, run: _Run) -> None:
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
        self._mark(run, "Install", "InProgress")
        assert run.task_definition is not None
        run.ecs_deployment = self._ecs.deploy(
            ecs,
            service,
            ecs.describe_task_definition(run.task_definition).arn,
            images=run.images,
            is_rollback=run.info.creator == ROLLBACK_CREATOR,
        )

    @staticmethod
    def _check_task_definition(ecs: Any, run: _Run) -> str | None:
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

    def _install_step(self, run: _Run) -> None:
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
            self._mark(run, "Install", "Succeeded")
            run.event += 1

    def _hook(self, run: _Run, event: str) -> None:
        function = run.hooks.get(event)
        if (
            run.forced is not None
            and event != "BeforeInstall"
            and (function or event == "AfterAllowTraffic")
        ):
            reason, code = run.forced
            run.forced = None
            self._mark(run, event, "Failed")
            self._fail(run, code, reason)
            return
        self._mark(run, event, "Succeeded" if function else "Skipped")

    @staticmethod
    def _mark(run: _Run, event: str, status: str) -> None:
        now = utcnow()
        entry = run.events.setdefault(event, {"lifecycleEventName": event})
        if status == "InProgress" or "startTime" not in entry:
            entry["startTime"] = now
        if status not in ("Pending", "InProgress"):
            entry["endTime"] = now
        entry["status"] = status

    def _fail(self, run: _Run, code: str, message: str, *, status: str = "Failed") -> None:
        info = run.info
        info.status = status
        info.complete_time = utcnow()
        run.error = (code, message)
        current = LIFECYCLE[run.event] if run.event < len(LIFECYCLE) else None
        if current is not None and run.events.get(current, {}).get("status") == "InProgress":
            self._mark(run, current, "Failed")
        self._reroute(run, automatic=status == "Failed")

    def _reroute(self, run: _Run, *, automatic: bool, requested: bool = False) -> None:
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

    # -- operations moto lacks --------------------------------------------------------------

    def _stop_deployment(self, response: CodeDeployResponse) -> ActionResult:
        deployment_id = response._get_param("deploymentId")
        auto_rollback = bool(response._get_param("autoRollbackEnabled"))
        _known(response.codedeploy_backend, deployment_id)
        run = self._runs.get(deployment_id)
        if run is None or run.info.status not in ACTIVE:
            raise DeploymentAlreadyCompletedException(
                f"The deployment {deployment_id} has already completed."
            )
        run.info.status = "Stopped"
        run.info.complete_time = utcnow()
        run.error = ("MANUAL_STOP", "The deployment was stopped by a user request.")
        self._reroute(run, automatic=False, requested=auto_rollback)
        return ActionResult(
            {"status": "Pending", "statusMessage": f"Stopping deployment {deployment_id}"}
        )

    def _continue_deployment(self, response: CodeDeployResponse) -> ActionResult:
        deployment_id = response._get_param("deploymentId")
        _known(response.codedeploy_backend, deployment_id)
        run = self._runs.get(deployment_id)
        if run is None or run.info.status != "Ready":
            raise DeploymentIsNotInReadyStateException(
                f"The deployment {deployment_id} is not in a ready state."
            )
        run.ready_done = True
        run.info.status = "InProgress"
        self._mark(run, "AllowTraffic", "InProgress")
        return ActionResult({})

    def _update_deployment_group(self, response: CodeDeployResponse) -> ActionResult:
        """The blue/green settings and deployment configuration of a group (what tests set)."""
        group = response.codedeploy_backend.get_deployment_group(
            response._get_param("applicationName"),
            response._get_param("currentDeploymentGroupName"),
        )
        blue_green = response._get_param("blueGreenDeploymentConfiguration")
        if blue_green is not None:
            group.blue_green_deployment_configuration = blue_green
        config = response._get_param("deploymentConfigName")
        if config is not None:
            group.deployment_config_name = config
        return ActionResult({"hooksNotCleanedUp": []})

    def _find_target(self, response: CodeDeployResponse) -> _Run:
        deployment_id = response._get_param("deploymentId")
        _known(response.codedeploy_backend, deployment_id)
        run = self._runs.get(deployment_id)
        if run is None or run.service is None:
            raise DeploymentTargetDoesNotExistException(
                f"The deployment {deployment_id} has no ECS target"
            )
        return run

    def _list_deployment_targets(self, response: CodeDeployResponse) -> ActionResult:
        run = self._find_target(response)
        return ActionResult({"targetIds": [run.target_id]})

    def _get_deployment_target(self, response: CodeDeployResponse) -> ActionResult:
        run = self._find_target(response)
        target_id = response._get_param("targetId")
        if target_id and target_id != run.target_id:
            raise DeploymentTargetDoesNotExistException(f"The target {target_id} does not exist")
        assert run.service is not None
        weight = float(run.traffic)
        sets: list[dict[str, Any]] = []
        if run.original is not None:
            sets.append(self._task_set(run, run.original.id, "Blue", 100.0 - weight, "ACTIVE"))
        if run.ecs_deployment is not None:
            sets.append(self._task_set(run, run.ecs_deployment, "Green", weight, "PRIMARY"))
        status = {"Created": "Pending", "Stopped": "Failed"}.get(
            run.info.status, "InProgress" if run.info.status in ACTIVE else run.info.status
        )
        now: datetime = utcnow()
        return ActionResult(
            {
                "deploymentTarget": {
                    "deploymentTargetType": "ECSTarget",
                    "ecsTarget": {
                        "deploymentId": run.info.deployment_id,
                        "targetId": run.target_id,
                        "targetArn": run.service.arn,
                        "lastUpdatedAt": now,
                        "lifecycleEvents": [run.events[e] for e in LIFECYCLE if e in run.events],
                        "status": status,
                        "taskSetsInfo": sets,
                    },
                }
            }
        )

    def _task_set(
        self, run: _Run, deployment_id: str, label: str, weight: float, status: str
    ) -> dict[str, Any]:
        assert run.service is not None
        view = self._ecs.rollout(run.service, deployment_id)
        return {
            "identifer": deployment_id,
            "desiredCount": view.desired if view else 0,
            "pendingCount": 0,
            "runningCount": view.running if view else 0,
            "status": status,
            "trafficWeight": weight,
            "targetGroup": {"name": f"{run.service.name}-{label.lower()}"},
            "taskSetLabel": label,
        }


def _known(backend: CodeDeployBackend, deployment_id: str) -> None:
    """Raise as GetDeployment does for an unknown id, without moving the deployment on."""
    if deployment_id not in backend.deployments:
        raise DeploymentDoesNotExistException(
            f"The deployment {deployment_id} does not exist with the user or AWS account."
        )


def _codedeploy_backend(account_id: str, region: str) -> CodeDeployBackend:
    return codedeploy_backends[account_id][region]


def install(ecs: Emulation) -> CodeDeployEmulation:
    part = CodeDeployEmulation(ecs)
    part.install()
    return part
