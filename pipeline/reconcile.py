"""Reconciling open events: runs that died between their first write and their last record.

Every writing command records an ``open`` event with its planned writes before the first one,
and closes it with the event of what happened. A run killed in between (kill -9, a lost
runner) leaves the open event. The tier's next writing command, under the tier's lock and
before it plans, reads what the registry and ECS show for each planned write and records it
as the event that closes the open one (status ``interrupted``, ``reconciled: true``). Its
services keep their targets, so that re-running an interrupted rollback finishes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.events import EnvironmentRecord, Event, EventStatus, ImageRecord, ServiceRecord
from tierup.pipeline.ledger.base import Ledger
from tierup.stages import rollback as rb
from tierup.stages.errors import TierupError

# how far back the ledger is read for open events
OPEN_WINDOW = 200


def open_events(ledger: Ledger, tier: str) -> list[Event]:
    """The tier's open events that no later event closed, newest first."""
    return [e for e in ledger.read(tier=tier, limit=OPEN_WINDOW) if e.is_open]


def reconcile(config: Config, clients: Clients, ledger: Ledger, tier: str) -> list[Event]:
    """Close every open event of ``tier`` with what the registry and ECS show now."""
    return [
        ledger.record(observed(config, clients, opened))
        for opened in reversed(open_events(ledger, tier))
    ]


def _images(clients: Clients, writes: list[Mapping[str, Any]]) -> tuple[ImageRecord, ...]:
    out: list[ImageRecord] = []
    for step in writes:
        if step.get("write") != "registry:PutImage":
            continue
        repository, tag = str(step.get("repository")), str(step.get("tag"))
        try:
            manifest = clients.registry.get_manifest(repository, tag)
            now = manifest.digest if manifest else None
            status = str(step.get("action")) if now == step.get("digest") else "not_written"
        except TierupError:
            now, status = None, "unknown"
        out.append(
            ImageRecord(
                image=str(step.get("image")),
                repository=repository,
                tag=tag,
                from_digest=step.get("from_digest"),
                to_digest=now,
                status=status,
            )
        )
    return tuple(out)


def _service(planned: Mapping[str, Any], state: Any, running: list[Any]) -> ServiceRecord:
    before = {str(c): str(d) for c, d in dict(planned.get("images_before") or {}).items()}
    target = {str(c): str(d) for c, d in dict(planned.get("images_target") or {}).items()}
    target_td = planned.get("task_definition_target")
    extra: dict[str, Any] = {}
    if target_td:
        extra = {"target_task_definition": target_td, "target_images": target}
    td_before = planned.get("task_definition_before")
    if state is None:
        return ServiceRecord(
            status="unknown",
            task_definition_before=td_before,
            images_before=before,
            digest_before=next(iter(before.values()), None),
            extra=extra,
        )
    now = rb.agreed_digests(running, state)
    reached = bool(target) and all(now.get(c) == d for c, d in target.items())
    moved = (
        reached
        or state.task_definition not in (td_before, None)
        or (target_td is not None and state.task_definition == target_td)
    )
    return ServiceRecord(
        status="deployed" if moved else "not_deployed",
        task_definition_before=td_before,
        task_definition_after=state.task_definition,
        digest_before=next(iter(before.values()), None),
        digest_after=next(iter(now.values()), None),
        images_before=before,
        images_after=now,
        extra=extra,
    )


def _environments(
    config: Config, clients: Clients, services: list[Mapping[str, Any]]
) -> dict[str, EnvironmentRecord]:
    by_env: dict[str, list[Mapping[str, Any]]] = {}
    for s in services:
        by_env.setdefault(str(s.get("environment")), []).append(s)
    out: dict[str, EnvironmentRecord] = {}
    for name, planned in by_env.items():
        try:
            env = config.environment(name)
            ecs = clients.ecs(env)
            names = [str(p.get("service")) for p in planned]
            states = ecs.describe_services(env.cluster, names, allow_missing=True)
            running = ecs.running_images(env.cluster)
        except TierupError as e:
            out[name] = EnvironmentRecord(status="unknown", extra={"error": e.message})
            continue
        out[name] = EnvironmentRecord(
            status=EventStatus.INTERRUPTED,
            services={
                str(p.get("service")): _service(
                    p, states.get(str(p.get("service"))), running.get(str(p.get("service")), [])
                )
                for p in planned
            },
        )
    return out


def observed(config: Config, clients: Clients, opened: Event) -> Event:
    """The event that closes ``opened``: what its planned writes left in the world."""
    writes = [w for w in opened.intent.get("writes") or [] if isinstance(w, Mapping)]
    services = [s for s in opened.intent.get("services") or [] if isinstance(s, Mapping)]
    what = opened.invocation or opened.command
    return Event(
        command=opened.command,
        invocation=opened.invocation,
        tier=opened.tier,
        status=EventStatus.INTERRUPTED,
        interrupted=True,
        closes=opened.id,
        images=_images(clients, writes),
        environments=_environments(config, clients, services),
        message=f"reconciled: `{what}` ({opened.id}) stopped before it recorded its end; "
        "this is what the registry and ECS showed afterwards",
        extra={"reconciled": True},
    )
