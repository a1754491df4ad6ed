"""Hostile or odd input: refused at once (exit 2), in one line naming where, before any AWS call."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.faults import FaultProxy
from tests.support.release_world import REPO_ROOT, release_world
from tests.support.world import World
from tierup.pipeline.cli import app

EXAMPLE = (REPO_ROOT / "envs.yaml").read_text()

LAUGHS = "version: 1\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def _cli(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def test_a_billion_laughs_is_refused_at_once_in_little_memory(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS)

    def small() -> None:  # expanding it would take gigabytes
        limit = 1536 * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "tierup.pipeline", "validate", "-f", str(path)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=small,
        check=False,
    )
    assert time.monotonic() - started < 20
    assert proc.returncode == 2, proc.stderr
    (line,) = _error_lines(proc.stderr)
    assert f"{path}:" in line and "expands to more than" in line and "(hint: " in line


def test_an_alias_that_contains_itself_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "envs.yaml"
    path.write_text("version: 1\nx: &x\n  - a\n  - *x\n")
    r = _cli("validate", "-f", str(path))
    assert r.exit_code == 2  # type: ignore[attr-defined]
    (line,) = _error_lines(r.output)  # type: ignore[attr-defined]
    assert f"{path}:2: refused" in line


@pytest.mark.parametrize(
    ("encoding", "where"),
    [
        ("latin-1", "byte "),
        ("utf-16", ":1: "),
        ("utf-16-le", "byte 1 "),
        ("binary", "byte "),
    ],
)
def test_an_undecodable_envs_yaml_is_bad_input_naming_the_file_and_the_byte(
    tmp_path: Path, encoding: str, where: str
) -> None:
    path = tmp_path / "envs.yaml"
    text = EXAMPLE.replace("version: 1", "version: 1\n# café crème", 1)
    if encoding == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    else:
        path.write_bytes(text.encode(encoding))
    r = _cli("validate", "-f", str(path))
    assert r.exit_code == 2, r.output  # type: ignore[attr-defined]
    (line,) = _error_lines(r.output)  # type: ignore[attr-defined]
    assert f"error: {path}:" in line and "not UTF-8 text" in line and where in line, line
    assert "(hint: save it as UTF-8" in line
    assert "unexpected" not in r.output  # type: ignore[attr-defined]


def test_a_byte_order_mark_of_utf8_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "envs.yaml"
    path.write_bytes(EXAMPLE.encode("utf-8-sig"))
    assert _cli("validate", "-f", str(path)).exit_code == 0  # type: ignore[attr-defined]


def test_a_missing_registry_has_a_line(tmp_path: Path) -> None:
    path = tmp_path / "envs.yaml"
    lines = EXAMPLE.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("registry:"))
    end = start + 1
    while lines[end].startswith(" "):
        end += 1
    path.write_text("\n".join(lines[:start] + lines[end:]) + "\n")
    r = _cli("validate", "-f", str(path))
    assert r.exit_code == 2  # type: ignore[attr-defined]
    (line,) = _error_lines(r.output)  # type: ignore[attr-defined]
    version_line = next(i for i, text in enumerate(lines) if text.startswith("version:")) + 1
    assert f"{path}:{version_line}: registry: required key is missing" in line


D64 = "sha256:" + "a" * 64
MALFORMED = [
    ("promote", "--tier", "nosuch"),
    ("promote", "--tier", "staging", "--from", "nosuch"),
    ("promote", "--tier", "staging", "--digest", "sha256:abc"),
    ("promote", "--tier", "staging", "--commit", "abc1234"),
    ("promote", "--tier", "staging", "--image", "nosuch"),
    ("promote", "--tier", "staging", "--from", "dev", "--digest", D64),
    ("promote", "--tier", "staging", "--timeout", "soon"),
    ("promote", "--tier", "staging", "--lock-timeout", "5x"),
    ("promote", "--tier", "staging", "--force"),
    ("promote", "--tier", "staging", "--from", "staging"),
    ("stamp", "--tier", "prod", "--digest", "sha256:XYZ"),
    ("stamp", "--tier", "staging"),
    ("deploy", "--env", "nosuch"),
    ("rollback", "service", "--env", "staging", "--service", "nosuch"),
    ("rollback", "service", "--env", "staging", "--service", "api", "--to", "latest"),
    ("rollback", "cluster", "--env", "nosuch"),
    ("rollback", "tier", "--tier", "staging", "--to", "latest"),
    ("rollback", "tier", "--tier", "staging", "--steps", "0"),
    ("rollback", "tier", "--tier", "nosuch"),
    ("restore", "--env", "staging", "--snapshot", "../etc/passwd"),
    ("snapshot", "--env", "staging", "--name", "bad name"),
    ("snapshot", "--tier", "nosuch"),
    ("history", "--limit", "-1"),
    ("unlock", "--tier", "nosuch"),
    ("where", "--env", "nosuch"),
]


@pytest.fixture
def world(tmp_path: Path, aws_env: str, fault_proxy: FaultProxy) -> World:
    return release_world(tmp_path, aws_env)


def test_every_argument_is_checked_before_the_first_aws_call(
    world: World, fault_proxy: FaultProxy
) -> None:
    for args in MALFORMED:
        for as_json in (False, True):
            before = fault_proxy.stats.calls
            r = world.cli(*args, *(["--json"] if as_json else []))
            assert r.exit_code == 2, (args, r.output)
            (line,) = _error_lines(r.stderr)
            assert "(hint: " in line, (args, line)
            if as_json:
                doc = json.loads(r.stdout)
                assert doc["exit_code"] == 2 and doc["error"] in line
            time.sleep(0.05)  # a request made in the background would have reached the proxy
            assert fault_proxy.stats.calls == before, (args, fault_proxy.calls[before:])
    assert not (world.root / ".tierup").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("promote",),
        ("promote", "--tierr", "staging"),
        ("nosuch",),
        ("rollback", "tier", "--steps", "x", "--tier", "staging"),
        ("promote", "--tier", "staging", "--json", "--bogus"),
    ],
)
def test_usage_errors_are_one_error_line_with_a_hint(tmp_path: Path, args: tuple[str]) -> None:
    r = _cli(*args)
    assert r.exit_code == 2, r.output  # type: ignore[attr-defined]
    out = r.stderr  # type: ignore[attr-defined]
    assert "Usage:" not in out and "Try '" not in out, out
    (line,) = _error_lines(out)
    assert out.strip() == line
    assert "(hint: see `" in line and "--help`)" in line
    if "--json" in args:
        assert json.loads(r.stdout)["exit_code"] == 2  # type: ignore[attr-defined]
