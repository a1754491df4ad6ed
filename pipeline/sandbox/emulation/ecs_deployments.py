"""What the ECS emulation keeps of a service's rollouts: its deployments and their tasks.

A service's `RolloutState` lists its deployments (the PRIMARY one first), the last one that
COMPLETED, its events and its deployment history. Each `Deployment` runs its own tasks
(`EmulatedTask`, started by the deployment's id, group `service:NAME`), whose containers report
the digest their image resolved to when the deployment started. Only the emulation moves a
service task's status: `start_tasks`, `set_running` and `stop_tasks` do it as ECS's scheduler
does. `RolloutView` is a deployment as the other emulated services see it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moto.core.utils import utcnow
from moto.ecs.models import Container, EC2ContainerServiceBackend, Service, Task, TaskDefinition
from moto.moto_api._internal import mock_random

from tierup.pipeline.sandbox.emulation.ecr import Image

__all__ = [
    "Deployment",
    "EmulatedContainer",
    "EmulatedTask",
    "RolloutState",
    "RolloutView",
    "new_deployment",
    "set_running",
    "start_tasks",
    "stop_tasks",
    "task_list",
    "task_network",
]

MAX_EVENTS = 100


class EmulatedContainer(Container):
    def __init__(self, task_def: TaskDefinition, definition: dict[str, Any], image: Image) -> None:
        super().__init__(task_def)
        self.name = definition.get("name")
        self.image = definition.get("image")
        self.cpu = definition.get("cpu", 0)
        self.memory = definition.get("memory")
        self.environment = definition.get("environment")
        self.command = definition.get("command")
        self.image_digest = image.digest
        self.runtime_id: str | None = None
        self.reason: str | None = None
        setattr(self, "exitCode", None)  # noqa: B010  (moto's attribute name, typed as int)


class EmulatedTask(Task):
    """A service task: only the emulation moves its status (describe_tasks does not)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        now = utcnow()
        self.created_at: datetime = now
        self.pull_started_at: datetime | None = None
        self.pull_stopped_at: datetime | None = None
        self.started_at: datetime | None = None
        self.stopping_at: datetime | None = None
        self.stopped_at: datetime | None = None
        self.execution_stopped_at: datetime | None = None
        self.stop_code: str | None = None
        self.version = 1

    def advance(self) -> None:
        return None

    @property
    def status(self) -> str | None:
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        self._status = value

    @property
    def live(self) -> bool:
        return self.desired_status == "RUNNING"


@dataclass(eq=False)
class Deployment:
    id: str
    task_definition: str
    images: tuple[Image, ...]
    desired: int
    launch_type: str | None
    platform_version: str | None
    network_configuration: dict[str, Any] | None
    status: str = "PRIMARY"
    rollout: str = "IN_PROGRESS"
    reason: str = ""
    steps: int = 0
    failed_tasks: int = 0
    is_rollback: bool = False
    rollback_of: str | None = None  # the failed deployment this one rolls back
    sources: tuple[str, ...] = ()  # the deployments that ran when this one started
    hang_reported: bool = False
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    tasks: list[EmulatedTask] = field(default_factory=list)

    def live_tasks(self) -> list[EmulatedTask]:
        return [t for t in self.tasks if t.live]

    def count(self, status: str) -> int:
        return sum(1 for t in self.tasks if t.live and t.last_status == status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "taskDefinition": self.task_definition,
            "desiredCount": self.desired,
            "pendingCount": self.count("PENDING"),
            "runningCount": self.count("RUNNING"),
            "failedTasks": self.failed_tasks,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "launchType": self.launch_type,
            "platformVersion": self.platform_version,
            "networkConfiguration": self.network_configuration or None,
            "rolloutState": self.rollout,
            "rolloutStateReason": self.reason,
        }


@dataclass(eq=False)
class RolloutState:
    deployments: list[Deployment]  # newest first; the PRIMARY one is first
    last_completed: Deployment | None
    events: list[dict[str, Any]] = field(default_factory=list)  # newest first
    # every deployment ever started, newest first: ECS's service deployment history
    # (ListServiceDeployments and friends, `ecs_history`)
    history: list[Deployment] = field(default_factory=list)

    @property
    def primary(self) -> Deployment:
        return self.deployments[0]

    def event(self, message: str) -> None:
        entry = {"id": str(uuid.uuid4()), "createdAt": utcnow(), "message": message}
        self.events = [entry, *self.events][:MAX_EVENTS]

    def view(self, deployment: Deployment) -> RolloutView:
        """`deployment` (one of this service's) as the other emulated services see it."""
        failure = next(
            (
                e["message"]
                for e in self.events
                if "unable to consistently start tasks" in str(e["message"])
            ),
            None,
        )
        return RolloutView(
            id=deployment.id,
            status=deployment.status,
            rollout=deployment.rollout,
            task_definition=deployment.task_definition,
            running=deployment.count("RUNNING"),
            desired=deployment.desired,
            failed_tasks=deployment.failed_tasks,
            reason=deployment.reason,
            failure=failure if deployment.failed_tasks else None,
            images=deployment.images,
        )


