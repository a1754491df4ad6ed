"""``tierup init``: parse, ask about .gitignore, call ``pipeline.init``, render."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tierup.pipeline.cli.common import JsonOpt, run
from tierup.pipeline.results import CommandResult
from tierup.stages.errors import InputError


def _tier_for(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        cluster, sep, tier = value.partition("=")
        if not sep or not cluster or not tier:
            raise InputError(
                f"--tier-for {value!r}: expected CLUSTER=TIER", hint="e.g. api-prod=prod"
            )
        out[cluster] = tier
    return out


def init(
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="FILE", help="where to write")
    ] = Path("envs.yaml"),
    cluster: Annotated[
        list[str] | None,
        typer.Option("--cluster", metavar="CLUSTER", help="only this cluster (repeatable)"),
    ] = None,
    role_arn: Annotated[
        list[str] | None,
        typer.Option(
            "--role-arn",
            metavar="ARN",
            help="read the account of this role, assumed (repeatable: one per tenant account)",
        ),
    ] = None,
    account: Annotated[
        list[str] | None,
        typer.Option(
            "--account", metavar="ACCOUNT_ID", help="read this account through --role-name"
        ),
    ] = None,
    role_name: Annotated[
        str | None,
        typer.Option("--role-name", metavar="NAME", help="the role to assume in each --account"),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option("--region", metavar="REGION", help="default: AWS_REGION, AWS_DEFAULT_REGION"),
    ] = None,
    tier_for: Annotated[
        list[str] | None,
        typer.Option(
            "--tier-for",
            metavar="CLUSTER=TIER",
            help="the tier of a cluster whose task definitions name no tier tag; "
            "ACCOUNT/CLUSTER=TIER for a name several accounts use (repeatable)",
        ),
    ] = None,
    tier: Annotated[
        list[str] | None,
        typer.Option("--tier", metavar="TIER", help="the tiers in order (repeatable)"),
    ] = None,
    gitignore: Annotated[
        bool | None,
        typer.Option(
            "--gitignore/--no-gitignore",
            help="add .tierup/ to .gitignore (default: ask at a terminal, else no)",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing file")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a commented envs.yaml from the ECS clusters and services that exist."""

    def body() -> CommandResult:
        from tierup.pipeline import init as init_mod
        from tierup.pipeline.output import render_text
        from tierup.pipeline.sessions import AwsSessions

        folder = output.parent.resolve()
        add = gitignore
        if (
            add is None
            and not as_json
            and sys.stdin.isatty()
            and not init_mod.ignores_state(folder)
        ):
            add = typer.confirm(
                f"tierup keeps its local state in .tierup/: add it to {folder / '.gitignore'}?",
                default=True,
                err=True,
            )
        result = init_mod.init(
            AwsSessions(),
            output=output,
            region=region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1",
            role_arns=role_arn or (),
            account_ids=account or (),
            role_name=role_name,
            clusters=cluster or (),
            tier_for=_tier_for(tier_for or []),
            tier_order=tier or (),
            force=force,
            gitignore=bool(add),
        )
        if not as_json:
            render_text(result)
            raise typer.Exit(int(result.exit_code))
        return result

    run(as_json, body)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
