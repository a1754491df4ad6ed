"""Running a promotion's plan: retag -> deploy -> wait -> record, under the guard.

``plan_promotion`` (reads only) makes the plan; its steps list, item for item, the writes
``execute`` makes through the executor; ``--dry-run`` prints them and stops. Around the steps:
the tier's step lists, the compensation of ``--rollback-on-failure`` / ``--atomic``, retention,
and the ledger events (``outcomes``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from tierup.pipeline import executor, step_runner, strategies
from tierup.pipeline import retention as retention_mod
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.events import (
    Event,
    EventStatus,
)
from tierup.pipeline.lock import require_guard
from tierup.pipeline.outcomes import (
    SKIPPED_UNREACHABLE,
    env_outcome,
    open_event,
    promotion_event,
)
from tierup.pipeline.plan import EnvPlan, PromotionPlan, Review
from tierup.pipeline.results import (
    CommandResult,
    EnvironmentOutcome,
    ImageOutcome,
)
from tierup.pipeline.rollback_on_failure import mode_for, recover
from tierup.stages import all_strategies
from tierup.stages import wait as wait_stage
from tierup.stages.adapters.registry import TagWrite
from tierup.stages.deploy import Applied
from tierup.stages.errors import InputError, TierupError
from tierup.stages.plan import MoveTag
from tierup.stages.record import NullRecorder, Recorder

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Source:
    """Where a promotion takes its digest from: default, a tier, a commit or a digest."""

    kind: str = "default"  # default | tier | commit | digest
    value: str | None = None

    @classmethod
    def from_flags(cls, *, from_tier: str | None, commit: str | None, digest: str | None) -> Source:
        given = [
            (k, v) for k, v in (("tier", from_tier), ("commit", commit), ("digest", digest)) if v
        ]
        if len(given) > 1:
            raise InputError(
                "--from, --commit and --digest are exclusive", hint="pass at most one source"
            )
        return cls(*given[0]) if given else cls()


# -- run ---------------------------------------------------------------------------


@dataclass
class RunOptions:
    wait: bool = True
    timeout: int | None = None
    dry_run: bool = False
    # None: the tier's setting in envs.yaml
    rollback_on_failure: bool | None = None
    atomic: bool | None = None
    # task definitions retention must keep (revisions that records such as the ledger name)
    protected: frozenset[str] = frozenset()
    # environments a promotion goes on without (--skip-unreachable), recorded as skipped
    skip_unreachable: frozenset[str] = frozenset()
    # a saved plan's part in the run (--out, tierup apply): see pipeline.plan.Review
    review: Review | None = None


def execute(
    config: Config,
    clients: Clients,
    plan: PromotionPlan,
    *,
    options: RunOptions,
    recorder: Recorder[Event] | None = None,
    progress: Progress | None = None,
) -> CommandResult:
    """Run a promotion's plan; only inside a guarded command (``release.run_promotion``)."""
    require_guard("a promotion")
    say = progress or (lambda _m: None)
    result = CommandResult(
        command=plan.command,
        tier=plan.tier.name,
        dry_run=options.dry_run,
        invocation=plan.invocation,
    )
    by_image = {r.image: r for r in plan.resolved}
    for r in plan.retags:
        res = by_image[r.image]
        result.images.append(
            ImageOutcome(
                image=r.image,
                repository=r.repository,
                status=str(r.action),
                tag=r.tag,
                digest=r.manifest.digest,
                previous_digest=r.current_digest,
                source=res.source,
                commit=res.commit,
                note=res.note,
            )
        )
    # images resolved alike (a commit that rebuilt none of them) share one note, naming them
    noted: dict[str, list[str]] = {}
    for res in plan.resolved:
        if res.note:
            noted.setdefault(res.note, []).append(res.image)
    result.notes.extend(f"{', '.join(images)}: {note}" for note, images in noted.items())
    steps = plan.steps()
    result.plan = steps.describe()
    # envs.yaml's `steps`: None when no environment lists any (today's retag, deploy, wait)
    run = step_runner.plan(config, clients, plan)
    if run is not None:
        result.plan = run.plan_items(plan, steps)
    if options.review is not None:
        options.review.planned(plan, result)  # a saved plan: kept, or refused before any write
        recorder = options.review.recorder(recorder or NullRecorder())
    if options.dry_run:
        if options.review is None:  # a plan saved with --out keeps its change sets
            _discard(clients, plan.envs)
        for e in plan.envs:
            result.environments.append(env_outcome(e, {}, {}))
        _add_skipped(plan, result)
        if run is not None:
            run.settle(result, {})
        result.settle()
        return result
    if run is not None and not run.before_retag(say):
        return _stopped(run, clients, plan, result, recorder, say)

    rec: Recorder[Event] = recorder or NullRecorder()
    # write-ahead: the planned writes are recorded before the first one; the last event closes
    # this one, and a run that dies leaves it open for the next writing command to reconcile
    opened = open_event(
        rec,
        plan.command,
        plan.tier.name,
        result,
        [
            {
                "environment": e.name,
                "service": s.service,
                "task_definition_before": s.task_definition,
                "images_before": {c: d for c, d in s.previous_digests if d},
                "images_target": {c.container: c.target.digest for c in s.containers},
            }
            for e in plan.envs
            for s in e.services
            if s.writes and plan.deploy
        ],
    )

    def close(event: Event) -> Event:
        return rec.record(dataclasses.replace(event, closes=opened))

    tags = executor.write_tags(clients.registry, steps.of_type(MoveTag), say)
    by_tag = {t.step.image: t for t in tags}
    for outcome in result.images:
        t = by_tag.get(outcome.image)
        if t is None:
            continue
        outcome.status = t.status
        if t.error is not None:
            outcome.error, outcome.hint = t.error.message, t.error.hint
        if t.found is not None:  # the ledger keeps what was really there
            outcome.previous_digest = t.found
    retag_failed = any(o.status in ("failed", executor.CONFLICT) for o in result.images)
    if run is not None:
        run.retagged(result.images)
    if retag_failed:
        _discard(clients, plan.envs)
        if any(o.status == executor.CONFLICT for o in result.images):
            result.notes.append(
                "a tag was moved by another writer during the run: no environment was "
                "deployed; check `tierup where` and re-run"
            )
        result.notes.append("a tag write failed: no environment was deployed")
        for ep in plan.envs:
            env_out = env_outcome(ep, {}, {})
            env_out.status, env_out.error = "failed", "not deployed: a tag write failed"
            result.environments.append(env_out)
        if run is not None:
            run.skip_rest("a tag write failed")
            run.settle(result, {})
        result.settle()
        stored = close(_recorded(run, plan, result))
        if run is not None:
            _after_record(run, rec, result, stored, say)
        return result

    if run is None:
        report = _apply_all(clients, plan.envs, say)
        applied, errors = report.applied, report.errors
    else:  # each environment's list deploys and waits in its place among the steps
        applied, errors = run.applied, run.errors
    waited: dict[tuple[str, str], wait_stage.RolloutState] = {}
    if options.wait or run is not None:
        try:
            if run is None:
                waited = _wait_all(config, clients, plan.envs, applied, options.timeout, say)
            else:
                waited = run.environments(
                    plan.envs,
                    apply=lambda e: _apply_all(clients, [e], say),
                    wait=(
                        (lambda e, a: _wait_all(config, clients, [e], a, options.timeout, say))
                        if options.wait
                        else None
                    ),
                    say=say,
                )
        except KeyboardInterrupt:
            # Ctrl-C while waiting: what was written is recorded, as --no-wait records it
            for ep in plan.envs:
                result.environments.append(env_outcome(ep, applied, errors, {}, False))
            if run is not None:
                run.settle(result, applied)
            result.settle()
            close(
                dataclasses.replace(
                    _recorded(run, plan, result), status=EventStatus.INTERRUPTED, interrupted=True
                )
            )
            raise
    for ep in plan.envs:
        result.environments.append(env_outcome(ep, applied, errors, waited, options.wait))
    _add_skipped(plan, result)
    if run is not None:
        run.settle(result, applied)  # a failed step fails its environment, as a rollout does
    result.settle()
    mode = mode_for(
        plan.tier, rollback_on_failure=options.rollback_on_failure, atomic=options.atomic
    )
    recover(
        config,
        clients,
        plan,
        result,
        applied,
        mode=mode,
        wait=options.wait,
        timeout=options.timeout,
        say=say,
    )
    retention_mod.run(clients, plan.envs, applied, result, say, options.protected)
    result.settle()
    result.count_retries(clients.retries.count)
    stored = close(_recorded(run, plan, result))
    if run is not None:
        _after_record(run, rec, result, stored, say)
    return result


