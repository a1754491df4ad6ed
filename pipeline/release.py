"""Release control around a promotion: the tier lock, gates, the ledger, stamps, tier rollback.

Every writing command here runs as: take the tier's lock -> plan (reads only) -> check the
tier's gates -> execute (the plan's writes, then wait) -> record one ledger event -> release
the lock. A dry run takes no lock and records nothing; it still checks the gates.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from tierup.pipeline import releases
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.config_tiers import Tier
from tierup.pipeline.deploy import deploy_environment
from tierup.pipeline.events import Event, EventStatus
from tierup.pipeline.gates import Candidate, GateError, check_gates
from tierup.pipeline.guard import (
    Annotating,
    Guard,
    Now,
    finish,
    protect_revisions,
    reconcile_first,
    tier_lock,
    utcnow,
)
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.lock import LockHeld, held_error, holding, human, key_for, read_lock
from tierup.pipeline.plan import PromotionPlan
from tierup.pipeline.plan_promotion import commits_of_digest, plan_promotion
from tierup.pipeline.promote import Progress, RunOptions, Source, execute
from tierup.pipeline.results import CommandResult
from tierup.stages.errors import InputError
from tierup.stages.parallel import each

# -- promote and stamp -------------------------------------------------------------


def _gate_source(config: Config, tier: Tier, source: Source) -> Tier | None:
    if source.kind == "tier" and source.value:
        return config.tier(source.value)
    return config.source_tier(tier.name)


def _commit_fixes(
    config: Config, clients: Clients, plan: PromotionPlan
) -> dict[str, dict[str, Any]]:
    """The commit of each image resolved through a tier tag, from the digest's commit tags."""
    unknown = [r for r in plan.resolved if r.commit is None]
    if not unknown:
        return {}
    found = each(
        lambda r: commits_of_digest(
            clients,
            plan.targets[r.image].repository,
            r.manifest.digest,
            config.image(r.image).tag_prefix,
        ),
        unknown,
    )
    return {r.image: {"commit": c[0]} for r, c in zip(unknown, found, strict=True) if c}


def run_promotion(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    *,
    tier: str,
    source: Source = Source(),
    images: list[str] | None = None,
    deploy: bool = True,
    options: RunOptions | None = None,
    guard: Guard = Guard(),
    now: Now = utcnow,
    progress: Progress | None = None,
    command: str = "promote",
    environ: Mapping[str, str] | None = None,
) -> CommandResult:
    """Promote (or stamp) under the tier's lock and gates; record the event in the ledger."""
    guard.check()
    opts = options or RunOptions()
    t = config.tier(tier)
    lock = tier_lock(config, clients, ledger, t.name, command=command, dry_run=opts.dry_run)
    with holding(lock, guard.lock_timeout, progress):
        reconciled = reconcile_first(config, clients, ledger, t.name, dry_run=opts.dry_run)
        opts = protect_revisions(opts, ledger)
        when = now()
        plan = plan_promotion(
            config,
            clients,
            tier_name=t.name,
            source=source,
            images=images,
            deploy=deploy,
            now=when,
            command=command,
            protected=opts.protected,
            skip_unreachable=opts.skip_unreachable,
        )
        gates = check_gates(
            config,
            clients,
            ledger,
            tier=t,
            source=_gate_source(config, t, source),
            candidates=[Candidate(r.image, r.manifest.digest) for r in plan.retags],
            now=when,
            environ=os.environ if environ is None else environ,
        )
        failed = [g for g in gates if not g.passed]
        if failed and not guard.force:
            raise GateError(failed)
        fixes = {} if opts.dry_run else _commit_fixes(config, clients, plan)
        recorder = Annotating(ledger, guard, images=fixes)
        result = execute(config, clients, plan, options=opts, recorder=recorder, progress=progress)
    for outcome in result.images:
        if outcome.commit is None and outcome.image in fixes:
            outcome.commit = fixes[outcome.image]["commit"]
    if gates:
        result.data["gates"] = [g.to_json() for g in gates]
    if failed:
        names = ", ".join(g.gate for g in failed)
        result.notes.append(f"gates passed with --force ({names}): {guard.reason}")
    return finish(result, recorder, ledger, reconciled)


def stamp(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    *,
    tier: str,
    from_tier: str | None = None,
    source: Source | None = None,
    images: list[str] | None = None,
    deploy: bool = True,
    options: RunOptions | None = None,
    guard: Guard = Guard(),
    now: Now = utcnow,
    progress: Progress | None = None,
    environ: Mapping[str, str] | None = None,
) -> CommandResult:
    """Give the source tier's digest the tier's immutable, timestamped tag and deploy it."""
    t = config.tier(tier)
    if not t.immutable:
        raise InputError(
            f"tier {t.name!r} has the mutable tag {t.tag!r}: only a tier whose tag has a "
            "placeholder (prod-{timestamp}) is stamped",
            hint=f"tierup promote --tier {t.name}",
        )
    if source is None:
        source = Source(kind="tier", value=from_tier) if from_tier else Source()
    return run_promotion(
        config,
        clients,
        ledger,
        tier=tier,
        source=source,
        images=images,
        deploy=deploy,
        options=options,
        guard=guard,
        now=now,
        progress=progress,
        command="stamp",
        environ=environ,
    )


def run_deploy(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    *,
    env: str,
    options: RunOptions | None = None,
    guard: Guard = Guard(),
    progress: Progress | None = None,
) -> CommandResult:
    """`tierup deploy --env E` under the lock of E's tier, recorded."""
    opts = options or RunOptions()
    tier = config.environment(env).tier
    lock = tier_lock(config, clients, ledger, tier, command="deploy", dry_run=opts.dry_run)
    recorder = Annotating(ledger, guard)
    with holding(lock, guard.lock_timeout, progress):
        reconciled = reconcile_first(config, clients, ledger, tier, dry_run=opts.dry_run)
        result = deploy_environment(
            config,
            clients,
            env=env,
            options=protect_revisions(opts, ledger),
            recorder=recorder,
            progress=progress,
            events=releases.tier_events(ledger, tier),
        )
    return finish(result, recorder, ledger, reconciled)


# -- tier rollback -----------------------------------------------------------------


# -- unlock and history ------------------------------------------------------------


def unlock(
    config: Config,
    ledger: Ledger,
    *,
    tier: str,
    now: Now = utcnow,
) -> CommandResult:
    """Break a tier's lock once it is older than ``lock.ttl``; the ledger records it."""
    t = config.tier(tier)
    result = CommandResult(command="unlock", tier=t.name)
    info = read_lock(ledger, t.name)
    when = now()
    if info is None:
        result.notes.append(f"tier {t.name!r} is not locked")
        result.data["lock"] = None
        return result
    ttl = config.lock.ttl
    if info.age(when).total_seconds() < ttl:
        err = held_error(info, tier=t.name, now=when, ttl=ttl)
        raise LockHeld(
            err.message
            + f"; it can be broken once older than lock.ttl ({human(timedelta(seconds=ttl))})",
            hint="wait for it to finish, or raise --lock-timeout on the waiting run",
        )
    ledger.store.delete(key_for(t.name))
    event = ledger.record(
        Event(
            command="unlock",
            tier=t.name,
            status=EventStatus.OK,
            invocation=f"unlock --tier {t.name}",
            message=f"broke the lock held by {info.describe(when)}",
        )
    )
    result.data["lock"] = info.to_json()
    result.data["event"] = event.id
    result.notes.append(f"broke the lock on {t.name!r} held by {info.describe(when)}")
    return result
