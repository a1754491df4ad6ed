"""envs.yaml to ``stages.strategy``: an environment's strategy settings and clients."""

from __future__ import annotations

import dataclasses
from typing import Any

from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Environment
from tierup.pipeline.config_strategy import CloudFormationConfig
from tierup.stages.strategy import CodeDeploySettings, Context, EcsSettings, Settings, StackSettings
from tierup.stages.types import TaskDefinition


class SavedStack(CloudFormationConfig):
    """An environment's stack as a saved plan left it (``tierup apply``): planning reads the
    change set the plan made (``change_set``; None: it made none) and makes no other."""

    change_set: str | None = None


def stack_settings(env: Environment) -> StackSettings | None:
    cfg = env.cloudformation
    if cfg is None:
        return None
    if isinstance(cfg, SavedStack):
        return StackSettings(
            cfg.stack, cfg.image_parameter, change_set=cfg.change_set, from_plan=True
        )
    return StackSettings(cfg.stack, cfg.image_parameter)


def codedeploy_settings(env: Environment) -> CodeDeploySettings | None:
    cfg = env.codedeploy
    if cfg is None:
        return None
    return CodeDeploySettings(
        application=cfg.application,
        deployment_group=cfg.deployment_group,
        deployment_config=cfg.deployment_config,
        container=cfg.container,
        container_port=cfg.container_port,
        hooks=tuple(cfg.hooks.items()),
    )


def ecs_settings(env: Environment) -> EcsSettings | None:
    """``ecs:`` as ECS's deploymentConfiguration keys (strategy ecs)."""
    cfg = env.ecs
    if cfg is None:
        return None
    out: dict[str, Any] = {
        "strategy": {"blue-green": "BLUE_GREEN", "canary": "CANARY", "linear": "LINEAR"}[cfg.mode]
    }
    if cfg.bake_time is not None:
        out["bakeTimeInMinutes"] = _minutes(cfg.bake_time)
    if cfg.mode == "canary" and cfg.canary is not None:
        out["canaryConfiguration"] = {
            "canaryPercent": cfg.canary.percent,
            "canaryBakeTimeInMinutes": _minutes(cfg.canary.bake_time),
        }
    if cfg.mode == "linear" and cfg.linear is not None:
        out["linearConfiguration"] = {
            "stepPercent": cfg.linear.step_percent,
            "stepBakeTimeInMinutes": _minutes(cfg.linear.bake_time),
        }
    hooks: list[dict[str, Any]] = []
    for h in cfg.hooks:
        hook: dict[str, Any] = {"lifecycleStages": [h.stage]}
        if h.pause:
            hook["targetType"] = "PAUSE"
        else:
            name = str(h.lambda_)
            hook["targetType"] = "AWS_LAMBDA"
            hook["hookTargetArn"] = (
                name
                if name.startswith("arn:")
                else f"arn:aws:lambda:{env.region}:{env.account_id}:function:{name}"
            )
            if cfg.hook_role_arn:
                hook["roleArn"] = cfg.hook_role_arn
        hooks.append(hook)
    if hooks:
        out["lifecycleHooks"] = hooks
    if cfg.alarms:
        out["alarms"] = {"alarmNames": list(cfg.alarms), "enable": True, "rollback": True}
    return EcsSettings(
        configuration=out,
        alternate_target_group=cfg.alternate_target_group,
        test_listener_rule=cfg.test_listener_rule,
    )


def settings(env: Environment) -> Settings:
    """Every strategy setting of ``env`` (each strategy reads the one it needs)."""
    return Settings(
        cloudformation=stack_settings(env),
        codedeploy=codedeploy_settings(env),
        ecs=ecs_settings(env),
    )


def _minutes(seconds: int) -> int:
    return -(-seconds // 60)


def context(
    clients: Clients,
    name: str,
    env: Environment,
    task_defs: dict[str, TaskDefinition] | None = None,
) -> Context:
    """The clients, clock and poll interval one environment's deploy uses."""
    ctx = Context(
        environment=name,
        cluster=env.cluster,
        ecs=clients.ecs(env),
        client=lambda service: clients.aws(service, env),
        sleep=clients.sleep,
        clock=clients.clock,
        interval=clients.poll_interval,
        retries=clients.retries,
        stack=_plain(stack_settings(env)),
        route=codedeploy_settings(env),
        native=ecs_settings(env),
    )
    if task_defs is not None:
        ctx.task_defs = task_defs  # the plan's cache: what planning described is not read again
    return ctx


def _plain(settings: StackSettings | None) -> StackSettings | None:
    """The stack's settings for writes that start from a target (a restore makes its own
    change set, whatever a saved plan reviewed for a promotion)."""
    if settings is None or not settings.from_plan:
        return settings
    return dataclasses.replace(settings, change_set=None, from_plan=False)
