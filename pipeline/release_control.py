"""`tierup continue` and `tierup stop`: act on the deployment a release waits for.

For strategy ecs the deployment is the service's newest ServiceDeployment: `continue` sends
ContinueServiceDeployment to the PAUSE hook it waits at; `stop` sends StopServiceDeployment
(ABORT, or ROLLBACK with `--rollback`, which is then followed until the source revision runs
again). For strategy codedeploy it is the deployment group's active deployment: `continue` is
ContinueDeployment of a deployment waiting at Ready; `stop` is StopDeployment (with the automatic
rollback when `--rollback`). Neither takes the tier's lock: a promotion waiting on the deployment
holds it. Both are recorded in the ledger, with the actor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tierup.pipeline import strategies
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config, Environment
from tierup.pipeline.events import EnvironmentRecord, Event, ServiceRecord
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.results import CommandResult, EnvironmentOutcome, ServiceOutcome
from tierup.stages import all_strategies, ecs_native_follow, ecs_service_deployments
from tierup.stages.adapters.aws import raise_translated
from tierup.stages.adapters.codedeploy import CodeDeploy
from tierup.stages.errors import InputError, TierupError
from tierup.stages.strategy import SERVICE_DEPLOYMENTS, capabilities

Progress = Callable[[str], None]


def _services(env: Environment, name: str, service: str | None) -> list[str]:
    if service is None:
        return list(env.services)
    if service not in env.services:
        raise InputError(
            f"environment {name!r} has no service {service!r}",
            hint=f"services: {', '.join(env.services)}",
        )
    return [service]


def control(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    *,
    env: str,
    action: str,  # continue | stop
    service: str | None = None,
    rollback: bool = False,
    progress: Progress | None = None,
) -> CommandResult:
    """Continue or stop the deployment of each service (or the one named) of ``env``."""
    say = progress or (lambda _m: None)
    environment = config.environment(env)
    strategy = config.strategy_for(env)
    names = _services(environment, env, service)
    invocation = f"{action} --env {env}" + (f" --service {service}" if service else "")
    if action == "stop" and rollback:
        invocation += " --rollback"
    kind = capabilities(all_strategies.get(strategy)).release_control
    if kind is None:
        controlled = [
            n
            for n in all_strategies.names()
            if capabilities(all_strategies.get(n)).release_control is not None
        ]
        raise InputError(
            f"environment {env!r} deploys with strategy {strategy}, which has no deployment "
            f"to {action}",
            hint=f"`tierup continue` and `tierup stop` act on strategies {_words(controlled)}",
        )
    outcome = EnvironmentOutcome.of(env, environment, strategy)
    result = CommandResult(
        command=action, tier=environment.tier, environments=[outcome], invocation=invocation
    )
    if kind == SERVICE_DEPLOYMENTS:
        ctx = strategies.context(clients, env, environment)
        for name in names:
            outcome.services.append(_ecs(ctx, name, action, rollback, config, env, say))
    else:
        outcome.services.extend(_codedeploy(clients, env, environment, names, action, rollback))
    result.settle()
    ledger.record(_event(result, environment.tier, rollback))
    return result


def _words(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)


def _ecs(
    ctx: Any,
    service: str,
    action: str,
    rollback: bool,
    config: Config,
    env: str,
    say: Progress,
) -> ServiceOutcome:
    ecs = ctx.client("ecs")
    try:
        now = ecs_service_deployments.latest(ecs, ctx.cluster, service)
    except TierupError as e:
        return ServiceOutcome(service, "failed", error=str(e), hint=e.hint)
    if now is None or not now.running:
        return ServiceOutcome(
            service,
            "failed",
            deployment_id=now.arn if now else None,
            error=f"{env}/{service}: no deployment in progress"
            + (f" (the latest ended {now.status})" if now else ""),
            hint="`tierup where` shows each service's deployment",
        )
    if action == "continue":
        if not now.paused:
            return ServiceOutcome(
                service,
                "failed",
                deployment_id=now.arn,
                error=f"{env}/{service}: the deployment is not paused ({now.describe()})",
                hint="continue acts on a deployment waiting at a PAUSE hook",
            )
        ecs_service_deployments.resume(ecs, now.arn, now.paused)
        say(f"{env}/{service}: continued at the PAUSE hook in stage {now.stage}")
        return ServiceOutcome(service, "continued", deployment_id=now.arn, reason=now.describe())
    if not ecs_service_deployments.stop(ecs, now.arn, rollback=rollback):
        return ServiceOutcome(
            service, "failed", deployment_id=now.arn, error=f"{env}/{service}: it had ended"
        )
    say(f"{env}/{service}: stopped" + (", rolling back" if rollback else ""))
    if not rollback:
        return ServiceOutcome(service, "stopped", deployment_id=now.arn)
    timeout = config.wait_timeout_for(env)
    state = ecs_native_follow.follow(
        ctx, service, now.arn, now.arn, deadline=ctx.clock() + timeout, timeout=timeout
    )
    status = {"completed": "rolled_back", "in_progress": "timed_out"}.get(
        state.rollback_state or "", "failed"
    )
    return ServiceOutcome(
        service,
        status,
        task_definition=state.task_definition,
        deployment_id=now.arn,
        reason=state.reason,
        error=None if status == "rolled_back" else state.reason,
    )


def _codedeploy(
    clients: Clients,
    name: str,
    env: Environment,
    services: list[str],
    action: str,
    rollback: bool,
) -> list[ServiceOutcome]:
    settings = strategies.codedeploy_settings(env)
    if settings is None:
        raise InputError(f"environment {name!r} has no `codedeploy:` block")
    raw = clients.aws("codedeploy", env)
    cd = CodeDeploy(raw)
    active = cd.active_deployments(settings.application, settings.deployment_group)
    if not active:
        return [
            ServiceOutcome(
                s,
                "failed",
                error=f"{name}/{s}: no CodeDeploy deployment of "
                f"{settings.application}/{settings.deployment_group} in progress",
                hint="`tierup where` shows each service's deployment",
            )
            for s in services
        ]
    deployment = active[0]
    status = cd.get_deployment(deployment)
    if action == "continue":
        if status.status != "Ready":
            out = ServiceOutcome(
                services[0],
                "failed",
                deployment_id=deployment,
                error=f"{name}: deployment {deployment} is {status.status}, not waiting at Ready",
                hint="continue acts on a blue/green deployment waiting before its traffic shift",
            )
            return [out]
        try:
            raw.continue_deployment(deploymentId=deployment, deploymentWaitType="READY_WAIT")
        except Exception as e:
            raise_translated(e, f"continuing deployment {deployment}")
        return [ServiceOutcome(s, "continued", deployment_id=deployment) for s in services]
    if not cd.stop_deployment(deployment, auto_rollback=rollback):
        return [
            ServiceOutcome(s, "failed", deployment_id=deployment, error=f"{deployment} had ended")
            for s in services
        ]
    return [
        ServiceOutcome(s, "rolled_back" if rollback else "stopped", deployment_id=deployment)
        for s in services
    ]


def _event(result: CommandResult, tier: str, rollback: bool) -> Event:
    envs = {
        e.name: EnvironmentRecord(
            status=e.status,
            services={
                s.service: ServiceRecord(
                    status=s.status,
                    extra={
                        k: v
                        for k, v in (
                            ("deployment", s.deployment_id),
                            ("strategy", e.strategy),
                            ("rollback", rollback if result.command == "stop" else None),
                            ("error", s.error),
                        )
                        if v is not None
                    },
                )
                for s in e.services
            },
        )
        for e in result.environments
    }
    return Event(
        command=result.command,
        invocation=result.invocation,
        tier=tier,
        status=str(result.status),
        environments=envs,
    )


def paused(clients: Clients, name: str, env: Environment, service: str) -> dict[str, Any] | None:
    """For `where`: the service's ECS-native deployment waiting at a PAUSE hook, if any."""
    try:
        now = ecs_service_deployments.latest(clients.aws("ecs", env), env.cluster, service)
    except TierupError:
        return None
    if now is None or not now.paused:
        return None
    return {
        "service_deployment": now.arn,
        "stage": now.stage,
        "continue": f"tierup continue --env {name} --service {service}",
    }
