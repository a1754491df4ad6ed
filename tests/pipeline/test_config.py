"""envs.yaml validation: every error names the file, the key path and the line, exit 2."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tierup.pipeline import config_load
from tierup.pipeline.cli import app
from tierup.pipeline.exit_codes import ExitCode, exit_code_of
from tierup.stages.errors import ConfigError
from tierup.stages.step import parse_duration

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
version: 1
registry: {account_id: "012345678922", region: us-east-1}
images:
  api: {repository: api}
  worker: {repository: worker}
tiers:
  - {name: dev, tag: dev}
  - {name: staging, tag: staging, from: dev}
  - {name: prod, tag: "prod-{timestamp}", from: staging}
environments:
  dev:
    tier: dev
    account_id: "111111111111"
    role_arn: arn:aws:iam::111111111111:role/deployer
    region: us-east-1
    cluster: dev
    services:
      api: {image: api}
      web: {containers: {web: api, envoy: worker}}
"""


def test_the_example_at_the_root_is_valid() -> None:
    cfg = config_load.load(ROOT / "envs.yaml")
    assert [t.name for t in cfg.tiers] == ["dev", "staging", "prod"]
    assert set(cfg.environments) == {"dev", "mb-dev", "staging", "mb-staging", "prod", "mb-prod"}
    assert len({e.account_id for e in cfg.environments.values()}) == 6
    assert cfg.tier("prod").immutable and not cfg.tier("staging").immutable
    assert cfg.strategy_for("prod") == "task-definition"
    assert cfg.strategy_for("staging") == "force-new-deployment"
    assert cfg.wait_timeout_for("staging") == 20 * 60
    assert cfg.wait_timeout_for("dev") == 15 * 60


def test_base_is_valid_and_both_service_forms_parse() -> None:
    cfg = config_load.loads(BASE, "envs.yaml")
    svc = cfg.environment("dev").services
    assert svc["api"].images() == {None: "api"}
    assert svc["web"].images() == {"web": "api", "envoy": "worker"}


