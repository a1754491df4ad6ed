"""The example CI pipelines are valid for their CI system, hold no AWS keys, and every `tierup`
command line in them is accepted by the real CLI's argument parser."""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ci"
GITHUB = EXAMPLES / "github-actions.yml"
GITLAB = EXAMPLES / "gitlab-ci.yml"

# What a CI variable might hold, so that a parsed value looks like the real thing.
FAKE_SHA = "0123456789abcdef0123456789abcdef01234567"
FAKE_DIGEST = "sha256:" + "ab" * 32
FAKE_VALUE = "1"  # a valid string, integer and duration alike

# Shell words after which the next word is a command.
COMMAND_PREFIXES = {"if", "then", "else", "elif", "do", "while", "until", "!", "{", "time", "exec"}
OPERATORS = {"|", "||", "&", "&&", ";", ";;", "(", ")", "|&"}


# --- finding the command lines ------------------------------------------------------------


def _fake_value(name: str) -> str:
    upper = name.upper()
    if "DIGEST" in upper:
        return FAKE_DIGEST
    if "SHA" in upper and "SHORT" not in upper:
        return FAKE_SHA
    return FAKE_VALUE


def substitute_variables(text: str) -> str:
    """Replace `${{ expr }}`, `${VAR...}` and `$VAR` by plausible values, as the CI would."""
    text = re.sub(r"\$\{\{(.*?)\}\}", lambda m: _fake_value(m.group(1)), text)
    text = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)[^{}]*\}", lambda m: _fake_value(m.group(1)), text)
    return re.sub(r"\$([A-Za-z_][A-Za-z0-9_]*)", lambda m: _fake_value(m.group(1)), text)


