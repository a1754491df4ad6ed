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

This module answers CodeDeploy's operations; a deployment's lifecycle is
`codedeploy_lifecycle`, its revision `codedeploy_appspec`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from moto.codedeploy.exceptions import CodeDeployException, DeploymentDoesNotExistException
from moto.codedeploy.models import CodeDeployBackend, DeploymentInfo
from moto.codedeploy.responses import CodeDeployResponse
from moto.core.responses import ActionResult
from moto.core.utils import utcnow

from tierup.pipeline.sandbox.emulation.codedeploy_appspec import read_revision
from tierup.pipeline.sandbox.emulation.codedeploy_lifecycle import Lifecycle, mark
from tierup.pipeline.sandbox.emulation.codedeploy_runs import (
    ACTIVE,
    LIFECYCLE,
    Run,
    new_deployment_id,
)
from tierup.pipeline.sandbox.emulation.ecs import Emulation

__all__ = ["CodeDeployEmulation", "install"]


class DeploymentLimitExceededException(CodeDeployException):
    code = "DeploymentLimitExceededException"


class DeploymentAlreadyCompletedException(CodeDeployException):
    code = "DeploymentAlreadyCompletedException"


class DeploymentIsNotInReadyStateException(CodeDeployException):
    code = "DeploymentIsNotInReadyStateException"


class DeploymentTargetDoesNotExistException(CodeDeployException):
    code = "DeploymentTargetDoesNotExistException"


class CodeDeployEmulation:
    """State and settings of the CodeDeploy part of the emulation."""

    def __init__(self, ecs: Emulation) -> None:
        self._ecs = ecs
        self._runs: dict[str, Run] = {}
        self._fail_next: dict[str, tuple[str, str]] = {}
        self._lifecycle = Lifecycle(ecs, self._runs, self._fail_next)

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
        info.deployment_id = new_deployment_id()
        backend.deployments[info.deployment_id] = info
        run = Run(info, backend.account_id, backend.region_name, info.deployment_group)
        run.forced = self._fail_next.pop(group_name, None)
        read_revision(run, args.get("revision") or {})
        self._runs[info.deployment_id] = run
        return info.deployment_id

    # -- reading ----------------------------------------------------------------------------

    def _get_deployment(
        self, original: Any, backend: CodeDeployBackend, args: dict[str, Any]
    ) -> DeploymentInfo:
        info: DeploymentInfo = original(**args)
        self._lifecycle.advance(backend, info.deployment_id)
        return info

    def _batch_get_deployments(
        self, original: Any, backend: CodeDeployBackend, args: dict[str, Any]
    ) -> list[DeploymentInfo]:
        infos: list[DeploymentInfo] = original(**args)
        for info in infos:
            self._lifecycle.advance(backend, info.deployment_id)
        return infos

    def _list_deployments(
        self, original: Any, backend: CodeDeployBackend, args: dict[str, Any]
    ) -> list[str]:
        for run in list(self._runs.values()):
            if run.account_id == backend.account_id and run.region == backend.region_name:
                self._lifecycle.advance(backend, run.info.deployment_id)
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
        self._lifecycle.reroute(run, automatic=False, requested=auto_rollback)
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
        mark(run, "AllowTraffic", "InProgress")
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

    def _find_target(self, response: CodeDeployResponse) -> Run:
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
        self, run: Run, deployment_id: str, label: str, weight: float, status: str
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


def install(ecs: Emulation) -> CodeDeployEmulation:
    part = CodeDeployEmulation(ecs)
    part.install()
    return part