def _replace(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def _line_of(text: str, needle: str) -> int:
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError(needle)


BAD = [
    # (id, text, line needle, expected key path, expected message fragment)
    ("unknown top-level key", BASE + "registy: {}\n", "registy:", "registy", "unknown key"),
    (
        "unknown environment key",
        _replace("    cluster: dev\n", "    cluster: dev\n    clustr: dev\n"),
        "clustr:",
        "environments.dev.clustr",
        "unknown key",
    ),
    (
        "unknown tier reference",
        _replace("    tier: dev\n", "    tier: qa\n"),
        "tier: qa",
        "environments.dev.tier",
        "unknown tier 'qa'",
    ),
    (
        "unknown image reference",
        _replace("api: {image: api}", "api: {image: apx}"),
        "{image: apx}",
        "environments.dev.services.api.image",
        "unknown image 'apx'",
    ),
    (
        "unknown image in containers",
        _replace("envoy: worker", "envoy: proxy"),
        "envoy: proxy",
        "environments.dev.services.web.containers.envoy",
        "unknown image 'proxy'",
    ),
    (
        "duplicate tier name",
        _replace(
            "  - {name: staging, tag: staging, from: dev}\n",
            "  - {name: staging, tag: staging, from: dev}\n  - {name: dev, tag: dev2}\n",
        ),
        "tag: dev2",
        "tiers[2].name",
        "duplicate tier name 'dev'",
    ),
    (
        "duplicate environment key",
        BASE + "  dev:\n    tier: dev\n",
        "  dev:\n    tier: dev\n" and "XXX",
        "environments.dev",
        "duplicate key 'dev'",
    ),
    (
        "illegal tag template from the seed article",
        _replace('tag: "prod-{timestamp}"', 'tag: "prod-11/12/20-10:30"'),
        "prod-11/12/20-10:30",
        "tiers[2].tag",
        "not a legal image tag",
    ),
    (
        "unknown placeholder",
        _replace('tag: "prod-{timestamp}"', 'tag: "prod-{date}"'),
        "prod-{date}",
        "tiers[2].tag",
        "unknown placeholder",
    ),
    (
        "bad account id",
        _replace('account_id: "111111111111"', 'account_id: "1111"'),
        'account_id: "1111"',
        "environments.dev.account_id",
        "'1111' is not valid",
    ),
    (
        "bad role ARN",
        _replace("role_arn: arn:aws:iam::111111111111:role/deployer", "role_arn: deployer"),
        "role_arn: deployer",
        "environments.dev.role_arn",
        "'deployer' is not valid",
    ),
    (
        "role in another account",
        _replace(
            "role_arn: arn:aws:iam::111111111111:role/deployer",
            "role_arn: arn:aws:iam::999999999999:role/deployer",
        ),
        "  dev:",
        "environments.dev",
        "is in account 999999999999",
    ),
    (
        "cycle in from",
        _replace("  - {name: dev, tag: dev}\n", "  - {name: dev, tag: dev, from: prod}\n"),
        "from: prod",
        "tiers[0].from",
        "tiers form a cycle: dev -> prod -> staging -> dev",
    ),
    (
        "force-new-deployment on an immutable tier",
        _replace(
            'tag: "prod-{timestamp}", from: staging}',
            'tag: "prod-{timestamp}", from: staging, strategy: force-new-deployment}',
        ),
        "strategy: force-new-deployment",
        "tiers[2]",
        "force-new-deployment cannot be used",
    ),
    (
        "bad duration",
        _replace(
            "  - {name: dev, tag: dev}\n", "  - {name: dev, tag: dev, wait_timeout: 5 minutes}\n"
        ),
        "wait_timeout",
        "tiers[0].wait_timeout",
        "bad duration",
    ),
    (
        "bad strategy name",
        _replace("    cluster: dev\n", "    cluster: dev\n    strategy: rolling\n"),
        "strategy: rolling",
        "environments.dev.strategy",
        "force-new-deployment",
    ),
    (
        "a service with both forms",
        _replace("api: {image: api}", "api: {image: api, containers: {api: api}}"),
        "api: {image: api, containers",
        "environments.dev.services.api",
        "either `image`",
    ),
    (
        "missing required key",
        _replace("    cluster: dev\n", ""),
        "  dev:",
        "environments.dev.cluster",
        "required key is missing",
    ),
    (
        "wrong version",
        BASE.replace("version: 1", "version: 2"),
        "version: 2",
        "version",
        "expected 1",
    ),
    (
        "not YAML",
        BASE + "  : : [\n",
        None,
        "",
        "not valid YAML",
    ),
]


@pytest.mark.parametrize(
    ("text", "needle", "key", "fragment"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_config_names_file_key_and_line(
    text: str, needle: str | None, key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config_load.loads(text, "bad.yaml")
    message = info.value.message
    assert exit_code_of(info.value) == ExitCode.BAD_INPUT
    assert message.startswith("bad.yaml"), message
    assert fragment in message, message
    if key:
        assert f": {key}:" in message, message
    if needle == "XXX":  # duplicate key: the second occurrence's line
        lines = [n for n, line in enumerate(text.splitlines(), 1) if line == "  dev:"]
        assert message.startswith(f"bad.yaml:{lines[1]}:"), message
    elif needle is not None:
        assert message.startswith(f"bad.yaml:{_line_of(text, needle)}:"), message


def test_validate_cli_unknown_key_exits_2_naming_file_key_and_line(tmp_path: Path) -> None:
    text = _replace(
        "    region: us-east-1\n    cluster: dev\n",
        "    region: us-east-1\n    cluster: dev\n    servces: {}\n",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = CliRunner().invoke(app, ["validate", "-f", str(bad)])
    assert result.exit_code == 2
    line = _line_of(text, "servces")
    assert f"{bad}:{line}: environments.dev.servces: unknown key" in result.output
    assert "Traceback" not in result.output
    assert result.output.count("\n") == 1  # one line


def test_validate_prints_tiers_environments_services() -> None:
    result = CliRunner().invoke(app, ["validate", "-f", str(ROOT / "envs.yaml")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("dev:") < out.index("staging:") < out.index("prod:")
    assert "mb-staging: account 444444444444" in out
    assert "worker <- worker" in out and "metrics <- api" in out


def test_validate_json() -> None:
    result = CliRunner().invoke(app, ["validate", "-f", str(ROOT / "envs.yaml"), "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["status"] == "ok"
    assert doc["config"]["tiers"]["prod"]["mutable"] is False
    assert doc["config"]["tiers"]["staging"]["environments"]["mb-staging"]["strategy"] == (
        "force-new-deployment"
    )


def test_schema_is_a_json_schema_that_accepts_the_example() -> None:
    import jsonschema
    import yaml

    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    data = yaml.safe_load((ROOT / "envs.yaml").read_text())
    jsonschema.validate(data, schema)
    bad = dict(data, unknown_key=1)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_durations() -> None:
    assert parse_duration(90) == 90
    assert parse_duration("30s") == 30
    assert parse_duration("15m") == 900
    assert parse_duration("2h") == 7200
    for bad in ("15 m", "1d", "-3", True, 1.5):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", "-f", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "no such file" in result.output


def test_tier_source_defaults() -> None:
    cfg = config_load.loads(textwrap.dedent(BASE), "envs.yaml")
    assert cfg.source_tier("dev") is None
    src = cfg.source_tier("staging")
    assert src is not None and src.name == "dev"