def _recorded(run: step_runner.StepRun | None, plan: PromotionPlan, result: CommandResult) -> Event:
    event = promotion_event(plan, result)
    return event if run is None else run.annotate(event)


def _after_record(
    run: step_runner.StepRun,
    rec: Recorder[Event],
    result: CommandResult,
    stored: Event,
    say: Progress,
) -> None:
    """The promotion-wide steps (notify), which name the recorded event; then their outcomes
    in the ledger, as an amendment of that event."""
    run.after_record(result, stored.id or None, say)
    amendment = run.amendment(stored)
    if amendment is None:
        return
    try:
        rec.record(amendment)
    except TierupError as e:  # the promotion is recorded and done: this is a note
        result.notes.append(f"the notification's outcome was not recorded in the ledger: {e}")


def _stopped(
    run: step_runner.StepRun,
    clients: Clients,
    plan: PromotionPlan,
    result: CommandResult,
    recorder: Recorder[Event] | None,
    say: Progress,
) -> CommandResult:
    """A step listed before ``retag`` failed: nothing is written, the run is recorded."""
    _discard(clients, plan.envs)
    run.skip_rest("a step before retag failed: nothing was written")
    for o in result.images:
        if o.status != str(TagWrite.UNCHANGED):
            o.status, o.note = "not_moved", "a step before retag failed"
    for ep in plan.envs:
        result.environments.append(env_outcome(ep, {}, {}))
    _add_skipped(plan, result)
    run.settle(result, {})
    result.settle()
    rec: Recorder[Event] = recorder or NullRecorder()
    stored = rec.record(_recorded(run, plan, result))
    _after_record(run, rec, result, stored, say)
    return result


