"""The command line at a terminal: help without Python types, shell completion, COLUMNS,
`--json` everywhere, and messages that name the mistake (one line, with what to do)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tierup.pipeline.cli import app
from tierup.pipeline.config_load import loads
from tierup.stages.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

COMMANDS = [
    ["init"],
    ["promote"],
    ["deploy"],
    ["where"],
    ["validate"],
    ["schema"],
    ["build"],
    ["stamp"],
    ["history"],
    ["unlock"],
    ["snapshot"],
    ["snapshots"],
    ["restore"],
    ["rollback", "service"],
    ["rollback", "cluster"],
    ["rollback", "tier"],
    ["sandbox", "up"],
    ["sandbox", "down"],
]


def _help(command: list[str]) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_names_values_not_python_types(command: list[str]) -> None:
    text = _help(command)
    options = [line for line in text.splitlines() if line.lstrip().startswith("-")]
    for line in options:
        flag = line.split("  ")[0] if "  " in line.strip() else line
        assert not re.search(r"<[a-z\[\]]+>", flag), line
    assert "--json" in text


def test_help_metavars_say_what_the_value_is() -> None:
    text = _help(["promote"])
    for expected in ("--tier TIER", "--commit SHA", "--image IMAGE", "--timeout DURATION"):
        assert expected in text
    assert "--to DIGEST" in _help(["rollback", "tier"])
    assert "--to REV" in _help(["rollback", "service"])


def test_shell_completion_is_on() -> None:
    assert "--install-completion" in _help([])
    result = CliRunner().invoke(
        app,
        [],
        prog_name="tierup",
        env={"_TIERUP_COMPLETE": "complete_bash", "COMP_WORDS": "tierup pro", "COMP_CWORD": "1"},
    )
    assert "promote" in result.output.split()


def test_schema_takes_json() -> None:
    result = CliRunner().invoke(app, ["schema", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"].startswith("tierup envs.yaml")


def _render_piped(columns: str | None) -> list[str]:
    code = (
        "from pipeline.results import CommandResult, EnvironmentOutcome, ServiceOutcome\n"
        "from pipeline.output import render_text\n"
        "r = CommandResult(command='promote', tier='dev')\n"
        "e = EnvironmentOutcome('dev', 'dev', '1' * 12, 'us-east-1', 'api', 'task-definition')\n"
        "e.services.append(ServiceOutcome('api', 'completed', reason='x ' * 150))\n"
        "r.environments.append(e)\n"
        "render_text(r)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = columns
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return [line for line in out.stdout.splitlines() if line.startswith(("┃", "│", "┏"))]


def test_piped_output_takes_columns_from_the_environment() -> None:
    assert max(len(line) for line in _render_piped("90")) == 90
    assert max(len(line) for line in _render_piped(None)) == 200  # a CI log, no terminal


def test_where_says_once_when_every_read_fails_the_same_way(tmp_path: Path) -> None:
    (tmp_path / "envs.yaml").write_text((ROOT / "envs.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "tierup.pipeline.cli", "where"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: every read failed (8 of 8): no AWS credentials found")
    assert "(hint: set AWS credentials" in lines[0]


BASE = (ROOT / "envs.yaml").read_text()


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        loads(text, "bad.yaml")
    return caught.value.message


def test_unknown_key_comes_first_with_what_it_likely_means() -> None:
    text = BASE.replace("    services:\n", "    servces:\n", 1)
    assert text != BASE
    message = _error(text)
    assert re.fullmatch(
        r"bad\.yaml:\d+: environments\.\S+\.servces: unknown key, did you mean 'services'\?",
        message,
    ), message
    # an optional key: compared with every key the format knows
    message = _error(BASE.replace("    region:", "    regoin:", 1))
    assert message.endswith("regoin: unknown key, did you mean 'region'?"), message


def test_unquoted_account_id_gets_a_hint_to_quote_it() -> None:
    text = re.sub(r'account_id: "(\d{12})"', r"account_id: \1", BASE, count=2)
    assert text != BASE
    message = _error(text)
    assert "is a number to YAML: quote the account id (account_id: " in message, message
