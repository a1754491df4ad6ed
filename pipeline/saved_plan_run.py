"""A saved plan's command, run through its own guarded entry point as the command line runs it."""

from __future__ import annotations

from datetime import UTC, datetime

from tierup.pipeline import release, rollback_tier, snapshot, undo_run
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.guard import Guard
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.plan import Review
from tierup.pipeline.promote import Progress, RunOptions, Source
from tierup.pipeline.results import CommandResult
from tierup.pipeline.saved_plan import Arguments, Command


def options_for(args: Arguments, *, dry_run: bool, review: Review) -> RunOptions:
    return RunOptions(
        wait=args.wait,
        timeout=args.timeout,
        dry_run=dry_run,
        rollback_on_failure=args.rollback_on_failure,
        atomic=args.atomic,
        skip_unreachable=frozenset(args.skip_unreachable),
        review=review,
    )


def run_command(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    command: Command,
    args: Arguments,
    *,
    options: RunOptions,
    lock_timeout: float,
    progress: Progress | None,
) -> CommandResult:
    """``command`` through its own guarded entry point, as the command line runs it."""
    guard = Guard(
        force=args.force, reason=args.reason, message=args.message, lock_timeout=lock_timeout
    )
    if command in ("promote", "stamp"):
        assert args.tier is not None
        now = args.now or datetime.now(UTC)
        return release.run_promotion(
            config,
            clients,
            ledger,
            tier=args.tier,
            source=Source(args.source, args.source_value),
            images=args.images,
            deploy=args.deploy,
            options=options,
            guard=guard,
            now=lambda: now,
            progress=progress,
            command=command,
        )
    if command == "deploy":
        assert args.env is not None
        return release.run_deploy(
            config, clients, ledger, env=args.env, options=options, guard=guard, progress=progress
        )
    if command == "rollback tier":
        assert args.tier is not None
        return rollback_tier.rollback_tier(
            config,
            clients,
            ledger,
            tier=args.tier,
            to=args.to,
            steps=args.steps,
            images=args.images,
            options=options,
            guard=guard,
            progress=progress,
        )
    if command == "restore":
        assert args.env is not None
        return snapshot.restore(
            config,
            clients,
            ledger,
            env=args.env,
            snapshot=args.snapshot or snapshot.LATEST,
            options=options,
            lock_timeout=lock_timeout,
            progress=progress,
        )
    assert args.env is not None
    return undo_run.rollback(
        config,
        clients,
        ledger,
        env=args.env,
        service=args.service,
        all_services=args.all_services,
        to=args.to,
        options=options,
        lock_timeout=lock_timeout,
        progress=progress,
    )
