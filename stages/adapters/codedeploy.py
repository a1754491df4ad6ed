"""CodeDeploy through one typed adapter: deployment groups, deployments, ECS targets."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from tierup.stages.adapters.aws import is_client_error, raise_translated
from tierup.stages.errors import AwsError

ACTIVE_STATUSES = ("Created", "Queued", "InProgress", "Baking", "Ready")
FINAL_STATUSES = ("Succeeded", "Failed", "Stopped")


class DeploymentGroupMissing(AwsError):
    default_hint = "check codedeploy.application and codedeploy.deployment_group in envs.yaml"


@dataclass(frozen=True)
class DeploymentGroupInfo:
    application: str
    name: str
    compute_platform: str
    config_name: str | None
    ecs_services: tuple[tuple[str, str], ...]  # (cluster, service)


@dataclass(frozen=True)
class DeploymentStatus:
    deployment_id: str
    status: str  # Created | Queued | InProgress | Baking | Ready | Succeeded | Failed | Stopped
    error_code: str | None = None
    error_message: str | None = None
    rollback_deployment_id: str | None = None
    rollback_message: str | None = None
    creator: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class TargetProgress:
    """Where an ECS deployment's lifecycle and traffic shifting stand."""

    lifecycle_event: str | None  # the event in progress (or the last one that ran)
    replacement_traffic: float | None  # percent of traffic on the replacement task set
    failed_event: str | None = None


class CodeDeploy:
    """One account and region's CodeDeploy, through an injected boto3 client."""

    def __init__(self, client: Any) -> None:
        self._cd = client

    def deployment_group(self, application: str, group: str) -> DeploymentGroupInfo:
        try:
            info = self._cd.get_deployment_group(
                applicationName=application, deploymentGroupName=group
            )["deploymentGroupInfo"]
        except Exception as e:
            if is_client_error(
                e, "ApplicationDoesNotExistException", "DeploymentGroupDoesNotExistException"
            ):
                raise DeploymentGroupMissing(
                    f"CodeDeploy deployment group {group!r} of application {application!r} "
                    "does not exist"
                ) from e
            raise_translated(e, f"reading deployment group {application}/{group}")
        return DeploymentGroupInfo(
            application=application,
            name=group,
            compute_platform=str(info.get("computePlatform") or ""),
            config_name=info.get("deploymentConfigName"),
            ecs_services=tuple(
                (str(s.get("clusterName", "")), str(s.get("serviceName", "")))
                for s in info.get("ecsServices") or []
            ),
        )

    def active_deployments(self, application: str, group: str) -> list[str]:
        try:
            out: list[str] = []
            for page in self._cd.get_paginator("list_deployments").paginate(
                applicationName=application,
                deploymentGroupName=group,
                includeOnlyStatuses=list(ACTIVE_STATUSES),
            ):
                out.extend(page.get("deployments", []))
            return out
        except Exception as e:
            raise_translated(e, f"listing the deployments of {application}/{group}")

    def create_deployment(
        self,
        application: str,
        group: str,
        *,
        appspec: str,
        config: str | None,
        description: str,
    ) -> str:
        params: dict[str, Any] = {
            "applicationName": application,
            "deploymentGroupName": group,
            "revision": {
                "revisionType": "AppSpecContent",
                "appSpecContent": {
                    "content": appspec,
                    "sha256": hashlib.sha256(appspec.encode()).hexdigest(),
                },
            },
            "description": description[:512],
        }
        if config:
            params["deploymentConfigName"] = config
        try:
            return str(self._cd.create_deployment(**params)["deploymentId"])
        except Exception as e:
            raise_translated(e, f"creating a deployment of {application}/{group}")

    def get_deployment(self, deployment_id: str) -> DeploymentStatus:
        try:
            info = self._cd.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        except Exception as e:
            raise_translated(e, f"reading deployment {deployment_id}")
        error = info.get("errorInformation") or {}
        rollback = info.get("rollbackInfo") or {}
        return DeploymentStatus(
            deployment_id=deployment_id,
            status=str(info.get("status", "")),
            error_code=error.get("code"),
            error_message=error.get("message"),
            rollback_deployment_id=rollback.get("rollbackDeploymentId"),
            rollback_message=rollback.get("rollbackMessage"),
            creator=info.get("creator"),
        )

    def target_progress(self, deployment_id: str, target_id: str) -> TargetProgress | None:
        """Lifecycle and traffic of an ECS target; None where CodeDeploy does not say."""
        try:
            target = (
                self._cd.get_deployment_target(deploymentId=deployment_id, targetId=target_id)[
                    "deploymentTarget"
                ].get("ecsTarget")
                or {}
            )
        except Exception:
            return None  # progress is a courtesy; the deployment's status is the answer
        events = target.get("lifecycleEvents") or []
        current = next((e for e in events if e.get("status") == "InProgress"), None)
        failed = next((e for e in events if e.get("status") == "Failed"), None)
        ran = [e for e in events if e.get("status") in ("Succeeded", "Skipped")]
        event = current or (ran[-1] if ran else None)
        weight = next(
            (
                float(s["trafficWeight"])
                for s in target.get("taskSetsInfo") or []
                if s.get("taskSetLabel") == "Green" and s.get("trafficWeight") is not None
            ),
            None,
        )
        return TargetProgress(
            lifecycle_event=event.get("lifecycleEventName") if event else None,
            replacement_traffic=weight,
            failed_event=failed.get("lifecycleEventName") if failed else None,
        )

    def stop_deployment(self, deployment_id: str, *, auto_rollback: bool) -> bool:
        """Ask CodeDeploy to stop (and roll back); False when it is done or cannot stop."""
        try:
            self._cd.stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=auto_rollback)
        except Exception as e:
            if is_client_error(
                e,
                "DeploymentAlreadyCompletedException",
                "DeploymentDoesNotExistException",
                "InvalidDeploymentIdException",
                "UnsupportedActionForDeploymentTypeException",
            ):
                return False
            raise_translated(e, f"stopping deployment {deployment_id}")
        return True
