"""`tierup --help` stays fast: help never imports the AWS, git or Docker libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("boto3", "botocore", "git", "docker")


def _imported(args: list[str]) -> tuple[int, set[str], str]:
    code = (
        "import json, runpy, sys\n"
        f"sys.argv = ['tierup', *{args!r}]\n"
        "try:\n"
        "    runpy.run_module('pipeline', run_name='__main__')\n"
        "    rc = 0\n"
        "except SystemExit as e:\n"
        "    rc = e.code or 0\n"
        "sys.stdout.flush()\n"
        "sys.stderr.write('\\nMODULES ' + json.dumps([rc, sorted(sys.modules)]) + '\\n')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    marker = out.stderr.rpartition("MODULES ")[2]
    rc, modules = json.loads(marker)
    return rc, set(modules), out.stdout


@pytest.mark.parametrize("args", [["--help"], ["promote", "--help"], ["rollback", "--help"]])
def test_help_imports_no_aws_git_or_docker(args: list[str]) -> None:
    rc, modules, stdout = _imported(args)
    assert rc == 0
    assert "Usage:" in stdout
    loaded = {m for m in modules if m.split(".")[0] in HEAVY}
    assert not loaded, f"{' '.join(args)} imported {sorted(loaded)}"


def test_every_command_is_registered() -> None:
    rc, _, stdout = _imported(["--help"])
    assert rc == 0
    for command in ("promote", "deploy", "where", "build", "stamp", "snapshot", "rollback"):
        assert f"  {command} " in stdout
