"""Rendering: results as rich text or one JSON document on stdout; progress and logs on stderr."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from typing import Any, TextIO

from pipeline.results import CommandResult

_SECRET_PATTERNS = (
    re.compile(
        r"(?i)(secret_?access_?key|session_?token|aws_secret_access_key|password|"
        r"authorization)([\"']?\s*[:=]\s*[\"']?)([^\s\"',}]+)"
    ),
    re.compile(r"(?i)(\"(?:SecretAccessKey|SessionToken|authorizationToken)\"\s*:\s*\")([^\"]+)"),
)
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def redact(text: str) -> str:
    """Remove credentials from anything we print, whatever its origin."""
    for var in _SECRET_ENV:
        value = os.environ.get(var)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    text = _SECRET_PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    text = _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)}***", text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("pipeline", "stages"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(logging.DEBUG if verbose else logging.WARNING)
        log.propagate = False


_STYLE = {
    "ok": "green",
    "completed": "green",
    "created": "green",
    "moved": "green",
    "unchanged": "dim",
    "skipped": "dim",
    "deployed": "cyan",
    "planned": "cyan",
    "partial": "yellow",
    "timed_out": "yellow",
    "failed": "red",
    "rolled_back_by_ecs": "red",
    "reverted": "yellow",
}


def _styled(status: str) -> str:
    style = _STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def _short(digest: str | None) -> str:
    if not digest:
        return "-"
    return digest[:19] if digest.startswith("sha256:") else digest


def console_for(stream: TextIO | None) -> Any:
    from rich.console import Console

    out = stream or sys.stdout
    # COLUMNS wins (as for `ls`); else CI logs are wide: do not squeeze tables into 80 columns
    # when there is no terminal
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() and int(columns) > 0 else None
    if width is None and not out.isatty():
        width = 200
    return Console(file=out, highlight=False, soft_wrap=True, width=width)


def _step_line(step: dict[str, Any]) -> str:
    if step.get("write") == "registry:PutImage":
        return (
            f"tag {step['repository']}:{step['tag']} -> {_short(step['digest'])} ({step['action']})"
        )
    if "summary" in step:
        return str(step["summary"])
    return (
        f"{step.get('environment')}/{step.get('service')}: {step.get('action')} "
        f"({step.get('reason')})"
    )


def _step_details(step: dict[str, Any]) -> list[str]:
    """What a strategy's write will do: a stack's change set, a CodeDeploy route."""
    out: list[str] = []
    change_set = step.get("change_set")
    if isinstance(change_set, dict):
        p = change_set.get("parameter") or {}
        out.append(
            f"change set {change_set.get('name')} of stack {change_set.get('stack')}: "
            f"{p.get('name')} {p.get('from')} -> {p.get('to')}"
        )
        for c in change_set.get("changes") or []:
            line = (
                f"  {c.get('action')} {c.get('resource')} ({c.get('type')}), "
                f"replacement: {c.get('replacement') or '-'}"
            )
            if c.get("details"):
                line += ": " + "; ".join(c["details"])
            out.append(line)
    codedeploy = step.get("codedeploy")
    if isinstance(codedeploy, dict):
        hooks = ", ".join(f"{k} -> {v}" for k, v in (codedeploy.get("hooks") or {}).items())
        config = codedeploy.get("deployment_config") or "the group's configuration"
        out.append(
            f"CodeDeploy {codedeploy.get('application')}/{codedeploy.get('deployment_group')} "
            f"({config}): AppSpec "
            f"routes to {codedeploy.get('container')}:{codedeploy.get('container_port')}, "
            f"hooks: {hooks or 'none'}"
        )
    return out


def render_text(result: CommandResult, stream: TextIO | None = None) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = console_for(stream)
    title = f"tierup {result.command}" + (f" --tier {result.tier}" if result.tier else "")
    if result.dry_run:
        title += " (dry run: nothing written)"
    console.print(f"[bold]{escape(title)}[/bold]")
    errors: list[str] = []
    if result.images:
        t = Table(title="images", title_justify="left")
        for col in ("image", "tag", "digest", "from", "source", "status"):
            t.add_column(col)
        for i in result.images:
            t.add_row(
                escape(i.image),
                escape(i.tag or "-"),
                _short(i.digest),
                _short(i.previous_digest),
                escape(i.source or "-"),
                _styled(i.status),
            )
            if i.error:
                errors.append(f"{i.image}: {i.error}" + (f" (hint: {i.hint})" if i.hint else ""))
        console.print(t)
    if result.plan and result.dry_run:
        console.print("[bold]plan[/bold] (the writes a real run makes):")
        for n, step in enumerate(result.plan, 1):
            console.print(f"  {n}. {_step_line(step)}", markup=False)
            for line in _step_details(step):
                console.print(f"       {line}", markup=False)
    elif result.dry_run:
        console.print("plan: nothing to write")
    elif any(_step_details(step) for step in result.plan):
        console.print("[bold]changes[/bold]:")
        for step in result.plan:
            details = _step_details(step)
            if details:
                console.print(f"  {_step_line(step)}", markup=False)
                for line in details:
                    console.print(f"    {line}", markup=False)
    if result.environments:
        t = Table(title="environments", title_justify="left")
        for col in ("environment", "service", "status", "deployment", "detail"):
            t.add_column(col)
        for e in result.environments:
            if e.error:
                t.add_row(escape(e.name), "-", _styled("failed"), "-", "see below")
                errors.append(f"{e.name}: {e.error}" + (f" (hint: {e.hint})" if e.hint else ""))
                continue
            for s in e.services:
                detail = s.reason or ""
                if s.error:
                    detail = "see below"
                    errors.append(
                        f"{e.name}/{s.service}: {s.error}"
                        + (f" (hint: {s.hint})" if s.hint else "")
                    )
                    errors.extend(f"    event: {ev}" for ev in s.events[:3])
                    if s.rollback is not None:
                        rb = s.rollback
                        errors.append(
                            f"    rolled back ({rb.action}): {rb.status}"
                            + (f", {rb.task_definition}" if rb.task_definition else "")
                            + (f": {rb.error or rb.reason}" if rb.error or rb.reason else "")
                        )
                t.add_row(
                    escape(e.name),
                    escape(s.service),
                    _styled(s.status),
                    s.deployment_id or "-",
                    escape(detail),
                )
        console.print(t)
    for line in errors:
        console.print(line, markup=False)
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    for key, value in result.data.items():
        if isinstance(value, str | int | float):
            console.print(f"{key}: {value}", markup=False)
    if result.error:
        console.print(f"error: {result.error} (hint: {result.hint})", markup=False)
    console.print(f"status: {_styled(str(result.status))}")


def print_json(doc: Any, stream: TextIO | None = None) -> None:
    (stream or sys.stdout).write(redact(json.dumps(doc, indent=2, default=str)) + "\n")
