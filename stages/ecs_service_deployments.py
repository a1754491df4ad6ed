"""ECS's service deployments: where one stands, a service's newest, stopping and continuing it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierup.stages.adapters.aws import is_client_error, raise_translated
from tierup.stages.deploy import DeployError

RUNNING = frozenset({"PENDING", "IN_PROGRESS", "STOP_REQUESTED", "ROLLBACK_REQUESTED"})
# a deployment a rollback can still stop (a paused one is IN_PROGRESS)
STOPPABLE = frozenset({"PENDING", "IN_PROGRESS"})


@dataclass(frozen=True)
class ServiceDeployment:
    """Where one ECS service deployment stands."""

    arn: str
    status: str
    reason: str = ""
    stage: str | None = None
    traffic: float | None = None  # the new revision's share of production traffic
    paused: str | None = None  # the id of the PAUSE hook it waits at
    sources: tuple[str, ...] = ()  # the service revisions it deploys from

    @property
    def running(self) -> bool:
        return self.status in RUNNING or self.status == "ROLLBACK_IN_PROGRESS"

    def describe(self) -> str:
        words = [f"service deployment {self.status}"]
        if self.stage:
            words.append(f"stage {self.stage}")
        if self.traffic is not None:
            words.append(f"{self.traffic:g}% of production traffic")
        return ", ".join(words)


def read(ecs: Any, arn: str) -> ServiceDeployment:
    """DescribeServiceDeployments of one deployment."""
    try:
        resp = ecs.describe_service_deployments(serviceDeploymentArns=[arn])
    except Exception as e:
        raise_translated(e, f"describing service deployment {arn}")
    for d in resp.get("serviceDeployments") or []:
        if d.get("serviceDeploymentArn") == arn:
            target = d.get("targetServiceRevision") or {}
            weight = target.get("requestedProductionTrafficWeight")
            paused = next(
                (
                    str(h.get("hookId") or "")
                    for h in d.get("lifecycleHookDetails") or []
                    if h.get("status") == "AWAITING_ACTION"
                ),
                None,
            )
            return ServiceDeployment(
                arn=arn,
                status=str(d.get("status") or ""),
                reason=str(d.get("statusReason") or ""),
                stage=d.get("lifecycleStage"),
                traffic=float(weight) if weight is not None else None,
                paused=paused,
                sources=tuple(
                    str(r["arn"]) for r in d.get("sourceServiceRevisions") or [] if r.get("arn")
                ),
            )
    raise DeployError(f"service deployment {arn} not found", hint="was the service deleted?")


def latest(ecs: Any, cluster: str, service: str) -> ServiceDeployment | None:
    """The newest service deployment of ``service`` (ListServiceDeployments, newest first)."""
    try:
        resp = ecs.list_service_deployments(cluster=cluster, service=service, maxResults=1)
    except Exception as e:
        raise_translated(e, f"listing the deployments of service {service} in {cluster}")
    rows = resp.get("serviceDeployments") or []
    if not rows:
        return None
    return read(ecs, str(rows[0]["serviceDeploymentArn"]))


def stop(ecs: Any, arn: str, *, rollback: bool) -> bool:
    """StopServiceDeployment; False when it had already ended."""
    try:
        ecs.stop_service_deployment(
            serviceDeploymentArn=arn, stopType="ROLLBACK" if rollback else "ABORT"
        )
    except Exception as e:
        if is_client_error(e, "InvalidParameterException", "ConflictException"):
            return False
        raise_translated(e, f"stopping service deployment {arn}")
    return True


def resume(ecs: Any, arn: str, hook_id: str | None) -> None:
    """ContinueServiceDeployment at the PAUSE hook the deployment waits at."""
    params: dict[str, Any] = {"serviceDeploymentArn": arn, "action": "CONTINUE"}
    if hook_id:
        params["hookId"] = hook_id
    try:
        ecs.continue_service_deployment(**params)
    except Exception as e:
        raise_translated(e, f"continuing service deployment {arn}")
