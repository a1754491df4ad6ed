"""Planning one environment of a promotion or a deploy (reads only): its services, task
definitions, what runs now, through its strategy; the preflight that refuses before any write
when something of the tier cannot be read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from tierup.pipeline import retention as retention_mod
from tierup.pipeline import strategies
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.config_tiers import Tier
from tierup.pipeline.plan import EnvPlan
from tierup.stages import all_strategies
from tierup.stages import deploy as deploy_stage
from tierup.stages import strategy as strategy_stage
from tierup.stages.adapters.ecs import ClusterMissing, Ecs, ServiceMissing
from tierup.stages.deploy import ImageTarget
from tierup.stages.errors import InputError, TierupError
from tierup.stages.parallel import each

PER_ENV_WORKERS = 16  # reads inside one environment, while every environment reads at once


class PreflightError(TierupError):
    """Targets of the tier that cannot be reached or do not exist; nothing was written.

    Exit 2 when every one is missing (a configuration to fix), 1 when access was refused.
    """

    def __init__(self, failures: list[tuple[str, TierupError]]) -> None:
        listed = "; ".join(f"{target}: {e.message}" for target, e in failures)
        envs = sorted({target.split("/", 1)[0] for target, _ in failures})
        super().__init__(
            f"preflight failed before any write ({len(failures)} target(s)): {listed}",
            hint="nothing was written; fix the configuration or access and re-run, or leave "
            f"the environment(s) out: --skip-unreachable {' --skip-unreachable '.join(envs)}",
        )
        self.failures = failures
        missing = all(isinstance(e, MISSING) for _, e in failures)
        self.refusal = bool(missing)


MISSING = (ClusterMissing, ServiceMissing, InputError)


def preflight(envs: list[EnvPlan]) -> None:
    """Raise PreflightError naming every role, cluster, service and task definition that
    planning could not read."""
    failures = [f for e in envs for f in e.unreadable]
    if failures:
        raise PreflightError(failures)


def plan_environments(
    config: Config,
    clients: Clients,
    *,
    tier: Tier,
    targets: dict[str, ImageTarget],
    moved: Mapping[str, str],
    env_names: list[str] | None = None,
    protected: frozenset[str] = frozenset(),
    read: list[EnvPlan] | None = None,
) -> list[EnvPlan]:
    """Decide every service of the tier's environments (``read``: already read, see below)."""
    plans = (
        read
        if read is not None
        else read_environments(config, clients, tier=tier, env_names=env_names)
    )
    keep = {p.name: config.retention_for(p.name) for p in plans}
    each(lambda p: _plan_env(clients, p, targets, moved, keep[p.name], protected), plans)
    return plans


def read_environments(
    config: Config, clients: Clients, *, tier: Tier, env_names: list[str] | None = None
) -> list[EnvPlan]:
    """What planning reads of each environment: its services, their tasks and revisions.

    None of it depends on the images, so a promotion reads it while the images resolve.
    """
    envs = config.environments_of(tier.name)
    if env_names is not None:
        envs = {n: config.environment(n) for n in env_names}
    plans = [
        EnvPlan(name=n, env=e, strategy=config.strategy_for(n), pin=config.pin_for(n))
        for n, e in envs.items()
    ]
    each(lambda p: _read_env(clients, p), plans)
    return plans


def _read_env(clients: Clients, plan: EnvPlan) -> None:
    env = plan.env
    try:
        ecs = clients.ecs(env)
        with ThreadPoolExecutor(max_workers=2) as pool:
            services = pool.submit(
                ecs.describe_services, env.cluster, list(env.services), allow_missing=True
            )
            tasks = pool.submit(ecs.running_images, env.cluster)
            plan.states, plan.running = services.result(), tasks.result()
    except TierupError as e:
        plan.error = e
        what = "cluster" if isinstance(e, ClusterMissing) else "role/cluster"
        plan.unreadable.append((f"{plan.name} ({what} {env.role_arn or env.cluster})", e))
        return
    _describe_task_definitions(ecs, plan)


def _plan_env(
    clients: Clients,
    plan: EnvPlan,
    targets: dict[str, ImageTarget],
    moved: Mapping[str, str],
    keep: int,
    protected: frozenset[str],
) -> None:
    if plan.error is not None:
        return
    env = plan.env
    ecs = clients.ecs(env)
    states, running = plan.states, plan.running
    services: list[strategy_stage.ServiceTarget] = []
    for svc_name, svc in env.services.items():
        state = states.get(svc_name)
        if state is None:
            missing = ServiceMissing(
                f"service {svc_name!r} not found in cluster {env.cluster!r}",
                hint="create the service, or fix environments.<env>.services in envs.yaml",
            )
            plan.service_errors[svc_name] = missing
            plan.unreadable.append((f"{plan.name}/{svc_name}", missing))
            continue
        try:
            td = plan.task_defs.get(state.task_definition)
            if td is None:
                try:
                    td = ecs.describe_task_definition(state.task_definition)
                except TierupError as e:
                    plan.unreadable.append(
                        (f"{plan.name}/{svc_name} (task definition {state.task_definition})", e)
                    )
                    raise
                plan.task_defs[state.task_definition] = td
            wanted = {c: targets[img] for c, img in svc.images().items() if img in targets}
            if not wanted:
                continue
            services.append(
                strategy_stage.ServiceTarget(
                    service=svc_name,
                    wanted=wanted,
                    state=state,
                    task_def=td,
                    running=tuple(running.get(svc_name, [])),
                    tag_moved=any(t.image in moved for t in wanted.values()),
                    tag_change="; ".join(
                        sorted({moved[t.image] for t in wanted.values() if t.image in moved})
                    )
                    or None,
                )
            )
        except TierupError as e:
            plan.service_errors[svc_name] = e
    if services:
        _plan_strategy(clients, plan, services)
    plan.retention = retention_mod.plan_env(ecs, plan, keep=keep, protected=protected)


def _plan_strategy(
    clients: Clients, plan: EnvPlan, services: list[strategy_stage.ServiceTarget]
) -> None:
    env = plan.env
    try:
        planned = all_strategies.get(plan.strategy).plan(
            strategies.context(clients, plan.name, env, plan.task_defs),
            strategy_stage.Target(
                environment=plan.name,
                cluster=env.cluster,
                strategy=plan.strategy,
                pin=plan.pin,
                services=tuple(services),
                cloudformation=strategies.stack_settings(env),
                codedeploy=strategies.codedeploy_settings(env),
                ecs=strategies.ecs_settings(env),
            ),
        )
    except TierupError as e:
        plan.error = e
        return
    plan.services.extend(planned.services)
    plan.service_errors.update(planned.errors)


def _describe_task_definitions(ecs: Ecs, plan: EnvPlan) -> None:
    """Every revision the environment's services run, read concurrently (or from their tasks).

    A revision that cannot be read is left out: reading it again for its service reports the
    error there, for that service alone.
    """
    if strategy_stage.capabilities(all_strategies.get(plan.strategy)).follows_tag:
        # what a forced deployment needs of a revision, its tasks report: one request less
        # per service
        for name, state in plan.states.items():
            td = deploy_stage.revision_from_tasks(state, plan.running.get(name, []))
            if td is not None:
                plan.task_defs.setdefault(td.arn, td)
    arns = sorted({s.task_definition for s in plan.states.values()} - set(plan.task_defs))

    def one(arn: str) -> None:
        with contextlib.suppress(TierupError):
            plan.task_defs[arn] = ecs.describe_task_definition(arn)

    each(one, arns, workers=PER_ENV_WORKERS)
