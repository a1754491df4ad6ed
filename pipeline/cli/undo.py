"""Undo commands: `rollback service`, `rollback cluster`, `snapshot`, `snapshots`, `restore`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tierup.pipeline.cli.common import (
    DryRunOpt,
    FileOpt,
    JsonOpt,
    OutOpt,
    TimeoutOpt,
    WaitOpt,
    load_config,
    lock_wait,
    make_clients,
    rollback_app,
    run,
    shown,
)
from tierup.pipeline.cli.release import (
    LockTimeoutOpt,
    Progress,
    open_ledger_for,
    run_options,
    run_recorded,
    save_plan,
)
from tierup.pipeline.results import CommandResult

if TYPE_CHECKING:
    from tierup.pipeline.clients import Clients
    from tierup.pipeline.config import Config
    from tierup.pipeline.ledger.base import Ledger

EnvOpt = Annotated[str, typer.Option("--env", metavar="ENV", help="the environment")]


def rollback_service(
    env: EnvOpt,
    service: Annotated[
        str, typer.Option("--service", metavar="SERVICE", help="the service to roll back")
    ],
    to: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="REV", help="go to this revision: N, family:N or a task definition ARN"
        ),
    ] = None,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    dry_run: DryRunOpt = False,
    out: OutOpt = None,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put one service back on what it ran before its current deployment."""
    _roll_back(
        env,
        service=service,
        to=to,
        out=out,
        wait=wait,
        timeout=timeout,
        lock_timeout=lock_timeout,
        dry_run=dry_run,
        file=file,
        as_json=as_json,
    )


def rollback_cluster(
    env: EnvOpt,
    all_services: Annotated[
        bool,
        typer.Option(
            "--all-services", help="every service of the cluster, not only those envs.yaml names"
        ),
    ] = False,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    dry_run: DryRunOpt = False,
    out: OutOpt = None,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put every service of an environment back on what it ran before, in parallel."""
    _roll_back(
        env,
        all_services=all_services,
        out=out,
        wait=wait,
        timeout=timeout,
        lock_timeout=lock_timeout,
        dry_run=dry_run,
        file=file,
        as_json=as_json,
    )


def _roll_back(
    env: str,
    *,
    service: str | None = None,
    to: str | None = None,
    all_services: bool = False,
    out: Path | None = None,
    wait: bool,
    timeout: str | None,
    lock_timeout: str | None,
    dry_run: bool,
    file: Path | None,
    as_json: bool,
) -> None:
    if out is not None:
        save_plan(
            as_json,
            file,
            out,
            "rollback service" if service else "rollback cluster",
            lambda: run_options(wait=wait, timeout=timeout, dry_run=True),
            env=env,
            service=service,
            to=to,
            all_services=all_services,
        )
        return

    def act(cfg: Config, clients: Clients, ledger: Ledger, progress: Progress) -> CommandResult:
        from tierup.pipeline.undo_run import rollback

        return rollback(
            cfg,
            clients,
            ledger,
            env=env,
            service=service,
            all_services=all_services,
            to=to,
            options=run_options(wait=wait, timeout=timeout, dry_run=dry_run),
            lock_timeout=lock_wait(lock_timeout),
            progress=progress,
        )

    run_recorded(as_json, file, act)


def snapshot(
    env: Annotated[
        str | None, typer.Option("--env", metavar="ENV", help="record this environment")
    ] = None,
    tier: Annotated[
        str | None,
        typer.Option("--tier", metavar="TIER", help="record every environment of this tier"),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="the snapshot's name (default ENV-TIMESTAMP)"),
    ] = None,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record every service's task definition, image digests and desired count."""

    def body() -> CommandResult:
        from tierup.pipeline.snapshot import take_snapshot

        cfg = load_config(file)
        clients = make_clients(cfg)
        return take_snapshot(
            cfg, clients, open_ledger_for(cfg, clients), env=env, tier=tier, name=name
        )

    run(as_json, body)


def snapshots(
    env: Annotated[
        str | None, typer.Option("--env", metavar="ENV", help="only snapshots of this environment")
    ] = None,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the snapshots, oldest first."""

    def body() -> CommandResult:
        from tierup.pipeline.snapshot import list_snapshots, render_snapshots

        cfg = load_config(file)
        if env is not None:
            cfg.environment(env)
        result = list_snapshots(open_ledger_for(cfg, make_clients(cfg)), env=env)
        return shown(as_json, result, render_snapshots)

    run(as_json, body)


def restore(
    env: EnvOpt,
    snapshot_name: Annotated[
        str, typer.Option("--snapshot", metavar="NAME", help="the snapshot's name, or latest")
    ] = "latest",
    wait: WaitOpt = True,
    timeout: TimeoutOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    dry_run: DryRunOpt = False,
    out: OutOpt = None,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Bring every service of an environment back to a snapshot."""
    if out is not None:
        save_plan(
            as_json,
            file,
            out,
            "restore",
            lambda: run_options(wait=wait, timeout=timeout, dry_run=True),
            env=env,
            snapshot=snapshot_name,
        )
        return

    def act(cfg: Config, clients: Clients, ledger: Ledger, progress: Progress) -> CommandResult:
        from tierup.pipeline.snapshot import restore as restore_env

        return restore_env(
            cfg,
            clients,
            ledger,
            env=env,
            snapshot=snapshot_name,
            options=run_options(wait=wait, timeout=timeout, dry_run=dry_run),
            lock_timeout=lock_wait(lock_timeout),
            progress=progress,
        )

    run_recorded(as_json, file, act)


ServiceOpt = Annotated[
    str | None,
    typer.Option("--service", metavar="SERVICE", help="only this service (default: every one)"),
]


def continue_(
    env: EnvOpt, service: ServiceOpt = None, file: FileOpt = None, as_json: JsonOpt = False
) -> None:
    """Continue a deployment paused at a PAUSE hook (ecs) or waiting at Ready (codedeploy)."""
    _control(env, service, "continue", rollback=False, file=file, as_json=as_json)


def stop(
    env: EnvOpt,
    service: ServiceOpt = None,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="put the previous revision back (and follow it)")
    ] = False,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop the deployment in progress (ecs: StopServiceDeployment; codedeploy: StopDeployment)."""
    _control(env, service, "stop", rollback=rollback, file=file, as_json=as_json)


def _control(
    env: str, service: str | None, action: str, *, rollback: bool, file: Path | None, as_json: bool
) -> None:
    def act(cfg: Config, clients: Clients, ledger: Ledger, progress: Progress) -> CommandResult:
        from tierup.pipeline.release_control import control

        return control(
            cfg,
            clients,
            ledger,
            env=env,
            service=service,
            action=action,
            rollback=rollback,
            progress=progress,
        )

    run_recorded(as_json, file, act)


def register(app: typer.Typer) -> None:
    app.command("continue")(continue_)
    app.command()(stop)
    rollback_app.command("service")(rollback_service)
    rollback_app.command("cluster")(rollback_cluster)
    app.command()(snapshot)
    app.command()(snapshots)
    app.command()(restore)
