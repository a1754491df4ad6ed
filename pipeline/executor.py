"""The one executor: it runs any plan's steps and follows what they started.

``write_tags`` runs a plan's tag steps against the registry; ``apply`` runs its environment
steps, every step at once (a step is one write: a service, or the services of one stack),
each against its environment's context and strategy, and reports per service what the write
started or why it failed; ``follow`` waits for those rollouts through each environment's
strategy. A promotion, a rollback, a restore and the compensation of ``--rollback-on-failure``
and ``--atomic`` all run their plans here; ``--dry-run`` runs none and prints ``describe()``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tierup.pipeline import strategies
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Environment
from tierup.pipeline.progress import rollout_changed
from tierup.stages import all_strategies
from tierup.stages import retag as retag_stage
from tierup.stages import wait as wait_stage
from tierup.stages.adapters.registry import Registry, TagWrite
from tierup.stages.deploy import Applied
from tierup.stages.errors import TierupError
from tierup.stages.parallel import each
from tierup.stages.plan import EnvironmentStep, MoveTag
from tierup.stages.strategy import Context, Strategy
from tierup.stages.types import TaskDefinition

MAX_WORKERS = 64
CONFLICT = "conflict"  # a tag moved by another writer between tierup's reads and its write
Key = tuple[str, str]  # (environment, service)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Where:
    """An environment a plan's steps run in: its settings, strategy and cached revisions."""

    name: str
    env: Environment
    strategy: str
    task_defs: dict[str, TaskDefinition] = field(default_factory=dict, compare=False)

    def context(self, clients: Clients) -> Context:
        return strategies.context(clients, self.name, self.env, self.task_defs)

    def driver(self) -> Strategy:
        return all_strategies.get(self.strategy)


@dataclass
class Report:
    """What ``apply`` did, per (environment, service): the write it started, or its error."""

    applied: dict[Key, Applied] = field(default_factory=dict)
    errors: dict[Key, TierupError] = field(default_factory=dict)


@dataclass
class TagOutcome:
    """What one tag step did: ``status`` is the registry's answer, or failed / conflict."""

    step: MoveTag
    status: str = "planned"
    error: TierupError | None = None
    found: str | None = None  # a conflict: the digest the tag was found on (when not written)


def write_tags(registry: Registry, steps: Sequence[MoveTag], say: Progress) -> list[TagOutcome]:
    """Run the tag steps that write (at once); a tag moved by another writer is a conflict."""

    def one(step: MoveTag) -> TagOutcome:
        out = TagOutcome(step)
        try:
            if step.back:
                written = step.apply_back(registry)
                out.status = "moved_back" if written is not TagWrite.UNCHANGED else "unchanged"
                say(f"{step.repository}:{step.tag} -> {step.digest} (moved back)")
                return out
            assert step.retag is not None
            out.status = str(retag_stage.retag(registry, step.retag))
            say(f"{step.repository}:{step.tag} -> {step.digest} ({out.status})")
        except retag_stage.TagRaceError as e:
            out.status, out.error = CONFLICT, e
            if not e.written:
                out.found = e.found
            say(f"{step.repository}:{step.tag}: conflict: {e.message}")
        except TierupError as e:
            out.status, out.error = "failed", e
            if step.back:
                say(f"{step.repository}:{step.tag}: could not move back: {e.message}")
        return out

    return each(one, [s for s in steps if s.writes])


def apply(
    clients: Clients,
    steps: Iterable[EnvironmentStep],
    where: Mapping[str, Where],
    say: Progress,
    *,
    phase: str = "",
) -> Report:
    """Run every step at once, each in its environment; a failed step fails its services."""
    report = Report()
    lock = threading.Lock()
    failed = f"{phase} failed" if phase else "failed"

    def one(step: EnvironmentStep) -> None:
        w = where[step.environment]
        try:
            done = step.apply(w.context(clients), w.driver())
        except TierupError as err:
            with lock:
                for service in step.services:
                    report.errors[(w.name, service)] = err
            say(f"{w.name}/{', '.join(step.services)}: {failed}: {err.message}")
            return
        with lock:
            for service, a in done.items():
                report.applied[(w.name, service)] = a
        for service in step.services:
            if service in done:
                say(f"{w.name}/{service}: {step.said(service, done[service])}")

    each(one, list(steps), MAX_WORKERS)
    return report


def follow(
    clients: Clients,
    applied: Mapping[Key, Applied],
    where: Mapping[str, Where],
    timeout: Callable[[str], float],
    say: Progress,
    *,
    phase: str = "deploy",
    also: Callable[[Key], bool] = lambda _k: False,
) -> dict[Key, wait_stage.RolloutState]:
    """Wait for what ``applied`` started, every environment at once, through its strategy.

    A write that started no deployment is not followed, unless ``also`` says so (a
    strategy's rollback that wrote nothing still says where its services stand).
    """
    by_env: dict[str, dict[str, Applied]] = {}
    for (env, service), a in applied.items():
        if a.deployment_id is not None or also((env, service)):
            by_env.setdefault(env, {})[service] = a
    out: dict[Key, wait_stage.RolloutState] = {}
    lock = threading.Lock()

    def one(env: str) -> None:
        w, mine = where[env], by_env[env]
        try:
            states = w.driver().wait(
                w.context(clients),
                mine,
                timeout=timeout(env),
                on_change=lambda st: rollout_changed(say, env, st, phase=phase),
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
                out[(env, s)] = st

    each(one, list(by_env), MAX_WORKERS)
    return out
