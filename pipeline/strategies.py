"""envs.yaml to ``stages.strategy``: an environment's strategy settings and clients."""

from __future__ import annotations

from pipeline.clients import Clients
from pipeline.config import Environment
from stages.strategy import CodeDeploySettings, Context, StackSettings
from stages.types import TaskDefinition


def stack_settings(env: Environment) -> StackSettings | None:
    cfg = env.cloudformation
    return None if cfg is None else StackSettings(cfg.stack, cfg.image_parameter)


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
        stack=stack_settings(env),
        route=codedeploy_settings(env),
    )
    if task_defs is not None:
        ctx.task_defs = task_defs  # the plan's cache: what planning described is not read again
    return ctx
