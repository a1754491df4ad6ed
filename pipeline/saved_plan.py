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

This module is the plan file itself (its model, writing and reading it, and its errors); beside
it: ``saved_plan_run`` (the frozen command run through its guarded entry point),
``saved_plan_state`` (what planning read, and what changed since), ``saved_plan_review`` (the
reviews a run goes through) and ``saved_plan_commands`` (save, show, apply).
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from tierup.pipeline import __version__
from tierup.pipeline.config import Config
from tierup.pipeline.redaction import redact_all
from tierup.stages.errors import InputError, TierupError

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


class PlanFileError(InputError):
    """A plan file that cannot be read as a saved plan (exit 2, nothing read or written)."""


class StalePlan(TierupError):
    """The world a saved plan was made against changed; nothing was written."""

    refusal = False


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


def config_digest(config: Config) -> str:
    return "sha256:" + hashlib.sha256(config.model_dump_json().encode()).hexdigest()


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