@dataclass(frozen=True)
class RolloutView:
    """One deployment of a service, as the other emulations see it."""

    id: str
    status: str  # PRIMARY | ACTIVE
    rollout: str  # IN_PROGRESS | COMPLETED | FAILED
    task_definition: str
    running: int
    desired: int
    failed_tasks: int
    reason: str
    failure: str | None  # the latest service event saying why its tasks fail
    images: tuple[Image, ...]


def _new_deployment_id() -> str:
    return f"ecs-svc/{mock_random.randint(10**18, 10**19 - 1)}"


def new_deployment(
    service: Service, task_definition: str, images: tuple[Image, ...], **fields: Any
) -> Deployment:
    """A deployment of `service` as it is configured now."""
    return Deployment(
        id=_new_deployment_id(),
        task_definition=task_definition,
        images=images,
        desired=service.desired_count,
        launch_type=service.launch_type,
        platform_version=service.platform_version,
        network_configuration=service.network_configuration or None,
        **fields,
    )


def _task_id(task: Task) -> str:
    return str(task.task_arn).rsplit("/", 1)[-1]


def task_list(tasks: list[EmulatedTask]) -> str:
    return " ".join(f"(task {_task_id(t)})" for t in tasks)


def task_network(config: object) -> dict[str, Any] | None:
    """A service's network configuration as its tasks get it: without security groups, ECS
    uses the VPC's default one (moto's task wants the key)."""
    if not isinstance(config, dict) or not config:
        return None
    awsvpc = config.get("awsvpcConfiguration")
    if isinstance(awsvpc, dict) and "securityGroups" not in awsvpc:
        return {**config, "awsvpcConfiguration": {**awsvpc, "securityGroups": []}}
    return config


def start_tasks(
    backend: EC2ContainerServiceBackend,
    service: Service,
    deployment: Deployment,
    count: int,
    status: str,
) -> list[EmulatedTask]:
    """Start `count` tasks of `deployment`, PENDING or RUNNING (`status`), as ECS places them."""
    if count <= 0:
        return []
    cluster = backend._get_cluster(service.cluster_name)
    task_definition = backend.describe_task_definition(deployment.task_definition)
    images = {i.container: i for i in deployment.images}
    now = utcnow()
    started: list[EmulatedTask] = []
    tasks = backend.tasks.setdefault(cluster.name, {})
    for _ in range(count):
        task = EmulatedTask(
            cluster=cluster,
            task_definition=task_definition,
            container_instance_arn=None,
            resource_requirements=None,
            backend=backend,
            group=f"service:{service.name}",
            launch_type=service.launch_type or "",
            started_by=deployment.id,
            tags=[],
            networking_configuration=task_network(service.network_configuration),
            platform_version=service.platform_version,
        )
        task.containers = [
            EmulatedContainer(  # type: ignore[abstract]  # moto's Container, as moto makes it
                task_definition,
                definition,
                images.get(
                    str(definition.get("name")),
                    Image(str(definition.get("name")), "", None, None, None),
                ),
            )
            for definition in task_definition.container_definitions
        ]
        task.desired_status = "RUNNING"
        task.pull_started_at = now
        if status == "RUNNING":
            set_running(task, now)
        else:
            task.last_status = "PENDING"
            for container in task.containers:
                container.last_status = "PENDING"
        tasks[task.task_arn] = task
        deployment.tasks.append(task)
        started.append(task)
    return started


def set_running(task: EmulatedTask, now: datetime) -> None:
    """`task` has pulled its images and runs."""
    task.last_status = "RUNNING"
    task.pull_stopped_at = task.pull_stopped_at or now
    task.started_at = task.started_at or now
    for container in task.containers:
        container.last_status = "RUNNING"
        if isinstance(container, EmulatedContainer):
            container.runtime_id = container.runtime_id or uuid.uuid4().hex
    task.version += 1


def stop_tasks(
    tasks: list[EmulatedTask],
    reason: str,
    stop_code: str,
    *,
    exit_code: int | None = None,
) -> None:
    """`tasks` stop, with the reason and stop code ECS gives (and the containers' exit code)."""
    now = utcnow()
    for task in tasks:
        task.desired_status = "STOPPED"
        task.last_status = "STOPPED"
        task.stopped_reason = reason
        task.stop_code = stop_code
        task.stopping_at = now
        task.stopped_at = now
        task.execution_stopped_at = now
        task.version += 1
        for container in task.containers:
            container.last_status = "STOPPED"
            if isinstance(container, EmulatedContainer):
                if stop_code == "TaskFailedToStart":
                    container.reason = reason
                if exit_code is not None:
                    setattr(container, "exitCode", exit_code)  # noqa: B010
                elif stop_code != "TaskFailedToStart":
                    setattr(container, "exitCode", 0)  # noqa: B010
