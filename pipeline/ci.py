"""At home in CI: what a command leaves for GitHub Actions and GitLab CI besides its output.

- GitHub Actions (`GITHUB_ACTIONS=true`): a Markdown summary appended to `GITHUB_STEP_SUMMARY`,
  step outputs appended to `GITHUB_OUTPUT` (status, exit code, ledger event id, each image's
  tag, digest and commit), `::error` / `::warning` annotations for failed, rolled-back and
  timed-out targets, and a collapsible group around the command's log.
- GitLab CI (`GITLAB_CI=true`): a dotenv report (`TIERUP_DOTENV`, default `tierup.env`) with the
  same values, and a collapsible log section around the command.

Annotations and section markers go to stderr: stdout stays the command's data (one JSON
document with `--json`). Nothing here may fail a command: a file that cannot be written is
one warning line.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tierup.pipeline.output import redact
from tierup.pipeline.results import CommandResult

DOTENV_DEFAULT = "tierup.env"
FAILED_SERVICE = frozenset({"failed", "rolled_back_by_ecs"})
WARNED_SERVICE = frozenset({"timed_out", "reverted", "interrupted"})


def on_github(environ: Mapping[str, str]) -> bool:
    return environ.get("GITHUB_ACTIONS") == "true"


def on_gitlab(environ: Mapping[str, str]) -> bool:
    return environ.get("GITLAB_CI") == "true"


def command_title(argv: Sequence[str]) -> str:
    """`tierup rollback tier`: the command's words, without its options (free text may follow)."""
    words: list[str] = []
    for word in argv:
        if word.startswith("-"):
            break
        words.append(word)
    return " ".join(["tierup", *words])


# -- what a result says, for either CI ---------------------------------------------------


@dataclass(frozen=True)
class ImageValues:
    tag: str | None
    digest: str | None
    commit: str | None
    status: str | None = None


@dataclass(frozen=True)
class Annotation:
    level: str  # error | warning
    title: str
    message: str


@dataclass
class Facts:
    """The values a CI job wants from one run: for outputs, dotenv and annotations."""

    status: str
    exit_code: int
    event: str | None = None
    images: dict[str, ImageValues] = field(default_factory=dict)
    annotations: list[Annotation] = field(default_factory=list)


def facts_of(result: CommandResult) -> Facts:
    facts = Facts(
        status=str(result.status),
        exit_code=int(result.exit_code),
        event=_event_of(result),
    )
    for image in result.images:
        if image.status == "moved_back":  # the tag is back on the digest it had
            values = ImageValues(image.tag, image.previous_digest, None, image.status)
        else:
            values = ImageValues(image.tag, image.digest, image.commit, image.status)
        facts.images[image.image] = values
    if not result.images and result.command == "where" and result.tier:
        for name, doc in (result.data.get("images") or {}).items():
            tier_doc = (doc.get("tiers") or {}).get(result.tier) or {}
            commits = tier_doc.get("commits") or []
            facts.images[name] = ImageValues(
                tier_doc.get("tag"), tier_doc.get("digest"), commits[0] if commits else None
            )
    title = f"tierup {result.command}" + (f" --tier {result.tier}" if result.tier else "")
    facts.annotations = _annotations(result, title)
    return facts


def _event_of(result: CommandResult) -> str | None:
    event = result.data.get("event")
    return str(event) if isinstance(event, str) and event else None


def _annotations(result: CommandResult, title: str) -> list[Annotation]:
    out: list[Annotation] = []
    for image in result.images:
        if image.status == "failed" or image.error:
            out.append(
                Annotation("error", f"{title}: {image.image}", _said(image.error, image.hint))
            )
    for env in result.environments:
        if env.error:
            out.append(Annotation("error", f"{title}: {env.name}", _said(env.error, env.hint)))
        for s in env.services:
            target = f"{title}: {env.name}/{s.service}"
            if s.status in FAILED_SERVICE:
                text = _said(s.error or s.status, s.hint)
                if s.status == "rolled_back_by_ecs":
                    text = "rolled back by ECS's circuit breaker: " + text
                out.append(Annotation("error", target, text))
            elif s.status in WARNED_SERVICE:
                out.append(Annotation("warning", target, _said(s.error or s.reason or s.status)))
            if s.rollback is not None:
                rb = s.rollback
                detail = rb.error or rb.reason or ""
                out.append(
                    Annotation(
                        "warning",
                        target,
                        f"rolled back ({rb.action}): {rb.status}"
                        + (f", {rb.task_definition}" if rb.task_definition else "")
                        + (f": {detail}" if detail else ""),
                    )
                )
    for env_name, doc in (result.data.get("environments") or {}).items():
        if isinstance(doc, dict) and doc.get("error"):
            out.append(
                Annotation("error", f"{title}: {env_name}", _said(doc["error"], doc.get("hint")))
            )
    if result.error:
        out.append(Annotation("error", title, _said(result.error, result.hint)))
    return out


