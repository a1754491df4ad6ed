"""Snapshots: the versions every service of an environment runs, recorded to restore later.

A snapshot is a document in the ledger's store (a file beside the local ledger, or S3 for a
team): per environment, every service's task definition ARN, each container's image and the
digest its tasks run, and the desired count. ``restore`` brings every service back to it
through the rollback machinery (INACTIVE revisions re-registered, mutable tags pinned).
"""

from __future__ import annotations

import threading
from datetime import UTC
from typing import Any

from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config, Environment
from tierup.pipeline.events import EnvironmentRecord, Event, ServiceRecord
from tierup.pipeline.guard import Now, utcnow
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.ledger.times import iso
from tierup.pipeline.promote import Progress, RunOptions
from tierup.pipeline.results import CommandResult, EnvironmentOutcome, ServiceOutcome
from tierup.pipeline.tag_template import TIMESTAMP_FORMAT
from tierup.pipeline.undo import UndoPlan, plan_services
from tierup.pipeline.undo_run import run_locked
from tierup.pipeline.undo_targets import RegistryLookup
from tierup.stages import rollback as rb
from tierup.stages.errors import InputError
from tierup.stages.parallel import each
from tierup.stages.types import ImageRef, TaskDefinition

KIND = "snapshot"
LATEST = "latest"


def _environments(config: Config, env: str | None, tier: str | None) -> dict[str, Environment]:
    if (env is None) == (tier is None):
        raise InputError("name exactly one of --env E or --tier T", hint="e.g. --env prod")
    if env is not None:
        return {env: config.environment(env)}
    assert tier is not None
    config.tier(tier)
    envs = config.environments_of(tier)
    if not envs:
        raise InputError(f"tier {tier!r} has no environments", hint="see envs.yaml")
    return envs


def _record_env(
    config: Config, clients: Clients, lookup: RegistryLookup, name: str, env: Environment
) -> tuple[dict[str, Any], list[str]]:
    """One environment's services as they run now, and notes on what could not be seen."""
    ecs = clients.ecs(env)
    names = list(env.services)
    states = ecs.describe_services(env.cluster, names, allow_missing=True)
    running = ecs.running_images(env.cluster)
    notes: list[str] = [
        f"{name}/{s}: not found in cluster {env.cluster!r}; not recorded"
        for s in names
        if s not in states
    ]
    defs: dict[str, TaskDefinition] = {}
    lock = threading.Lock()

    def describe(arn: str) -> None:
        td = ecs.describe_task_definition(arn)
        with lock:
            defs[arn] = td

    each(describe, sorted({s.task_definition for s in states.values()}))
    services: dict[str, Any] = {}
    for svc in names:
        state = states.get(svc)
        if state is None:
            continue
        td = defs[state.task_definition]
        seen = rb.agreed_digests(running.get(svc, []), state)
        containers: dict[str, Any] = {}
        for c in td.containers:
            ref = ImageRef.parse(c.image)
            digest, origin = seen.get(c.name), "tasks"
            if digest is None and ref.digest:
                digest, origin = ref.digest, "task-definition"
            if digest is None:
                digest, origin = lookup(c.image).digest, "registry"
                notes.append(
                    f"{name}/{svc}: container {c.name!r} has no running task reporting a "
                    f"digest; recorded what {c.image} points at now"
                    if digest
                    else f"{name}/{svc}: container {c.name!r}: no digest known for {c.image}"
                )
            containers[c.name] = {"image": c.image, "digest": digest, "digest_from": origin}
        if not rb.is_stable(state):
            notes.append(
                f"{name}/{svc}: a rollout was in progress; recorded its PRIMARY deployment"
            )
        services[svc] = {
            "task_definition": td.arn,
            "desired_count": state.desired,
            "containers": containers,
        }
    doc = {
        "tier": env.tier,
        "account_id": env.account_id,
        "region": env.region,
        "cluster": env.cluster,
        "services": services,
    }
    return doc, notes


