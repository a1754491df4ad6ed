"""Where a rollback goes back to, per service: the ledger's record of what ran before (read
newest first, in windows), an explicit revision, an unfinished run's target, or ECS's own
history; the registry lookups that tell whether an image still exists.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tierup.pipeline.config import Config, Environment
from tierup.pipeline.ledger.base import Ledger
from tierup.stages import ecs_history
from tierup.stages import rollback as rb
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.adapters.registry import Registry
from tierup.stages.deploy import DeployError, pick_container
from tierup.stages.errors import InputError, RepositoryMissing
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
