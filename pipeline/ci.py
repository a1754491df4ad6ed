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

This module holds the entry points the CLI calls and the log section; beside it: ``ci_facts``
(what a result says, for either CI), ``ci_github`` (annotations and step outputs),
``ci_summary`` (the step summary in Markdown) and ``ci_gitlab`` (the dotenv report).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from tierup.pipeline.ci_facts import Annotation, Facts, facts_of, said
from tierup.pipeline.ci_github import annotation_line, append_outputs, github_outputs
from tierup.pipeline.ci_gitlab import READ_ONLY, dotenv_values, write_dotenv
from tierup.pipeline.ci_summary import cell, summary_markdown
from tierup.pipeline.output import redact
from tierup.pipeline.results import CommandResult

DOTENV_DEFAULT = "tierup.env"


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
        _try(err, "GITHUB_OUTPUT", env, lambda p: append_outputs(p, github_outputs(facts)))
    if gitlab:
        path = env.get("TIERUP_DOTENV") or DOTENV_DEFAULT
        read_only = result.command in READ_ONLY
        _try(
            err,
            None,
            env,
            lambda _p: write_dotenv(Path(path), dotenv_values(facts), read_only=read_only),
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
        err.write(redact(annotation_line(Annotation("error", title, said(message, hint)))) + "\n")
        text = (
            f"### {title}: ❌ failed (exit {exit_code})\n\n"
            f"**error**: {cell(said(message, hint))}\n\n"
        )
        _try(err, "GITHUB_STEP_SUMMARY", env, lambda p: _append(p, redact(text)))
        _try(err, "GITHUB_OUTPUT", env, lambda p: append_outputs(p, github_outputs(facts)))
    if gitlab:
        path = env.get("TIERUP_DOTENV") or DOTENV_DEFAULT
        _try(err, None, env, lambda _p: write_dotenv(Path(path), dotenv_values(facts)))
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
