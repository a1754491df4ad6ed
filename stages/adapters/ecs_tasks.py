"""One-off ECS tasks (RunTask) through one typed adapter: start, describe, stop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tierup.stages.adapters.aws import raise_translated
from tierup.stages.errors import AwsError


@dataclass(frozen=True)
class ContainerExit:
    name: str
    exit_code: int | None
    reason: str = ""


@dataclass(frozen=True)
class TaskStatus:
    arn: str
    last_status: str
    stopped_reason: str = ""
    stop_code: str = ""
    containers: tuple[ContainerExit, ...] = ()

    @property
    def id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ServiceRunSettings:
    """What a one-off task borrows from a service: its revision, network and launch type."""

    task_definition: str
    launch_type: str | None = None
    network_configuration: dict[str, Any] | None = None
    platform_version: str | None = None
    capacity_provider_strategy: list[dict[str, Any]] = field(default_factory=list)


class EcsTasks:
    def __init__(self, client: Any) -> None:
        self._ecs = client

    def service_settings(self, cluster: str, service: str) -> ServiceRunSettings:
        try:
            found = self._ecs.describe_services(cluster=cluster, services=[service])
        except Exception as e:
            raise_translated(e, f"describing service {service} in cluster {cluster}")
        services = [s for s in found.get("services", []) if s.get("status") == "ACTIVE"]
        if not services:
            raise AwsError(
                f"service {service!r} not found in cluster {cluster!r}",
                hint="name an existing service, or a task_definition, in the step's config",
            )
        s = services[0]
        return ServiceRunSettings(
            task_definition=str(s["taskDefinition"]),
            launch_type=s.get("launchType"),
            network_configuration=s.get("networkConfiguration"),
            platform_version=s.get("platformVersion"),
            capacity_provider_strategy=list(s.get("capacityProviderStrategy") or []),
        )

    def task_definition(self, name: str) -> dict[str, Any]:
        try:
            return dict(self._ecs.describe_task_definition(taskDefinition=name)["taskDefinition"])
        except Exception as e:
            raise_translated(e, f"describing task definition {name}")

    def run(self, cluster: str, task_definition: str, **kw: Any) -> TaskStatus:
        params = {k: v for k, v in kw.items() if v not in (None, [], {})}
        try:
            resp = self._ecs.run_task(
                cluster=cluster, taskDefinition=task_definition, count=1, **params
            )
        except Exception as e:
            raise_translated(e, f"running a task of {task_definition} in cluster {cluster}")
        failures = resp.get("failures") or []
        tasks = resp.get("tasks") or []
        if failures or not tasks:
            why = "; ".join(f"{f.get('arn', '')} {f.get('reason', '')}".strip() for f in failures)
            raise AwsError(
                f"ECS did not start a task of {task_definition}: {why or 'no task started'}",
                hint="check the cluster's capacity and the task definition",
            )
        return _status(tasks[0])

    def describe(self, cluster: str, arn: str) -> TaskStatus:
        try:
            resp = self._ecs.describe_tasks(cluster=cluster, tasks=[arn])
        except Exception as e:
            raise_translated(e, f"describing task {arn}")
        tasks = resp.get("tasks") or []
        if not tasks:
            raise AwsError(f"task {arn} is gone from cluster {cluster}")
        return _status(tasks[0])

    def stop(self, cluster: str, arn: str, reason: str) -> None:
        try:
            self._ecs.stop_task(cluster=cluster, task=arn, reason=reason[:255])
        except Exception as e:
            raise_translated(e, f"stopping task {arn}")


def _status(t: dict[str, Any]) -> TaskStatus:
    return TaskStatus(
        arn=str(t["taskArn"]),
        last_status=str(t.get("lastStatus", "")),
        stopped_reason=str(t.get("stoppedReason", "") or ""),
        stop_code=str(t.get("stopCode", "") or ""),
        containers=tuple(
            ContainerExit(
                name=str(c.get("name", "")),
                exit_code=c.get("exitCode"),
                reason=str(c.get("reason", "") or ""),
            )
            for c in t.get("containers", [])
        ),
    )
