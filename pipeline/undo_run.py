"""Running a rollback's or a restore's plan under the guard: its steps through the executor,
the rollouts followed through the environment's strategy, each service's outcome and the
ledger event (what it undid, per container before and after).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tierup.pipeline import executor, strategies
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.events import EnvironmentRecord, Event, EventStatus, ServiceRecord
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.lock import require_guard
from tierup.pipeline.outcomes import open_event, settle_waited
from tierup.pipeline.promote import Progress, RunOptions
from tierup.pipeline.results import CommandResult, EnvironmentOutcome, ServiceOutcome, landed
from tierup.pipeline.undo import UndoPlan, plan_rollback
from tierup.stages import all_strategies
from tierup.stages import rollback as rb
from tierup.stages import strategy as strategy_stage
from tierup.stages import wait as wait_stage
from tierup.stages.deploy import Applied
from tierup.stages.errors import TierupError
from tierup.stages.record import NullRecorder, Recorder


@dataclass
class UndoOutcome(ServiceOutcome):
    """A service's rollback or restore: where the target came from and how it was made exact."""

    source: str | None = None
    images: dict[str, str] | None = None
    pinned: dict[str, str] | None = None  # container -> the digest reference it was pinned to
    reregistered: bool | None = None
    notes: list[str] = field(default_factory=list)
    # rolled back by stopping this deployment with its rollback (StopServiceDeployment)
    stopped_deployment: str | None = None


def execute(
    config: Config,
    clients: Clients,
    plan: UndoPlan,
    *,
    options: RunOptions,
    recorder: Recorder[Event] | None = None,
    progress: Progress | None = None,
) -> CommandResult:
    """Run a rollback's or restore's plan; only inside a guarded command (``run_locked``)."""
    require_guard("a rollback")
    say = progress or (lambda _m: None)
    result = CommandResult(
        command=plan.event_command, dry_run=options.dry_run, invocation=plan.invocation
    )
    result.data["env"] = plan.env_name
    steps = plan.steps()
    result.plan = steps.describe()
    result.notes.extend(plan.notes)
    if plan.snapshot is not None:
        result.data["snapshot"] = plan.snapshot
    if options.review is not None:
        options.review.planned(plan, result)  # a saved plan: kept, or refused before any write
        recorder = options.review.recorder(recorder or NullRecorder())
    if options.dry_run:
        result.environments.append(_outcome(plan, {}, {}, {}, wait=False))
        result.settle()
        return result

    waited: dict[str, wait_stage.RolloutState] = {}
    rec: Recorder[Event] = recorder or NullRecorder()
    # write-ahead, as a promotion: the planned writes first, closed by the last event
    opened = open_event(
        rec,
        plan.event_command,
        plan.env.tier,
        result,
        [
            {
                "environment": plan.env_name,
                "service": p.service,
                "task_definition_before": p.current_task_definition,
                "images_before": {c: d for c, d in p.digests_before if d},
                "task_definition_target": p.target_task_definition,
                "images_target": {c: d for c, d in p.digests_after if d},
            }
            for p in plan.services
            if p.writes
        ],
    )

    def record(wait: bool, *, interrupted: bool = False) -> None:
        result.environments.append(_outcome(plan, applied, errors, waited, wait=wait))
        result.settle()
        event = dataclasses.replace(_event(plan, result), closes=opened)
        if interrupted:
            event = dataclasses.replace(event, status=EventStatus.INTERRUPTED, interrupted=True)
        rec.record(event)

    ctx = strategies.context(clients, plan.env_name, plan.env, plan.task_defs)
    owns_rollback = strategy_stage.capabilities(all_strategies.get(plan.strategy)).owns_rollback
    report = executor.apply(clients, steps.in_environments(), plan.where(), say)
    applied = {s: a for (_e, s), a in report.applied.items()}
    errors = {s: e for (_e, s), e in report.errors.items()}
    if options.wait:
        try:
            waited = _wait(config, clients, plan, applied, options.timeout, say)
            if owns_rollback:
                applied = _landed(ctx, plan, applied, waited)
        except KeyboardInterrupt:
            # Ctrl-C while waiting: what was written is recorded, as --no-wait records it
            waited = {}
            record(False, interrupted=True)
            raise
    record(options.wait)
    return result


def _landed(
    ctx: strategy_stage.Context,
    plan: UndoPlan,
    applied: dict[str, Applied],
    waited: dict[str, wait_stage.RolloutState],
) -> dict[str, Applied]:
    """The revisions the services run once the strategy is done (a stack registers its own)."""
    done = [s for s, st in waited.items() if st.state == wait_stage.COMPLETED]
    if not done:
        return applied
    try:
        states = ctx.ecs.describe_services(plan.env.cluster, done, allow_missing=True)
    except TierupError:
        return applied
    return {
        s: dataclasses.replace(a, task_definition=states[s].task_definition) if s in states else a
        for s, a in applied.items()
    }


def _wait(
    config: Config,
    clients: Clients,
    plan: UndoPlan,
    applied: dict[str, Applied],
    timeout: int | None,
    say: Progress,
) -> dict[str, wait_stage.RolloutState]:
    """Follow the rollouts through the environment's strategy, as a promotion does."""
    states = executor.follow(
        clients,
        {(plan.env_name, s): a for s, a in applied.items()},
        plan.where(),
        lambda env: timeout if timeout is not None else config.wait_timeout_for(env),
        say,
        phase="rollback",
    )
    return {s: st for (_e, s), st in states.items()}


def _done_status(command: str) -> str:
    return "restored" if command == "restore" else "rolled_back"