def take_snapshot(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    *,
    env: str | None = None,
    tier: str | None = None,
    name: str | None = None,
    now: Now = utcnow,
) -> CommandResult:
    """Record every service of an environment (or of every environment of a tier)."""
    envs = _environments(config, env, tier)
    when = now()
    snapshot = name or f"{env or tier}-{when.astimezone(UTC).strftime(TIMESTAMP_FORMAT)}"
    if snapshot == LATEST:
        raise InputError(f"{LATEST!r} cannot name a snapshot", hint="it means the newest one")
    if ledger.get_document(KIND, snapshot) is not None:
        raise InputError(
            f"snapshot {snapshot!r} already exists in {ledger.where}",
            hint="snapshots are never overwritten: pick another --name",
        )
    lookup = RegistryLookup(clients.registry)
    recorded = each(
        lambda item: _record_env(config, clients, lookup, item[0], item[1]), list(envs.items())
    )
    environments = {n: doc for n, (doc, _) in zip(envs, recorded, strict=True)}
    document = {
        "name": snapshot,
        "created_at": iso(when),
        "scope": {"env": env} if env else {"tier": tier},
        "environments": environments,
    }
    ledger.put_document(KIND, snapshot, document)
    result = CommandResult(
        command="snapshot",
        tier=tier,
        invocation=f"snapshot --{'env' if env else 'tier'} {env or tier}"
        + (f" --name {name}" if name else ""),
    )
    if env is not None:
        result.data["env"] = env
    for _, notes in recorded:
        result.notes.extend(notes)
    for n, doc in environments.items():
        e = envs[n]
        out = EnvironmentOutcome.of(n, e, config.strategy_for(n))
        for svc, s in doc["services"].items():
            images = s["containers"]
            out.services.append(
                ServiceOutcome(
                    service=svc,
                    status="recorded",
                    task_definition=s["task_definition"],
                    image=", ".join(c["image"] for c in images.values()),
                    digest=next((c["digest"] for c in images.values() if c["digest"]), None),
                    reason=f"desired count {s['desired_count']}",
                )
            )
        result.environments.append(out)
    result.settle()
    stored = ledger.record(_event(document, result))
    result.data.update({"snapshot": snapshot, "event": stored.id, "ledger": ledger.where})
    return result


def _event(document: dict[str, Any], result: CommandResult) -> Event:
    """The ledger event of a snapshot: what each service ran (``after``), nothing moved."""
    tiers = {str(e["tier"]) for e in document["environments"].values()}
    tier = tiers.pop() if len(tiers) == 1 else None
    envs: dict[str, EnvironmentRecord] = {}
    for n, doc in document["environments"].items():
        services: dict[str, ServiceRecord] = {}
        for svc, s in doc["services"].items():
            digests = {c: v["digest"] for c, v in s["containers"].items() if v.get("digest")}
            services[svc] = ServiceRecord(
                status="recorded",
                task_definition_after=s["task_definition"],
                digest_after=next(iter(digests.values()), None),
                images_after=digests,
            )
        envs[n] = EnvironmentRecord(status="recorded", services=services)
    return Event(
        command="snapshot",
        invocation=result.invocation,
        tier=tier,
        status=str(result.status),
        message=f"snapshot {document['name']}",
        snapshot=document["name"],
        environments=envs,
    )


# -- listing ---------------------------------------------------------------------------


def list_snapshots(ledger: Ledger, *, env: str | None = None) -> CommandResult:
    """Snapshots oldest first (with ``--env``, those that recorded that environment)."""
    found: list[dict[str, Any]] = []
    names = ledger.list_documents(KIND)

    def read(name: str) -> dict[str, Any] | None:
        return ledger.get_document(KIND, name)

    for name, doc in zip(names, each(read, names), strict=True):
        if doc is None:
            continue
        envs = doc.get("environments") or {}
        if env is not None and env not in envs:
            continue
        found.append(
            {
                "name": name,
                "created_at": doc.get("created_at"),
                "environments": {
                    n: sorted((e.get("services") or {}).keys()) for n, e in envs.items()
                },
            }
        )
    result = CommandResult(command="snapshots")
    result.data = {"ledger": ledger.where, "snapshots": found}
    return result


