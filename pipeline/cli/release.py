"""Release commands: stamp, history, unlock, and `rollback tier`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tierup.pipeline.cli.common import (
    AtomicOpt,
    DryRunOpt,
    FileOpt,
    ImagesOpt,
    JsonOpt,
    OutOpt,
    RollbackOnFailureOpt,
    TimeoutOpt,
    WaitOpt,
    load_config,
    lock_wait,
    make_clients,
    parse_duration_flag,
    rollback_app,
    run,
    shown,
)
from tierup.pipeline.results import CommandResult

if TYPE_CHECKING:
    from tierup.pipeline.clients import Clients
    from tierup.pipeline.config import Config
    from tierup.pipeline.guard import Guard
    from tierup.pipeline.ledger.base import Ledger
    from tierup.pipeline.promote import RunOptions

ForceOpt = Annotated[
    bool, typer.Option("--force", help="pass the tier's gates (needs --reason; recorded)")
]
ReasonOpt = Annotated[
    str | None,
    typer.Option("--reason", metavar="TEXT", help="why the gates are passed (kept in the ledger)"),
]
LockTimeoutOpt = Annotated[
    str | None,
    typer.Option(
        "--lock-timeout",
        metavar="DURATION",
        help="wait this long for another run's lock on the tier (default 0: fail at once)",
    ),
]
MessageOpt = Annotated[
    str | None, typer.Option("--message", metavar="TEXT", help="a note kept with the ledger event")
]
SkipUnreachableOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--skip-unreachable",
        metavar="ENV",
        help="go on without this environment of the tier (repeatable): not read, not "
        "deployed, recorded as skipped",
    ),
]


def open_ledger_for(cfg: Config, clients: Clients) -> Ledger:
    from tierup.pipeline.ledger.configured import open_ledger

    return open_ledger(cfg, clients.sessions, root=Path.cwd())


Progress = Callable[[str], None]
Recorded = Callable[["Config", "Clients", "Ledger", Progress], CommandResult]


def run_recorded(as_json: bool, file: Path | None, act: Recorded) -> None:
    """A writing command: envs.yaml, the clients, the ledger and a progress display, then act."""

    def body() -> CommandResult:
        from tierup.pipeline.progress import progress_display

        cfg = load_config(file)
        clients = make_clients(cfg)
        with progress_display() as progress:
            result = act(cfg, clients, open_ledger_for(cfg, clients), progress)
        result.count_retries(clients.retries.count)
        return result

    run(as_json, body)


def save_plan(
    as_json: bool,
    file: Path | None,
    out: Path,
    command: str,
    options: Callable[[], RunOptions],
    *,
    sources: tuple[str | None, str | None, str | None] | None = None,
    **arguments: Any,
) -> None:
    """Plan ``command`` as its dry run does and save the plan to ``out``. ``options`` gives the
    command's RunOptions and ``sources`` its --from, --commit and --digest, checked in the run
    as the command checks them."""

    def act(cfg: Config, clients: Clients, ledger: Ledger, progress: Progress) -> CommandResult:
        from tierup.pipeline import saved_plan, saved_plan_commands
        from tierup.pipeline.config_load import default_path
        from tierup.pipeline.ledger.identity import actor_name
        from tierup.pipeline.promote import Source

        opts = options()
        if sources is not None:
            source = Source.from_flags(from_tier=sources[0], commit=sources[1], digest=sources[2])
            arguments.update(source=source.kind, source_value=source.value)
        args = saved_plan.Arguments(
            wait=opts.wait,
            timeout=opts.timeout,
            rollback_on_failure=opts.rollback_on_failure,
            atomic=opts.atomic,
            skip_unreachable=sorted(opts.skip_unreachable),
            **arguments,
        )
        return saved_plan_commands.save(
            cfg,
            clients,
            ledger,
            command,  # type: ignore[arg-type]
            args,
            out=out,
            config_file=str(file or default_path()),
            actor=actor_name(os.environ, Path.cwd()),
            progress=progress,
        )

    run_recorded(as_json, file, act)


def make_guard(
    *,
    force: bool = False,
    reason: str | None = None,
    message: str | None = None,
    lock_timeout: str | None = None,
) -> Guard:
    from tierup.pipeline.guard import Guard

    return Guard(force=force, reason=reason, message=message, lock_timeout=lock_wait(lock_timeout))


def run_options(
    *,
    wait: bool,
    timeout: str | None,
    dry_run: bool,
    rollback_on_failure: bool | None = None,
    atomic: bool | None = None,
    skip_unreachable: list[str] | None = None,
) -> RunOptions:
    """RunOptions from the flags (None: the tier's setting)."""
    from tierup.pipeline.promote import RunOptions
    from tierup.pipeline.rollback_on_failure import check_flags

    check_flags(wait=wait, rollback_on_failure=rollback_on_failure, atomic=atomic)
    return RunOptions(
        wait=wait,
        timeout=parse_duration_flag(timeout),
        dry_run=dry_run,
        rollback_on_failure=rollback_on_failure,
        atomic=atomic,
        skip_unreachable=frozenset(skip_unreachable or ()),
    )


def run_promotion_command(
    command: str,
    *,
    tier: str,
    sources: tuple[str | None, str | None, str | None],
    images: list[str] | None,
    deploy: bool,
    options: Callable[[], RunOptions],
    force: bool,
    reason: str | None,
    message: str | None,
    lock_timeout: str | None,
    out: Path | None,
    file: Path | None,
    as_json: bool,
) -> None:
    """`promote` and `stamp` from the command line: saved with ``--out``, or run through the
    guard (``sources``: ``--from``, ``--commit``, ``--digest``)."""
    if out is not None:
        save_plan(
            as_json,
            file,
            out,
            command,
            options,
            sources=sources,
            tier=tier,
            images=images,
            deploy=deploy,
            force=force,
            reason=reason,
            message=message,
        )
        return

    def act(cfg: Config, clients: Clients, ledger: Ledger, progress: Progress) -> CommandResult:
        from tierup.pipeline.promote import Source
        from tierup.pipeline.release import run_promotion
        from tierup.pipeline.release import stamp as stamp_tier

        from_tier, commit, digest = sources
        run = stamp_tier if command == "stamp" else run_promotion
        return run(
            cfg,
            clients,
            ledger,
            tier=tier,
            source=Source.from_flags(from_tier=from_tier, commit=commit, digest=digest),
            images=images,
            deploy=deploy,
            options=options(),
            guard=make_guard(
                force=force, reason=reason, message=message, lock_timeout=lock_timeout
            ),
            progress=progress,
        )

    run_recorded(as_json, file, act)


def stamp(
    tier: Annotated[
        str, typer.Option("--tier", metavar="TIER", help="the immutable tier to stamp")
    ],
    from_tier: Annotated[
        str | None, typer.Option("--from", metavar="TIER", help="take the digest of this tier")
    ] = None,
    commit: Annotated[
        str | None, typer.Option("--commit", metavar="SHA", help="stamp this commit's image")
    ] = None,
    digest: Annotated[
        str | None, typer.Option("--digest", metavar="DIGEST", help="stamp this digest")
    ] = None,
    image: ImagesOpt = None,
    message: MessageOpt = None,
    no_deploy: Annotated[bool, typer.Option("--no-deploy", help="write the stamp only")] = False,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = None,
    rollback_on_failure: RollbackOnFailureOpt = None,
    atomic: AtomicOpt = None,
    force: ForceOpt = False,
    reason: ReasonOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    skip_unreachable: SkipUnreachableOpt = None,
    dry_run: DryRunOpt = False,
    out: OutOpt = None,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give the source tier's digest the tier's timestamped tag and deploy every environment."""
    run_promotion_command(
        "stamp",
        tier=tier,
        sources=(from_tier, commit, digest),
        images=image or None,
        deploy=not no_deploy,
        options=lambda: run_options(
            wait=wait,
            timeout=timeout,
            dry_run=dry_run,
            rollback_on_failure=rollback_on_failure,
            atomic=atomic,
            skip_unreachable=skip_unreachable,
        ),
        force=force,
        reason=reason,
        message=message,
        lock_timeout=lock_timeout,
        out=out,
        file=file,
        as_json=as_json,
    )


def history(
    tier: Annotated[
        str | None, typer.Option("--tier", metavar="TIER", help="only this tier")
    ] = None,
    image: Annotated[
        str | None, typer.Option("--image", metavar="IMAGE", help="only this image")
    ] = None,
    env: Annotated[
        str | None, typer.Option("--env", metavar="ENV", help="only this environment")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", help="at most N events (newest first)")
    ] = 20,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What was promoted, stamped, deployed and rolled back: who, when, which digests."""

    def body() -> CommandResult:
        from tierup.pipeline.history import history as read_history
        from tierup.pipeline.history import render_history

        cfg = load_config(file)
        clients = make_clients(cfg)
        if tier is not None:
            cfg.tier(tier)
        if image is not None:
            cfg.image(image)
        if env is not None:
            cfg.environment(env)
        result = read_history(
            open_ledger_for(cfg, clients), tier=tier, image=image, env=env, limit=limit
        )
        return shown(as_json, result, render_history)

    run(as_json, body)


def unlock(
    tier: Annotated[
        str, typer.Option("--tier", metavar="TIER", help="the tier whose lock to break")
    ],
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Break a tier's lock left by a run that died (only once older than lock.ttl)."""

    def body() -> CommandResult:
        from tierup.pipeline.release import unlock as break_lock

        cfg = load_config(file)
        return break_lock(cfg, open_ledger_for(cfg, make_clients(cfg)), tier=tier)

    run(as_json, body)


def rollback_tier(
    tier: Annotated[str, typer.Option("--tier", metavar="TIER", help="the tier to put back")],
    to: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="DIGEST|STAMP", help="go back to this digest (sha256:...) or stamp tag"
        ),
    ] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", metavar="N", help="go back N promotions (default 1)")
    ] = None,
    image: ImagesOpt = None,
    message: MessageOpt = None,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    dry_run: DryRunOpt = False,
    out: OutOpt = None,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put a tier back on the digest it had before, from the ledger, and redeploy it."""
    if out is not None:
        save_plan(
            as_json,
            file,
            out,
            "rollback tier",
            lambda: run_options(wait=wait, timeout=timeout, dry_run=True),
            tier=tier,
            to=to,
            steps=steps,
            images=image or None,
            message=message,
        )
        return

    def act(cfg: Config, clients: Clients, ledger: Ledger, progress: Progress) -> CommandResult:
        from tierup.pipeline.rollback_tier import rollback_tier as roll_back

        return roll_back(
            cfg,
            clients,
            ledger,
            tier=tier,
            to=to,
            steps=steps,
            images=image or None,
            options=run_options(wait=wait, timeout=timeout, dry_run=dry_run),
            guard=make_guard(message=message, lock_timeout=lock_timeout),
            progress=progress,
        )

    run_recorded(as_json, file, act)


def register(app: typer.Typer) -> None:
    app.command()(stamp)
    app.command()(history)
    app.command()(unlock)
    rollback_app.command("tier")(rollback_tier)
