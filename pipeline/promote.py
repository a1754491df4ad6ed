"""Promotion: resolve -> retag -> deploy -> wait -> record, planned first, then run.

``plan_promotion`` only reads. Its plan lists, item for item, the writes ``execute`` makes;
``--dry-run`` prints that plan and stops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tierup.pipeline import retention as retention_mod
from tierup.pipeline import step_runner, strategies
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.config_tiers import Tier
from tierup.pipeline.events import (
    EnvironmentRecord,
    Event,
    EventStatus,
    ImageRecord,
    ServiceRecord,
)
from tierup.pipeline.lock import require_guard
from tierup.pipeline.plan import EnvPlan, PromotionPlan, Review
from tierup.pipeline.progress import rollout_changed
from tierup.pipeline.results import (
    CommandResult,
    EnvironmentOutcome,
    ImageOutcome,
    ServiceOutcome,
    landed,
)
from tierup.pipeline.rollback_on_failure import mode_for, recover
from tierup.pipeline.tag_template import TIMESTAMP_FORMAT, render_tag
from tierup.stages import all_strategies, resolve, retag
from tierup.stages import deploy as deploy_stage
from tierup.stages import strategy as strategy_stage
from tierup.stages import wait as wait_stage
from tierup.stages.adapters.ecs import ClusterMissing, Ecs, ServiceMissing
from tierup.stages.adapters.registry import Registry, TagWrite
from tierup.stages.deploy import Applied, ImageTarget, ServicePlan
from tierup.stages.errors import ExitCode, InputError, TierupError
from tierup.stages.parallel import each
from tierup.stages.record import NullRecorder, Recorder

MAX_WORKERS = 64
CONFLICT = "conflict"  # a tag moved by another writer between tierup's reads and its write
PER_ENV_WORKERS = 16  # reads inside one environment, while every environment reads at once
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


def _timestamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def resolve_sources(
    config: Config, clients: Clients, *, tier: Tier, source: Source, images: list[str]
) -> list[resolve.Resolved]:
    """Every image must resolve before anything is written (exit 2 otherwise)."""
    registry = clients.registry
    src_tier = config.tier(source.value) if source.kind == "tier" and source.value else None
    if source.kind == "default":
        src_tier = config.source_tier(tier.name)
    if src_tier is not None and src_tier.name == tier.name:
        raise InputError(f"tier {tier.name!r} cannot be promoted from itself")
    head: tuple[str, list[str]] | None = None
    if source.kind == "default" and src_tier is None:
        head = clients.head_commit()

    def one(name: str) -> resolve.Resolved:
        image = config.image(name)
        repo, prefix = image.repository, image.tag_prefix
        registry.describe_repository(repo)
        if source.kind == "digest":
            assert source.value is not None
            return resolve.resolve_digest(registry, name, repo, source.value)
        if source.kind == "commit":
            assert source.value is not None
            return resolve.resolve_commit(registry, name, repo, source.value, prefix=prefix)
        if src_tier is not None:
            return resolve.resolve_tier(
                registry,
                name,
                repo,
                tier=src_tier.name,
                template=image.tag(src_tier.tag),
                prefix=prefix,
            )
        assert head is not None
        return resolve.resolve_commit(
            registry, name, repo, head[0], ancestors=head[1], prefix=prefix
        )

    return each(one, images)


def needs_commit(template: str) -> bool:
    return "{commit}" in template or "{short_commit}" in template


def commit_of(
    registry: Registry, repository: str, r: resolve.Resolved, prefix: str = ""
) -> str | None:
    """The commit a resolved image was built from: its source's, else the commit tag(s) on
    its digest (whatever the source: a tier, a digest, a commit)."""
    if r.commit:
        return r.commit
    for info in registry.list_images(repository):
        if info.digest == r.manifest.digest:
            commits = resolve.commits_on(info, prefix)
            return commits[0] if commits else None
    return None


def _render(
    tier: Tier, resolved: resolve.Resolved, commit: str | None, now: datetime, prefix: str = ""
) -> str:
    if needs_commit(tier.tag) and not commit:
        raise InputError(
            f"image {resolved.image!r} ({resolved.manifest.repository}@{resolved.manifest.digest}"
            f", from {resolved.source}) has no commit tag: tier {tier.name!r} tag {tier.tag!r} "
            "needs its commit",
            hint="promote an image built by `tierup build` (tagged with its commit SHA), or "
            "give this digest its commit tag",
        )
    return prefix + render_tag(tier.tag, timestamp=_timestamp(now), commit=commit or "")


def _plan_image(
    config: Config, registry: Registry, tier: Tier, r: resolve.Resolved, now: datetime
) -> tuple[retag.RetagPlan, ImageTarget]:
    image = config.image(r.image)
    repo = image.repository
    tag = _render(tier, r, r.commit, now, image.tag_prefix)
    if tier.immutable:
        # a stamp already on this digest, the newest if several, is reused: stamping a digest
        # again changes nothing, however many stamps other digests got since
        mine = [i for i in registry.list_images(repo) if i.digest == r.manifest.digest]
        existing = resolve.newest_tag(mine, image.tag(tier.tag))
        if existing is not None:
            tag = existing[0]
    plan = retag.plan_retag(registry, r.image, repo, tag, r.manifest, immutable_tag=tier.immutable)
    return plan, ImageTarget.at(
        registry,
        r.image,
        repo,
        tag,
        r.manifest.digest,
        commit=r.commit,
        immutable_tag=tier.immutable,
    )


def tag_changes(
    retags: list[retag.RetagPlan], *, stamp: bool = False, back: bool = False
) -> dict[str, str]:
    """Image -> what its tag write does, in words, for the images whose tag is written."""
    out: dict[str, str] = {}
    for r in retags:
        digest = r.manifest.digest[:19]
        if r.action is TagWrite.CREATED:
            out[r.image] = f"new {'stamp' if stamp else 'tag'} {r.tag} on {digest}"
        elif r.action is TagWrite.MOVED:
            out[r.image] = f"the tag {r.tag} moved {'back ' if back else ''}to {digest}"
    return out


def plan_promotion(
    config: Config,
    clients: Clients,
    *,
    tier_name: str,
    source: Source,
    images: list[str] | None,
    deploy: bool,
    now: datetime,
    command: str = "promote",
    protected: frozenset[str] = frozenset(),
    skip_unreachable: frozenset[str] = frozenset(),
) -> PromotionPlan:
    """Read everything the promotion touches; raise PreflightError (nothing written) when a
    role, cluster, service or task definition of the tier cannot be read."""
    tier = config.tier(tier_name)
    names = images or list(config.images)
    for n in names:
        config.image(n)
    tier_envs = config.environments_of(tier.name)
    for skip in sorted(skip_unreachable):
        if skip not in tier_envs:
            raise InputError(
                f"--skip-unreachable {skip}: not an environment of tier {tier.name!r}",
                hint=f"pick from: {', '.join(tier_envs) or '(none)'}",
            )
    env_names = [n for n in tier_envs if n not in skip_unreachable]
    registry = clients.registry
    with ThreadPoolExecutor(max_workers=1) as background:
        reading = (
            background.submit(read_environments, config, clients, tier=tier, env_names=env_names)
            if deploy
            else None
        )
        resolved = resolve_sources(config, clients, tier=tier, source=source, images=names)
        if needs_commit(tier.tag):
            resolved = each(
                lambda r: dataclasses.replace(
                    r,
                    commit=commit_of(
                        registry,
                        config.image(r.image).repository,
                        r,
                        config.image(r.image).tag_prefix,
                    ),
                ),
                resolved,
            )
        planned = each(lambda r: _plan_image(config, registry, tier, r, now), resolved)
        read = reading.result() if reading is not None else None
    retags = [p for p, _t in planned]
    targets = {t.image: t for _p, t in planned}
    moved = tag_changes(retags, stamp=tier.immutable)
    envs: list[EnvPlan] = []
    if deploy:
        envs = plan_environments(
            config,
            clients,
            tier=tier,
            targets=targets,
            moved=moved,
            protected=protected,
            read=read,
        )
        preflight(envs)
    return PromotionPlan(
        command=command,
        tier=tier,
        tag=tier.tag,
        resolved=resolved,
        retags=retags,
        targets=targets,
        envs=envs,
        deploy=deploy,
        skipped=[
            (n, e, config.strategy_for(n))
            for n, e in tier_envs.items()
            if deploy and n in skip_unreachable
        ],
    )


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
        self.exit_code = ExitCode.BAD_INPUT if missing else ExitCode.FAILED


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
    result.plan = plan.steps()
    # envs.yaml's `steps`: None when no environment lists any (today's retag, deploy, wait)
    run = step_runner.plan(config, clients, plan)
    if run is not None:
        result.plan = run.plan_items(plan, result.plan)
    if options.review is not None:
        options.review.planned(plan, result)  # a saved plan: kept, or refused before any write
        recorder = options.review.recorder(recorder or NullRecorder())
    if options.dry_run:
        if options.review is None:  # a plan saved with --out keeps its change sets
            _discard(clients, plan.envs)
        for e in plan.envs:
            result.environments.append(_env_outcome(e, {}, {}))
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

    def write_tag(job: tuple[retag.RetagPlan, ImageOutcome]) -> None:
        r, outcome = job
        try:
            outcome.status = str(retag.retag(clients.registry, r))
            say(f"{r.repository}:{r.tag} -> {r.manifest.digest} ({outcome.status})")
        except retag.TagRaceError as e:
            # the ledger keeps what was really there: the digest the tag was found on
            outcome.status, outcome.error, outcome.hint = CONFLICT, e.message, e.hint
            if not e.written:
                outcome.previous_digest = e.found
            say(f"{r.repository}:{r.tag}: conflict: {e.message}")
        except TierupError as e:
            outcome.status, outcome.error, outcome.hint = "failed", e.message, e.hint

    each(
        write_tag,
        [
            (r, o)
            for r, o in zip(plan.retags, result.images, strict=True)
            if r.action is not TagWrite.UNCHANGED
        ],
    )
    retag_failed = any(o.status in ("failed", CONFLICT) for o in result.images)
    if run is not None:
        run.retagged(result.images)
    if retag_failed:
        _discard(clients, plan.envs)
        if any(o.status == CONFLICT for o in result.images):
            result.notes.append(
                "a tag was moved by another writer during the run: no environment was "
                "deployed; check `tierup where` and re-run"
            )
        result.notes.append("a tag write failed: no environment was deployed")
        for ep in plan.envs:
            env_out = _env_outcome(ep, {}, {})
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
        applied, errors = _apply_all(clients, plan.envs, say)
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
                result.environments.append(_env_outcome(ep, applied, errors, {}, False))
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
        result.environments.append(_env_outcome(ep, applied, errors, waited, options.wait))
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
    event = _event(plan, result)
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
        result.environments.append(_env_outcome(ep, {}, {}))
    _add_skipped(plan, result)
    run.settle(result, {})
    result.settle()
    rec: Recorder[Event] = recorder or NullRecorder()
    stored = rec.record(_recorded(run, plan, result))
    _after_record(run, rec, result, stored, say)
    return result


SKIPPED_UNREACHABLE = "skipped: left out with --skip-unreachable (not read, not deployed)"


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


def open_event(
    recorder: Recorder[Event],
    command: str,
    tier: str | None,
    result: CommandResult,
    services: list[dict[str, Any]],
) -> str | None:
    """Record the run's planned writes before the first one; the open event's id (None when
    nothing will be written, or the recorder keeps no ids). ``services``: what each service
    runs before and its target, so that a reconciliation can tell what moved."""
    if not result.plan:
        return None
    opened = recorder.record(
        Event(
            command=command,
            invocation=result.title.removeprefix("tierup "),
            tier=tier,
            status=EventStatus.OPEN,
            intent={"writes": list(result.plan), "services": services},
        )
    )
    return opened.id or None


def _discard(clients: Clients, envs: list[EnvPlan]) -> None:
    """Drop what planning left behind (a change set shown by a dry run)."""
    for e in envs:
        if e.error is None and e.services:
            try:
                ctx = strategies.context(clients, e.name, e.env, e.task_defs)
                all_strategies.get(e.strategy).discard(ctx, e.services)
            except TierupError:
                pass  # a preview left behind changes nothing


def _apply_all(
    clients: Clients, envs: list[EnvPlan], say: Progress
) -> tuple[dict[tuple[str, str], Applied], dict[tuple[str, str], TierupError]]:
    # one job per write: a service, or the services of one stack
    jobs = [(e, g) for e in envs if e.error is None for g in strategy_stage.groups(e.services)]
    applied: dict[tuple[str, str], Applied] = {}
    errors: dict[tuple[str, str], TierupError] = {}
    lock = threading.Lock()

    def one(job: tuple[EnvPlan, list[ServicePlan]]) -> None:
        e, group = job
        try:
            ctx = strategies.context(clients, e.name, e.env, e.task_defs)
            done = all_strategies.get(e.strategy).apply(ctx, group)
            with lock:
                for svc, a in done.items():
                    applied[(e.name, svc)] = a
            for s in group:
                a = done[s.service]
                say(f"{e.name}/{s.service}: {s.action} -> deployment {a.deployment_id}")
        except TierupError as err:
            with lock:
                for s in group:
                    errors[(e.name, s.service)] = err
            say(f"{e.name}/{', '.join(s.service for s in group)}: failed: {err.message}")

    each(one, jobs, MAX_WORKERS)
    return applied, errors


def _wait_all(
    config: Config,
    clients: Clients,
    envs: list[EnvPlan],
    applied: dict[tuple[str, str], Applied],
    timeout: int | None,
    say: Progress,
) -> dict[tuple[str, str], wait_stage.RolloutState]:
    out: dict[tuple[str, str], wait_stage.RolloutState] = {}
    lock = threading.Lock()

    def one(e: EnvPlan) -> None:
        mine = {
            s: a for (env, s), a in applied.items() if env == e.name and a.deployment_id is not None
        }
        if not mine:
            return
        limit = timeout if timeout is not None else config.wait_timeout_for(e.name)
        try:
            states = all_strategies.get(e.strategy).wait(
                strategies.context(clients, e.name, e.env, e.task_defs),
                mine,
                timeout=limit,
                on_change=lambda st: rollout_changed(say, e.name, st),
            )
        except TierupError as err:
            states = {
                s: wait_stage.RolloutState(
                    s, str(a.deployment_id), wait_stage.FAILED, reason=f"waiting failed: {err}"
                )
                for s, a in mine.items()
            }
        with lock:
            for s, st in states.items():
                out[(e.name, s)] = st

    each(one, [e for e in envs if e.error is None], MAX_WORKERS)
    return out


def settle_waited(so: ServiceOutcome, st: wait_stage.RolloutState, *, done: str) -> None:
    """A service's outcome once its rollout was waited for (``done``: the status of success)."""
    so.status = {
        wait_stage.COMPLETED: done,
        wait_stage.TIMED_OUT: "timed_out",
        wait_stage.ROLLED_BACK: wait_stage.ROLLED_BACK,
    }.get(st.state, "failed")
    if so.status == done:
        return
    so.events = list(st.events)
    if so.status == wait_stage.ROLLED_BACK:
        so.error = wait_stage.rolled_back_message(st)
        so.hint = "the new image did not start; see the service events below"
    elif so.status == "timed_out":
        so.error = st.reason
        so.hint = "raise --timeout or wait_timeout; the rollout may still finish"
    else:
        so.error = st.reason or st.state
        so.hint = "see the service events below and `tierup where`"


