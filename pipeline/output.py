"""Rendering: results as rich text or one JSON document on stdout; progress and logs on stderr."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, TextIO, cast

from tierup.pipeline.redaction import redact, redact_all
from tierup.pipeline.results import CommandResult

__all__ = [
    "RedactingFilter",
    "one_line",
    "print_json",
    "redact",
    "redact_all",
    "render_text",
    "step_line",
]


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            # the traceback is formatted after filters run: format and redact it here
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + record.stack_info
        record.msg = redact(text)
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("tierup",):  # tierup.pipeline and tierup.stages
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(logging.DEBUG if verbose else logging.WARNING)
        log.propagate = False
    # the SDK's own retries (throttling, 5xx, lost answers) are visible with --verbose too,
    # and nothing else of its debug output
    sdk = logging.getLogger("botocore.retries.standard")
    sdk_handler = logging.StreamHandler(sys.stderr)
    sdk_handler.addFilter(lambda record: record.getMessage().startswith("Retry needed"))
    sdk_handler.addFilter(RedactingFilter())
    sdk_handler.setFormatter(logging.Formatter("%(levelname)s aws sdk: %(message)s"))
    sdk.handlers[:] = [sdk_handler] if verbose else []
    sdk.setLevel(logging.DEBUG if verbose else logging.NOTSET)
    sdk.propagate = not verbose


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


def one_line(text: str) -> str:
    """``text`` on one line: line breaks and the runs of blanks around them become one space."""
    if "\n" not in text and "\r" not in text:
        return text
    indent = text[: len(text) - len(text.lstrip(" "))]
    return indent + " ".join(text.split())


class RedactingStream:
    """A text stream that redacts what is written to it (rich writes each print whole)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(redact(text))

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", None) or "utf-8"


def console_for(stream: TextIO | None) -> Any:
    from rich.console import Console

    out = stream or sys.stdout
    # COLUMNS wins (as for `ls`); else CI logs are wide: do not squeeze tables into 80 columns
    # when there is no terminal
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() and int(columns) > 0 else None
    if width is None and not out.isatty():
        width = 200
    file = cast("TextIO", RedactingStream(out))
    return Console(file=file, highlight=False, soft_wrap=True, width=width)


def step_line(step: dict[str, Any]) -> str:
    """One planned write in words, as the dry run lists it."""
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

    # redacted before rendering: a table may fold a long value over several lines
    result = redact_all(result)
    console = console_for(stream)
    title = result.title
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
            console.print(f"  {n}. {step_line(step)}", markup=False)
            for line in _step_details(step):
                console.print(f"       {line}", markup=False)
    elif result.dry_run:
        console.print("plan: nothing to write")
    elif any(_step_details(step) for step in result.plan):
        console.print("[bold]changes[/bold]:")
        for step in result.plan:
            details = _step_details(step)
            if details:
                console.print(f"  {step_line(step)}", markup=False)
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
    _render_steps(console, result)
    for line in errors:
        # one line each, whatever an AWS message quotes (a signed request spans many)
        console.print(one_line(line), markup=False)
    for e in result.environments:
        if e.retries:
            console.print(
                f"retries: {e.name}: {e.retries} failed poll(s) tried again (--verbose lists them)",
                markup=False,
            )
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    for key, value in result.data.items():
        if isinstance(value, str | int | float):
            console.print(f"{key}: {value}", markup=False)
    if result.error:
        console.print(f"error: {result.error} (hint: {result.hint})", markup=False)
    console.print(f"status: {_styled(str(result.status))}")


def _render_steps(console: Any, result: CommandResult) -> None:
    """envs.yaml's steps, per environment in list order (when a tier or environment lists them)."""
    from rich.markup import escape
    from rich.table import Table

    rows = [(e.name, s) for e in result.environments for s in e.steps]
    if not rows:
        return
    t = Table(title="steps", title_justify="left")
    for col in ("environment", "step", "uses", "status", "time", "detail"):
        t.add_column(col)
    shown: set[str] = set()
    for env, s in rows:
        detail = str(s.get("error") or s.get("reason") or s.get("output") or "")
        if s.get("scope") == "promotion":  # notify: one outcome, under every environment
            if s["as"] in shown:
                detail = "as above (once for the promotion)"
            shown.add(str(s["as"]))
        took = f"{s['duration']:.1f}s" if "duration" in s else "-"
        t.add_row(
            escape(env),
            escape(str(s["as"])),
            escape(str(s["uses"])),
            _styled(str(s["status"])),
            took,
            escape(detail),
        )
    console.print(t)


def print_json(doc: Any, stream: TextIO | None = None) -> None:
    text = json.dumps(redact_all(doc), indent=2, default=str)
    (stream or sys.stdout).write(redact(text) + "\n")