def _outcome(
    plan: UndoPlan,
    applied: dict[str, Applied],
    errors: dict[str, TierupError],
    waited: dict[str, wait_stage.RolloutState],
    *,
    wait: bool,
) -> EnvironmentOutcome:
    env = plan.env
    out = EnvironmentOutcome.of(plan.env_name, env, plan.strategy)
    for p in plan.services:
        images = dict(p.images)
        so = UndoOutcome(
            service=p.service,
            status="planned" if p.writes else "unchanged",
            task_definition=p.current_task_definition
            if p.action in (rb.REDEPLOY, rb.FOLLOW, rb.SKIP)
            else p.target_task_definition,
            previous_task_definition=p.current_task_definition,
            image=", ".join(images.values()),
            digest=_first(p.digests_after),
            previous_digest=_first(p.digests_before),
            reason=p.reason,
            source=p.target.source,
            images=images,
            pinned={c: images[c] for c in p.pinned} or None,
            reregistered=True if p.reregistered else None,
            notes=list(p.notes),
            stopped_deployment=p.deployment if p.action == rb.STOP else None,
        )
        if p.service in errors:
            err = errors[p.service]
            so.status, so.error, so.hint = "failed", err.message, err.hint
        elif p.service in applied:
            a = applied[p.service]
            so.deployment_id, so.task_definition = a.deployment_id, a.task_definition
            so.status = (
                "deployed" if p.writes and a.extra.get("written") is not False else ("unchanged")
            )
            st = waited.get(p.service)
            if wait and st is not None:
                settle_waited(so, st, done=_done_status(plan.command))
        out.services.append(so)
    for name, err in plan.errors.items():
        out.services.append(
            UndoOutcome(service=name, status="failed", error=err.message, hint=err.hint)
        )
    out.settle()
    return out


def _first(pairs: tuple[tuple[str, str | None], ...]) -> str | None:
    return next((d for _, d in pairs if d), None)


def _event(plan: UndoPlan, result: CommandResult) -> Event:
    by_service = {p.service: p for p in plan.services}
    services: dict[str, ServiceRecord] = {}
    undid: set[str] = set()
    for env in result.environments:
        for s in env.services:
            p = by_service.get(s.service)
            # a service nothing moved (a refused write, ECS put it back) stays where it was
            stayed = not landed(s)
            before: dict[str, str] = {}
            after: dict[str, str] = {}
            extra: dict[str, Any] = {}
            if p is not None:
                before = {c: d for c, d in p.digests_before if d}
                after = dict(before) if stayed else {c: d for c, d in p.digests_after if d}
                extra["source"] = p.target.source
                if p.pinned:
                    extra["pinned"] = {c: dict(p.images)[c] for c in p.pinned}
                if p.reregistered:
                    extra["reregistered"] = True
                if p.action == rb.STOP and p.deployment is not None:
                    # the rollback was ECS's: the deployment was stopped with its rollback
                    extra["stopped_deployment"] = p.deployment
                if p.target.event and not stayed and p.writes:
                    undid.add(p.target.event)
                # the target, whatever happened: a re-run of an unfinished undo goes there
                extra["target_task_definition"] = p.target_task_definition
                extra["target_images"] = {c: d for c, d in p.digests_after if d}
                if p.target.event:
                    extra["target_undoes"] = p.target.event
            services[s.service] = ServiceRecord(
                status=s.status,
                task_definition_before=s.previous_task_definition,
                task_definition_after=s.previous_task_definition if stayed else s.task_definition,
                digest_before=s.previous_digest,
                digest_after=s.previous_digest if stayed else s.digest,
                images_before=before,
                images_after=after,
                extra=extra,
            )
    return Event(
        command=plan.event_command,
        invocation=plan.invocation,
        tier=plan.env.tier,
        status=str(result.status),
        environments={
            plan.env_name: EnvironmentRecord(
                status=result.environments[0].status if result.environments else "ok",
                services=services,
            )
        },
        undid=tuple(sorted(undid)),
        snapshot=plan.snapshot,
        message=f"from snapshot {plan.snapshot}" if plan.snapshot is not None else None,
    )


def run_locked(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    *,
    env: str,
    command: str,
    options: RunOptions,
    lock_timeout: float,
    plan: Callable[[], UndoPlan],
    progress: Progress | None = None,
) -> CommandResult:
    """Plan and run under the lock of the environment's tier (no lock for a dry run); record."""
    from tierup.pipeline.guard import Annotating, Guard, finish, reconcile_first, tier_lock
    from tierup.pipeline.lock import holding

    tier = config.environment(env).tier
    lock = tier_lock(config, clients, ledger, tier, command=command, dry_run=options.dry_run)
    recorder = Annotating(ledger, Guard())
    with holding(lock, lock_timeout, progress):
        reconciled = reconcile_first(config, clients, ledger, tier, dry_run=options.dry_run)
        result = execute(
            config, clients, plan(), options=options, recorder=recorder, progress=progress
        )
    return finish(result, recorder, ledger, reconciled)


def rollback(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    *,
    env: str,
    service: str | None = None,
    all_services: bool = False,
    to: str | None = None,
    options: RunOptions | None = None,
    lock_timeout: float = 0,
    progress: Progress | None = None,
) -> CommandResult:
    """Roll one service, or every service of an environment, back to what ran before.

    Runs under the lock of the environment's tier, as a promotion does; the ledger both says
    what ran before and records the rollback.
    """
    opts = options or RunOptions()
    return run_locked(
        config,
        clients,
        ledger,
        env=env,
        command="rollback service" if service else "rollback cluster",
        options=opts,
        lock_timeout=lock_timeout,
        plan=lambda: plan_rollback(
            config,
            clients,
            ledger,
            env_name=env,
            service=service,
            all_services=all_services,
            to=to,
        ),
        progress=progress,
    )
