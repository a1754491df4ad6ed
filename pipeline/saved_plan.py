"""Saved plans: ``--out FILE`` freezes what a writing command would do; ``tierup apply FILE``
runs exactly that, or refuses.

A plan file is a versioned JSON document: the command and its arguments (with what planning
resolved: the planning time a stamp's tag renders from, a restore's snapshot), the dry run's
result (its ``plan`` lists the writes, item for item), and the state planning read: where each
tag pointed, what each service ran (task definition, PRIMARY deployment), which change set each
CloudFormation stack got, and a digest of envs.yaml. Saving is a dry run that keeps its change
sets; nothing else is written (no lock, no ledger event).

``apply`` runs the same command through its own guarded path (the tier's lock, reconciliation,
gates, the ledger), planning again with the saved arguments, the saved time and, for
CloudFormation, the saved change set (never a new one). Before the first write it compares what
it read and planned with the saved plan: a tag that moved, a service whose revision or
deployment changed, a change set gone, or any other write is a stale plan, refused with exit 1
and nothing written. The reviewed digests are what is promoted, or nothing is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from tierup.pipeline import __version__, release, snapshot, strategies, undo
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.events import Event
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.plan import PromotionPlan, Review
from tierup.pipeline.promote import PreflightError, Progress, RunOptions, Source
from tierup.pipeline.redaction import redact_all
from tierup.pipeline.results import (
    CommandResult,
    EnvironmentOutcome,
    ImageOutcome,
    ServiceOutcome,
    Status,
)
from tierup.stages.errors import ExitCode, InputError, TierupError
from tierup.stages.record import Recorder

VERSION = 1
KIND: Literal["tierup-plan"] = "tierup-plan"
Command = Literal[
    "promote",
    "stamp",
    "deploy",
    "rollback service",
    "rollback cluster",
    "rollback tier",
    "restore",
]
# commands whose environments plan through their strategies (a stack's change set)
PROMOTIONS = ("promote", "stamp", "deploy", "rollback tier")
SHOWN_DIFFERENCES = 3


class PlanFileError(InputError):
    """A plan file that cannot be read as a saved plan (exit 2, nothing read or written)."""


class StalePlan(TierupError):
    """The world a saved plan was made against changed; nothing was written."""

    exit_code = ExitCode.FAILED


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Arguments(_Model):
    """A command's arguments as given, plus what planning fixed (``now``, a snapshot's name)."""

    tier: str | None = None
    env: str | None = None
    service: str | None = None
    source: str = "default"  # default | tier | commit | digest
    source_value: str | None = None
    images: list[str] | None = None
    deploy: bool = True
    to: str | None = None
    steps: int | None = None
    all_services: bool = False
    snapshot: str | None = None
    wait: bool = True
    timeout: int | None = None
    rollback_on_failure: bool | None = None
    atomic: bool | None = None
    skip_unreachable: list[str] = []
    force: bool = False
    reason: str | None = None
    message: str | None = None
    now: datetime | None = None


class SavedPlan(_Model):
    """The plan file (version 1)."""

    kind: Literal["tierup-plan"]
    version: int
    id: str
    created_at: datetime
    created_by: str | None = None
    tierup: str
    command: Command
    invocation: str
    arguments: Arguments
    config: dict[str, str]  # file, digest
    state: dict[str, Any]
    result: dict[str, Any]  # the dry run's result (--json), its `plan` the writes

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list(self.result.get("plan") or [])


# -- running a command ---------------------------------------------------------------------


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
    guard = release.Guard(
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
        return release.rollback_tier(
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
    return undo.rollback(
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


# -- what planning read --------------------------------------------------------------------


def state_of(plan: object) -> dict[str, Any]:
    """The world a plan was made against, as plain JSON (compared by ``differences``)."""
    images: dict[str, Any] = {}
    services: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if isinstance(plan, PromotionPlan):
        by_image = {r.image: r for r in plan.resolved}
        for r in plan.retags:
            res = by_image.get(r.image)
            images[r.image] = {
                "repository": r.repository,
                "digest": r.manifest.digest,
                "source": res.source if res is not None else None,
                "source_tag": res.tag if res is not None else None,
                "tag": r.tag,
                "tag_digest": r.current_digest,
            }
        for e in plan.envs:
            if e.error is not None:
                errors[e.name] = e.error.message
            for name, err in e.service_errors.items():
                errors[f"{e.name}/{name}"] = err.message
            for name, state in e.states.items():
                services[f"{e.name}/{name}"] = _service(state.task_definition, state.primary)
    elif isinstance(plan, undo.UndoPlan):
        for name, err in plan.errors.items():
            errors[f"{plan.env_name}/{name}"] = err.message
        for p in plan.services:
            primary = p.state.primary if p.state is not None else None
            services[f"{plan.env_name}/{p.service}"] = _service(p.current_task_definition, primary)
    return {"images": images, "services": services, "errors": errors}


def _service(task_definition: str, primary: Any) -> dict[str, Any]:
    return {"task_definition": task_definition, "deployment": primary.id if primary else None}


def _short(value: Any) -> str:
    text = "nothing" if value in (None, "") else str(value)
    return text[:19] if text.startswith("sha256:") else text.rsplit("/", 1)[-1]


def differences(
    saved: Mapping[str, Any],
    now: Mapping[str, Any],
    saved_steps: list[dict[str, Any]],
    steps: list[dict[str, Any]],
) -> list[str]:
    """What changed since the plan was made, causes first (tags, services, errors), then the
    writes themselves."""
    out: list[str] = []
    before_images, now_images = saved.get("images") or {}, now.get("images") or {}
    for name, was in before_images.items():
        cur = now_images.get(name)
        if cur is None:
            out.append(f"image {name} is no longer planned")
            continue
        if cur.get("digest") != was.get("digest"):
            out.append(
                f"image {name}: {was.get('source') or 'its source'} now resolves to "
                f"{_short(cur.get('digest'))}, the plan promotes {_short(was.get('digest'))}"
            )
        if cur.get("tag_digest") != was.get("tag_digest") or cur.get("tag") != was.get("tag"):
            out.append(
                f"tag {was.get('repository')}:{was.get('tag')} moved: it was on "
                f"{_short(was.get('tag_digest'))} when planned, it is on "
                f"{_short(cur.get('tag_digest'))} now"
            )
    before_services, now_services = saved.get("services") or {}, now.get("services") or {}
    for name in sorted(set(before_services) | set(now_services)):
        was, cur = before_services.get(name), now_services.get(name)
        if was is None or cur is None:
            out.append(f"{name}: {'new since the plan' if was is None else 'no longer found'}")
            continue
        if cur.get("task_definition") != was.get("task_definition"):
            out.append(
                f"{name}: its task definition changed: "
                f"{_short(was.get('task_definition'))} when planned, "
                f"{_short(cur.get('task_definition'))} now"
            )
        elif cur.get("deployment") != was.get("deployment"):
            out.append(
                f"{name}: its deployment changed: {was.get('deployment') or 'none'} when "
                f"planned, {cur.get('deployment') or 'none'} now"
            )
    before_errors = saved.get("errors") or {}
    for name, message in (now.get("errors") or {}).items():
        if before_errors.get(name) != message:
            out.append(f"{name}: {message}")
    if _plain(saved_steps) != _plain(steps):
        out.append(_first_step_difference(_plain(saved_steps), _plain(steps)))
    return out


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _first_step_difference(saved: list[Any], now: list[Any]) -> str:
    from tierup.pipeline.output import step_line

    for n, (a, b) in enumerate(zip(saved, now, strict=False), 1):
        if a != b:
            return f"write {n} changed: planned `{step_line(a)}`, now `{step_line(b)}`"
    if len(now) > len(saved):
        extra = step_line(now[len(saved)])
        return f"{len(now) - len(saved)} write(s) more than planned: `{extra}`"
    gone = step_line(saved[len(now)])
    return f"{len(saved) - len(now)} planned write(s) no longer needed: `{gone}`"


# -- the reviews a run goes through --------------------------------------------------------


class _Keeping:
    """``--out``: keep what the dry run planned."""

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None
        self.snapshot: str | None = None

    def planned(self, plan: object, result: CommandResult) -> None:
        self.state = state_of(plan)
        if isinstance(plan, undo.UndoPlan):
            self.snapshot = plan.snapshot

    def recorder(self, inner: Recorder[Event]) -> Recorder[Event]:
        return inner


class _Checking:
    """``tierup apply``: refuse a plan whose world changed; mark the run's ledger events."""

    def __init__(self, saved: SavedPlan, origin: dict[str, Any]) -> None:
        self.saved = saved
        self.origin = origin
        self.checked = False

    def planned(self, plan: object, result: CommandResult) -> None:
        found = differences(self.saved.state, state_of(plan), self.saved.steps, result.plan)
        if found:
            raise stale(self.saved, found)
        self.checked = True

    def recorder(self, inner: Recorder[Event]) -> Recorder[Event]:
        return _Marking(inner, self.origin)


