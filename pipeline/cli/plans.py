"""Saved plans: `--out FILE` on the writing commands, `tierup apply FILE`, `tierup show FILE`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tierup.pipeline.cli.common import (
    FileOpt,
    JsonOpt,
    load_config,
    lock_wait,
    make_clients,
    run,
    shown,
)
from tierup.pipeline.cli.release import LockTimeoutOpt, open_ledger_for
from tierup.pipeline.results import CommandResult

PlanArg = Annotated[
    Path, typer.Argument(metavar="PLAN", help="a plan saved by a writing command's --out FILE")
]


def apply(
    plan: PlanArg,
    lock_timeout: LockTimeoutOpt = None,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a saved plan exactly, under its tier's lock and gates; refuse it if anything it was
    planned against changed since (exit 1, nothing written)."""

    def body() -> CommandResult:
        from tierup.pipeline import saved_plan, saved_plan_commands
        from tierup.pipeline.progress import progress_display

        doc = saved_plan.load(plan)  # a bad plan file: exit 2 before anything is read
        cfg = load_config(file)
        clients = make_clients(cfg)
        with progress_display() as progress:
            result = saved_plan_commands.apply(
                cfg,
                clients,
                open_ledger_for(cfg, clients),
                doc,
                path=plan,
                lock_timeout=lock_wait(lock_timeout),
                progress=progress,
            )
        result.count_retries(clients.retries.count)
        return result

    run(as_json, body)


def show(plan: PlanArg, as_json: JsonOpt = False) -> None:
    """Print a saved plan as its dry run printed it (reads nothing else)."""

    def body() -> CommandResult | int:
        from tierup.pipeline import saved_plan, saved_plan_commands
        from tierup.pipeline.output import print_json, render_text

        doc = saved_plan.load(plan)
        result = saved_plan_commands.shown(doc, plan)
        if as_json:
            print_json(
                {
                    **doc.result,
                    "saved_plan": {
                        "file": str(plan),
                        "id": doc.id,
                        "created_at": doc.created_at.isoformat(),
                        "created_by": doc.created_by,
                        "command": doc.command,
                        "invocation": doc.invocation,
                        "arguments": doc.arguments.model_dump(mode="json", exclude_none=True),
                    },
                }
            )
            sys.stdout.flush()
            return int(result.exit_code)
        return shown(False, result, render_text)

    run(as_json, body)


def register(app: typer.Typer) -> None:
    app.command()(apply)
    app.command()(show)
