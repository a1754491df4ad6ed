"""The README's sandbox examples, run as written against a sandbox started as the README says
(`tierup sandbox up` in a git repository holding envs.yaml), and compared with the output the
README shows.

A fenced block marked `<!-- sandbox-example -->` on the line before it is run: in a `console`
block each `$ ` line is a command and the lines under it what it prints (none shown: not
compared; a `...` line: any lines); in other blocks every line is a command. Digests, commits,
deployment and event ids, timestamps and paths are normalised, digests and commits consistently
(the first one seen is `<digest1>` on both sides), so that a line naming the wrong digest fails.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- sandbox-example -->"


@dataclass(frozen=True)
class Example:
    line: int  # of the command in README.md
    command: str
    expected: tuple[str, ...] | None  # None: the README shows no output


def readme_examples(text: str) -> list[Example]:
    lines = text.splitlines()
    examples: list[Example] = []
    for index, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        fence = lines[index + 1]
        assert fence.startswith("```"), f"README.md:{index + 1}: {MARKER} must precede a fence"
        end = next(i for i in range(index + 2, len(lines)) if lines[i].startswith("```"))
        body = list(enumerate(lines[index + 2 : end], start=index + 3))
        if fence.strip() != "```console":
            examples += [Example(n, b, None) for n, b in body if b.strip()]
            continue
        current: tuple[int, str] | None = None
        output: list[str] = []
        for n, b in [*body, (end + 1, "$ ")]:
            if not b.startswith("$ "):
                output.append(b)
                continue
            if current is not None:
                examples.append(Example(*current, tuple(output) if output else None))
            current, output = (n, b[2:]), []
    return examples


_PATTERNS = (
    (re.compile(r"\b\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}\b"), "<event>"),
    (re.compile(r"\b\d{8}T\d{6}Z\b"), "<stamp>"),
    (re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\b"), "<time>"),
    (re.compile(r"ecs-svc/\d+"), "ecs-svc/<id>"),
    (re.compile(r"\bfor \d+s\b"), "for <n>s"),
    (re.compile(r"(?<![\w/.-])/\S*/(\.tierup/)"), r"<dir>/\1"),
    (re.compile(r"[ \t]+$", re.M), ""),
)
_NUMBERED = (
    ("digest", re.compile(r"(?<=sha256:)[0-9a-f]{12,64}")),
    ("commit", re.compile(r"(?<=commit )[0-9a-f]{7,40}\b")),
)


def _number(text: str, kind: str, pattern: re.Pattern[str]) -> str:
    """Each distinct match becomes `<kind1>`, `<kind2>`, ... in order of first appearance."""
    seen: dict[str, str] = {}
    return pattern.sub(lambda m: seen.setdefault(m[0], f"<{kind}{len(seen) + 1}>"), text)


def normalise(lines: list[str]) -> list[str]:
    text = "\n".join(lines)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for kind, numbered in _NUMBERED:
        text = _number(text, kind, numbered)
    return text.split("\n")


def compare(expected: tuple[str, ...], actual: list[str]) -> str | None:
    """None when `actual` shows what `expected` shows, else what differs."""
    segments: list[list[str]] = [[]]
    for line in expected:
        if line.strip() == "...":
            segments.append([])
        else:
            segments[-1].append(line)
    position = 0
    for i, segment in enumerate(segments):
        if not segment:
            continue
        first, last = i == 0, i == len(segments) - 1
        if first and last:
            candidates = [0] if len(actual) == len(segment) else []
        elif first:
            candidates = [0]
        elif last:
            candidates = [len(actual) - len(segment)] if len(actual) >= len(segment) else []
        else:
            candidates = list(range(position, len(actual) - len(segment) + 1))
        want = normalise(segment)
        for start in candidates:
            if start >= position and normalise(actual[start : start + len(segment)]) == want:
                position = start + len(segment)
                break
        else:
            return "\n".join(["expected:", *want, "printed:", *normalise(actual)])
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sandbox_shell(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A git repository holding envs.yaml with the sandbox up, and the environment `eval "$(tierup
    sandbox up)"` leaves in a shell."""
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "tierup").write_text(
        f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m tierup.pipeline.cli "$@"\n'
    )
    (shim / "tierup").chmod(0o755)
    drop = ("AWS_", "GITHUB_", "GITLAB_", "CI_", "TIERUP_", "PYTHONPATH", "GIT_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "CI"}
    env |= {"PATH": f"{shim}:{env['PATH']}", "HOME": str(tmp_path), "COLUMNS": "200"}
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "envs.yaml", repo / "envs.yaml")

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.name", "Rita Release")
    git("config", "user.email", "rita@example.invalid")
    git("add", "envs.yaml")
    git("commit", "-q", "-m", "envs")
    (repo / "app.txt").write_text("v2\n")
    git("add", "app.txt")
    git("commit", "-q", "-m", "v2")
    up = subprocess.run(
        ["tierup", "sandbox", "up", "--port", str(_free_port())],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert up.returncode == 0, up.stderr
    exports = up.stdout.strip().removeprefix("export ").split()
    try:
        yield repo, env | dict(e.split("=", 1) for e in exports)
    finally:
        subprocess.run(
            ["tierup", "sandbox", "down"], cwd=repo, env=env, capture_output=True, timeout=60
        )


def test_readme_marks_its_sandbox_walkthrough() -> None:
    examples = readme_examples((ROOT / "README.md").read_text())
    commands = [e.command for e in examples]
    assert "tierup stamp --tier prod" in commands
    assert any(e.expected for e in examples)


def test_the_readme_sandbox_examples_print_what_the_readme_shows(
    sandbox_shell: tuple[Path, dict[str, str]],
) -> None:
    repo, env = sandbox_shell
    problems: list[str] = []
    for example in readme_examples((ROOT / "README.md").read_text()):
        run = subprocess.run(
            ["bash", "-c", example.command],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        printed = (run.stderr + run.stdout).splitlines()
        shows_error = any(line.startswith("error:") for line in example.expected or ())
        where = f"README.md:{example.line}: $ {example.command}"
        if (run.returncode != 0) != shows_error:
            problems.append(f"{where}\nexit {run.returncode}\n{run.stderr[-2000:]}")
            continue
        if example.expected is not None:
            difference = compare(example.expected, printed)
            if difference:
                problems.append(f"{where}\n{difference}")
    assert not problems, "\n\n".join(problems)


@pytest.mark.parametrize(
    ("expected", "printed", "same"),
    [
        (("a sha256:aaaaaaaaaaaa",), ["a sha256:bbbbbbbbbbbb"], True),
        (("x sha256:aaaaaaaaaaaa y sha256:cccccccccccc",), ["x sha256:b1 y sha256:b1"], False),
        (("...", "status: ok"), ["progress", "status: ok"], True),
        (("...", "status: ok"), ["status: ok", "ledger: x"], False),
        (("first",), ["first", "second"], False),
    ],
)
def test_compare_normalises_but_keeps_what_differs(
    expected: tuple[str, ...], printed: list[str], same: bool
) -> None:
    printed = [p.replace("sha256:b1", "sha256:" + "b" * 12) for p in printed]
    assert (compare(expected, printed) is None) is same


def test_the_example_envs_yaml_validates_and_runs_its_steps_on_the_sandbox(
    sandbox_shell: tuple[Path, dict[str, str]],
) -> None:
    """The example's prod tier lists a migration, a smoke check, an alarm bake and a
    notification: they check out against the sandbox and run there (no webhook set: a note)."""
    import json

    repo, env = sandbox_shell
    env = {k: v for k, v in env.items() if k != "TEAM_WEBHOOK"}

    def tierup(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tierup", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=300
        )

    for args in (("validate",), ("validate", "--remote")):
        run = tierup(*args)
        assert run.returncode == 0, run.stdout + run.stderr
    for tier in ("dev", "staging"):
        assert tierup("promote", "--tier", tier).returncode == 0
    run = tierup("stamp", "--tier", "prod", "--force", "--reason", "test", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    doc = json.loads(run.stdout)
    for name in ("prod", "mb-prod"):
        steps = {s["as"]: s["status"] for s in doc["environments"][name]["steps"]}
        assert steps == {
            "migrate": "ok",
            "retag": "ok",
            "deploy": "ok",
            "wait": "ok",
            "smoke": "ok",
            "bake": "ok",
            "team": "failed",
        }
    notes = [n for n in doc["notes"] if "TEAM_WEBHOOK is not set" in n]
    assert len(notes) == 1 and "it does not fail the promotion" in notes[0]