def _add_skipped(plan: PromotionPlan, result: CommandResult) -> None:
    for name, env, strategy in plan.skipped:
        out = EnvironmentOutcome.of(name, env, strategy)
        out.status, out.hint = "skipped", SKIPPED_UNREACHABLE
        result.environments.append(out)
    if plan.skipped:
        names = ", ".join(n for n, _e, _s in plan.skipped)
        result.notes.append(
            f"not deployed (--skip-unreachable): {names}; deploy them once reachable: "
            + " ; ".join(f"tierup deploy --env {n}" for n, _e, _s in plan.skipped)
        )


def _discard(clients: Clients, envs: list[EnvPlan]) -> None:
    """Drop what planning left behind (a change set shown by a dry run)."""
    for e in envs:
        if e.error is None and e.services:
            try:
                ctx = strategies.context(clients, e.name, e.env, e.task_defs)
                all_strategies.get(e.strategy).discard(ctx, e.services)
            except TierupError:
                pass  # a preview left behind changes nothing


def _apply_all(clients: Clients, envs: list[EnvPlan], say: Progress) -> executor.Report:
    """Deploy ``envs``: every write at once (a service, or the services of one stack)."""
    steps = [step for e in envs for step in e.deploy_steps()]
    return executor.apply(clients, steps, {e.name: e.where() for e in envs}, say)


def _wait_all(
    config: Config,
    clients: Clients,
    envs: list[EnvPlan],
    applied: dict[tuple[str, str], Applied],
    timeout: int | None,
    say: Progress,
) -> dict[tuple[str, str], wait_stage.RolloutState]:
    """Follow the rollouts ``applied`` started in ``envs``, through each one's strategy."""
    names = {e.name for e in envs if e.error is None}
    return executor.follow(
        clients,
        {k: a for k, a in applied.items() if k[0] in names},
        {e.name: e.where() for e in envs},
        lambda env: timeout if timeout is not None else config.wait_timeout_for(env),
        say,
    )
