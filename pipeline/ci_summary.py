"""The GitHub step summary: a result as Markdown tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tierup.pipeline.ci_facts import event_of, said
from tierup.pipeline.output import redact
from tierup.pipeline.results import CommandResult


def cell(value: Any) -> str:
    text = "-" if value in (None, "") else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _code(value: str | None, length: int | None = None) -> str:
    if not value:
        return "-"
    return f"`{value[:length] if length else value}`"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _mark(status: str) -> str:
    if status in ("ok", "completed", "moved", "created", "unchanged", "skipped", "deployed"):
        return f"✅ {status}"
    if status in ("failed", "rolled_back_by_ecs"):
        return f"❌ {status}"
    warned = ("partial", "timed_out", "reverted", "moved_back", "interrupted")
    return f"⚠️ {status}" if status in warned else status


def summary_markdown(result: CommandResult, environ: Mapping[str, str]) -> str:
    """The step summary: tier; images -> tag -> digest -> commit; environments and services
    with their status; the ledger event."""
    title = f"tierup {result.command}" + (f" --tier {result.tier}" if result.tier else "")
    if result.dry_run:
        title += " (dry run)"
    lines = [f"### {title}: {_mark(str(result.status))}", ""]
    facts_line = []
    if result.tier:
        facts_line.append(f"tier **{result.tier}**")
    event = event_of(result)
    if event:
        facts_line.append(f"ledger event {_code(event)} (`tierup history`)")
    run_url = _run_url(environ)
    if run_url:
        facts_line.append(f"[this run]({run_url})")
    if facts_line:
        lines += [" · ".join(facts_line), ""]
    if result.images:
        lines += _table(
            ("image", "tag", "digest", "commit", "status"),
            [
                (
                    cell(i.image),
                    _code(i.tag),
                    _code(i.digest, 19),
                    _code(i.commit, 12),
                    cell(_mark(i.status)),
                )
                for i in result.images
            ],
        )
    if result.environments:
        rows = []
        for e in result.environments:
            if e.error:
                rows.append((cell(e.name), "-", _mark("failed"), "-", cell(said(e.error, e.hint))))
            for s in e.services:
                detail = s.error or s.reason or ""
                if s.rollback is not None:
                    detail += f" (rolled back: {s.rollback.status})"
                rows.append(
                    (
                        cell(e.name),
                        cell(s.service),
                        cell(_mark(s.status)),
                        _code(s.deployment_id),
                        cell(detail),
                    )
                )
        lines += _table(("environment", "service", "status", "deployment", "detail"), rows)
    if result.command == "where":
        lines += _where_markdown(result)
    for note in result.notes:
        lines.append(f"> {cell(note)}")
    if result.notes:
        lines.append("")
    if result.error:
        lines += [f"**error**: {cell(said(result.error, result.hint))}", ""]
    return redact("\n".join(lines)) + "\n"


def _where_markdown(result: CommandResult) -> list[str]:
    images = result.data.get("images") or {}
    tiers: list[str] = []
    for doc in images.values():
        for t in doc.get("tiers") or {}:
            if t not in tiers:
                tiers.append(t)
    lines: list[str] = []
    if images:
        rows = []
        for name, doc in images.items():
            if doc.get("error"):
                rows.append([cell(name), *[cell(doc["error"])] * max(len(tiers), 1)])
                continue
            row = [cell(name)]
            for t in tiers:
                v = (doc.get("tiers") or {}).get(t) or {}
                commits = v.get("commits") or []
                row.append(
                    f"{_code(v.get('tag'))} {_code(v.get('digest'), 19)} "
                    f"{_code(commits[0] if commits else None, 12)}"
                    if v.get("tag")
                    else "-"
                )
            rows.append(row)
        lines += _table(["image", *tiers] if tiers else ["image", "error"], rows)
    env_rows = []
    for env_name, doc in (result.data.get("environments") or {}).items():
        if doc.get("error"):
            env_rows.append(
                (cell(env_name), cell(doc.get("tier")), "-", "-", "❌ " + cell(doc["error"]))
            )
            continue
        for svc, s in (doc.get("services") or {}).items():
            if s.get("error"):
                env_rows.append(
                    (
                        cell(env_name),
                        cell(doc.get("tier")),
                        cell(svc),
                        "-",
                        "❌ " + cell(s["error"]),
                    )
                )
                continue
            running = ", ".join(d[:19] for d in s.get("running_digests") or []) or "-"
            drift = (
                "⚠️ drift: " + cell("; ".join(s.get("drift_reasons") or []))
                if s.get("drift")
                else "✅ in sync"
            )
            env_rows.append(
                (cell(env_name), cell(doc.get("tier")), cell(svc), _code(running), drift)
            )
    if env_rows:
        lines += _table(("environment", "tier", "service", "running", "drift"), env_rows)
    return lines


def _run_url(environ: Mapping[str, str]) -> str | None:
    if environ.get("GITHUB_RUN_ID") and environ.get("GITHUB_REPOSITORY"):
        server = environ.get("GITHUB_SERVER_URL") or "https://github.com"
        return f"{server}/{environ['GITHUB_REPOSITORY']}/actions/runs/{environ['GITHUB_RUN_ID']}"
    return environ.get("CI_JOB_URL") or None
