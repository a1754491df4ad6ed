"""envs.yaml's `ecs:` block of strategy ecs: checked at load (exit 2), a tier's the default of its
environments, turned into ECS's deploymentConfiguration keys."""

from __future__ import annotations

import pytest

from tierup.pipeline import config, config_load, strategies
from tierup.pipeline.exit_codes import ExitCode, exit_code_of
from tierup.stages.errors import ConfigError

BASE = """\
version: 1
registry: {{account_id: "012345678922", region: us-east-1}}
images:
  api: {{repository: api}}
tiers:
  - {{name: prod, tag: prod, strategy: ecs{tier_ecs}}}
environments:
  prod:
    tier: prod
    account_id: "111111111111"
    region: us-east-1
    cluster: prod{env_ecs}
    services:
      api: {{image: api}}
"""


def load(tier_ecs: str = "", env_ecs: str = "") -> config.Config:
    return config_load.loads(BASE.format(tier_ecs=tier_ecs, env_ecs=env_ecs), "envs.yaml")


def test_strategy_ecs_without_an_ecs_block_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load()
    assert exit_code_of(info.value) == ExitCode.BAD_INPUT
    assert "uses strategy ecs" in info.value.message


@pytest.mark.parametrize(
    ("block", "fragment"),
    [
        ("{mode: canary}", "mode canary needs `canary: {percent, bake_time}`"),
        ("{mode: linear}", "mode linear needs"),
        ("{mode: rolling}", "mode"),
        ("{hooks: [{stage: nowhere, pause: true}]}", "not an ECS lifecycle stage"),
        ("{hooks: [{stage: pre-scale-up, pause: true, lambda: f}]}", "either"),
        ("{hooks: [{stage: pre-scale-up}]}", "either"),
        ("{mode: canary, canary: {percent: 100}}", "percent"),
    ],
)
def test_a_bad_ecs_block_is_refused(block: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(env_ecs=f"\n    ecs: {block}")
    assert fragment in info.value.message


def test_a_tiers_ecs_block_is_its_environments_default_as_ecs_keys() -> None:
    cfg = load(
        tier_ecs=", ecs: {mode: linear, bake_time: 90s, linear: {step_percent: 20, bake_time: 1m},"
        " hooks: [{stage: post-scale-up, lambda: check}, {stage: TEST_TRAFFIC_SHIFT, pause: true}],"
        " alarms: [api-5xx]}"
    )
    settings = strategies.ecs_settings(cfg.environment("prod"))
    assert settings is not None
    assert settings.configuration == {
        "strategy": "LINEAR",
        "bakeTimeInMinutes": 2,
        "linearConfiguration": {"stepPercent": 20.0, "stepBakeTimeInMinutes": 1},
        "lifecycleHooks": [
            {
                "lifecycleStages": ["POST_SCALE_UP"],
                "targetType": "AWS_LAMBDA",
                "hookTargetArn": "arn:aws:lambda:us-east-1:111111111111:function:check",
            },
            {"lifecycleStages": ["TEST_TRAFFIC_SHIFT"], "targetType": "PAUSE"},
        ],
        "alarms": {"alarmNames": ["api-5xx"], "enable": True, "rollback": True},
    }
    # the environment's own block wins
    own = load(
        tier_ecs=", ecs: {mode: linear, linear: {step_percent: 20}}", env_ecs="\n    ecs: {}"
    )
    own_settings = strategies.ecs_settings(own.environment("prod"))
    assert own_settings is not None
    assert own_settings.configuration == {"strategy": "BLUE_GREEN"}
