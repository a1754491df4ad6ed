"""Saving a plan (``--out``), showing it, and applying it exactly or refusing."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tierup.pipeline import __version__, strategies
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.plan_environments import PreflightError
from tierup.pipeline.promote import Progress
from tierup.pipeline.results import (
    CommandResult,
    EnvironmentOutcome,
    ImageOutcome,
    ServiceOutcome,
    Status,
)
from tierup.pipeline.saved_plan import (
    KIND,
    VERSION,
    Arguments,
    Command,
    SavedPlan,
    config_digest,
    write,
)
from tierup.pipeline.saved_plan_review import Checking, Keeping, stale
from tierup.pipeline.saved_plan_run import options_for, run_command
from tierup.stages.errors import InputError, TierupError

PROMOTIONS = ("promote", "stamp", "deploy", "rollback tier")


def save(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    command: Command,
    args: Arguments,
    *,
    out: Path,
    config_file: str,
    actor: str | None = None,
    progress: Progress | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> CommandResult:
    """Plan ``command`` as its dry run does, keep its change sets, and write the plan to ``out``."""
    if not out.parent.is_dir():  # before planning makes anything (a change set)
        raise InputError(
            f"cannot write the plan to {out}: {out.parent} is not a folder",
            hint="give --out a path in an existing folder",
        )
    created = now()
    if command in ("promote", "stamp") and args.now is None:
        args = args.model_copy(update={"now": created})
    keeping = Keeping()
    result = run_command(
        config,
        clients,
        ledger,
        command,
        args,
        options=options_for(args, dry_run=True, review=keeping),
        lock_timeout=0,
        progress=progress,
    )
    if keeping.state is None:
        raise TierupError(f"{command} planned nothing to save", hint="see --dry-run")
    if keeping.snapshot is not None:
        args = args.model_copy(update={"snapshot": keeping.snapshot})  # `latest`, fixed
    plan_id = f"plan-{created.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
    doc = SavedPlan(
        kind=KIND,
        version=VERSION,
        id=plan_id,
        created_at=created,
        created_by=actor,
        tierup=__version__,
        command=command,
        invocation=result.title.removeprefix("tierup "),
        arguments=args,
        config={"file": config_file, "digest": config_digest(config)},
        state=keeping.state,
        result=result.to_json(),
    )
    write(out, doc)
    mark_saved(result, doc, out)
    return result


def mark_saved(result: CommandResult, doc: SavedPlan, path: Path) -> None:
    result.notes.append(
        f"plan {doc.id} saved to {path}: nothing was written; `tierup show {path}` prints it, "
        f"`tierup apply {path}` runs exactly it (or refuses if anything changed since)"
    )
    result.data["saved_plan"] = str(path)


def shown(doc: SavedPlan, path: Path) -> CommandResult:
    """The saved dry run's result, as the dry run printed it."""
    result = result_from_json(doc.result, invocation=doc.invocation)
    mark_saved(result, doc, path)
    return result


def result_from_json(doc: Mapping[str, Any], *, invocation: str) -> CommandResult:
    known = {"status", "command", "tier", "dry_run", "images", "environments", "plan", "notes"}
    result = CommandResult(
        command=str(doc.get("command") or ""),
        status=Status(str(doc.get("status") or "ok")),
        tier=doc.get("tier"),
        dry_run=bool(doc.get("dry_run")),
        plan=list(doc.get("plan") or []),
        notes=[str(n) for n in doc.get("notes") or []],
        invocation=invocation,
        data={k: v for k, v in doc.items() if k not in known and k != "saved_plan"},
    )
    for name, i in (doc.get("images") or {}).items():
        result.images.append(ImageOutcome(**{"image": name, **_fields(ImageOutcome, i)}))
    for name, e in (doc.get("environments") or {}).items():
        env = EnvironmentOutcome(**{"name": name, **_fields(EnvironmentOutcome, e, "services")})
        for svc, s in (e.get("services") or {}).items():
            env.services.append(
                ServiceOutcome(**{"service": svc, **_fields(ServiceOutcome, s, "rollback")})
            )
        result.environments.append(env)
    return result


def _fields(cls: Any, doc: Mapping[str, Any], *skip: str) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)} - set(skip)
    return {k: v for k, v in doc.items() if k in names}


def apply(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    doc: SavedPlan,
    *,
    path: Path,
    lock_timeout: float = 0,
    progress: Progress | None = None,
) -> CommandResult:
    """Run the saved plan under the lock and gates of its command, or refuse (exit 1) when its
    world changed since; the ledger's events name the plan."""
    if config_digest(config) != doc.config.get("digest"):
        raise stale(doc, [f"envs.yaml ({doc.config.get('file')}) changed since the plan was made"])
    origin = {
        "id": doc.id,
        "file": path.name,
        "created_at": doc.created_at.isoformat(),
        "created_by": doc.created_by,
    }
    checking = Checking(doc, origin)
    planning = from_plan(config, doc) if doc.command in PROMOTIONS else config
    try:
        result = run_command(
            planning,
            clients,
            ledger,
            doc.command,
            doc.arguments,
            options=options_for(doc.arguments, dry_run=False, review=checking),
            lock_timeout=lock_timeout,
            progress=progress,
        )
    except (InputError, PreflightError) as e:
        if checking.checked or not e.refusal:
            raise
        # what resolved when the plan was made no longer does: its world changed
        raise stale(doc, [e.message]) from e
    result.notes.append(f"applied the saved plan {doc.id} ({path.name})")
    result.data["saved_plan"] = doc.id
    return result


def from_plan(config: Config, doc: SavedPlan) -> Config:
    """``config`` whose CloudFormation environments plan with the plan's change sets."""
    change_sets: dict[str, str] = {}
    for step in doc.steps:
        cs = step.get("change_set")
        if isinstance(cs, dict) and cs.get("id") and step.get("environment"):
            change_sets[str(step["environment"])] = str(cs["id"])
    environments = {}
    for name, env in config.environments.items():
        cfn = env.cloudformation
        if cfn is not None:
            saved = strategies.SavedStack(
                stack=cfn.stack,
                image_parameter=cfn.image_parameter,
                change_set=change_sets.get(name),
            )
            env = env.model_copy(update={"cloudformation": saved})
        environments[name] = env
    return config.model_copy(update={"environments": environments})
