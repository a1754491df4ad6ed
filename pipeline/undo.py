"""Undo: roll services back to what ran before, or restore them to a snapshot.

``plan_rollback`` and ``plan_restore`` only read; the plan's ``steps()`` are the writes
``execute`` makes, so ``--dry-run`` prints exactly those. Services roll back in parallel;
the run waits as a promotion does and records what moved in the ledger.

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
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from tierup.pipeline import strategies
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config, Environment
from tierup.pipeline.events import EnvironmentRecord, Event, EventStatus, ServiceRecord
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.lock import require_guard
from tierup.pipeline.progress import rollout_changed
from tierup.pipeline.promote import Progress, RunOptions, open_event, settle_waited
from tierup.pipeline.results import CommandResult, EnvironmentOutcome, ServiceOutcome, landed
from tierup.stages import all_strategies, ecs_history
from tierup.stages import rollback as rb
from tierup.stages import strategy as strategy_stage
from tierup.stages import wait as wait_stage
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.adapters.registry import Registry
from tierup.stages.deploy import Applied, DeployError, pick_container
from tierup.stages.errors import InputError, RepositoryMissing, TierupError
from tierup.stages.parallel import MAX_WORKERS, each
from tierup.stages.record import NullRecorder, Recorder
from tierup.stages.resolve import tag_pattern
from tierup.stages.types import ImageRef, ServiceState, TaskDefinition, TaskImage, is_commit_sha

# the ledger is read newest first: a first window finds most services' newest move; a service
# not in it widens the window once (an S3 ledger costs one GET per event)
LEDGER_WINDOW = 50
LEDGER_EVENTS = 500
# per-service statuses of ledger events that mean "the service moved to task_definition_after"
MOVED = frozenset({"deployed", "completed", "timed_out", "rolled_back", "restored"})

T = TypeVar("T")
R = TypeVar("R")


# -- reading the world -------------------------------------------------------------------------


def mutable_tag_predicate(config: Config) -> Callable[[str], bool]:
    """A tag is immutable when it is a commit SHA or renders an immutable tier's template."""
    prefixes = {i.tag_prefix for i in config.images.values()}  # images sharing a repository
    stamped = [tag_pattern(p + t.tag) for t in config.tiers if t.immutable for p in prefixes]

    def mutable(tag: str) -> bool:
        commit = any(tag.startswith(p) and is_commit_sha(tag[len(p) :]) for p in prefixes)
        return not (commit or any(p.match(tag) for p in stamped))

    return mutable


K = TypeVar("K")


class Once(Generic[K, R]):
    """``compute(key)`` once per key, however many threads ask for it at the same time.

    The answer is kept, an error too: every caller of a key sees the same outcome.
    """

    def __init__(self, compute: Callable[[K], R]) -> None:
        self._compute = compute
        self._answers: dict[K, Future[R]] = {}
        self._lock = threading.Lock()

    def __call__(self, key: K) -> R:
        with self._lock:
            answer = self._answers.get(key)
            mine = answer is None
            if answer is None:
                answer = self._answers[key] = Future()
        if mine:
            try:
                answer.set_result(self._compute(key))
            except BaseException as e:
                answer.set_exception(e)
        return answer.result()

    def start(self, keys: Iterable[K], pool: ThreadPoolExecutor) -> None:
        """Compute ``keys`` in the background (errors wait for the caller that asks)."""
        for key in keys:
            pool.submit(self, key)


class RegistryLookup:
    """Does a reference exist in the registry, and which digest is it now.

    Read once per reference: services planned in parallel that share an image read it once.
    """

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._host = ImageRef.parse(registry.image_uri("r", "t")).registry
        self._read = Once(self._lookup)

    def __call__(self, reference: str) -> rb.ImageLookup:
        ref = ImageRef.parse(reference)
        if ref.registry != self._host:
            return rb.ImageLookup(exists=None)
        return self._read((ref.repository, ref.digest or ref.tag or "latest"))

    def _lookup(self, key: tuple[str, str]) -> rb.ImageLookup:
        try:
            manifest = self._registry.get_manifest(*key)
        except RepositoryMissing:
            manifest = None
        return rb.ImageLookup(
            exists=manifest is not None, digest=manifest.digest if manifest else None
        )


