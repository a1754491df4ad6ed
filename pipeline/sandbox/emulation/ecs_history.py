"""ECS's service deployment history on moto: ListServiceDeployments, DescribeServiceDeployments
and DescribeServiceRevisions, answered from the deployments the emulation rolls out.

moto has none of the three (ListServiceDeployments answers HTTP 500). Every deployment the
emulation starts, whoever asked for it (tierup, the aws CLI, a CloudFormation stack, CodeDeploy,
ECS's own circuit breaker), is a service deployment whose target is a service revision: the task
definition and the image digests that deployment resolved. Its status follows the rollout:

- IN_PROGRESS while it rolls out, SUCCESSFUL once COMPLETED;
- STOPPED when a newer deployment replaced it before it completed, or when it FAILED without a
  rollback;
- ROLLBACK_IN_PROGRESS / ROLLBACK_SUCCESSFUL / ROLLBACK_FAILED when ECS's circuit breaker rolls
  it back (the rollback belongs to the failed deployment, as on ECS, and is not listed apart).

``sourceServiceRevisions`` are the revisions that ran when the deployment started: what ran
before it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from moto.core.responses import ActionResult
from moto.ecs.exceptions import InvalidParameterException
from moto.ecs.models import EC2ContainerServiceBackend, Service
from moto.ecs.responses import EC2ContainerServiceResponse

if TYPE_CHECKING:
    from tierup.pipeline.sandbox.emulation.ecs import Emulation
    from tierup.pipeline.sandbox.emulation.ecs_deployments import Deployment

MAX_RESULTS = 20  # ListServiceDeployments' page size when the caller gives none


def _number(deployment_id: str) -> str:
    return deployment_id.rsplit("/", 1)[-1]


def _arn(kind: str, service: Service, deployment_id: str) -> str:
    # arn:aws:ecs:<region>:<account>:service-deployment/<cluster>/<service>/<id>
    prefix = str(service.arn).split(":service/", 1)[0]
    return f"{prefix}:{kind}/{service.cluster_name}/{service.name}/{_number(deployment_id)}"


def deployment_arn(service: Service, deployment_id: str) -> str:
    return _arn("service-deployment", service, deployment_id)


def revision_arn(service: Service, deployment_id: str) -> str:
    return _arn("service-revision", service, deployment_id)


class History:
    """The three operations, added to moto's ECS responses."""

    def __init__(self, ecs: Emulation) -> None:
        self._ecs = ecs

    def install(self) -> None:
        add = self._ecs.add_method
        add(EC2ContainerServiceResponse, "list_service_deployments", self._list)
        add(EC2ContainerServiceResponse, "describe_service_deployments", self._describe)
        add(EC2ContainerServiceResponse, "describe_service_revisions", self._revisions)

    # -- reading the emulation ---------------------------------------------------------------

    def _services(self, backend: EC2ContainerServiceBackend) -> list[Service]:
        return list(backend.services.values())

    def _status(
        self, deployment: Deployment, history: list[Deployment], primary: Deployment | None
    ) -> tuple[str, str]:
        if deployment.rollout == "COMPLETED":
            return "SUCCESSFUL", f"ECS deployment {deployment.id} completed."
        if deployment.rollout == "FAILED":
            rollback = next((d for d in history if d.rollback_of == deployment.id), None)
            if rollback is None:
                return "STOPPED", deployment.reason or "the deployment failed"
            state = {
                "COMPLETED": "ROLLBACK_SUCCESSFUL",
                "FAILED": "ROLLBACK_FAILED",
            }.get(rollback.rollout, "ROLLBACK_IN_PROGRESS")
            return state, deployment.reason
        if primary is not None and primary.id == deployment.id:
            return "IN_PROGRESS", deployment.reason
        return "STOPPED", "a newer deployment replaced it before it completed"

    def _shown(self, history: list[Deployment]) -> list[Deployment]:
        # a circuit breaker's rollback is part of the deployment it rolls back
        return [d for d in history if not d.is_rollback]

    def _find(
        self, backend: EC2ContainerServiceBackend, arn: str, kind: str
    ) -> tuple[Service, Deployment, list[Deployment], Deployment | None] | None:
        for service in self._services(backend):
            history, primary = self._ecs.history(backend, service)
            for d in history:
                if _arn(kind, service, d.id) == arn:
                    return service, d, history, primary
        return None

    # -- the operations ----------------------------------------------------------------------

    def _list(self, response: EC2ContainerServiceResponse) -> ActionResult:
        backend = response.ecs_backend
        service = backend._get_service(
            response._get_param("cluster") or "default", response._get_param("service")
        )
        history, primary = self._ecs.history(backend, service)
        wanted = set(response._get_param("status") or [])
        rows = []
        for d in self._shown(history):
            status, reason = self._status(d, history, primary)
            if wanted and status not in wanted:
                continue
            rows.append(
                {
                    "serviceDeploymentArn": deployment_arn(service, d.id),
                    "serviceArn": service.arn,
                    "clusterArn": backend._get_cluster(service.cluster_name).arn,
                    "createdAt": d.created_at,
                    "startedAt": d.created_at,
                    **({"finishedAt": d.updated_at} if status != "IN_PROGRESS" else {}),
                    "targetServiceRevisionArn": revision_arn(service, d.id),
                    "status": status,
                    "statusReason": reason,
                }
            )
        size = int(response._get_param("maxResults") or MAX_RESULTS)
        start = int(response._get_param("nextToken") or 0)
        page = rows[start : start + size]
        out: dict[str, Any] = {"serviceDeployments": page}
        if start + size < len(rows):
            out["nextToken"] = str(start + size)
        return ActionResult(out)

    def _describe(self, response: EC2ContainerServiceResponse) -> ActionResult:
        backend = response.ecs_backend
        arns = response._get_param("serviceDeploymentArns") or []
        if len(arns) > 20:
            raise InvalidParameterException("at most 20 service deployments per call")
        found, failures = [], []
        for arn in arns:
            hit = self._find(backend, arn, "service-deployment")
            if hit is None:
                failures.append({"arn": arn, "reason": "MISSING"})
                continue
            service, d, history, primary = hit
            by_id = {h.id: h for h in history}
            status, reason = self._status(d, history, primary)
            doc: dict[str, Any] = {
                "serviceDeploymentArn": arn,
                "serviceArn": service.arn,
                "clusterArn": backend._get_cluster(service.cluster_name).arn,
                "createdAt": d.created_at,
                "startedAt": d.created_at,
                "updatedAt": d.updated_at,
                "sourceServiceRevisions": [
                    {
                        "arn": revision_arn(service, s),
                        "requestedTaskCount": by_id[s].desired if s in by_id else 0,
                        "runningTaskCount": by_id[s].count("RUNNING") if s in by_id else 0,
                        "pendingTaskCount": by_id[s].count("PENDING") if s in by_id else 0,
                    }
                    for s in d.sources
                ],
                "targetServiceRevision": {
                    "arn": revision_arn(service, d.id),
                    "requestedTaskCount": d.desired,
                    "runningTaskCount": d.count("RUNNING"),
                    "pendingTaskCount": d.count("PENDING"),
                },
                "status": status,
                "statusReason": reason,
                "deploymentConfiguration": getattr(service, "deployment_configuration", {}) or {},
            }
            if status != "IN_PROGRESS":
                doc["finishedAt"] = d.updated_at
            rollback = next((h for h in history if h.rollback_of == d.id), None)
            if rollback is not None:
                doc["rollback"] = {
                    "reason": d.reason,
                    "startedAt": rollback.created_at,
                    "serviceRevisionArn": revision_arn(service, d.sources[0])
                    if d.sources
                    else revision_arn(service, rollback.id),
                }
            found.append(doc)
        return ActionResult({"serviceDeployments": found, "failures": failures})

    def _revisions(self, response: EC2ContainerServiceResponse) -> ActionResult:
        backend = response.ecs_backend
        arns = response._get_param("serviceRevisionArns") or []
        if len(arns) > 20:
            raise InvalidParameterException("at most 20 service revisions per call")
        found, failures = [], []
        for arn in arns:
            hit = self._find(backend, arn, "service-revision")
            if hit is None:
                failures.append({"arn": arn, "reason": "MISSING"})
                continue
            service, d, _history, _primary = hit
            doc: dict[str, Any] = {
                "serviceRevisionArn": arn,
                "serviceArn": service.arn,
                "clusterArn": backend._get_cluster(service.cluster_name).arn,
                "taskDefinition": d.task_definition,
                "containerImages": [
                    {
                        "containerName": i.container,
                        "image": i.image,
                        **({"imageDigest": i.digest} if i.digest else {}),
                    }
                    for i in d.images
                ],
                "createdAt": d.created_at,
            }
            if d.launch_type:
                doc["launchType"] = d.launch_type
            if d.network_configuration:
                doc["networkConfiguration"] = d.network_configuration
            found.append(doc)
        return ActionResult({"serviceRevisions": found, "failures": failures})


def install(ecs: Emulation) -> History:
    history = History(ecs)
    history.install()
    return history


__all__ = ["History", "deployment_arn", "install", "revision_arn"]