def _env_outcome(
    e: EnvPlan,
    applied: dict[tuple[str, str], Applied],
    errors: dict[tuple[str, str], TierupError],
    waited: dict[tuple[str, str], wait_stage.RolloutState] | None = None,
    wait: bool = False,
) -> EnvironmentOutcome:
    out = EnvironmentOutcome.of(e.name, e.env, e.strategy)
    if e.error is not None:
        out.status, out.error, out.hint = "failed", e.error.message, e.error.hint
        return out
    for s in e.services:
        prev = next((d for _, d in s.previous_digests if d), None)
        so = ServiceOutcome(
            service=s.service,
            status="planned" if s.writes else "skipped",
            task_definition=s.task_definition,
            previous_task_definition=s.task_definition,
            image=", ".join(c.reference for c in s.containers),
            digest=s.containers[0].target.digest if s.containers else None,
            previous_digest=prev,
            reason=s.reason,
        )
        key = (e.name, s.service)
        if key in errors:
            err = errors[key]
            so.status, so.error, so.hint = "failed", err.message, err.hint
        elif key in applied:
            a = applied[key]
            so.deployment_id, so.task_definition = a.deployment_id, a.task_definition
            so.status = "deployed"
            st = (waited or {}).get(key)
            if st is not None and st.task_definition:
                so.task_definition = st.task_definition
            if wait and st is not None:
                settle_waited(so, st, done="completed")
        out.services.append(so)
    for name, err in e.service_errors.items():
        out.services.append(
            ServiceOutcome(service=name, status="failed", error=err.message, hint=err.hint)
        )
    out.settle()
    return out


