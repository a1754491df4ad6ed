"""An environment's deploy strategy in envs.yaml: the ``strategy`` key, checked against the
strategy registry, and the settings blocks a strategy needs (``cloudformation``, ``codedeploy``,
``ecs``).

A strategy's module is imported only when a configuration names it (``stages.all_strategies``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from tierup.pipeline.config_fields import ConfigModel, RoleArn, no_items
from tierup.stages import all_strategies
from tierup.stages.step import Duration
from tierup.stages.strategy import capabilities
from tierup.stages.types import ECS_LIFECYCLE_HOOKS


def _known_strategy(name: str) -> str:
    """A strategy name must be in the registry (the built-ins and any a library registered)."""
    if name not in all_strategies.names():
        raise ValueError(
            f"unknown strategy {name!r}: strategies are {', '.join(all_strategies.names())}"
        )
    return name


Strategy = Annotated[
    str,
    AfterValidator(_known_strategy),
    Field(
        description="force-new-deployment, task-definition, cloudformation, codedeploy, ecs, or a "
        "strategy registered with tierup.stages.all_strategies.register",
        json_schema_extra={"examples": sorted(all_strategies.BUILTIN)},
    ),
]
# the keys of each strategy settings block, as an error that misses one names them
SETTINGS_KEYS = {
    "cloudformation": "{stack, image_parameter}",
    "codedeploy": "{application, deployment_group, ...}",
    "ecs": "{mode, ...}",
}


def follows_tag(strategy: str) -> bool:
    """The strategy deploys the tier's tag by forcing a deployment: the tag must be mutable."""
    return capabilities(all_strategies.get(strategy)).follows_tag


def settings_of(strategy: str) -> str | None:
    """The settings block (``cloudformation``, ``codedeploy``, ``ecs``) the strategy needs."""
    return capabilities(all_strategies.get(strategy)).settings


class CloudFormationConfig(ConfigModel):
    stack: str
    image_parameter: str


class CodeDeployConfig(ConfigModel):
    application: str
    deployment_group: str
    deployment_config: str | None = None
    container: str | None = None
    container_port: int | None = Field(default=None, ge=1, le=65535)
    hooks: dict[str, str] = Field(
        default_factory=dict, description="ECS lifecycle hook -> Lambda function name or ARN"
    )

    @field_validator("hooks")
    @classmethod
    def _hooks(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = [k for k in v if k not in ECS_LIFECYCLE_HOOKS]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not an ECS lifecycle hook "
                f"({', '.join(ECS_LIFECYCLE_HOOKS)})"
            )
        return v


ECS_HOOK_STAGES = (
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
)


class EcsHookConfig(ConfigModel):
    """One ECS lifecycle hook: a Lambda function, or a pause until `tierup continue`."""

    stage: str = Field(description="an ECS lifecycle stage, e.g. post-test-traffic-shift")
    lambda_: str | None = Field(default=None, alias="lambda", description="function name or ARN")
    pause: bool = False

    @field_validator("stage")
    @classmethod
    def _stage(cls, v: str) -> str:
        stage = v.strip().upper().replace("-", "_")
        if stage not in ECS_HOOK_STAGES:
            raise ValueError(f"{v}: not an ECS lifecycle stage ({', '.join(ECS_HOOK_STAGES)})")
        return stage

    @model_validator(mode="after")
    def _one_target(self) -> EcsHookConfig:
        if (self.lambda_ is None) == (not self.pause):
            raise ValueError("a hook has either `lambda: FUNCTION` or `pause: true`")
        return self


class EcsCanaryConfig(ConfigModel):
    percent: float = Field(gt=0, lt=100)
    bake_time: Duration = 0


class EcsLinearConfig(ConfigModel):
    step_percent: float = Field(ge=3, le=100)
    bake_time: Duration = 0


class EcsNativeConfig(ConfigModel):
    """`ecs:` of strategy ecs: ECS's own blue/green, canary or linear deployment."""

    mode: Literal["blue-green", "canary", "linear"] = "blue-green"
    bake_time: Duration | None = None
    canary: EcsCanaryConfig | None = None
    linear: EcsLinearConfig | None = None
    hooks: list[EcsHookConfig] = Field(default_factory=no_items)
    hook_role_arn: RoleArn | None = None
    alarms: list[str] = Field(default_factory=no_items)
    alternate_target_group: str | None = None
    test_listener_rule: str | None = None

    @model_validator(mode="after")
    def _mode_settings(self) -> EcsNativeConfig:
        if self.mode == "canary" and self.canary is None:
            raise ValueError("mode canary needs `canary: {percent, bake_time}`")
        if self.mode == "linear" and self.linear is None:
            raise ValueError("mode linear needs `linear: {step_percent, bake_time}`")
        return self