@dataclass
class ServiceView:
    """One service as planning sees it: its state, task definition and running tasks."""

    environment: str
    ecs: Ecs
    state: ServiceState
    current: TaskDefinition
    running: list[TaskImage]
    ledger_container: str | None  # the container a ledger entry's single digest refers to


def ledger_container(env: Environment, service: str, td: TaskDefinition) -> str | None:
    svc = env.services.get(service)
    if svc is not None:
        first = next(iter(svc.images()))
        try:
            return pick_container(service, first, td)
        except DeployError:
            return None
    return td.containers[0].name if len(td.containers) == 1 else None


def _entry(event: dict[str, Any], env: str, service: str) -> dict[str, Any] | None:
    envs = event.get("environments")
    if not isinstance(envs, dict):
        return None
    e = envs.get(env)
    services = e.get("services") if isinstance(e, dict) else None
    entry = services.get(service) if isinstance(services, dict) else None
    return entry if isinstance(entry, dict) else None


def _images(entry: dict[str, Any], side: str, container: str | None) -> dict[str, str]:
    """Container -> digest of one side (before/after) of a ledger entry."""
    full = entry.get(f"images_{side}")
    if isinstance(full, dict) and full:
        return {str(c): str(d) for c, d in full.items() if d}
    # a version 1 record: one digest, the service's first container's
    digest = entry.get(f"digest_{side}")
    if digest and container is not None:
        return {container: str(digest)}
    return {}


def _event_label(event: dict[str, Any]) -> str:
    return " ".join(str(p) for p in (event.get("command") or "event", event.get("id")) if p)


