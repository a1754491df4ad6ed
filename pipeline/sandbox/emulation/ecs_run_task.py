"""One-off ECS tasks (RunTask) on moto: tasks that start, run, stop and report an exit code.

moto's RunTask needs container instances for anything but Fargate (it answers 500 without
them) and its tasks report exit code 0 whatever their image. As ECS does, a task started here
resolves its images now, goes PENDING -> RUNNING -> STOPPED over the next DescribeTasks calls,
and its containers report an exit code:

- 0, unless the image's digest carries an ECR tag starting with `sandbox-task-fail`
  (`sandbox-task-fail.<cluster>`: in that cluster only): then the essential containers exit 1
  (an image marked bad for rollouts, `sandbox-fail`, still runs a one-off task: a migration
  may pass while the service's health check fails);
- `fail_next(family, exit_code)` makes the next task of a task definition family exit so;
- an image that cannot be pulled stops the task with TaskFailedToStart and no exit code.

Installed by `emulation.install()`; moto's own method comes back on uninstall.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime
from typing import Any

from moto.core.utils import utcnow
from moto.ecs.models import Container, EC2ContainerServiceBackend, Task, TaskDefinition

from tierup.pipeline.sandbox.emulation.ecr import resolve_image, tags_of

TASK_FAIL_TAG_PREFIX = "sandbox-task-fail"
FAILED_EXIT_CODE = 1


class _Container(Container):
    def __init__(self, task_def: TaskDefinition, definition: dict[str, Any], digest: str | None):
        super().__init__(task_def)
        self.name = definition.get("name")
        self.image = definition.get("image")
        self.cpu = definition.get("cpu", 0)
        self.memory = definition.get("memory")
        self.environment = definition.get("environment")
        self.command = definition.get("command")
        self.image_digest = digest
        self.essential = definition.get("essential", True)
        self.runtime_id: str | None = None
        self.reason: str | None = None
        setattr(self, "exitCode", None)  # noqa: B010  (moto's attribute name)


class _OneOffTask(Task):
    """A RunTask task: each DescribeTasks moves it one state on, as ECS's agent would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        now = utcnow()
        self.created_at: datetime = now
        self.started_at: datetime | None = None
        self.stopping_at: datetime | None = None
        self.stopped_at: datetime | None = None
        self.execution_stopped_at: datetime | None = None
        self.stop_code: str | None = None
        self.version = 1
        self.exit_code = 0
        self.fail_reason = ""  # set: the task fails to start

    @property
    def status(self) -> str | None:
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        self._status = value

    def advance(self) -> None:
        if self.last_status == "STOPPED":
            return
        now = utcnow()
        self.version += 1
        if self.fail_reason:
            self._stopped(now, self.fail_reason, "TaskFailedToStart", None)
        elif self.last_status == "PENDING":
            self.last_status = "RUNNING"
            self.started_at = now
            for c in self.containers:
                c.last_status = "RUNNING"
                if isinstance(c, _Container):
                    c.runtime_id = uuid.uuid4().hex
        else:
            reason = "Essential container in task exited"
            self._stopped(now, reason, "EssentialContainerExited", self.exit_code)

    def _stopped(self, now: datetime, reason: str, code: str, exit_code: int | None) -> None:
        self.desired_status = "STOPPED"
        self.last_status = "STOPPED"
        self.stopped_reason = reason
        self.stop_code = code
        self.stopping_at = self.stopped_at = self.execution_stopped_at = now
        for c in self.containers:
            c.last_status = "STOPPED"
            if isinstance(c, _Container):
                if exit_code is None:
                    c.reason = reason
                    setattr(c, "exitCode", None)  # noqa: B010
                else:
                    setattr(c, "exitCode", exit_code if c.essential else 0)  # noqa: B010


def _marked(tag: str, cluster: str) -> bool:
    if not tag.startswith(TASK_FAIL_TAG_PREFIX):
        return False
    rest = tag[len(TASK_FAIL_TAG_PREFIX) :]
    return not rest or rest == f".{cluster}"


class TaskEmulation:
    """RunTask as ECS runs it; `fail_next` for tests and library users."""

    def __init__(self, emulation: Any) -> None:
        self.emulation = emulation  # the ECS emulation: image resolution, marks, the lock
        self._fail_next: dict[str, int] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._fail_next.clear()

    def fail_next(self, family: str, exit_code: int = FAILED_EXIT_CODE) -> None:
        """The next task of task definition family `family` exits with `exit_code`."""
        with self._lock:
            self._fail_next[family] = exit_code

    def run_task(
        self, original: Any, backend: EC2ContainerServiceBackend, args: dict[str, Any]
    ) -> list[Task]:
        cluster = backend._get_cluster(args["cluster_str"])
        task_definition = backend.describe_task_definition(args["task_definition_str"])
        overrides = args.get("overrides") or {}
        per_container = {
            o.get("name"): o for o in overrides.get("containerOverrides") or [] if o.get("name")
        }
        tasks = backend.tasks.setdefault(cluster.name, {})
        started: list[Task] = []
        for _ in range(int(args.get("count") or 1)):
            task = _OneOffTask(
                cluster=cluster,
                task_definition=task_definition,
                container_instance_arn=None,
                resource_requirements=None,
                backend=backend,
                group=args.get("group") or f"family:{task_definition.family}",
                launch_type=args.get("launch_type") or "",
                overrides=overrides,
                started_by=args.get("started_by") or "",
                tags=args.get("tags") or [],
                networking_configuration=args.get("networking_configuration"),
                platform_version=args.get("platform_version"),
            )
            images = []
            containers = []
            for definition in task_definition.container_definitions:
                name = str(definition.get("name"))
                image = resolve_image(
                    name, str(definition.get("image") or ""), task_account=backend.account_id
                )
                images.append(image)
                merged = {**definition, **_override(per_container.get(name))}
                containers.append(
                    _Container(  # type: ignore[abstract]  # moto's Container, as moto makes it
                        task_definition, merged, image.digest
                    )
                )
            task.containers = containers  # type: ignore[assignment]
            task.last_status = "PENDING"
            task.desired_status = "RUNNING"
            verdict = self.emulation.verdict_for(
                backend.account_id, tuple(images), cluster=cluster.name
            )
            if verdict.kind == "fail" and verdict.stop_code == "TaskFailedToStart":
                task.fail_reason = verdict.reason
            elif any(_marked(t, cluster.name) for i in images for t in tags_of(i)):
                task.exit_code = FAILED_EXIT_CODE
            with self._lock:
                code = self._fail_next.pop(task_definition.family, None)
            if code is not None:
                task.exit_code = code
            tasks[task.task_arn] = task
            started.append(task)
        return started


def _override(o: dict[str, Any] | None) -> dict[str, Any]:
    if not o:
        return {}
    out: dict[str, Any] = {}
    if o.get("command") is not None:
        out["command"] = o["command"]
    if o.get("environment"):
        out["environment"] = o["environment"]
    return out


def install(emulation: Any) -> TaskEmulation:
    tasks = TaskEmulation(emulation)
    emulation.wrap(EC2ContainerServiceBackend, "run_task", tasks.run_task)
    return tasks
