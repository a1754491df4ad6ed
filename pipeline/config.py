"""envs.yaml, version 1: the pydantic model at the trust boundary.

Its blocks (registry, images, tiers, environments, ledger, lock), how they refer to each other
(checked once the file is read, each error with its key path), and the lookups the pipeline
makes in it. ``config_load`` reads a file into it; inside the tool it is read-only.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tierup.pipeline import config_tiers, steps_config
from tierup.pipeline.config_fields import (
    AccountId,
    ConfigModel,
    LocatedError,
    Pin,
    Region,
    RoleArn,
)
from tierup.pipeline.config_strategy import (
    SETTINGS_KEYS,
    CloudFormationConfig,
    CodeDeployConfig,
    EcsNativeConfig,
    Strategy,
    follows_tag,
    settings_of,
)
from tierup.pipeline.config_tiers import Tier
from tierup.stages.errors import ConfigError
from tierup.stages.step import Duration


class EcrRegistry(ConfigModel):
    type: Literal["ecr"] = "ecr"
    account_id: AccountId
    region: Region
    role_arn: RoleArn | None = None
    external_id: str | None = None


class OciRegistry(ConfigModel):
    type: Literal["oci"]
    url: str = Field(description="[http(s)://]host[:port]")
    insecure: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^(https?://)?[A-Za-z0-9.-]+(:\d+)?/?$", v):
            raise ValueError(f"registry url {v!r} must be [http(s)://]host[:port]")
        return v.rstrip("/")


class ImageConfig(ConfigModel):
    repository: str = Field(pattern=r"^[a-z0-9]+([._/-][a-z0-9]+)*$")
    context: str = "."
    dockerfile: str = "Dockerfile"
    target: str | None = None
    build_args: dict[str, str] = Field(default_factory=dict)
    platform: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    tag_prefix: str = Field(
        default="",
        pattern=r"^([A-Za-z0-9_][A-Za-z0-9_.-]{0,63})?$",
        description="prefix of the image's commit and tier tags when images share a repository "
        "(api- -> api-<sha>, api-dev)",
    )

    def tag(self, tag: str) -> str:
        """One of this image's tags (or tag templates) as the repository holds it."""
        return self.tag_prefix + tag


class ServiceConfig(ConfigModel):
    image: str | None = None
    container: str | None = None
    containers: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> ServiceConfig:
        if (self.image is None) == (self.containers is None):
            raise ValueError("a service names either `image` (one container) or `containers`")
        if self.containers is not None and self.container is not None:
            raise ValueError("`container` goes with `image`; with `containers` name each container")
        if self.containers is not None and not self.containers:
            raise ValueError("`containers` must name at least one container")
        return self

    def images(self) -> dict[str | None, str]:
        """Container name (None: resolve at deploy time) -> image name."""
        if self.containers is not None:
            return {k: v for k, v in self.containers.items()}
        assert self.image is not None
        return {self.container: self.image}


class Environment(ConfigModel):
    tier: str
    account_id: AccountId
    role_arn: RoleArn | None = None
    external_id: str | None = None
    region: Region
    cluster: str
    services: dict[str, ServiceConfig]
    strategy: Strategy | None = None
    pin: Pin | None = None
    wait_timeout: Duration | None = None
    retention: int | None = Field(default=None, ge=1)
    cloudformation: CloudFormationConfig | None = None
    codedeploy: CodeDeployConfig | None = None
    ecs: EcsNativeConfig | None = None
    steps: list[steps_config.StepSpec] | None = None

    @model_validator(mode="after")
    def _role_account(self) -> Environment:
        if self.role_arn is not None:
            account = self.role_arn.split(":")[4]
            if account != self.account_id:
                raise ValueError(
                    f"role_arn {self.role_arn} is in account {account}, "
                    f"but account_id is {self.account_id}"
                )
        if not self.services:
            raise ValueError("an environment names at least one service")
        return self


class LedgerConfig(ConfigModel):
    s3: str | None = Field(default=None, pattern=r"^s3://[a-z0-9.-]{3,63}(/.*)?$")
    path: str | None = None
    region: Region | None = None
    role_arn: RoleArn | None = None


class LockConfig(ConfigModel):
    ttl: Duration = 30 * 60