class _Marking:
    def __init__(self, inner: Recorder[Event], origin: dict[str, Any]) -> None:
        self.inner = inner
        self.origin = origin

    def record(self, event: Event, /) -> Event:
        return self.inner.record(
            dataclasses.replace(event, extra={**event.extra, "saved_plan": self.origin})
        )


def stale(saved: SavedPlan, found: list[str]) -> StalePlan:
    more = len(found) - SHOWN_DIFFERENCES
    listed = "; ".join(found[:SHOWN_DIFFERENCES]) + (f"; and {more} more" if more > 0 else "")
    return StalePlan(
        f"the saved plan {saved.id} (`{saved.invocation}`) is stale, nothing was written: {listed}",
        hint=f"make a new plan (tierup {saved.invocation} --out FILE), review it, apply it",
    )


# -- saving, reading, showing, applying ----------------------------------------------------


def config_digest(config: Config) -> str:
    return "sha256:" + hashlib.sha256(config.model_dump_json().encode()).hexdigest()


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
    keeping = _Keeping()
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


def write(path: Path, doc: SavedPlan) -> None:
    """The plan, redacted as everything tierup stores, written whole (a temporary file, then
    renamed)."""
    text = json.dumps(redact_all(doc.model_dump(mode="json")), indent=2, sort_keys=False) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise InputError(
            f"cannot write the plan to {path}: {e.strerror or e}",
            hint="give --out a path in a folder you can write to",
        ) from e


def load(path: Path) -> SavedPlan:
    """Read a plan file; anything but a version 1 plan is exit 2 with one line."""
    hint = "make one with the command and --out FILE (e.g. tierup promote --tier T --out plan.json)"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise PlanFileError(f"plan file {path} does not exist", hint=hint) from e
    except (OSError, UnicodeDecodeError) as e:
        raise PlanFileError(f"cannot read plan file {path}: {e}", hint=hint) from e
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise PlanFileError(
            f"{path} is not a saved plan: not JSON (line {e.lineno}: {e.msg})", hint=hint
        ) from e
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise PlanFileError(f"{path} is not a saved plan (no `kind: {KIND}`)", hint=hint)
    version = doc.get("version")
    if version != VERSION:
        raise PlanFileError(
            f"{path} is a version {version!r} plan; this tierup ({__version__}) reads version "
            f"{VERSION}",
            hint="make the plan again with this tierup, or apply it with the tierup that made it",
        )
    try:
        return SavedPlan.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise PlanFileError(
            f"{path} is not a valid saved plan: {where}: {first['msg']}", hint=hint
        ) from e


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
    checking = _Checking(doc, origin)
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
        if checking.checked or e.exit_code != ExitCode.BAD_INPUT:
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