def _said(message: str | None, hint: str | None = None) -> str:
    return (message or "") + (f" (hint: {hint})" if hint else "")


# -- GitHub ----------------------------------------------------------------------------------


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation_line(a: Annotation) -> str:
    return f"::{a.level} title={_escape_property(a.title)}::{_escape_data(a.message)}"


def _output_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def github_outputs(facts: Facts) -> dict[str, str]:
    out = {
        "status": facts.status,
        "exit-code": str(facts.exit_code),
        "event-id": facts.event or "",
        "images": json.dumps(
            {
                name: {"tag": v.tag, "digest": v.digest, "commit": v.commit}
                for name, v in facts.images.items()
            },
            separators=(",", ":"),
        ),
    }
    for name, v in facts.images.items():
        key = _output_name(name)
        out[f"tag-{key}"] = v.tag or ""
        out[f"digest-{key}"] = v.digest or ""
        out[f"commit-{key}"] = v.commit or ""
    return out


def _cell(value: Any) -> str:
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
    event = _event_of(result)
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
                    _cell(i.image),
                    _code(i.tag),
                    _code(i.digest, 19),
                    _code(i.commit, 12),
                    _cell(_mark(i.status)),
                )
                for i in result.images
            ],
        )
    if result.environments:
        rows = []
        for e in result.environments:
            if e.error:
                rows.append(
                    (_cell(e.name), "-", _mark("failed"), "-", _cell(_said(e.error, e.hint)))
                )
            for s in e.services:
                detail = s.error or s.reason or ""
                if s.rollback is not None:
                    detail += f" (rolled back: {s.rollback.status})"
                rows.append(
                    (
                        _cell(e.name),
                        _cell(s.service),
                        _cell(_mark(s.status)),
                        _code(s.deployment_id),
                        _cell(detail),
                    )
                )
        lines += _table(("environment", "service", "status", "deployment", "detail"), rows)
    if result.command == "where":
        lines += _where_markdown(result)
    for note in result.notes:
        lines.append(f"> {_cell(note)}")
    if result.notes:
        lines.append("")
    if result.error:
        lines += [f"**error**: {_cell(_said(result.error, result.hint))}", ""]
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
                rows.append([_cell(name), *[_cell(doc["error"])] * max(len(tiers), 1)])
                continue
            row = [_cell(name)]
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
                (_cell(env_name), _cell(doc.get("tier")), "-", "-", "❌ " + _cell(doc["error"]))
            )
            continue
        for svc, s in (doc.get("services") or {}).items():
            if s.get("error"):
                env_rows.append(
                    (
                        _cell(env_name),
                        _cell(doc.get("tier")),
                        _cell(svc),
                        "-",
                        "❌ " + _cell(s["error"]),
                    )
                )
                continue
            running = ", ".join(d[:19] for d in s.get("running_digests") or []) or "-"
            drift = (
                "⚠️ drift: " + _cell("; ".join(s.get("drift_reasons") or []))
                if s.get("drift")
                else "✅ in sync"
            )
            env_rows.append(
                (_cell(env_name), _cell(doc.get("tier")), _cell(svc), _code(running), drift)
            )
    if env_rows:
        lines += _table(("environment", "tier", "service", "running", "drift"), env_rows)
    return lines


def _run_url(environ: Mapping[str, str]) -> str | None:
    if environ.get("GITHUB_RUN_ID") and environ.get("GITHUB_REPOSITORY"):
        server = environ.get("GITHUB_SERVER_URL") or "https://github.com"
        return f"{server}/{environ['GITHUB_REPOSITORY']}/actions/runs/{environ['GITHUB_RUN_ID']}"
    return environ.get("CI_JOB_URL") or None


