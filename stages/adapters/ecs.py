"""ECS through one typed adapter: services, deployments, task definitions, tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from tierup.stages.adapters.aws import is_client_error, raise_translated
from tierup.stages.errors import AwsError
from tierup.stages.parallel import each
from tierup.stages.types import (
    ContainerImage,
    Deployment,
    ServiceDeploymentRecord,
    ServiceEvent,
    ServiceRevision,
    ServiceState,
    TaskDefinition,
    TaskImage,
)

DESCRIBE_SERVICES_MAX = 10
DESCRIBE_TASKS_MAX = 100
DESCRIBE_SERVICE_REVISIONS_MAX = 20
# a cluster's services or tasks are described this many chunks at a time
MAX_CHUNKS_AT_ONCE = 8

T = TypeVar("T")
HISTORY_OPERATION = "ListServiceDeployments"


class ServiceMissing(AwsError):
    default_hint = "check the service names in envs.yaml, or create the service"


class ClusterMissing(AwsError):
    default_hint = "check the cluster name and region in envs.yaml, or create the cluster"


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _per_chunk(call: Callable[[list[str]], T], items: list[str], size: int) -> list[T]:
    """``call`` on each chunk of at most ``size`` items, the chunks at once; answers in order."""
    return each(call, _chunks(items, size), MAX_CHUNKS_AT_ONCE)


def _deployment(d: dict[str, Any]) -> Deployment:
    return Deployment(
        id=str(d.get("id", "")),
        status=str(d.get("status", "")),
        task_definition=str(d.get("taskDefinition", "")),
        rollout_state=d.get("rolloutState"),
        desired=int(d.get("desiredCount", 0)),
        running=int(d.get("runningCount", 0)),
        pending=int(d.get("pendingCount", 0)),
        failed_tasks=int(d.get("failedTasks", 0)),
        reason=d.get("rolloutStateReason"),
        created_at=d.get("createdAt"),
    )


def _service(s: dict[str, Any], cluster: str) -> ServiceState:
    controller = (s.get("deploymentController") or {}).get("type", "ECS")
    return ServiceState(
        name=str(s["serviceName"]),
        arn=str(s.get("serviceArn", "")),
        cluster=cluster,
        status=str(s.get("status", "")),
        task_definition=str(s.get("taskDefinition", "")),
        desired=int(s.get("desiredCount", 0)),
        running=int(s.get("runningCount", 0)),
        deployments=tuple(_deployment(d) for d in s.get("deployments", [])),
        deployment_controller=str(controller),
        events=tuple(
            ServiceEvent(created_at=e.get("createdAt"), message=str(e.get("message", "")))
            for e in (s.get("events") or [])[:10]
        ),
    )


def task_definition_from(
    td: dict[str, Any], tags: list[dict[str, str]] | None = None
) -> TaskDefinition:
    raw = dict(td)
    if tags:
        raw["tags"] = tags
    return TaskDefinition(
        arn=str(td["taskDefinitionArn"]),
        family=str(td["family"]),
        revision=int(td["revision"]),
        status=str(td.get("status", "ACTIVE")),
        containers=tuple(
            ContainerImage(name=str(c["name"]), image=str(c.get("image", "")))
            for c in td.get("containerDefinitions", [])
        ),
        raw=raw,
    )


class Ecs:
    """One account and region's ECS, through an injected boto3 ECS client."""

    def __init__(self, client: Any) -> None:
        self._ecs = client
        self._history_offered: bool | None = None

    @property
    def client(self) -> Any:
        return self._ecs

    def describe_services(
        self, cluster: str, names: list[str], *, allow_missing: bool = False
    ) -> dict[str, ServiceState]:
        """Services by name; raise ServiceMissing/ClusterMissing for what does not exist.

        With ``allow_missing`` the missing services are simply absent from the answer.
        """
        found: dict[str, ServiceState] = {}
        missing: list[str] = []

        def describe(chunk: list[str]) -> dict[str, Any]:
            try:
                resp: dict[str, Any] = self._ecs.describe_services(cluster=cluster, services=chunk)
                return resp
            except Exception as e:
                if is_client_error(e, "ClusterNotFoundException"):
                    raise ClusterMissing(f"cluster {cluster!r} does not exist") from e
                raise_translated(e, f"describing services of cluster {cluster}")

        for resp in _per_chunk(describe, names, DESCRIBE_SERVICES_MAX):
            for s in resp.get("services", []):
                if s.get("status") == "INACTIVE":
                    missing.append(str(s["serviceName"]))
                    continue
                found[str(s["serviceName"])] = _service(s, cluster)
            for f in resp.get("failures", []):
                reason = str(f.get("reason", ""))
                arn = str(f.get("arn", ""))
                if reason == "MISSING" or "ClusterNotFound" in reason:
                    if "cluster" in reason.lower():
                        raise ClusterMissing(f"cluster {cluster!r} does not exist")
                    missing.append(arn.rsplit("/", 1)[-1])
        missing += [n for n in names if n not in found and n not in missing]
        if missing and not found and not self.cluster_exists(cluster):
            raise ClusterMissing(f"cluster {cluster!r} does not exist")
        if missing and not allow_missing:
            raise ServiceMissing(
                f"service(s) {', '.join(sorted(set(missing)))} not found in cluster {cluster!r}"
            )
        return found

    def cluster_exists(self, cluster: str) -> bool:
        try:
            resp = self._ecs.describe_clusters(clusters=[cluster])
        except Exception as e:
            raise_translated(e, f"describing cluster {cluster}")
        return any(c.get("status") == "ACTIVE" for c in resp.get("clusters", []))

    def force_new_deployment(self, cluster: str, service: str) -> ServiceState:
        return self.update_service(cluster, service, force=True)

    def update_service(
        self,
        cluster: str,
        service: str,
        *,
        task_definition: str | None = None,
        force: bool = False,
    ) -> ServiceState:
        params: dict[str, Any] = {"cluster": cluster, "service": service}
        if task_definition is not None:
            params["taskDefinition"] = task_definition
        if force:
            params["forceNewDeployment"] = True
        try:
            resp = self._ecs.update_service(**params)
        except Exception as e:
            if is_client_error(e, "ClusterNotFoundException"):
                raise ClusterMissing(f"cluster {cluster!r} does not exist") from e
            if is_client_error(e, "ServiceNotFoundException", "ServiceNotActiveException"):
                raise ServiceMissing(f"service {service!r} not found in cluster {cluster!r}") from e
            raise_translated(e, f"updating service {service} in {cluster}")
        return _service(resp["service"], cluster)

    def describe_task_definition(self, arn: str) -> TaskDefinition:
        try:
            resp = self._ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
        except Exception as e:
            raise_translated(e, f"describing task definition {arn}")
        return task_definition_from(resp["taskDefinition"], resp.get("tags"))

    def register_task_definition(self, params: dict[str, Any]) -> TaskDefinition:
        try:
            resp = self._ecs.register_task_definition(**params)
        except Exception as e:
            raise_translated(e, f"registering task definition {params.get('family')}")
        return task_definition_from(resp["taskDefinition"], resp.get("tags"))

    def deregister_task_definition(self, arn: str) -> None:
        try:
            self._ecs.deregister_task_definition(taskDefinition=arn)
        except Exception as e:
            raise_translated(e, f"deregistering task definition {arn}")

    def list_task_definitions(self, family: str, status: str = "ACTIVE") -> list[str]:
        out: list[str] = []
        try:
            for page in self._ecs.get_paginator("list_task_definitions").paginate(
                familyPrefix=family, status=status, sort="ASC"
            ):
                out.extend(
                    a
                    for a in page.get("taskDefinitionArns", [])
                    if a.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family
                )
        except Exception as e:
            raise_translated(e, f"listing task definitions of {family}")
        return out

    def running_images(
        self, cluster: str, service: str | None = None
    ) -> dict[str, list[TaskImage]]:
        """What running tasks report, container by container, by service name.

        Without ``service``, one pass over the whole cluster answers for every service.
        """
        try:
            arns: list[str] = []
            params: dict[str, Any] = {"cluster": cluster, "desiredStatus": "RUNNING"}
            if service is not None:
                params["serviceName"] = service
            for page in self._ecs.get_paginator("list_tasks").paginate(**params):
                arns.extend(page.get("taskArns", []))
            out: dict[str, list[TaskImage]] = {}

            def describe(chunk: list[str]) -> dict[str, Any]:
                resp: dict[str, Any] = self._ecs.describe_tasks(cluster=cluster, tasks=chunk)
                return resp

            for resp in _per_chunk(describe, arns, DESCRIBE_TASKS_MAX):
                for t in resp.get("tasks", []):
                    group = str(t.get("group") or "")
                    if not group.startswith("service:") or t.get("lastStatus") == "STOPPED":
                        continue
                    name = group[len("service:") :]
                    if service is not None and name != service:
                        continue
                    for c in t.get("containers", []):
                        out.setdefault(name, []).append(
                            TaskImage(
                                task_arn=str(t.get("taskArn", "")),
                                container=str(c.get("name", "")),
                                image=str(c.get("image", "")),
                                digest=c.get("imageDigest"),
                                started_by=t.get("startedBy"),
                                last_status=t.get("lastStatus"),
                            )
                        )
            return out
        except Exception as e:
            if is_client_error(e, "ClusterNotFoundException"):
                raise ClusterMissing(f"cluster {cluster!r} does not exist") from e
            raise_translated(e, f"listing tasks of {service} in {cluster}")

    def list_clusters(self) -> list[str]:
        """Every cluster name of the account and region."""
        names: list[str] = []
        try:
            for page in self._ecs.get_paginator("list_clusters").paginate():
                names.extend(str(a).rsplit("/", 1)[-1] for a in page.get("clusterArns", []))
        except Exception as e:
            raise_translated(e, "listing clusters")
        return sorted(names)

    def list_services(self, cluster: str) -> list[str]:
        """Every service name of the cluster."""
        names: list[str] = []
        try:
            for page in self._ecs.get_paginator("list_services").paginate(cluster=cluster):
                names.extend(str(a).rsplit("/", 1)[-1] for a in page.get("serviceArns", []))
        except Exception as e:
            if is_client_error(e, "ClusterNotFoundException"):
                raise ClusterMissing(f"cluster {cluster!r} does not exist") from e
            raise_translated(e, f"listing services of cluster {cluster}")
        return sorted(names)

    def service_deployments(
        self, cluster: str, service: str, *, limit: int = 50
    ) -> list[ServiceDeploymentRecord] | None:
        """ECS's deployment history of a service, newest first; None where it is not offered.

        The history is optional knowledge: an endpoint without the operation, a missing
        permission or a server error all mean "not offered", answered at once (no retries
        with backoff) and remembered for this client, so callers fall back quickly.
        """
        if self._history_offered is False:
            return None
        _answer_history_failures_at_once(self._ecs)
        out: list[ServiceDeploymentRecord] = []
        try:
            params: dict[str, Any] = {"cluster": cluster, "service": service}
            while len(out) < limit:
                resp = self._ecs.list_service_deployments(**params)
                for d in resp.get("serviceDeployments", []):
                    out.append(
                        ServiceDeploymentRecord(
                            arn=str(d.get("serviceDeploymentArn", "")),
                            status=str(d.get("status", "")),
                            target_revision=str(d.get("targetServiceRevisionArn", "")),
                            created_at=d.get("createdAt") or d.get("startedAt"),
                        )
                    )
                token = resp.get("nextToken")
                if not token:
                    break
                params["nextToken"] = token
        except Exception:
            self._history_offered = False
            return None
        self._history_offered = True
        # newest first, whatever order the endpoint answers in
        return sorted(
            out, key=lambda d: d.created_at.timestamp() if d.created_at else 0.0, reverse=True
        )

    def deployment_sources(self, deployment_arn: str) -> list[str] | None:
        """The service revisions that ran when a service deployment started (what ran before
        it), from DescribeServiceDeployments; None where the history is not offered."""
        if self._history_offered is False:
            return None
        try:
            resp = self._ecs.describe_service_deployments(serviceDeploymentArns=[deployment_arn])
        except Exception:
            return None
        for d in resp.get("serviceDeployments", []):
            if d.get("serviceDeploymentArn") == deployment_arn:
                return [
                    str(r["arn"]) for r in d.get("sourceServiceRevisions") or [] if r.get("arn")
                ]
        return None

    def service_revisions(self, arns: list[str]) -> dict[str, ServiceRevision]:
        """Service revisions by ARN: the task definition and the digests each one ran."""
        out: dict[str, ServiceRevision] = {}
        for chunk in _chunks(
            list(dict.fromkeys(a for a in arns if a)), DESCRIBE_SERVICE_REVISIONS_MAX
        ):
            try:
                resp = self._ecs.describe_service_revisions(serviceRevisionArns=chunk)
            except Exception as e:
                raise_translated(e, "describing service revisions")
            for r in resp.get("serviceRevisions", []):
                arn = str(r.get("serviceRevisionArn", ""))
                out[arn] = ServiceRevision(
                    arn=arn,
                    task_definition=str(r.get("taskDefinition", "")),
                    images=tuple(
                        TaskImage(
                            task_arn="",
                            container=str(c.get("containerName", "")),
                            image=str(c.get("image", "")),
                            digest=c.get("imageDigest"),
                        )
                        for c in r.get("containerImages", [])
                    ),
                )
        return out


class _HistoryNotOffered(Exception):
    """Raised from botocore's retry hook: a failed history call is not worth a retry."""


def _no_retry(response: Any = None, caught_exception: Any = None, **_: Any) -> None:
    if caught_exception is not None:
        raise _HistoryNotOffered(str(caught_exception))
    if response is not None:
        status = getattr(response[0], "status_code", 200)
        if status >= 500 or status == 429:
            raise _HistoryNotOffered(f"HTTP {status}")


def _answer_history_failures_at_once(client: Any) -> None:
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is None:
        return
    service_id = client.meta.service_model.service_id.hyphenize()
    events.register_first(
        f"needs-retry.{service_id}.{HISTORY_OPERATION}", _no_retry, unique_id="tierup-history"
    )
