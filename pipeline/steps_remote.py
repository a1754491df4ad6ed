"""`tierup validate --remote` for envs.yaml's steps: what they name exists in AWS.

An `alarm` step's named alarms (and at least one alarm for a prefix) in the environment's
account and region; a `run-task` step's task definition and service. Names that template an
image's digest are known only when promoting, and are left out.
"""

from __future__ import annotations

from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.step_lists import environment_context
from tierup.stages.adapters.cloudwatch import CloudWatch
from tierup.stages.adapters.ecs_tasks import EcsTasks
from tierup.stages.errors import TierupError
from tierup.stages.step import StepContext, StepError


def problem(config: Config, clients: Clients, env_name: str) -> tuple[str, str] | None:
    """The first thing an environment's steps name that AWS does not have: (error, hint)."""
    env = config.environment(env_name)
    ctx = environment_context(env_name, env, lambda service: clients.aws(service, env))
    for spec in config.steps_for(env_name) or []:
        where = f"step {spec.alias!r} ({spec.uses})"
        try:
            if spec.uses == "alarm":
                found = _alarm_problem(ctx, spec.config)
            elif spec.uses == "run-task":
                found = _task_problem(ctx, spec.config)
            else:
                found = None
        except TierupError as e:
            return f"{where}: {e.message}", e.hint
        if found is not None:
            return f"{where}: {found[0]}", found[1]
    return None


def _rendered(ctx: StepContext, value: object) -> str | None:
    try:
        return ctx.render(str(value))
    except StepError:
        return None  # names an image's digest: known only when promoting


def _alarm_problem(ctx: StepContext, config: dict[str, object]) -> tuple[str, str] | None:
    raw = config.get("names")
    names = [n for n in (_rendered(ctx, v) for v in (raw if isinstance(raw, list) else [])) if n]
    prefix = _rendered(ctx, config["prefix"]) if config.get("prefix") else None
    cloudwatch = CloudWatch(ctx.client("cloudwatch"))
    hint = "create the alarm, or fix the step's names or prefix"
    if names:
        have = {a.name for a in cloudwatch.alarms(names=names, prefix=None)}
        missing = [n for n in names if n not in have]
        if missing:
            return f"no alarm {', '.join(missing)} in account {ctx.account_id} ({ctx.region})", hint
    if prefix and not cloudwatch.alarms(names=[], prefix=prefix):
        return f"no alarm named {prefix}* in account {ctx.account_id} ({ctx.region})", hint
    return None


def _task_problem(ctx: StepContext, config: dict[str, object]) -> tuple[str, str] | None:
    tasks = EcsTasks(ctx.client("ecs"))
    service = config.get("service")
    if service is not None:
        tasks.service_settings(ctx.cluster, str(service))  # raises when it is not there
    if config.get("task_definition"):
        tasks.task_definition(str(config["task_definition"]))
    return None