def render_snapshots(result: CommandResult) -> None:
    from rich.table import Table

    from tierup.pipeline.output import console_for

    console = console_for(None)
    snapshots = result.data.get("snapshots") or []
    console.print(f"tierup snapshots ({result.data.get('ledger')})", markup=False)
    if not snapshots:
        console.print("no snapshots")
        return
    table = Table()
    for col in ("snapshot", "created", "environments", "services"):
        table.add_column(col)
    for s in snapshots:
        envs = s["environments"]
        table.add_row(
            s["name"],
            str(s.get("created_at") or "-"),
            ", ".join(envs),
            str(sum(len(v) for v in envs.values())),
        )
    console.print(table)


# -- restoring -------------------------------------------------------------------------


def find_snapshot(ledger: Ledger, env: str, name: str) -> dict[str, Any]:
    """The named snapshot, or the newest one that recorded ``env``."""
    if name != LATEST:
        doc = ledger.get_document(KIND, name)
        if doc is None:
            raise InputError(
                f"no snapshot named {name!r} in {ledger.where}",
                hint=f"list them: tierup snapshots --env {env}",
            )
        if env not in (doc.get("environments") or {}):
            raise InputError(
                f"snapshot {name!r} did not record environment {env!r} "
                f"(it has {', '.join(doc.get('environments') or {}) or 'none'})",
                hint=f"list them: tierup snapshots --env {env}",
            )
        return doc
    for candidate in reversed(ledger.list_documents(KIND)):
        doc = ledger.get_document(KIND, candidate)
        if doc is not None and env in (doc.get("environments") or {}):
            return doc
    raise InputError(
        f"no snapshot records environment {env!r} in {ledger.where}",
        hint=f"take one first: tierup snapshot --env {env}",
    )


def snapshot_target(name: str, recorded: dict[str, Any]) -> rb.RollbackTarget:
    containers = recorded.get("containers") or {}
    return rb.RollbackTarget(
        task_definition=str(recorded["task_definition"]),
        digests=tuple(
            sorted((c, str(v["digest"])) for c, v in containers.items() if v.get("digest"))
        ),
        source=rb.SNAPSHOT,
        detail=name,
    )


def plan_restore(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    *,
    env: str,
    snapshot: str = LATEST,
) -> UndoPlan:
    environment = config.environment(env)
    doc = find_snapshot(ledger, env, snapshot)
    name = str(doc.get("name") or snapshot)
    recorded: dict[str, Any] = doc["environments"][env]
    services: dict[str, Any] = recorded.get("services") or {}
    if not services:
        raise InputError(f"snapshot {name!r} recorded no service of {env!r}")
    plan = plan_services(
        config,
        clients,
        command="restore",
        scope="snapshot",
        env_name=env,
        services=list(services),
        all_services=False,
        find=lambda view: snapshot_target(name, services[view.state.name]),
        fail_fast=False,
        snapshot=name,
    )
    plan.invocation = f"restore --env {env} --snapshot {name}"
    if recorded.get("cluster") not in (None, environment.cluster):
        plan.notes.append(
            f"snapshot {name!r} recorded cluster {recorded.get('cluster')!r}; envs.yaml now "
            f"names {environment.cluster!r}: restoring the services there"
        )
    for p in plan.services:
        count = services[p.service].get("desired_count")
        state = p.state
        if state is not None and count is not None and count != state.desired:
            plan.notes.append(
                f"{env}/{p.service}: desired count is {state.desired}, the snapshot recorded "
                f"{count}; restore leaves the count to its owner (autoscaling or you)"
            )
    return plan


def restore(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    *,
    env: str,
    snapshot: str = LATEST,
    options: RunOptions | None = None,
    lock_timeout: float = 0,
    progress: Progress | None = None,
) -> CommandResult:
    """Bring every service of ``env`` back to a snapshot, in parallel; wait; record."""
    return run_locked(
        config,
        clients,
        ledger,
        env=env,
        command="restore",
        options=options or RunOptions(),
        lock_timeout=lock_timeout,
        plan=lambda: plan_restore(config, clients, ledger, env=env, snapshot=snapshot),
        progress=progress,
    )
