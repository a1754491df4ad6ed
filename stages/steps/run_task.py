"""``run-task``: run a one-off ECS task in the environment and fail on a non-zero exit.

Typical use: a database migration before ``deploy``. The task runs the task definition named
(a family, ``family:revision`` or an ARN) or, by default, the revision the service runs now,
with the service's network configuration and launch type; command and environment overrides
go to one container. ``image: NAME`` runs the promotion's digest of that envs.yaml image in
that container: a copy of the revision naming it is registered first in the family
``<family>-run-task`` (or that family's latest reused when it already names it), since RunTask
cannot override an image and the service's own revision names the previous one until
``deploy``; so a migration can run the new code before anything else is written. The step
waits until the task stops: an essential container that exited non-zero (or never started)
fails it. A step ``timeout`` stops the task.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tierup.stages.adapters.ecs import Ecs, task_definition_from
from tierup.stages.adapters.ecs_tasks import EcsTasks, TaskStatus
from tierup.stages.deploy import registration_input, with_images
from tierup.stages.errors import TierupError
from tierup.stages.step import Duration, StepConfig, StepContext, StepResult

DEFAULT_LIMIT = 3600.0  # without a step timeout: how long a task may run
FAMILY_SUFFIX = "-run-task"  # where revisions naming a promoted digest for a task are kept


class RunTaskConfig(StepConfig):
    task_definition: str | None = Field(
        default=None,
        description="family, family:revision or ARN (default: the revision the service runs)",
    )
    service: str | None = Field(
        default=None,
        description="the service whose revision and network settings the task borrows "
        "(default: the environment's first service)",
    )
    container: str | None = Field(
        default=None, description="the container to override (default: the only or first one)"
    )
    image: str | None = Field(
        default=None,
        description="run the promoted digest of this envs.yaml image in the container "
        "(registers a copy of the revision naming it, in the family <family>-run-task)",
    )
    command: list[str] | None = Field(default=None, description="command override (templated)")
    environment: dict[str, str] = Field(
        default_factory=dict, description="environment overrides (values templated)"
    )
    network: Literal["service", "none"] = Field(
        default="service", description="use the service's network configuration, or none"
    )
    interval: Duration | None = Field(
        default=None, description="seconds between polls of the task (default: as rollouts)"
    )


class RunTask:
    name = "run-task"
    config = RunTaskConfig

    def describe(self, config: Any, ctx: StepContext) -> str:
        c: RunTaskConfig = config
        what = c.task_definition or f"the revision service {self._service(c, ctx)} runs"
        if c.image is not None:
            info = ctx.images.get(c.image)
            what += f", image {info.uri if info else c.image + ' (not promoted here)'}"
        cmd = f" with command {ctx.render(' '.join(c.command))!r}" if c.command else ""
        return f"run a task of {what} in cluster {ctx.cluster}{cmd}; fail on a non-zero exit"

    @staticmethod
    def _service(c: RunTaskConfig, ctx: StepContext) -> str:
        return c.service or (ctx.services[0] if ctx.services else "")

    def run(self, config: Any, ctx: StepContext) -> StepResult:
        c: RunTaskConfig = config
        tasks = EcsTasks(ctx.client("ecs"))
        service = self._service(c, ctx)
        settings = tasks.service_settings(ctx.cluster, service) if service else None
        name = c.task_definition or (settings.task_definition if settings else None)
        if name is None:
            return StepResult.failed(
                "no task definition to run", "set config.task_definition or config.service"
            )
        td = tasks.task_definition(name)
        definitions = list(td.get("containerDefinitions") or [])
        container = c.container or _default_container(definitions)
        if c.image is not None:
            info = ctx.images.get(c.image)
            if info is None or not info.uri:
                return StepResult.failed(
                    f"image {c.image!r} is not one this run promotes",
                    f"images of this run: {', '.join(ctx.images) or 'none'}",
                )
            td = _naming(Ecs(ctx.client("ecs")), td, container, info.uri)
            definitions = list(td.get("containerDefinitions") or [])
        overrides: dict[str, Any] = {}
        if c.command is not None or c.environment:
            override: dict[str, Any] = {"name": container}
            if c.command is not None:
                override["command"] = [ctx.render(a) for a in c.command]
            if c.environment:
                override["environment"] = [
                    {"name": k, "value": ctx.render(v)} for k, v in c.environment.items()
                ]
            overrides = {"containerOverrides": [override]}
        run: dict[str, Any] = {"overrides": overrides, "startedBy": "tierup"}
        if settings is not None and c.network == "service":
            run["networkConfiguration"] = settings.network_configuration
            run["platformVersion"] = settings.platform_version
            if settings.capacity_provider_strategy:
                run["capacityProviderStrategy"] = settings.capacity_provider_strategy
            else:
                run["launchType"] = settings.launch_type
        arn = str(td["taskDefinitionArn"])
        started = tasks.run(ctx.cluster, arn, **run)
        revision = f"{td.get('family')}:{td.get('revision')}"
        logs = _log_stream(definitions, container, started.id)
        status = started
        while status.last_status != "STOPPED":
            left = ctx.remaining(DEFAULT_LIMIT)
            if left <= 0:
                tasks.stop(ctx.cluster, started.arn, "tierup: the step's timeout passed")
                return StepResult.failed(
                    f"task {started.id} of {revision} did not stop in time (stopped it)",
                    "raise the step's timeout, or see the task's logs",
                    output=logs,
                )
            ctx.sleep(min(float(c.interval if c.interval is not None else ctx.interval), left))
            status = tasks.describe(ctx.cluster, started.arn)
        return _verdict(status, definitions, revision, logs)


def _naming(ecs: Ecs, td: dict[str, Any], container: str, uri: str) -> dict[str, Any]:
    """A copy of ``td`` whose ``container`` runs ``uri``, in the family ``<family>-run-task``
    (the service's own family stays as its deployments made it: a rollback that looks for the
    previous revision never finds a one-off task's); its latest is reused when it already runs
    ``uri`` (a re-run registers nothing)."""
    if any(d.get("name") == container and d.get("image") == uri for d in _containers(td)):
        return td
    current = task_definition_from(td, td.get("tags"))
    family = f"{td['family']}{FAMILY_SUFFIX}"[:255]
    wanted = {**with_images(registration_input(ecs, current), {container: uri}), "family": family}
    try:
        latest: dict[str, Any] | None = ecs.describe_task_definition(family).raw
    except TierupError:
        latest = None  # the first one-off task of this family
    reusable = latest is not None and latest.get("status") == "ACTIVE"
    if latest is not None and reusable and _images(latest) == _images(wanted):
        return dict(latest)
    return dict(ecs.register_task_definition(wanted).raw)


def _containers(td: dict[str, Any]) -> list[dict[str, Any]]:
    return list(td.get("containerDefinitions") or [])


def _images(td: dict[str, Any]) -> list[tuple[Any, Any]]:
    return [(d.get("name"), d.get("image")) for d in _containers(td)]


def _default_container(definitions: list[dict[str, Any]]) -> str:
    essential = [d for d in definitions if d.get("essential", True)]
    return str((essential or definitions or [{"name": ""}])[0].get("name", ""))


def _log_stream(definitions: list[dict[str, Any]], container: str, task_id: str) -> str:
    for d in definitions:
        if d.get("name") != container:
            continue
        log = d.get("logConfiguration") or {}
        options = log.get("options") or {}
        if log.get("logDriver") == "awslogs" and options.get("awslogs-stream-prefix"):
            stream = f"{options['awslogs-stream-prefix']}/{container}/{task_id}"
            group = options.get("awslogs-group", "?")
            return f"logs: {group} {stream}"
    return f"logs: container {container} has no awslogs stream prefix"


def _verdict(
    status: TaskStatus, definitions: list[dict[str, Any]], revision: str, logs: str
) -> StepResult:
    essential = {str(d.get("name")) for d in definitions if d.get("essential", True)}
    exits = {c.name: c for c in status.containers}
    for name in sorted(essential):
        c = exits.get(name)
        if c is None or c.exit_code is None:
            why = (c.reason if c else "") or status.stopped_reason or "it never started"
            return StepResult.failed(
                f"task {status.id} of {revision}: container {name} did not run: {why}",
                "see the task's stopped reason and logs",
                output=logs,
            )
        if c.exit_code != 0:
            return StepResult.failed(
                f"task {status.id} of {revision}: container {name} exited {c.exit_code}"
                + (f" ({status.stopped_reason})" if status.stopped_reason else ""),
                "see the task's logs",
                output=logs,
            )
    return StepResult(True, output=f"task {status.id} of {revision} exited 0; {logs}")


STEP = RunTask()
