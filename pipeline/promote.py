"""Promotion: resolve -> retag -> deploy -> wait -> record, planned first, then run.

``plan_promotion`` only reads. Its plan lists, item for item, the writes ``execute`` makes;
``--dry-run`` prints that plan and stops.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline import retention as retention_mod
from pipeline import strategies
from pipeline.clients import Clients
from pipeline.config import TIMESTAMP_FORMAT, Config, Environment, Tier, render_tag
from pipeline.progress import rollout_changed
from pipeline.results import CommandResult, EnvironmentOutcome, ImageOutcome, ServiceOutcome
from pipeline.rollback_on_failure import mode_for, recover
from stages import deploy as deploy_stage
from stages import resolve, retag
from stages import strategy as strategy_stage
from stages import wait as wait_stage
from stages.adapters.ecs import Ecs
from stages.adapters.registry import Registry, TagWrite
from stages.deploy import Applied, ImageTarget, ServicePlan
from stages.errors import InputError, TierupError
from stages.parallel import each
from stages.record import NullRecorder, Recorder
from stages.retention import RetentionPlan
from stages.types import ServiceState, TaskDefinition, TaskImage

MAX_WORKERS = 64
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


@dataclass
class EnvPlan:
    name: str
    env: Environment
    strategy: str
    pin: str
    services: list[ServicePlan] = field(default_factory=list)
    service_errors: dict[str, TierupError] = field(default_factory=dict)
    task_defs: dict[str, TaskDefinition] = field(default_factory=dict)
    running: dict[str, list[TaskImage]] = field(default_factory=dict)
    error: TierupError | None = None
    states: dict[str, ServiceState] = field(default_factory=dict)
    retention: list[RetentionPlan] = field(default_factory=list)


@dataclass
class PromotionPlan:
    command: str
    tier: Tier
    tag: str
    resolved: list[resolve.Resolved]
    retags: list[retag.RetagPlan]
    targets: dict[str, ImageTarget]
    envs: list[EnvPlan]
    deploy: bool

    def steps(self) -> list[dict[str, Any]]:
        """The writes a real run makes, in order."""
        out: list[dict[str, Any]] = []
        for r in self.retags:
            if r.action is not TagWrite.UNCHANGED:
                out.append(
                    {
                        "write": "registry:PutImage",
                        "image": r.image,
                        "repository": r.repository,
                        "tag": r.tag,
                        "digest": r.manifest.digest,
                        "from_digest": r.current_digest,
                        "action": str(r.action),
                    }
                )
        if self.deploy:
            for e in self.envs:
                for group in strategy_stage.groups(e.services):
                    out.append(group[0].describe())  # the services of one stack: one write
            for e in self.envs:
                out.extend(retention_mod.steps(e))
        return out


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
        repo = config.image(name).repository
        registry.describe_repository(repo)
        if source.kind == "digest":
            assert source.value is not None
            return resolve.resolve_digest(registry, name, repo, source.value)
        if source.kind == "commit":
            assert source.value is not None
            return resolve.resolve_commit(registry, name, repo, source.value)
        if src_tier is not None:
            return resolve.resolve_tier(
                registry, name, repo, tier=src_tier.name, template=src_tier.tag
            )
        assert head is not None
        return resolve.resolve_commit(registry, name, repo, head[0], ancestors=head[1])

    return each(one, images)


def _render(tier: Tier, resolved: resolve.Resolved, now: datetime) -> str:
    commit = resolved.commit or ""
    if ("{commit}" in tier.tag or "{short_commit}" in tier.tag) and not commit:
        raise InputError(
            f"tier {tier.name!r} tag {tier.tag!r} needs a commit, but image "
            f"{resolved.image!r} came from {resolved.source} with no commit tag",
            hint="promote from a commit (--commit SHA) or a source whose digest has a commit tag",
        )
    return render_tag(tier.tag, timestamp=_timestamp(now), commit=commit)


def _plan_image(
    config: Config, registry: Registry, tier: Tier, r: resolve.Resolved, now: datetime
) -> tuple[retag.RetagPlan, ImageTarget]:
    repo = config.image(r.image).repository
    tag = _render(tier, r, now)
    if tier.immutable:
        # a stamp already on this digest, the newest if several, is reused: stamping a digest
        # again changes nothing, however many stamps other digests got since
        mine = [i for i in registry.list_images(repo) if i.digest == r.manifest.digest]
        existing = resolve.newest_tag(mine, tier.tag)
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
) -> PromotionPlan:
    tier = config.tier(tier_name)
    names = images or list(config.images)
    for n in names:
        config.image(n)
    registry = clients.registry
    with ThreadPoolExecutor(max_workers=1) as background:
        reading = (
            background.submit(read_environments, config, clients, tier=tier) if deploy else None
        )
        resolved = resolve_sources(config, clients, tier=tier, source=source, images=names)
        planned = each(lambda r: _plan_image(config, registry, tier, r, now), resolved)
        read = reading.result() if reading is not None else None
    retags = [p for p, _t in planned]
    targets = {t.image: t for _p, t in planned}
    moved = {p.image for p in retags if p.action is not TagWrite.UNCHANGED}
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
    return PromotionPlan(
        command=command,
        tier=tier,
        tag=tier.tag,
        resolved=resolved,
        retags=retags,
        targets=targets,
        envs=envs,
        deploy=deploy,
    )


def plan_environments(
    config: Config,
    clients: Clients,
    *,
    tier: Tier,
    targets: dict[str, ImageTarget],
    moved: set[str],
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
        return
    _describe_task_definitions(ecs, plan)


def _plan_env(
    clients: Clients,
    plan: EnvPlan,
    targets: dict[str, ImageTarget],
    moved: set[str],
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
            plan.service_errors[svc_name] = deploy_stage.DeployError(
                f"service {svc_name!r} not found in cluster {env.cluster!r}",
                hint="create the service, or fix environments.<env>.services in envs.yaml",
            )
            continue
        try:
            td = plan.task_defs.get(state.task_definition)
            if td is None:
                td = ecs.describe_task_definition(state.task_definition)
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
        planned = strategy_stage.get(plan.strategy).plan(
            strategies.context(clients, plan.name, env, plan.task_defs),
            strategy_stage.Target(
                environment=plan.name,
                cluster=env.cluster,
                strategy=plan.strategy,
                pin=plan.pin,
                services=tuple(services),
                cloudformation=strategies.stack_settings(env),
                codedeploy=strategies.codedeploy_settings(env),
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
    if plan.strategy == deploy_stage.FORCE_NEW_DEPLOYMENT:
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


def execute(
    config: Config,
    clients: Clients,
    plan: PromotionPlan,
    *,
    options: RunOptions,
    recorder: Recorder | None = None,
    progress: Progress | None = None,
) -> CommandResult:
    say = progress or (lambda _m: None)
    result = CommandResult(command=plan.command, tier=plan.tier.name, dry_run=options.dry_run)
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
    for n in (r.note for r in plan.resolved):
        if n:
            result.notes.append(n)
    result.plan = plan.steps()
    if options.dry_run:
        _discard(clients, plan.envs)
        for e in plan.envs:
            result.environments.append(_env_outcome(e, {}, {}))
        result.settle()
        return result

    def write_tag(job: tuple[retag.RetagPlan, ImageOutcome]) -> None:
        r, outcome = job
        try:
            outcome.status = str(retag.retag(clients.registry, r))
            say(f"{r.repository}:{r.tag} -> {r.manifest.digest} ({outcome.status})")
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
    retag_failed = any(o.status == "failed" for o in result.images)
    if retag_failed:
        _discard(clients, plan.envs)
        result.notes.append("a tag write failed: no environment was deployed")
        for ep in plan.envs:
            env_out = _env_outcome(ep, {}, {})
            env_out.status, env_out.error = "failed", "not deployed: a tag write failed"
            result.environments.append(env_out)
        result.settle()
        (recorder or NullRecorder()).record(_event(plan, result))
        return result

    applied, errors = _apply_all(clients, plan.envs, say)
    waited: dict[tuple[str, str], wait_stage.RolloutState] = {}
    if options.wait:
        try:
            waited = _wait_all(config, clients, plan.envs, applied, options.timeout, say)
        except KeyboardInterrupt:
            # Ctrl-C while waiting: what was written is recorded, as --no-wait records it
            for ep in plan.envs:
                result.environments.append(_env_outcome(ep, applied, errors, {}, False))
            result.settle()
            (recorder or NullRecorder()).record({**_event(plan, result), "interrupted": True})
            raise
    for ep in plan.envs:
        result.environments.append(_env_outcome(ep, applied, errors, waited, options.wait))
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
    rec = recorder or NullRecorder()
    rec.record(_event(plan, result))
    return result


def _discard(clients: Clients, envs: list[EnvPlan]) -> None:
    """Drop what planning left behind (a change set shown by a dry run)."""
    for e in envs:
        if e.error is None and e.services:
            try:
                ctx = strategies.context(clients, e.name, e.env, e.task_defs)
                strategy_stage.get(e.strategy).discard(ctx, e.services)
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
            done = strategy_stage.get(e.strategy).apply(ctx, group)
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
            states = strategy_stage.get(e.strategy).wait(
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


def _event(plan: PromotionPlan, result: CommandResult) -> dict[str, Any]:
    return {
        "command": plan.command,
        "tier": plan.tier.name,
        "status": str(result.status),
        "images": [
            {
                "image": i.image,
                "repository": i.repository,
                "tag": i.tag,
                "from_digest": i.previous_digest,
                "to_digest": i.digest,
                "commit": i.commit,
                "status": i.status,
            }
            for i in result.images
        ],
        "environments": {
            e.name: {
                "status": e.status,
                "services": {s.service: _service_event(s) for s in e.services},
            }
            for e in result.environments
        },
    }


def _service_event(s: ServiceOutcome) -> dict[str, Any]:
    out = {
        "task_definition_before": s.previous_task_definition,
        "task_definition_after": s.task_definition,
        "digest_before": s.previous_digest,
        "digest_after": s.digest,
        "status": s.status,
    }
    rb = s.rollback
    if rb is not None and rb.task_definition and rb.status not in ("failed", "not_rolled_back"):
        # what runs after the run is what the rollback put back, not what was tried
        out["task_definition_after"] = rb.task_definition
        out["digest_after"] = s.previous_digest
        out["rollback"] = rb.status
    return out


def promote(
    config: Config,
    clients: Clients,
    *,
    tier: str,
    source: Source = Source(),
    images: list[str] | None = None,
    deploy: bool = True,
    options: RunOptions | None = None,
    recorder: Recorder | None = None,
    progress: Progress | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    command: str = "promote",
) -> CommandResult:
    """Resolve, retag, deploy every environment of the tier, wait, record."""
    opts = options or RunOptions()
    plan = plan_promotion(
        config,
        clients,
        tier_name=tier,
        source=source,
        images=images,
        deploy=deploy,
        now=now(),
        command=command,
        protected=opts.protected,
    )
    return execute(config, clients, plan, options=opts, recorder=recorder, progress=progress)
