"""The release board: `tierup where --html FILE` as one self-contained page.

Tiers are columns and images rows; each cell holds the tier's tag, its digest, the commit and
the age of the image; under each tier, its environments with every service's drift and rollout
status; then the latest ledger events. No script, no font, no stylesheet or image from
anywhere else: the page opens from a CI artifact as it does from disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from tierup.pipeline.config import Config
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.results import CommandResult
from tierup.stages.errors import InputError, TierupError

STYLE = """
:root { --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --line: #d0d7de; --muted: #57606a; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px;
       color: #1f2328; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; }
.meta { color: var(--muted); margin-bottom: 16px; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid var(--line); padding: 6px 8px; vertical-align: top; text-align: left; }
th { background: #f6f8fa; }
code { font: 12px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; }
.cell div { white-space: nowrap; }
.tag { font-weight: 600; }
.none { color: var(--muted); }
.env { border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px; margin: 0 0 8px; }
.env h3 { font-size: 13px; margin: 0 0 4px; }
.svc { display: flex; gap: 8px; align-items: baseline; flex-wrap: wrap; }
.badge { border-radius: 10px; padding: 0 8px; font-size: 12px; font-weight: 600;
         border: 1px solid currentColor; }
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); }
.env.drift { border-color: var(--warn); background: #fff8c5; }
.env.failed { border-color: var(--bad); background: #ffebe9; }
.reasons { color: var(--warn); font-size: 12px; margin: 2px 0 0 0; padding-left: 18px; }
"""

ROLLOUT_CLASS = {"COMPLETED": "ok", "IN_PROGRESS": "warn", "FAILED": "bad"}
EVENT_CLASS = {"ok": "ok", "partial": "warn", "timed_out": "warn", "failed": "bad"}


def age(pushed_at: str | None, now: datetime) -> str:
    """`3d 4h`, `2h 5m`, `42s`: how long ago the image was pushed."""
    if not pushed_at:
        return "-"
    try:
        then = datetime.fromisoformat(pushed_at)
    except ValueError:
        return "-"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = max(0, int((now - then).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _code(value: str | None, length: int | None = None) -> str:
    if not value:
        return '<span class="none">-</span>'
    shown = value[:length] if length else value
    return f'<code title="{escape(value)}">{escape(shown)}</code>'


def _tiers(config: Config, result: CommandResult) -> list[str]:
    return [t.name for t in config.tiers if result.tier is None or t.name == result.tier]


def _image_cell(doc: dict[str, Any], tier: str, now: datetime) -> str:
    if doc.get("error"):
        return f'<td class="cell bad">{escape(str(doc["error"]))}</td>'
    v = (doc.get("tiers") or {}).get(tier) or {}
    if not v.get("tag"):
        return '<td class="cell none">no tag yet</td>'
    commits = v.get("commits") or []
    return (
        '<td class="cell">'
        f'<div class="tag">{escape(str(v["tag"]))}</div>'
        f"<div>{_code(v.get('digest'), 19)}</div>"
        f"<div>commit {_code(commits[0] if commits else None, 12)}</div>"
        f'<div class="none">{escape(age(v.get("pushed_at"), now))} old</div>'
        "</td>"
    )


def _environment(name: str, doc: dict[str, Any]) -> str:
    if doc.get("error"):
        hint = f" (hint: {doc['hint']})" if doc.get("hint") else ""
        return (
            f'<div class="env failed"><h3>{escape(name)}</h3>'
            f'<div class="bad">{escape(str(doc["error"]) + hint)}</div></div>'
        )
    services = doc.get("services") or {}
    drifted = any(s.get("drift") for s in services.values())
    failed = any(s.get("error") or s.get("rollout") == "FAILED" for s in services.values())
    kind = " failed" if failed else " drift" if drifted else ""
    parts = [
        f'<div class="env{kind}"><h3>{escape(name)} '
        f'<span class="none">{escape(str(doc.get("account_id", "")))} · '
        f"{escape(str(doc.get('cluster', '')))}</span></h3>"
    ]
    for svc, s in services.items():
        if s.get("error"):
            parts.append(
                f'<div class="svc"><b>{escape(svc)}</b>'
                f'<span class="badge bad">error</span> {escape(str(s["error"]))}</div>'
            )
            continue
        rollout = str(s.get("rollout") or "-")
        sync = (
            '<span class="badge warn">drift</span>'
            if s.get("drift")
            else '<span class="badge ok">in sync</span>'
        )
        running = ", ".join(d[:19] for d in s.get("running_digests") or []) or None
        parts.append(
            f'<div class="svc"><b>{escape(svc)}</b>{sync}'
            f'<span class="badge {ROLLOUT_CLASS.get(rollout, "warn")}">'
            f"rollout {escape(rollout.lower())}</span>"
            f"<span>{s.get('running', '-')}/{s.get('desired', '-')} running</span>"
            f"{_code(running)}</div>"
        )
        reasons = s.get("drift_reasons") or []
        if reasons:
            parts.append(
                '<ul class="reasons">'
                + "".join(f"<li>{escape(str(r))}</li>" for r in reasons)
                + "</ul>"
            )
    parts.append("</div>")
    return "".join(parts)


def _events(events: Sequence[dict[str, Any]], error: str | None) -> str:
    if error:
        return f'<p class="bad">the ledger could not be read: {escape(error)}</p>'
    if not events:
        return '<p class="none">no events yet</p>'
    rows = []
    for e in events:
        actor = e.get("actor") or {}
        status = str(e.get("status") or "-")
        images = ", ".join(
            f"{i.get('image')} {str(i.get('to_digest') or '-')[:19]}" for i in e.get("images") or []
        )
        rows.append(
            "<tr>"
            f"<td>{_code(str(e.get('time') or '')[:19].replace('T', ' ') or None)}</td>"
            f"<td>{escape(str(e.get('command') or '-'))}</td>"
            f"<td>{escape(str(e.get('tier') or '-'))}</td>"
            f'<td class="{EVENT_CLASS.get(status, "")}">{escape(status)}</td>'
            f"<td>{escape(str(actor.get('name') or '-'))}</td>"
            f"<td>{escape(images) or '-'}</td>"
            f"<td>{_code(e.get('id'))}</td>"
            "</tr>"
        )
    return (
        "<table><tr><th>time (UTC)</th><th>command</th><th>tier</th><th>status</th>"
        "<th>by</th><th>images</th><th>event</th></tr>" + "".join(rows) + "</table>"
    )


def render(
    config: Config,
    result: CommandResult,
    *,
    events: Sequence[dict[str, Any]],
    events_error: str | None = None,
    now: datetime | None = None,
    source: str = "",
) -> str:
    """The page, from a `where` result and the latest ledger events."""
    now = now or datetime.now(UTC)
    tiers = _tiers(config, result)
    images: dict[str, Any] = result.data.get("images") or {}
    environments: dict[str, Any] = result.data.get("environments") or {}
    head = "".join(f"<th>{escape(t)}</th>" for t in tiers)
    rows = []
    for name, doc in images.items():
        cells = "".join(_image_cell(doc, t, now) for t in tiers)
        repo = str(doc.get("repository") or "")
        named = f'<div class="none">{escape(repo)}</div>' if repo and repo != name else ""
        rows.append(f"<tr><th>{escape(name)}{named}</th>{cells}</tr>")
    env_cells = []
    for t in tiers:
        envs = [_environment(n, d) for n, d in environments.items() if d.get("tier") == t] or [
            '<div class="none">no environment</div>'
        ]
        env_cells.append("<td>" + "".join(envs) + "</td>")
    rows.append("<tr><th>environments</th>" + "".join(env_cells) + "</tr>")
    generated = now.strftime("%Y-%m-%d %H:%M:%S UTC")
    title = "tierup release board"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{STYLE}</style></head><body>"
        f"<h1>{title}</h1>"
        f'<div class="meta">generated {generated}'
        + (f" from {escape(source)}" if source else "")
        + f" · status {escape(str(result.status))}</div>"
        f"<table><tr><th>image</th>{head}</tr>{''.join(rows)}</table>"
        f"<h2>latest ledger events</h2>{_events(events, events_error)}"
        "</body></html>\n"
    )


def write_board(
    config: Config,
    result: CommandResult,
    ledger: Ledger,
    path: Path,
    *,
    limit: int = 10,
    source: str = "",
) -> None:
    """Write the page for a `where` result, with the tier's (or every) latest ledger events;
    a ledger that cannot be read is said on the page, not fatal."""
    try:
        events, error = ledger.events(tier=result.tier, limit=limit), None
    except TierupError as e:
        events, error = [], e.message
    page = render(config, result, events=events, events_error=error, source=source)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        raise InputError(
            f"--html {path}: cannot write: {e.strerror}", hint="pass a writable path"
        ) from e
    result.data["html"] = str(path)