class LedgerWindow:
    """An environment's newest ledger events, read once, widened once when a service needs it."""

    def __init__(self, ledger: Ledger, env: str) -> None:
        self._ledger = ledger
        self._env = env
        self._events: list[dict[str, Any]] | None = None
        self._wide = False
        self._lock = threading.Lock()

    def events(self, *, wider: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            if self._events is None or (wider and not self._wide and self._partial):
                limit = LEDGER_EVENTS if wider else LEDGER_WINDOW
                self._events = self._ledger.events(env=self._env, limit=limit)
                self._wide = wider
            return self._events

    @property
    def _partial(self) -> bool:
        return self._events is not None and len(self._events) >= LEDGER_WINDOW

    def search(self, find: Callable[[list[dict[str, Any]]], tuple[T, bool]]) -> T:
        """``find`` in the window; again in the wider one when it did not decide."""
        found, decided = find(self.events())
        if not decided:
            found, _ = find(self.events(wider=True))
        return found


def target_from_ledger(
    events: list[dict[str, Any]], view: ServiceView
) -> tuple[rb.RollbackTarget | None, bool]:
    """What ran before the current deployment, if the ledger's newest move is that deployment.

    The flag says whether the ledger decided (it holds a move of this service), so that a
    caller only reads further back when it did not.
    """
    now = rb.agreed_digests(view.running, view.state)
    for event in events:  # newest first
        entry = _entry(event, view.environment, view.state.name)
        if entry is None or entry.get("status") not in MOVED:
            continue
        before_td = entry.get("task_definition_before")
        after_td = entry.get("task_definition_after")
        if not before_td or not after_td:
            continue
        before = _images(entry, "before", view.ledger_container)
        after = _images(entry, "after", view.ledger_container)
        if before_td == after_td and before == after:
            continue  # nothing moved (a re-run that found the service already there)
        if after_td != view.state.task_definition:
            return None, True  # the service moved since, outside tierup: the ledger does not know
        if any(now.get(c) not in (None, d) for c, d in after.items()):
            return None, True
        target = rb.RollbackTarget(
            task_definition=str(before_td),
            digests=tuple(sorted(before.items())),
            source=rb.LEDGER,
            detail=_event_label(event),
            event=str(event.get("id") or ""),
        )
        return target, True
    return None, False


def _revision_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def digests_from_ledger(
    events: list[dict[str, Any]], view: ServiceView, task_definition: str
) -> tuple[tuple[tuple[str, str], ...], bool]:
    """The digests the ledger last saw with ``task_definition`` on this service."""
    wanted = _revision_name(task_definition)
    for event in events:
        entry = _entry(event, view.environment, view.state.name)
        if entry is None:
            continue
        for side in ("after", "before"):
            if _revision_name(str(entry.get(f"task_definition_{side}") or "")) == wanted:
                found = _images(entry, side, view.ledger_container)
                if found:
                    return tuple(sorted(found.items())), True
    return (), False


def explicit_target(view: ServiceView, to: str, window: LedgerWindow) -> rb.RollbackTarget:
    """``--to REVISION|family:REVISION|ARN``."""
    arn = f"{view.current.family}:{int(to)}" if to.isdigit() else to
    digests = window.search(lambda events: digests_from_ledger(events, view, arn))
    return rb.RollbackTarget(task_definition=arn, digests=digests, source=rb.EXPLICIT, detail=to)


# an undo that did not end ok: re-running it finishes toward the targets it recorded
UNFINISHED = frozenset({"partial", "failed", "timed_out", "interrupted"})
# events that say nothing about what a service runs: they never stand between a rollback and
# its re-run
NOT_MOVES = frozenset({"snapshot", "unlock"})


def unfinished_targets(
    events: list[dict[str, Any]], env: str, command: str
) -> dict[str, rb.RollbackTarget]:
    """Service -> the target an unfinished ``command`` recorded, when it is the environment's
    newest move (events newest first). A rollback records its targets, so that running it again
    finishes it instead of rolling back the services it already put back."""
    newest = next((e for e in events if e.get("command") not in NOT_MOVES), None)
    if newest is None or newest.get("command") != command:
        return {}
    if newest.get("status") not in UNFINISHED:
        return {}
    out: dict[str, rb.RollbackTarget] = {}
    for service in ((newest.get("environments") or {}).get(env) or {}).get("services") or {}:
        entry = _entry(newest, env, service)
        if entry is None or not entry.get("target_task_definition"):
            continue
        digests = entry.get("target_images")
        out[str(service)] = rb.RollbackTarget(
            task_definition=str(entry["target_task_definition"]),
            digests=tuple(sorted((str(c), str(d)) for c, d in dict(digests or {}).items() if d)),
            source=rb.LEDGER,
            detail=f"finishing {_event_label(newest)}",
            event=str(entry.get("target_undoes") or ""),
        )
    return out


def find_target(
    view: ServiceView,
    window: LedgerWindow,
    to: str | None,
    unfinished: dict[str, rb.RollbackTarget] | None = None,
) -> rb.RollbackTarget:
    if to is not None:
        return explicit_target(view, to, window)
    if unfinished and view.state.name in unfinished:
        return unfinished[view.state.name]
    target = window.search(lambda events: target_from_ledger(events, view))
    if target is None:
        # never "the revision number before": a service moved from :2 to :5 never ran :4
        target = ecs_history.what_ran_before(view.ecs, view.state.cluster, view.state, view.running)
    if target is None:
        raise InputError(
            f"{view.environment}/{view.state.name}: nothing to roll back to: the ledger has no "
            "record of its current deployment and ECS's deployment history "
            "(ListServiceDeployments) does not say what ran before it",
            hint="name the target: --to REVISION (see the family's revisions with "
            f"`aws ecs list-task-definitions --family-prefix {view.current.family}`)",
        )
    return target


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

    def steps(self) -> list[dict[str, Any]]:
        """The writes a real run makes, in order."""
        writing = [p for p in self.services if p.writes]
        # a strategy whose writes are its own (a change set, a CodeDeploy deployment) says them
        describe = getattr(all_strategies.get(self.strategy), "undo_steps", None)
        if describe is not None:
            return list(
                describe(
                    writing,
                    environment=self.env_name,
                    cluster=self.env.cluster,
                    settings=strategies.settings(self.env),
                )
            )
        return [p.describe() for p in writing]


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
    result.plan = plan.steps()
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
    if owns_rollback:
        applied, errors = _apply_strategy(ctx, plan, say)
    else:
        applied, errors = _apply_all(clients, ctx, plan, say)
    if options.wait:
        try:
            waited = _wait(config, ctx, plan, applied, options.timeout, say)
            if owns_rollback:
                applied = _landed(ctx, plan, applied, waited)
        except KeyboardInterrupt:
            # Ctrl-C while waiting: what was written is recorded, as --no-wait records it
            waited = {}
            record(False, interrupted=True)
            raise
    record(options.wait)
    return result


def _apply_all(
    clients: Clients, ctx: strategy_stage.Context, plan: UndoPlan, say: Progress
) -> tuple[dict[str, Applied], dict[str, TierupError]]:
    ecs = clients.ecs(plan.env)
    applied: dict[str, Applied] = {}
    errors: dict[str, TierupError] = {}
    lock = threading.Lock()

    def one(p: rb.RollbackPlan) -> None:
        try:
            if p.action == rb.STOP and p.deployment is not None:
                done = _stop(ctx, plan, p)
            else:
                done = rb.apply_rollback(ecs, p)
        except TierupError as e:
            with lock:
                errors[p.service] = e
            say(f"{plan.env_name}/{p.service}: failed: {e.message}")
            return
        with lock:
            applied[p.service] = done
        say(f"{plan.env_name}/{p.service}: {p.action} -> deployment {done.deployment_id}")

    each(one, [p for p in plan.services if p.action != rb.SKIP])
    return applied, errors


def _stop(ctx: strategy_stage.Context, plan: UndoPlan, p: rb.RollbackPlan) -> Applied:
    """Stop the service's running deployment with its rollback, through its strategy."""
    assert p.deployment is not None
    stop = getattr(all_strategies.get(plan.strategy), "stop_running", None)
    if stop is None:
        raise DeployError(f"strategy {plan.strategy} cannot stop a running deployment")
    running = strategy_stage.Running(p.deployment, "", p.target_task_definition)
    done: Applied = stop(
        ctx, p.service, running, previous_task_definition=p.current_task_definition
    )
    return done


def _apply_strategy(
    ctx: strategy_stage.Context, plan: UndoPlan, say: Progress
) -> tuple[dict[str, Applied], dict[str, TierupError]]:
    """One change set for a stack's services; one CodeDeploy deployment per service."""
    strategy = all_strategies.get(plan.strategy)
    targets = {
        p.service: strategy_stage.RestoreTarget(
            p.target_task_definition, {c: dict(p.images)[c] for c in p.pinned}
        )
        for p in plan.services
        if p.writes
    }
    # one write for every service (a stack), or one per service
    groups = (
        [targets]
        if strategy_stage.capabilities(strategy).one_write
        else [{service: t} for service, t in targets.items()]
    )
    applied: dict[str, Applied] = {}
    errors: dict[str, TierupError] = {}
    lock = threading.Lock()

    def one(group: dict[str, strategy_stage.RestoreTarget]) -> None:
        try:
            done = strategy.restore(ctx, group)
        except TierupError as e:
            with lock:
                errors.update(dict.fromkeys(group, e))
            say(f"{plan.env_name}/{', '.join(group)}: failed: {e.message}")
            return
        with lock:
            applied.update(done)
        for service, a in done.items():
            started = a.deployment_id or "nothing to do"
            say(f"{plan.env_name}/{service}: {plan.strategy} -> {started}")

    each(one, [g for g in groups if g])
    return applied, errors


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
    ctx: strategy_stage.Context,
    plan: UndoPlan,
    applied: dict[str, Applied],
    timeout: int | None,
    say: Progress,
) -> dict[str, wait_stage.RolloutState]:
    """Follow the rollouts through the environment's strategy, as a promotion does."""
    moving = {s: a for s, a in applied.items() if a.deployment_id is not None}
    if not moving:
        return {}
    limit = timeout if timeout is not None else config.wait_timeout_for(plan.env_name)
    try:
        return all_strategies.get(plan.strategy).wait(
            ctx,
            moving,
            timeout=limit,
            on_change=lambda st: rollout_changed(say, plan.env_name, st, phase="rollback"),
        )
    except TierupError as e:
        return {
            s: wait_stage.RolloutState(
                s, str(a.deployment_id), wait_stage.FAILED, reason=f"waiting failed: {e}"
            )
            for s, a in moving.items()
        }


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
    from tierup.pipeline.lock import holding
    from tierup.pipeline.release import Annotating, Guard, finish, reconcile_first, tier_lock

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
