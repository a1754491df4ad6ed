"""Without a `git` program, a command that reads commits fails with one line naming what to
install (GitPython refuses to load without one)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.world import make_world

pytestmark = pytest.mark.usefixtures("aws_env")


def test_no_git_program_is_one_line_naming_what_to_install(tmp_path: Path, aws_env: str) -> None:
    world = make_world(tmp_path, aws_env)
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_PYTHON")}
    env["PATH"] = str(empty)  # no git anywhere
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "promote",
            "--tier",
            "dev",
            "--dry-run",
            "-f",
            str(world.config_path),
        ],
        cwd=world.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: tierup needs the `git` program")
    assert "install git" in lines[0]
    assert "ImportError" not in r.stderr