def _append_outputs(path: Path, outputs: Mapping[str, str]) -> None:
    with path.open("a", encoding="utf-8") as f:
        for key, value in outputs.items():
            if "\n" in value:
                delimiter = f"tierup_{os.urandom(8).hex()}"
                f.write(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")
            else:
                f.write(f"{key}={value}\n")


# -- GitLab ----------------------------------------------------------------------------------


def _dotenv_name(name: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())


def dotenv_values(facts: Facts) -> dict[str, str]:
    out = {
        "TIERUP_STATUS": facts.status,
        "TIERUP_EXIT_CODE": str(facts.exit_code),
        "TIERUP_EVENT_ID": facts.event or "",
    }
    for name, v in facts.images.items():
        key = _dotenv_name(name)
        out[f"TIERUP_{key}_TAG"] = v.tag or ""
        out[f"TIERUP_{key}_DIGEST"] = v.digest or ""
        out[f"TIERUP_{key}_COMMIT"] = v.commit or ""
    return out


# a command of these records nothing: it does not replace the status or event of one that did
READ_ONLY = frozenset({"where", "validate", "history", "snapshots", "schema", "init"})
RUN_KEYS = ("TIERUP_STATUS", "TIERUP_EXIT_CODE", "TIERUP_EVENT_ID")


def _write_dotenv(path: Path, values: Mapping[str, str], *, read_only: bool = False) -> None:
    """Merge into the report: several tierup commands in one job leave one file (a promote's
    status and event survive the `where` that follows it)."""
    merged: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                merged[key] = value
    if read_only:
        values = {k: v for k, v in values.items() if k not in RUN_KEYS or k not in merged}
    merged.update(values)
    path.write_text("".join(f"{k}={v}\n" for k, v in merged.items()), encoding="utf-8")


# -- the entry points the CLI calls ----------------------------------------------------------


def publish(
    result: CommandResult,
    *,
    environ: Mapping[str, str] | None = None,
    stderr: TextIO | None = None,
) -> None:
    """Leave the result where the CI job reads it (nothing outside CI)."""
    env = os.environ if environ is None else environ
    err = stderr or sys.stderr
    github, gitlab = on_github(env), on_gitlab(env)
    if not (github or gitlab):
        return
    facts = facts_of(result)
    if github:
        for a in facts.annotations:
            err.write(redact(annotation_line(a)) + "\n")
        _try(err, "GITHUB_STEP_SUMMARY", env, lambda p: _append(p, summary_markdown(result, env)))
        _try(err, "GITHUB_OUTPUT", env, lambda p: _append_outputs(p, github_outputs(facts)))
    if gitlab:
        path = env.get("TIERUP_DOTENV") or DOTENV_DEFAULT
        read_only = result.command in READ_ONLY
        _try(
            err,
            None,
            env,
            lambda _p: _write_dotenv(Path(path), dotenv_values(facts), read_only=read_only),
        )
    err.flush()


def publish_error(
    title: str,
    message: str,
    hint: str,
    exit_code: int,
    *,
    environ: Mapping[str, str] | None = None,
    stderr: TextIO | None = None,
) -> None:
    """A command that failed before it had a result: one annotation, a summary, outputs."""
    env = os.environ if environ is None else environ
    err = stderr or sys.stderr
    github, gitlab = on_github(env), on_gitlab(env)
    if not (github or gitlab):
        return
    facts = Facts(status="failed", exit_code=exit_code)
    if github:
        err.write(redact(annotation_line(Annotation("error", title, _said(message, hint)))) + "\n")
        text = (
            f"### {title}: ❌ failed (exit {exit_code})\n\n"
            f"**error**: {_cell(_said(message, hint))}\n\n"
        )
        _try(err, "GITHUB_STEP_SUMMARY", env, lambda p: _append(p, redact(text)))
        _try(err, "GITHUB_OUTPUT", env, lambda p: _append_outputs(p, github_outputs(facts)))
    if gitlab:
        path = env.get("TIERUP_DOTENV") or DOTENV_DEFAULT
        _try(err, None, env, lambda _p: _write_dotenv(Path(path), dotenv_values(facts)))
    err.flush()


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(text)


def _try(err: TextIO, variable: str | None, environ: Mapping[str, str], write: Any) -> None:
    path = environ.get(variable) if variable else ""
    if variable and not path:
        return
    try:
        write(Path(path or "."))
    except OSError as e:
        err.write(f"warning: could not write {variable or 'the dotenv report'}: {e.strerror}\n")


class Section:
    """A collapsible section of the job log around one command's progress (GitLab's
    `section_start`/`section_end`, GitHub's `::group::`). It ends before the result is
    printed, so the result stays in view when the section is collapsed."""

    def __init__(self) -> None:
        self._end: str | None = None
        self._stream: TextIO | None = None

    def begin(
        self,
        argv: Sequence[str],
        *,
        environ: Mapping[str, str] | None = None,
        stream: TextIO | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        out = stream or sys.stderr
        title = command_title(argv)
        name = "tierup_" + re.sub(r"[^a-z0-9_]", "_", title.removeprefix("tierup ").lower())
        if on_gitlab(env):
            out.write(
                f"\x1b[0Ksection_start:{int(time.time())}:{name}[collapsed=true]\r\x1b[0K{title}\n"
            )
            self._end = f"\x1b[0Ksection_end:{{now}}:{name}\r\x1b[0K"
        elif on_github(env):
            out.write(f"::group::{title}\n")
            self._end = "::endgroup::"
        else:
            return
        self._stream = out
        out.flush()

    def end(self) -> None:
        if self._end is None or self._stream is None:
            return
        self._stream.write(self._end.replace("{now}", str(int(time.time()))) + "\n")
        self._stream.flush()
        self._end = None


SECTION = Section()
