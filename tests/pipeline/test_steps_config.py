"""envs.yaml's `steps`: names checked against the step registry, each config against its step's
own schema, one line naming file, key path and line (exit 2); `tierup schema` includes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tierup.pipeline import config_load
from tierup.pipeline.cli import app
from tierup.stages import all_steps
from tierup.stages.errors import ConfigError

BASE = """\
version: 1
registry: {{account_id: "012345678922", region: us-east-1}}
images:
  api: {{repository: api}}
tiers:
  - name: dev
    tag: dev
  - name: staging
    tag: staging
    steps:
{steps}
environments:
  staging:
    tier: staging
    account_id: "333333333333"
    region: us-east-1
    cluster: staging
    services:
      api: {{image: api}}
{env_steps}
"""

GOOD = """\
      - retag
      - {uses: run-task, as: migrate, config: {command: [./manage.py, migrate]}, timeout: 10m}
      - deploy
      - wait
      - uses: http
        as: smoke
        config: {url: "https://{environment}.example.com/health", expect: {status: [200, 204]}}
        retry: {attempts: 3, interval: 10s}
      - {uses: alarm, as: bake, config: {prefix: api-5xx-, bake: 10m}}
      - {uses: notify, config: {url_env: TEAM_WEBHOOK}}"""


def _write(tmp_path: Path, steps: str, env_steps: str = "") -> Path:
    path = tmp_path / "envs.yaml"
    path.write_text(BASE.format(steps=steps, env_steps=env_steps))
    return path


def _validate(path: Path) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["validate", "-f", str(path)])
    return r.exit_code, r.stderr


def test_a_tier_lists_its_steps_and_an_environment_inherits_them(tmp_path: Path) -> None:
    cfg = config_load.load(_write(tmp_path, GOOD))
    steps = cfg.steps_for("staging")
    assert steps is not None
    assert [s.alias for s in steps] == [
        "retag", "migrate", "deploy", "wait", "smoke", "bake", "notify"
    ]  # fmt: skip
    assert steps[1].timeout == 600 and steps[4].retry is not None
    assert steps[4].retry.interval == 10
    assert cfg.steps_for is not None and cfg.tier("dev").steps is None
    assert _validate(_write(tmp_path, GOOD))[0] == 0


def test_absent_steps_mean_todays_promotion(tmp_path: Path) -> None:
    path = tmp_path / "envs.yaml"
    path.write_text(BASE.format(steps="      - retag\n      - deploy\n      - wait", env_steps=""))
    text = path.read_text().replace("    steps:\n      - retag\n      - deploy\n      - wait\n", "")
    path.write_text(text)
    assert config_load.load(path).steps_for("staging") is None


def test_an_environments_list_wins(tmp_path: Path) -> None:
    env = "    steps: [retag, deploy, wait, {uses: http, config: {url: 'http://127.0.0.1:1/'}}]"
    cfg = config_load.load(_write(tmp_path, GOOD, env))
    steps = cfg.steps_for("staging")
    assert steps is not None and [s.uses for s in steps][-1] == "http"
    assert len(steps) == 4


@pytest.mark.parametrize(
    ("steps", "line", "where", "message"),
    [
        (
            "      - retag\n      - {uses: migrate-db}\n      - deploy\n      - wait",
            12,
            "tiers[1].steps[1].uses",
            "unknown step 'migrate-db'",
        ),
        (
            "      - retag\n      - deploy\n      - wait\n"
            "      - uses: http\n        config:\n          url: http://x/\n          bogus: 1",
            17,
            "tiers[1].steps[3].config.bogus",
            "unknown key for step 'http'",
        ),
        (
            "      - retag\n      - deploy\n      - wait\n"
            "      - uses: http\n        config:\n          url: ftp://x/",
            16,
            "tiers[1].steps[3].config.url",
            "must start with http:// or https://",
        ),
        (
            "      - retag\n      - deploy\n      - wait\n"
            "      - {uses: alarm, config: {bake: 5m}}",
            14,
            "tiers[1].steps[3].config",
            "name alarms in `names`, or give a `prefix`",
        ),
        (
            "      - retag\n      - deploy\n      - wait\n      - {uses: notify}",
            14,
            "tiers[1].steps[3].config.url_env",
            "required key for step 'notify' is missing",
        ),
        (
            "      - deploy\n      - retag\n      - wait",
            11,
            "tiers[1].steps[0]",
            "retag, deploy and wait once each, in that order",
        ),
        (
            "      - retag\n      - deploy",
            10,
            "tiers[1].steps",
            "(found: retag, deploy)",
        ),
        (
            "      - retag\n      - deploy\n      - {uses: wait, timeout: 5m}",
            13,
            "tiers[1].steps[2].timeout",
            "takes no `timeout`",
        ),
        (
            "      - retag\n      - deploy\n      - wait\n"
            "      - {uses: http, config: {url: 'http://a/'}}\n"
            "      - {uses: http, config: {url: 'http://b/'}}",
            15,
            "tiers[1].steps[4].as",
            "two steps are called 'http'",
        ),
        (
            "      - retag\n      - deploy\n      - wait\n"
            "      - {uses: http, if: sometimes, config: {url: 'http://a/'}}",
            14,
            "tiers[1].steps[3].if",
            "success, failure or always",
        ),
    ],
)
def test_a_bad_step_is_one_line_with_file_key_path_and_line_exit_2(
    tmp_path: Path, steps: str, line: int, where: str, message: str
) -> None:
    path = _write(tmp_path, steps)
    with pytest.raises(ConfigError) as err:
        config_load.load(path)
    assert str(err.value).startswith(f"{path}:{line}: {where}: "), str(err.value)
    assert message in str(err.value)
    code, stderr = _validate(path)
    assert code == 2
    assert stderr.startswith(f"error: {path}:{line}: {where}: ")
    assert len(stderr.strip().splitlines()) == 1


def test_an_environments_bad_step_names_the_environment(tmp_path: Path) -> None:
    env = "    steps:\n      - retag\n      - deploy\n      - wait\n      - {uses: nope}"
    path = _write(tmp_path, GOOD, env)
    with pytest.raises(ConfigError, match=r":33: environments\.staging\.steps\[3\]\.uses: unknown"):
        config_load.load(path)


def test_a_registered_step_can_be_named(tmp_path: Path) -> None:
    from tierup.stages.step import NoConfig, StepContext, StepResult

    class Hello:
        name = "hello"
        config = NoConfig

        def describe(self, config: object, ctx: StepContext) -> str:
            return "say hello"

        def run(self, config: object, ctx: StepContext) -> StepResult:
            return StepResult(True, output="hello")

    steps = "      - retag\n      - deploy\n      - wait\n      - hello"
    with pytest.raises(ConfigError, match="unknown step 'hello'"):
        config_load.load(_write(tmp_path, steps))
    all_steps.register(Hello())
    try:
        cfg = config_load.load(_write(tmp_path, steps))
        assert [s.uses for s in cfg.steps_for("staging") or []][-1] == "hello"
    finally:
        all_steps.unregister("hello")
    with pytest.raises(ConfigError, match="built in"):
        all_steps.register(Hello.__new__(type("Http", (Hello,), {"name": "http"})))


def test_schema_includes_each_steps_config_schema(tmp_path: Path) -> None:
    import jsonschema

    r = CliRunner().invoke(app, ["schema"])
    assert r.exit_code == 0
    schema = json.loads(r.stdout)
    defs = schema["$defs"]
    for name in ("run-task", "http", "alarm", "notify", "retag", "deploy", "wait"):
        assert f"StepConfig_{name}" in defs
    assert "url_env" in defs["StepConfig_notify"]["properties"]
    import yaml

    good = yaml.safe_load(_write(tmp_path, GOOD).read_text())
    jsonschema.validate(good, schema)
    bad = yaml.safe_load(_write(tmp_path, GOOD).read_text())
    bad["tiers"][1]["steps"][6]["config"] = {"url": "not-a-var-name"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_the_examples_steps_are_valid() -> None:
    """The root envs.yaml shows a tier's steps, enabled (they run in the sandbox too)."""
    import yaml

    path = Path(__file__).resolve().parents[2] / "envs.yaml"
    cfg = config_load.load(path)
    steps = cfg.steps_for("prod") or []
    assert [s.uses for s in steps] == [
        "run-task", "retag", "deploy", "wait", "http", "alarm", "notify"
    ]  # fmt: skip
    assert cfg.steps_for("staging") is None
    r = CliRunner().invoke(app, ["schema"])
    import jsonschema

    jsonschema.validate(yaml.safe_load(path.read_text()), json.loads(r.stdout))


def test_validate_shows_each_environments_steps(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    r = CliRunner().invoke(app, ["validate", "-f", str(path)])
    assert r.exit_code == 0
    assert (
        "steps: retag, migrate (run-task), deploy, wait, smoke (http), bake (alarm), "
        "notify" in r.stdout
    )
    r = CliRunner().invoke(app, ["validate", "-f", str(path), "--json"])
    env = json.loads(r.stdout)["config"]["tiers"]["staging"]["environments"]["staging"]
    assert env["steps"]["smoke"] == "http"
