"""Planning an undo: roll services back to what ran before, or restore them to a snapshot.

``plan_rollback`` (and the snapshot's ``plan_restore``) only read; the plan's ``steps()`` are
the writes ``undo_run.execute`` makes through the executor, so ``--dry-run`` prints exactly
those. Where each service goes back to is found by ``undo_targets``.

A rollback's target is what the service ran before its current deployment: from the ledger
when its newest record of the service is the deployment running now; else from ECS's
deployment history; else the previous ACTIVE revision of the family. The result names the
source used. Rolling strategies write with update_service; a strategy that owns its rollback
(a stack, CodeDeploy) writes through its ``restore`` (a change set, a blue/green deployment);
a strategy that stops a running deployment with its rollback (ECS-native) does so for a
service whose deployment still runs from the target, instead of deploying the target again.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tierup.pipeline import strategies
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config, Environment
from tierup.pipeline.executor import Where
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.undo_targets import (
    LedgerWindow,
    Once,
    RegistryLookup,
    ServiceView,
    find_target,
    ledger_container,
    mutable_tag_predicate,
    unfinished_targets,
)
from tierup.stages import all_strategies
from tierup.stages import rollback as rb
from tierup.stages import strategy as strategy_stage
from tierup.stages.errors import InputError, TierupError
from tierup.stages.parallel import MAX_WORKERS, each
from tierup.stages.plan import Plan, Restore, Step, Undo
from tierup.stages.types import TaskDefinition

# -- reading the world -------------------------------------------------------------------------


# -- planning --------------------------------------------------------------------------------


@dataclass
class UndoPlan:
    command: str  # rollback | restore
    scope: str  # service | cluster | snapshot
    env_name: str
    env: Environment
    strategy: str
    services: list[rb.RollbackPlan] = field(default_factory=list)
    errors: dict[str, TierupError] = field(default_factory=dict)
    snapshot: str | None = None
    notes: list[str] = field(default_factory=list)
    task_defs: dict[str, TaskDefinition] = field(default_factory=dict)
    invocation: str | None = None  # the command as given, for titles and the ledger

    @property
    def event_command(self) -> str:
        """``rollback service``, ``rollback cluster`` (as ``rollback tier``), or ``restore``."""
        return f"{self.command} {self.scope}" if self.command == "rollback" else self.command

    def where(self) -> dict[str, Where]:
        return {self.env_name: Where(self.env_name, self.env, self.strategy, self.task_defs)}

    def steps(self) -> Plan:
        """The run's steps: one per service, or one per write of a strategy that owns its
        rollbacks (a change set for a stack's services, a CodeDeploy deployment per service);
        a service ECS already takes there (``follow``) is followed, not written."""
        strategy = all_strategies.get(self.strategy)
        if not strategy_stage.capabilities(strategy).owns_rollback:
            return Plan(tuple(Undo(self.env_name, p) for p in self.services if p.action != rb.SKIP))
        writing = [p for p in self.services if p.writes]
        groups = (
            [writing] if strategy_stage.capabilities(strategy).one_write else [[p] for p in writing]
        )
        # a strategy whose writes are its own (a change set, a CodeDeploy deployment) says them
        describe = getattr(strategy, "undo_steps", None)
        steps: list[Step] = []
        for group in (g for g in groups if g):
            texts = (
                describe(
                    group,
                    environment=self.env_name,
                    cluster=self.env.cluster,
                    settings=strategies.settings(self.env),
                )
                if describe is not None
                else [p.describe() for p in group]
            )
            steps.append(Restore(self.env_name, self.strategy, tuple(group), texts[0]))
        return Plan(tuple(steps))


TargetFinder = Callable[[ServiceView], rb.RollbackTarget]


def plan_services(
    config: Config,
    clients: Clients,
    *,
    command: str,
    scope: str,
    env_name: str,
    services: list[str] | None,
    all_services: bool,
    find: TargetFinder,
    fail_fast: bool,
    snapshot: str | None = None,
) -> UndoPlan:
    """Read everything and decide every service's rollback; raise before any write when the
    rollback must be refused (a controller update_service cannot move, missing images)."""
    env = config.environment(env_name)
    strategy = config.strategy_for(env_name)
    caps = strategy_stage.capabilities(all_strategies.get(strategy))
    plan = UndoPlan(
        command=command,
        scope=scope,
        env_name=env_name,
        env=env,
        strategy=strategy,
        snapshot=snapshot,
    )
    ecs = clients.ecs(env)
    if services is None:
        services = ecs.list_services(env.cluster) if all_services else list(env.services)
    one = services[0] if len(services) == 1 else None
    described: dict[str, TaskDefinition] = {}
    described_lock = threading.Lock()

    def describe_one(arn: str) -> TaskDefinition:
        td = ecs.describe_task_definition(arn)
        with described_lock:
            described[arn] = td
            described[td.arn] = td
        return td

    fetch = Once(describe_one)

    def describe(arn: str) -> TaskDefinition:
        with described_lock:
            known = described.get(arn)  # also under the full ARN a short name resolved to
        return known if known is not None else fetch(arn)

    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        # independent reads: the services, and the tasks they run; the services' task
        # definitions are described while the tasks are still being read
        running_f = pool.submit(ecs.running_images, env.cluster, one)
        states = ecs.describe_services(env.cluster, services, allow_missing=True)
        for name in services:
            if name not in states:
                missing_service = InputError(
                    f"service {name!r} not found in cluster {env.cluster!r} ({env_name})",
                    hint="check the service name, or environments.<env>.services in envs.yaml",
                )
                if fail_fast:
                    raise missing_service
                plan.errors[name] = missing_service
        if not caps.owns_rollback:
            for state in states.values():
                rb.check_controller(env_name, state)
        fetch.start(dict.fromkeys(s.task_definition for s in states.values()), pool)
        running = running_f.result() if states else {}
    lookup = RegistryLookup(clients.registry)
    mutable = mutable_tag_predicate(config)
    missing: dict[tuple[str, str], list[str]] = {}
    lock = threading.Lock()

    def plan_one(name: str) -> None:
        state = states[name]
        try:
            current = describe(state.task_definition)
            view = ServiceView(
                environment=env_name,
                ecs=ecs,
                state=state,
                current=current,
                running=running.get(name, []),
                ledger_container=ledger_container(env, name, current),
            )
            target = find(view)
            target_def = _describe_target(describe, target)
            if target_def.family != current.family:
                plan_note = (
                    f"{name}: the target {target_def.arn} is of family {target_def.family}, "
                    f"not {current.family}"
                )
                with lock:
                    plan.notes.append(plan_note)
            decided, lacking = rb.plan_rollback(
                ecs,
                environment=env_name,
                state=state,
                current=current,
                target=target,
                target_def=target_def,
                running=view.running,
                lookup=lookup,
                mutable_tag=mutable,
            )
        except rb.RollbackRefused:
            raise
        except TierupError as e:
            if fail_fast:
                raise
            with lock:
                plan.errors[name] = e
            return
        with lock:
            plan.services.append(decided)
            if lacking:
                missing[(env_name, name)] = lacking

    each(plan_one, [n for n in services if n in states])
    order = {n: i for i, n in enumerate(services)}
    plan.services.sort(key=lambda p: order.get(p.service, 0))
    rb.refuse_missing(plan.services, missing)
    plan.task_defs = described
    if caps.owns_rollback:
        _through_strategy(plan, list(env.services))
    if caps.stops_running:
        _stop_running(plan, strategies.context(clients, env_name, env, described))
    return plan


def _through_strategy(plan: UndoPlan, configured: list[str]) -> None:
    """A strategy that owns its rollback writes it: every move is one of its writes."""
    plan.services = [
        dataclasses.replace(p, action=rb.UPDATE) if p.action in (rb.FOLLOW, rb.REDEPLOY) else p
        for p in plan.services
    ]
    # how its writes change the moves (a stack registers the revision itself), and notes
    adjust = getattr(all_strategies.get(plan.strategy), "plan_undo", None)
    if adjust is not None:
        services, notes = adjust(plan.services, environment=plan.env_name, configured=configured)
        plan.services = list(services)
        plan.notes.extend(notes)


def _stop_running(plan: UndoPlan, ctx: strategy_stage.Context) -> None:
    """A service whose deployment still runs from the rollback's target: stop it with its
    rollback (the strategy's ``running``, read now, and ``stop_running``, at run time)."""
    strategy = all_strategies.get(plan.strategy)
    read = getattr(strategy, "running", None)
    if read is None:
        return
    lock = threading.Lock()
    stops: dict[str, strategy_stage.Running] = {}

    def one(p: rb.RollbackPlan) -> None:
        try:
            running = read(ctx, p.service)
        except TierupError:
            return  # not known: the rollback deploys the target, as it would anyway
        if isinstance(running, strategy_stage.Running) and (
            running.source_task_definition == p.target_task_definition
        ):
            with lock:
                stops[p.service] = running

    each(one, [p for p in plan.services if p.writes])
    out: list[rb.RollbackPlan] = []
    for p in plan.services:
        running = stops.get(p.service)
        if running is not None:
            revision = p.target_task_definition.rsplit("/", 1)[-1]
            images = (
                tuple((c.name, c.image) for c in p.target_def.containers)
                if p.target_def is not None
                else p.images
            )
            p = dataclasses.replace(
                p,
                action=rb.STOP,
                deployment=running.deployment,
                reason=f"back to {revision} ({rb.source_text(p.target)}): stop "
                f"{running.description} with its rollback (StopServiceDeployment ROLLBACK)",
                images=images,
                pinned=(),
                reregistered=False,
                params={},
            )
        out.append(p)
    plan.services = out


def _describe_target(
    describe: Callable[[str], TaskDefinition], target: rb.RollbackTarget
) -> TaskDefinition:
    try:
        return describe(target.task_definition)
    except TierupError as e:
        raise InputError(
            f"rollback target {target.task_definition} cannot be described: {e.message}",
            hint="name an existing revision: --to REVISION, family:REVISION or an ARN",
        ) from e


def plan_rollback(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    *,
    env_name: str,
    service: str | None = None,
    all_services: bool = False,
    to: str | None = None,
) -> UndoPlan:
    """Plan ``rollback service`` (one service) or ``rollback cluster`` (every service)."""
    if to is not None and service is None:
        raise InputError("--to needs --service", hint="name the service to roll back")
    window = LedgerWindow(ledger, env_name)
    scope = "service" if service else "cluster"
    unfinished = (
        unfinished_targets(window.events(), env_name, f"rollback {scope}") if to is None else {}
    )
    plan = plan_services(
        config,
        clients,
        command="rollback",
        scope=scope,
        env_name=env_name,
        services=[service] if service else None,
        all_services=all_services,
        find=lambda view: find_target(view, window, to, unfinished),
        fail_fast=service is not None,
    )
    words = [plan.event_command, "--env", env_name]
    if service:
        words += ["--service", service]
    if to is not None:
        words += ["--to", to]
    if all_services:
        words.append("--all-services")
    plan.invocation = " ".join(words)
    return plan


# -- running ---------------------------------------------------------------------------------