class Config(ConfigModel):
    version: Literal[1]
    registry: EcrRegistry | OciRegistry = Field(discriminator="type")
    images: dict[str, ImageConfig]
    tiers: list[Tier]
    environments: dict[str, Environment] = Field(default_factory=dict)
    ledger: LedgerConfig | None = None
    lock: LockConfig = Field(default_factory=LockConfig)

    @field_validator("registry", mode="before")
    @classmethod
    def _default_type(cls, v: Any) -> Any:
        if isinstance(v, dict) and "type" not in v:
            return {"type": "ecr", **v}
        return v

    @model_validator(mode="after")
    def _references(self) -> Config:
        config_tiers.check_tiers(self.tiers)
        self._shared_repositories()
        _check_steps(self)
        config_tiers.check_chains(self.tiers)
        by_name = {t.name: t for t in self.tiers}
        names = list(by_name)
        for env_name, env in self.environments.items():
            if env.tier not in by_name:
                raise LocatedError(
                    ("environments", env_name, "tier"),
                    f"environment {env_name!r} is in unknown tier {env.tier!r} "
                    f"(tiers: {', '.join(names)})",
                )
            tier = by_name[env.tier]
            for svc_name, svc in env.services.items():
                for container, image in svc.images().items():
                    if image not in self.images:
                        key = "image" if container is None or svc.image else "containers"
                        loc: tuple[str | int, ...] = (
                            "environments",
                            env_name,
                            "services",
                            svc_name,
                            key,
                        )
                        if svc.containers is not None and container is not None:
                            loc = (*loc, container)
                        raise LocatedError(
                            loc,
                            f"service {svc_name!r} names unknown image {image!r} "
                            f"(images: {', '.join(self.images) or 'none'})",
                        )
            strategy = env.strategy or tier.strategy
            if strategy is not None and tier.immutable and follows_tag(strategy):
                raise LocatedError(
                    ("environments", env_name, "strategy"),
                    f"strategy {strategy} cannot be used in {env_name!r}: tier "
                    f"{tier.name!r} has the immutable tag {tier.tag!r}; use task-definition",
                )
            if env.ecs is None and tier.ecs is not None:
                self.environments[env_name] = env = env.model_copy(update={"ecs": tier.ecs})
            # the settings block the strategy needs (its capabilities name it)
            section = None if strategy is None else settings_of(strategy)
            if section is not None and getattr(env, section, None) is None:
                keys = f"`{section}: {SETTINGS_KEYS.get(section, '{...}')}`"
                raise LocatedError(
                    ("environments", env_name, section),
                    f"environment {env_name!r} uses strategy {strategy} but neither it nor tier "
                    f"{tier.name!r} has {keys}"
                    if section in Tier.model_fields
                    else f"environment {env_name!r} uses strategy {strategy} but has no {keys}",
                )
        return self

    def _shared_repositories(self) -> None:
        """Images sharing a repository each read only their own tags: their prefixes must
        tell them apart (neither may be the other, or begin the other)."""
        registry_key = self.registry.url if isinstance(self.registry, OciRegistry) else ""
        seen: dict[str, list[tuple[str, str]]] = {}
        for name, image in self.images.items():
            others = seen.setdefault(f"{registry_key}/{image.repository}", [])
            for other, prefix in others:
                mine = image.tag_prefix
                if not mine or not prefix or mine.startswith(prefix) or prefix.startswith(mine):
                    raise LocatedError(
                        ("images", name, "tag_prefix" if mine else "repository"),
                        f"images {other!r} and {name!r} share repository {image.repository!r} "
                        f"without distinct tag prefixes ({prefix!r}, {mine!r}): each would "
                        "move the other's tags; give each a tag_prefix such as "
                        f"'{other}-' and '{name}-'",
                    )
            others.append((name, image.tag_prefix))

    # -- helpers the pipeline uses -------------------------------------------------

    def tier(self, name: str) -> Tier:
        for t in self.tiers:
            if t.name == name:
                return t
        raise ConfigError(
            f"unknown tier {name!r}", hint=f"tiers in this file: {', '.join(self.tier_names())}"
        )

    def tier_names(self) -> list[str]:
        return [t.name for t in self.tiers]

    def environment(self, name: str) -> Environment:
        if name not in self.environments:
            raise ConfigError(
                f"unknown environment {name!r}",
                hint=f"environments in this file: {', '.join(self.environments)}",
            )
        return self.environments[name]

    def environments_of(self, tier: str) -> dict[str, Environment]:
        return {n: e for n, e in self.environments.items() if e.tier == tier}

    def image(self, name: str) -> ImageConfig:
        if name not in self.images:
            raise ConfigError(
                f"unknown image {name!r}", hint=f"images in this file: {', '.join(self.images)}"
            )
        return self.images[name]

    def tier_tag(self, image: str, tier: Tier) -> str:
        """The tag (or stamp template) of ``tier`` for ``image``: with its tag_prefix."""
        return self.image(image).tag(tier.tag)

    def source_tier(self, tier: str) -> Tier | None:
        """The tier a promotion to ``tier`` takes its digest from by default."""
        t = self.tier(tier)
        if t.from_ is not None:
            return self.tier(t.from_)
        idx = self.tier_names().index(tier)
        return None if idx == 0 else self.tiers[idx - 1]

    def strategy_for(self, env_name: str) -> str:
        env = self.environment(env_name)
        tier = self.tier(env.tier)
        if env.strategy:
            return env.strategy
        if tier.strategy:
            return tier.strategy
        return "task-definition" if tier.immutable else "force-new-deployment"

    def pin_for(self, env_name: str) -> str:
        env = self.environment(env_name)
        return env.pin or self.tier(env.tier).pin or "tag"

    def wait_timeout_for(self, env_name: str) -> int:
        env = self.environment(env_name)
        t = env.wait_timeout or self.tier(env.tier).wait_timeout
        return t if t is not None else 15 * 60

    def retention_for(self, env_name: str) -> int:
        env = self.environment(env_name)
        return env.retention or self.tier(env.tier).retention or 10

    def steps_for(self, env_name: str) -> list[steps_config.StepSpec] | None:
        """The environment's steps, else its tier's; None: today's retag, deploy, wait."""
        env = self.environment(env_name)
        return env.steps if env.steps is not None else self.tier(env.tier).steps


def _check_steps(config: Config) -> None:
    """Each ``steps`` list: names in the step registry, each config per its step's schema."""
    lists: list[tuple[tuple[str | int, ...], list[steps_config.StepSpec] | None]] = [
        (("tiers", i, "steps"), t.steps) for i, t in enumerate(config.tiers)
    ]
    lists += [(("environments", n, "steps"), e.steps) for n, e in config.environments.items()]
    for loc, steps in lists:
        found = steps_config.step_errors(steps)
        if found is not None:
            raise LocatedError((*loc, *found[0]), found[1])


def json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tierup envs.yaml (version 1)"
    return steps_config.extend_schema(schema)