def _words(line: str) -> list[str]:
    # `2>&1`: the file descriptor belongs to the redirection, not to the command's arguments.
    line = re.sub(r"(?<!\S)\d+(?=[<>])", "", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def tierup_commands(script: str) -> Iterator[list[str]]:
    """Every `tierup` invocation in a shell script, as its argument list (without `tierup`)."""
    script = re.sub(r"\\\r?\n", " ", script)
    for line in script.splitlines():
        words = _words(substitute_variables(line))
        at_command = True
        current: list[str] | None = None
        for word in words:
            if word in OPERATORS or set(word) <= set("<>&|;()"):
                if current is not None:
                    yield current
                    current = None
                # A redirection's target is a file name, not a command.
                at_command = not set(word) <= set("<>&")
                continue
            if current is not None:
                current.append(word)
                continue
            if at_command and word == "tierup":
                current = []
                continue
            at_command = word in COMMAND_PREFIXES or (
                at_command and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", word) is not None
            )
        if current is not None:
            yield current


def _scripts_of_github(workflow: dict[str, Any]) -> Iterator[str]:
    for job in workflow["jobs"].values():
        for step in job.get("steps", []):
            if "run" in step:
                yield str(step["run"])


def _scripts_of_gitlab(pipeline: dict[str, Any]) -> Iterator[str]:
    for job in pipeline.values():
        if not isinstance(job, dict):
            continue
        for key in ("before_script", "script", "after_script"):
            lines = job.get(key, [])
            for line in [lines] if isinstance(lines, str) else lines:
                yield str(line)


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def commands_in(path: Path) -> list[list[str]]:
    document = _load(path)
    scripts = _scripts_of_github(document) if path == GITHUB else _scripts_of_gitlab(document)
    return [command for script in scripts for command in tierup_commands(script)]


# --- parsing them with the real CLI --------------------------------------------------------


class CommandLineRejected(Exception):
    """The CLI's parser would refuse this command line (a usage error)."""


def _exceptions_named(name: str) -> tuple[type[BaseException], ...]:
    """`click`'s exception `name` and, for a Typer that vendors click, Typer's own copy of it."""
    found: list[type[BaseException]] = [getattr(click.exceptions, name)]
    try:
        vendored = importlib.import_module("typer._click.exceptions")
    except ImportError:
        pass
    else:
        if hasattr(vendored, name):
            found.append(getattr(vendored, name))
    if name == "Exit":
        import typer

        found.append(typer.Exit)
    return tuple(found)


def _remaining_args(ctx: Any) -> list[str]:
    # A group keeps the subcommand and its arguments in `_protected_args` + `args`.
    protected = getattr(ctx, "_protected_args", None)
    if protected is None:
        protected = ctx.protected_args
    return [*protected, *ctx.args]


def parse_cli(args: Sequence[str]) -> list[str]:
    """Parse `tierup ARGS` down to the leaf command without running anything.

    Returns the command path; raises CommandLineRejected when the CLI would reject the line.
    """
    import typer

    from pipeline.cli import app

    usage_errors = _exceptions_named("UsageError")
    exits = _exceptions_named("Exit")
    command: Any = typer.main.get_command(app)
    name = "tierup"
    parent: Any = None
    remaining = list(args)
    path = [name]
    try:
        while True:
            try:
                ctx = command.make_context(name, remaining, parent=parent, resilient_parsing=False)
            except exits as done:  # --version, --help: eager, then a clean exit
                if getattr(done, "exit_code", 0) != 0:
                    raise
                return path
            if not hasattr(command, "resolve_command"):
                return path
            remaining = _remaining_args(ctx)
            if not remaining:
                if getattr(command, "invoke_without_command", False):
                    return path
                raise CommandLineRejected(f"{' '.join(path)}: missing command")
            resolved_name, subcommand, remaining = command.resolve_command(ctx, remaining)
            if subcommand is None or resolved_name is None:
                raise CommandLineRejected(f"{' '.join(path)}: no such command {remaining[:1]}")
            name, parent, command = resolved_name, ctx, subcommand
            path.append(name)
    except usage_errors as error:
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        raise CommandLineRejected(f"tierup {shlex.join(args)}: {message}") from error


# --- the tests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "schema"),
    [(GITHUB, "vendor.github-workflows"), (GITLAB, "vendor.gitlab-ci")],
    ids=["github", "gitlab"],
)
def test_valid_for_its_ci_system(path: Path, schema: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_no_aws_keys(path: Path) -> None:
    text = path.read_text()
    for forbidden in (
        "aws_secret_access_key",
        "aws-secret-access-key",
        "aws_access_key_id",
        "aws-access-key-id",
        "secrets.AWS",
    ):
        assert forbidden.lower() not in text.lower(), forbidden
    assert not re.search(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b", text)


def test_github_uses_oidc_for_every_aws_job() -> None:
    workflow = _load(GITHUB)
    workflow_permissions = workflow.get("permissions", {})
    aws_jobs = 0
    for job_name, job in workflow["jobs"].items():
        credential_steps = [
            step
            for step in job.get("steps", [])
            if str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")
        ]
        if not credential_steps:
            continue
        aws_jobs += 1
        permissions = job.get("permissions", workflow_permissions)
        assert permissions.get("id-token") == "write", job_name
        for step in credential_steps:
            assert step["with"]["role-to-assume"], job_name
    assert aws_jobs == len(workflow["jobs"])


def test_github_gates_staging_and_prod_behind_environments() -> None:
    workflow = _load(GITHUB)
    assert "workflow_dispatch" in workflow[True]  # YAML 1.1 reads the key `on` as True
    jobs = workflow["jobs"]
    environments = {}
    for name in ("promote-staging", "stamp-prod"):
        environment = jobs[name]["environment"]
        environments[name] = environment if isinstance(environment, str) else environment["name"]
    assert environments == {"promote-staging": "staging", "stamp-prod": "production"}


def test_gitlab_uses_oidc_and_manual_gates() -> None:
    pipeline = _load(GITLAB)
    assert pipeline["stages"] == ["build", "dev", "staging", "prod"]
    assert pipeline[".tierup"]["id_tokens"]["AWS_OIDC_TOKEN"]["aud"] == "sts.amazonaws.com"
    assert pipeline["variables"]["AWS_ROLE_ARN"].startswith("arn:aws:iam::")
    assert "AWS_WEB_IDENTITY_TOKEN_FILE" in pipeline["variables"]
    for name, environment in (("promote-staging", "staging"), ("stamp-prod", "production")):
        job = pipeline[name]
        assert job["environment"]["name"] == environment
        assert [rule.get("when") for rule in job["rules"]] == ["manual"]
        assert all("main" in rule["if"] for rule in job["rules"])
    jobs = {k: v for k, v in pipeline.items() if isinstance(v, dict) and "script" in v}
    assert all(job.get("extends") == ".tierup" for job in jobs.values())


def test_command_lines_are_found() -> None:
    script = (
        "pip install tierup\n"
        '{ echo x; tierup where --tier dev; } >> "$GITHUB_STEP_SUMMARY"\n'
        'tierup stamp --tier prod \\\n  --message "Release ${GITHUB_SHA::7} by $ACTOR" \\\n'
        "  --json | tee out.json\n"
        "if tierup promote --tier dev --commit $CI_COMMIT_SHA; then echo ok; fi\n"
        "FOO=1 tierup validate 2>&1 | tee tierup.log && echo tierup\n"
    )
    assert list(tierup_commands(script)) == [
        ["where", "--tier", "dev"],
        ["stamp", "--tier", "prod", "--message", f"Release {FAKE_SHA} by 1", "--json"],
        ["promote", "--tier", "dev", "--commit", FAKE_SHA],
        ["validate"],
    ]


def test_examples_call_the_commands_the_design_names() -> None:
    github = [" ".join(c) for c in commands_in(GITHUB)]
    gitlab = [" ".join(c) for c in commands_in(GITLAB)]
    for commands in (github, gitlab):
        assert "build" in commands
        assert any(c.startswith("promote --tier dev") for c in commands)
        assert any(c.startswith("promote --tier staging") and "--json" in c for c in commands)
        assert any(c.startswith("stamp --tier prod") and "--message" in c for c in commands)
        assert any(c.startswith("where") for c in commands)


@pytest.mark.parametrize(
    "args",
    [pytest.param(c, id=f"github: tierup {' '.join(c)}") for c in commands_in(GITHUB)]
    + [pytest.param(c, id=f"gitlab: tierup {' '.join(c)}") for c in commands_in(GITLAB)],
)
def test_cli_accepts_command_line(args: list[str]) -> None:
    parse_cli(args)


@pytest.mark.parametrize(
    "args",
    [
        ["promote", "--tier", "dev", "--no-such-flag"],
        ["promote", "--tier"],
        ["no-such-command"],
    ],
    ids=["unknown flag", "missing value", "unknown command"],
)
def test_cli_parser_rejects_bad_lines(args: list[str]) -> None:
    with pytest.raises(CommandLineRejected):
        parse_cli(args)
