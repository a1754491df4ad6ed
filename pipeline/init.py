"""`tierup init`: a commented envs.yaml from what runs in the accounts.

It reads (never writes) the ECS clusters and services of the caller's account, or of the
accounts reached through `--role-arn`, the images their task definitions name, and guesses
the tiers from the tags those images carry (`staging` is a tier whose tag moves; a stamp
`prod-20261126T103000Z` is a stamped tier), or from the cluster's name when the task
definitions name commits or digests. What cannot be guessed is asked for with `--tier-for`.

This module is the command (and the .gitignore it may add to); beside it: ``init_discover``
(what runs in the accounts), ``init_draft`` (the guesses: registry, images, tiers,
environments) and ``init_render`` (the draft as a commented envs.yaml).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from tierup.pipeline import config_load as config_mod
from tierup.pipeline.init_discover import accounts, discover
from tierup.pipeline.init_draft import draft
from tierup.pipeline.init_render import render
from tierup.pipeline.results import CommandResult
from tierup.pipeline.sessions import AwsSessions
from tierup.stages.errors import InputError

IGNORE_LINE = ".tierup/"


def ignores_state(folder: Path) -> bool:
    path = folder / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = {line.strip() for line in text.splitlines()}
    return bool(lines & {".tierup", ".tierup/", "/.tierup", "/.tierup/"})


def add_to_gitignore(folder: Path) -> bool:
    """Add `.tierup/` (the local ledger, locks and sandbox state) to .gitignore; False if it
    was there already."""
    if ignores_state(folder):
        return False
    path = folder / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    path.write_text(text + IGNORE_LINE + "\n", encoding="utf-8")
    return True


def init(
    sessions: AwsSessions,
    *,
    output: Path,
    region: str,
    role_arns: Sequence[str] = (),
    account_ids: Sequence[str] = (),
    role_name: str | None = None,
    clusters: Sequence[str] = (),
    tier_for: dict[str, str] | None = None,
    tier_order: Sequence[str] = (),
    force: bool = False,
    gitignore: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> CommandResult:
    if output.exists() and not force:
        raise InputError(
            f"{output} exists", hint="pass --force to replace it, or -o FILE to write elsewhere"
        )
    targets = accounts(
        sessions, region=region, role_arns=role_arns, account_ids=account_ids, role_name=role_name
    )
    found = discover(sessions, targets, clusters)
    if not any(c.services for c in found):
        where = ", ".join(sorted({t.account_id for t in targets}))
        raise InputError(
            f"no ECS service found in account(s) {where} ({region})",
            hint="pass --region, --cluster, or --role-arn for the accounts that run them",
        )
    d = draft(found, tier_for=dict(tier_for or {}), tier_order=tier_order)
    ids = [t.account_id for t in targets]
    source = ("account " if len(ids) == 1 else "accounts ") + ", ".join(ids) + f" ({region})"
    text = render(d, when=clock(), source=source)
    config_mod.loads(text, str(output))  # what init writes, validate reads
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    result = CommandResult(command="init")
    result.data = {
        "file": str(output),
        "registry": {"account_id": d.registry[0], "region": d.registry[1]},
        "images": d.images,
        "tiers": [
            {"name": t.name, "immutable": t.immutable, "guessed_from": t.why} for t in d.tiers
        ],
        "environments": {
            name: {"tier": g.name, "account_id": c.account.account_id, "cluster": c.name}
            for name, c, g, _ in d.environments
        },
        "skipped": d.skipped,
    }
    result.notes.append(f"wrote {output}: check the guesses, then run `tierup validate --remote`")
    folder = output.parent.resolve()
    if gitignore:
        added = add_to_gitignore(folder)
        result.data["gitignore"] = "added" if added else "present"
        if added:
            result.notes.append(f"added {IGNORE_LINE} to {folder / '.gitignore'}")
    elif ignores_state(folder):
        result.data["gitignore"] = "present"
    else:
        result.data["gitignore"] = "missing"
        result.notes.append(
            f"tierup keeps its local state in {IGNORE_LINE}: add it to .gitignore "
            "(`tierup init --gitignore` does)"
        )
    return result
