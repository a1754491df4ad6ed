"""The commands of the core: promote, deploy, where, validate, schema, sandbox."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    make_clients,
    run,
    shown,
)
from tierup.pipeline.cli.release import (
    ForceOpt,
    LockTimeoutOpt,
    MessageOpt,
    Progress,
    ReasonOpt,
    SkipUnreachableOpt,
    make_guard,
    open_ledger_for,
    run_options,
    run_promotion_command,
    run_recorded,
    save_plan,
)
from tierup.pipeline.results import CommandResult

if TYPE_CHECKING:
    from tierup.pipeline.clients import Clients
    from tierup.pipeline.config import Config
    from tierup.pipeline.ledger.base import Ledger

sandbox_app = typer.Typer(
    help="A local AWS (moto) that behaves like ECS, for trying tierup.", no_args_is_help=True
)


def promote(
    tier: Annotated[str, typer.Option("--tier", metavar="TIER", help="the tier to promote")],
    from_tier: Annotated[
        str | None, typer.Option("--from", metavar="TIER", help="take the digest of this tier")
    ] = None,
    commit: Annotated[
        str | None, typer.Option("--commit", metavar="SHA", help="promote this commit's image")
    ] = None,
    digest: Annotated[
        str | None, typer.Option("--digest", metavar="DIGEST", help="promote this digest")
    ] = None,
    image: ImagesOpt = None,
    no_deploy: Annotated[bool, typer.Option("--no-deploy", help="move tags only")] = False,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = None,
    rollback_on_failure: RollbackOnFailureOpt = None,
    atomic: AtomicOpt = None,
    force: ForceOpt = False,
    reason: ReasonOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    message: MessageOpt = None,
    skip_unreachable: SkipUnreachableOpt = None,
    dry_run: DryRunOpt = False,
    out: OutOpt = None,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Point the tier's tag at its source's digest and deploy every environment of the tier."""
    run_promotion_command(
        "promote",
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


def deploy(
    env: Annotated[str, typer.Option("--env", metavar="ENV", help="the environment to deploy")],
    wait: WaitOpt = True,
    timeout: TimeoutOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    dry_run: DryRunOpt = False,
    out: OutOpt = None,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Deploy one environment to what its tier's tag points at now (no tag moves)."""
    if out is not None:
        save_plan(
            as_json,
            file,
            out,
            "deploy",
            lambda: run_options(wait=wait, timeout=timeout, dry_run=True),
            env=env,
        )
        return

    def act(cfg: Config, clients: Clients, ledger: Ledger, progress: Progress) -> CommandResult:
        from tierup.pipeline.release import run_deploy

        return run_deploy(
            cfg,
            clients,
            ledger,
            env=env,
            options=run_options(wait=wait, timeout=timeout, dry_run=dry_run),
            guard=make_guard(lock_timeout=lock_timeout),
            progress=progress,
        )

    run_recorded(as_json, file, act)


def where(
    image: Annotated[
        str | None, typer.Option("--image", metavar="IMAGE", help="only this image")
    ] = None,
    tier: Annotated[
        str | None, typer.Option("--tier", metavar="TIER", help="only this tier")
    ] = None,
    env: Annotated[
        str | None, typer.Option("--env", metavar="ENV", help="only this environment")
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="FILE",
            help="also write the release board: one self-contained HTML page",
        ),
    ] = None,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Which tag points at which digest and commit, and what each environment runs."""

    def body() -> CommandResult:
        from tierup.pipeline import where as where_mod

        cfg = load_config(file)
        clients = make_clients(cfg)
        # a stamped tier's release is its newest stamp that stood: the ledger tells
        ledger = open_ledger_for(cfg, clients) if any(t.immutable for t in cfg.tiers) else None
        result = where_mod.where(cfg, clients, image=image, tier=tier, env=env, ledger=ledger)
        if html is not None:
            from tierup.pipeline.board import write_board

            source = str(file) if file else ""
            board_ledger = ledger or open_ledger_for(cfg, clients)
            write_board(cfg, result, board_ledger, html, source=source)
        return shown(as_json, result, where_mod.render)

    run(as_json, body)


def validate(
    remote: Annotated[
        bool, typer.Option("--remote", help="also check roles, clusters, services, repositories")
    ] = False,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check envs.yaml (and with --remote, that AWS matches it)."""

    def body() -> CommandResult:
        from tierup.pipeline import validate as validate_mod

        cfg = load_config(file)
        result = validate_mod.validate(cfg, make_clients(cfg) if remote else None, remote=remote)
        return shown(as_json, result, validate_mod.render)

    run(as_json, body)


def schema(as_json: JsonOpt = False) -> None:
    """Print the JSON Schema of envs.yaml (for editors); it is JSON with or without --json."""
    from tierup.pipeline.config import json_schema
    from tierup.pipeline.output import print_json

    print_json(json_schema())


def sandbox_up(
    port: Annotated[
        int, typer.Option("--port", metavar="PORT", help="port of the local AWS endpoint")
    ] = 4566,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start moto's server with ECS emulation and seed it from envs.yaml."""

    def body() -> int:
        from tierup.pipeline.sandbox.control import sandbox_up as up

        result = up(load_config(file), port=port, repo_path=Path.cwd())
        # the sandbox's own made-up keys for moto on loopback: the export line is what this
        # command is for, so it is printed as it is, never redacted
        if as_json:
            sys.stdout.write(json.dumps(result.to_json(), indent=2, default=str) + "\n")
        else:
            sys.stdout.write(str(result.data.get("export", "")) + "\n")
        return int(result.exit_code)

    run(as_json, body)


def sandbox_down(as_json: JsonOpt = False) -> None:
    """Stop the sandbox started by `tierup sandbox up`."""

    def body() -> CommandResult:
        from tierup.pipeline.sandbox.control import sandbox_down as down

        return down(repo_path=Path.cwd())

    run(as_json, body)


def _sandbox_mark(kind: str, doc: str) -> Callable[..., None]:
    def command(
        image: Annotated[str, typer.Option("--image", help="the image to mark")],
        tier: Annotated[
            str | None, typer.Option("--tier", help="the digest this tier's tag points at")
        ] = None,
        digest: Annotated[str | None, typer.Option("--digest", help="this digest")] = None,
        cluster: Annotated[
            str | None, typer.Option("--cluster", help="in this cluster only (default: all)")
        ] = None,
        file: FileOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        def body() -> CommandResult:
            from tierup.pipeline.sandbox.marks import mark

            return mark(
                load_config(file),
                kind=kind,
                image=image,
                tier=tier,
                digest=digest,
                cluster=cluster,
                repo_path=Path.cwd(),
            )

        run(as_json, body)

    command.__doc__ = doc
    return command


def sandbox_alarm(
    env: Annotated[str, typer.Option("--env", help="the environment whose account holds it")],
    name: Annotated[str, typer.Option("--name", help="the alarm's name")],
    state: Annotated[str, typer.Option("--state", help="OK, ALARM or INSUFFICIENT_DATA")] = "ALARM",
    reason: Annotated[str, typer.Option("--reason", help="the state's reason")] = "set by hand",
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put a CloudWatch alarm of an environment in a state (created if missing)."""

    def body() -> CommandResult:
        from tierup.pipeline.sandbox.alarms import set_alarm

        result = set_alarm(
            load_config(file), env=env, name=name, state=state, reason=reason, repo_path=Path.cwd()
        )
        return shown(as_json, result, lambda r: typer.echo(f"{name}: {state}"))

    run(as_json, body)


def register(app: typer.Typer) -> None:
    app.command()(promote)
    app.command()(deploy)
    app.command()(where)
    app.command()(validate)
    app.command()(schema)
    sandbox_app.command("up")(sandbox_up)
    sandbox_app.command("down")(sandbox_down)
    sandbox_app.command("fail")(
        _sandbox_mark("fail", "Make an image's rollouts fail in the sandbox (its tasks stop).")
    )
    sandbox_app.command("hang")(
        _sandbox_mark("hang", "Make an image's rollouts never finish in the sandbox.")
    )
    sandbox_app.command("heal")(
        _sandbox_mark("heal", "Remove an image's sandbox-fail / sandbox-hang marks.")
    )
    sandbox_app.command("alarm")(sandbox_alarm)
    app.add_typer(sandbox_app, name="sandbox")