def _event(plan: PromotionPlan, result: CommandResult) -> Event:
    planned = {(e.name, s.service): s for e in plan.envs for s in e.services}
    return Event(
        command=plan.command,
        invocation=result.title.removeprefix("tierup "),
        tier=plan.tier.name,
        status=str(result.status),
        images=tuple(
            ImageRecord(
                image=i.image,
                repository=i.repository,
                tag=i.tag,
                from_digest=i.previous_digest,
                to_digest=i.digest,
                commit=i.commit,
                status=i.status,
            )
            for i in result.images
        ),
        environments={
            e.name: EnvironmentRecord(
                status=e.status,
                services={
                    s.service: _service_record(s, planned.get((e.name, s.service)))
                    for s in e.services
                },
                extra={"skipped": "unreachable"} if e.hint == SKIPPED_UNREACHABLE else {},
            )
            for e in result.environments
        },
        # what --rollback-on-failure / --atomic undid: the tags moved back, the services
        extra={"rollback": result.data["rollback"]} if "rollback" in result.data else {},
    )


def _service_record(s: ServiceOutcome, plan: ServicePlan | None) -> ServiceRecord:
    ok = landed(s)
    # every container: a rollback must put each one back, not only the first
    before = {c: d for c, d in plan.previous_digests if d} if plan is not None else {}
    after = (
        {c.container: c.target.digest for c in plan.containers}
        if plan is not None and ok
        else dict(before)
    )
    td_after = s.task_definition if ok else s.previous_task_definition
    digest_after = s.digest if ok else s.previous_digest
    extra: dict[str, Any] = {}
    rb = s.rollback
    if rb is not None and rb.task_definition and rb.status not in ("failed", "not_rolled_back"):
        # what runs after the run is what the rollback put back, not what was tried
        td_after, digest_after, after = rb.task_definition, s.previous_digest, dict(before)
        extra["rollback"] = rb.status
    return ServiceRecord(
        status=s.status,
        task_definition_before=s.previous_task_definition,
        task_definition_after=td_after,
        digest_before=s.previous_digest,
        digest_after=digest_after,
        images_before=before,
        images_after=after,
        extra=extra,
    )
