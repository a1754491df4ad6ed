"""envs.yaml, version 1: the pydantic model at the trust boundary and its loader.

Every error names the file, the key path and the line, and is raised before any AWS
call. Inside the tool, the validated model is read-only.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tierup.pipeline import steps_config
from tierup.stages import all_strategies
from tierup.stages.errors import ConfigError
from tierup.stages.step import Duration as Duration
from tierup.stages.step import parse_duration as parse_duration
from tierup.stages.strategy import capabilities
from tierup.stages.types import ECS_LIFECYCLE_HOOKS

DEFAULT_CONFIG = "envs.yaml"
CONFIG_ENV_VAR = "TIERUP_CONFIG"
# bounds on what the loader reads: far above any real configuration, far below harm
MAX_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000  # values once aliases are expanded
MAX_DEPTH = 64

TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
PLACEHOLDERS = ("timestamp", "commit", "short_commit")
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_SAMPLE = {"timestamp": "20261126T103000Z", "commit": "0" * 40, "short_commit": "0" * 7}

AccountId = Annotated[str, Field(pattern=r"^\d{12}$", description="12-digit AWS account id")]
RoleArn = Annotated[
    str,
    Field(
        pattern=r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/[A-Za-z0-9_+=,.@/-]+$",
        description="IAM role ARN, arn:aws:iam::<account>:role/<name>",
    ),
]
Region = Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$", description="AWS region")]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=255)]


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
Pin = Literal["tag", "digest"]
# the keys of each strategy settings block, as an error that misses one names them
SETTINGS_KEYS = {
    "cloudformation": "{stack, image_parameter}",
    "codedeploy": "{application, deployment_group, ...}",
    "ecs": "{mode, ...}",
}


def _follows_tag(strategy: str) -> bool:
    """The strategy deploys the tier's tag by forcing a deployment: the tag must be mutable."""
    return capabilities(all_strategies.get(strategy)).follows_tag


def _settings_of(strategy: str) -> str | None:
    """The settings block (``cloudformation``, ``codedeploy``, ``ecs``) the strategy needs."""
    return capabilities(all_strategies.get(strategy)).settings


def template_fields(template: str) -> list[str]:
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise ValueError(f"tag template {template!r} is malformed: {e}") from e


def render_tag(template: str, *, timestamp: str = "", commit: str = "") -> str:
    return template.format(timestamp=timestamp, commit=commit, short_commit=commit[:7])


def _no_items() -> list[Any]:
    """An empty list (a default factory whose signature pydantic reads cheaply, unlike ``list``)."""
    return []


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EcrRegistry(_Model):
    type: Literal["ecr"] = "ecr"
    account_id: AccountId
    region: Region
    role_arn: RoleArn | None = None
    external_id: str | None = None


class OciRegistry(_Model):
    type: Literal["oci"]
    url: str = Field(description="[http(s)://]host[:port]")
    insecure: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^(https?://)?[A-Za-z0-9.-]+(:\d+)?/?$", v):
            raise ValueError(f"registry url {v!r} must be [http(s)://]host[:port]")
        return v.rstrip("/")


class ImageConfig(_Model):
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


class Gates(_Model):
    soak: Duration | None = None
    require_source_healthy: bool = False
    allowed_branches: list[str] | None = None


class Tier(_Model):
    name: Name
    tag: str
    from_: str | None = Field(default=None, alias="from")
    strategy: Strategy | None = None
    pin: Pin | None = None
    wait_timeout: Duration | None = None
    retention: int | None = Field(default=None, ge=1)
    rollback_on_failure: bool = False
    atomic: bool = False
    gates: Gates | None = None
    ecs: EcsNativeConfig | None = None  # strategy ecs: its environments' default `ecs:`
    steps: list[steps_config.StepSpec] | None = None

    @field_validator("tag")
    @classmethod
    def _tag(cls, v: str) -> str:
        fields = template_fields(v)
        for _, name, spec, conversion in string.Formatter().parse(v):
            if name is not None and (spec or conversion):
                written = "{" + name + (f"!{conversion}" if conversion else "")
                written += (f":{spec}" if spec else "") + "}"
                raise ValueError(
                    f"tag {v!r} writes the placeholder {written}: placeholders take no conversion "
                    f"or format (only {{timestamp}}, {{commit}}, {{short_commit}})"
                )
        unknown = [f for f in fields if f not in PLACEHOLDERS]
        if unknown:
            raise ValueError(
                f"tag {v!r} uses unknown placeholder(s) {unknown}: "
                f"only {{timestamp}}, {{commit}}, {{short_commit}}"
            )
        rendered = v.format(**_SAMPLE)
        if not TAG_RE.match(rendered):
            raise ValueError(
                f"tag {v!r} is not a legal image tag: it must match "
                "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127} once rendered (no '/' or ':')"
            )
        return v

    @property
    def immutable(self) -> bool:
        return bool(template_fields(self.tag))

    @model_validator(mode="after")
    def _strategy(self) -> Tier:
        if self.immutable and self.strategy is not None and _follows_tag(self.strategy):
            raise ValueError(
                f"strategy {self.strategy} cannot be used on tier {self.name!r}: its tag "
                f"{self.tag!r} is immutable, so forcing a deployment would not change the image; "
                "use task-definition"
            )
        return self


class ServiceConfig(_Model):
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


class CloudFormationConfig(_Model):
    stack: str
    image_parameter: str


class CodeDeployConfig(_Model):
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


class EcsHookConfig(_Model):
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


class EcsCanaryConfig(_Model):
    percent: float = Field(gt=0, lt=100)
    bake_time: Duration = 0


class EcsLinearConfig(_Model):
    step_percent: float = Field(ge=3, le=100)
    bake_time: Duration = 0


class EcsNativeConfig(_Model):
    """`ecs:` of strategy ecs: ECS's own blue/green, canary or linear deployment."""

    mode: Literal["blue-green", "canary", "linear"] = "blue-green"
    bake_time: Duration | None = None
    canary: EcsCanaryConfig | None = None
    linear: EcsLinearConfig | None = None
    hooks: list[EcsHookConfig] = Field(default_factory=_no_items)
    hook_role_arn: RoleArn | None = None
    alarms: list[str] = Field(default_factory=_no_items)
    alternate_target_group: str | None = None
    test_listener_rule: str | None = None

    @model_validator(mode="after")
    def _mode_settings(self) -> EcsNativeConfig:
        if self.mode == "canary" and self.canary is None:
            raise ValueError("mode canary needs `canary: {percent, bake_time}`")
        if self.mode == "linear" and self.linear is None:
            raise ValueError("mode linear needs `linear: {step_percent, bake_time}`")
        return self


class Environment(_Model):
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


class LedgerConfig(_Model):
    s3: str | None = Field(default=None, pattern=r"^s3://[a-z0-9.-]{3,63}(/.*)?$")
    path: str | None = None
    region: Region | None = None
    role_arn: RoleArn | None = None


class LockConfig(_Model):
    ttl: Duration = 30 * 60


class Config(_Model):
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
        names = [t.name for t in self.tiers]
        if not names:
            raise _LocatedError(("tiers",), "at least one tier is needed")
        seen: set[str] = set()
        for i, t in enumerate(self.tiers):
            if t.name in seen:
                raise _LocatedError(("tiers", i, "name"), f"duplicate tier name {t.name!r}")
            seen.add(t.name)
        tags: dict[str, str] = {}
        for i, t in enumerate(self.tiers):
            if t.tag in tags:
                raise _LocatedError(
                    ("tiers", i, "tag"), f"tiers {tags[t.tag]!r} and {t.name!r} share tag {t.tag!r}"
                )
            tags[t.tag] = t.name
            stamps_of = _stamps_it_could_render(t, self.tiers)
            if stamps_of is not None:
                raise _LocatedError(
                    ("tiers", i, "tag"),
                    f"tier {t.name!r} tag {t.tag!r} could name a stamp of tier "
                    f"{stamps_of.name!r} ({stamps_of.tag!r}): promoting {t.name!r} would move "
                    "that stamp; give the tiers tags that cannot meet",
                )
            if t.from_ is not None and t.from_ not in seen:
                raise _LocatedError(
                    ("tiers", i, "from"), f"tier {t.name!r} comes from unknown tier {t.from_!r}"
                )
            if t.from_ == t.name:
                raise _LocatedError(("tiers", i, "from"), f"tier {t.name!r} comes from itself")
        self._shared_repositories()
        by_name = {t.name: t for t in self.tiers}
        _check_steps(self)
        for i, t in enumerate(self.tiers):
            chain = [t.name]
            cur = t
            while cur.from_ is not None:
                if cur.from_ in chain:
                    path = " -> ".join([*chain, cur.from_])
                    raise _LocatedError(("tiers", i, "from"), f"tiers form a cycle: {path}")
                chain.append(cur.from_)
                cur = by_name[cur.from_]
        for env_name, env in self.environments.items():
            if env.tier not in by_name:
                raise _LocatedError(
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
                        raise _LocatedError(
                            loc,
                            f"service {svc_name!r} names unknown image {image!r} "
                            f"(images: {', '.join(self.images) or 'none'})",
                        )
            strategy = env.strategy or tier.strategy
            if strategy is not None and tier.immutable and _follows_tag(strategy):
                raise _LocatedError(
                    ("environments", env_name, "strategy"),
                    f"strategy {strategy} cannot be used in {env_name!r}: tier "
                    f"{tier.name!r} has the immutable tag {tier.tag!r}; use task-definition",
                )
            if env.ecs is None and tier.ecs is not None:
                self.environments[env_name] = env = env.model_copy(update={"ecs": tier.ecs})
            # the settings block the strategy needs (its capabilities name it)
            section = None if strategy is None else _settings_of(strategy)
            if section is not None and getattr(env, section, None) is None:
                keys = f"`{section}: {SETTINGS_KEYS.get(section, '{...}')}`"
                raise _LocatedError(
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
                    raise _LocatedError(
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
            raise _LocatedError((*loc, *found[0]), found[1])


def _stamps_it_could_render(tier: Tier, tiers: list[Tier]) -> Tier | None:
    """Another immutable tier whose stamps ``tier``'s tag could render (a constant tag that
    looks like a stamp, or a template whose output does), if there is one."""
    from tierup.stages.resolve import tag_pattern

    rendered = tier.tag.format(**_SAMPLE) if tier.immutable else tier.tag
    for other in tiers:
        if other is not tier and other.immutable and tag_pattern(other.tag).match(rendered):
            return other
    return None


class _LocatedError(ValueError):
    """A cross-reference error that knows its key path."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


# -- loading with line numbers ------------------------------------------------------


@dataclass(frozen=True)
class _Lines:
    """Key path -> line (1-based) of the key, or of the item for list entries."""

    lines: dict[tuple[str | int, ...], int]

    def find(self, loc: tuple[str | int, ...]) -> int | None:
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.lines:
                return self.lines[loc[:n]]
        return None


def _walk(
    node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int], file: str
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                dotted = ".".join(str(p) for p in (*path, key))
                raise ConfigError(
                    f"{file}:{line}: {dotted}: duplicate key {key!r} (first on line {seen[key]})",
                    hint="each name may appear once; rename or merge the entries",
                )
            seen[key] = line
            out[(*path, key)] = line
            _walk(value_node, (*path, key), out, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*path, i)] = item.start_mark.line + 1
            _walk(item, (*path, i), out, file)


def _format_loc(loc: tuple[str | int, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + p)
    return "".join(parts) or "(top level)"


def _clean_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    # pydantic inserts union member tags (e.g. 'ecr', 'oci') and validator names
    return tuple(p for p in loc if p not in ("ecr", "oci", "function-after[_one_form()]"))


def _message(err: Any) -> str:
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "extra_forbidden":
        suggestion = err.get("suggestion")
        return f"unknown key, did you mean {suggestion!r}?" if suggestion else "unknown key"
    number = err.get("input")
    if kind == "string_type" and isinstance(number, int) and err["loc"][-1:] == ("account_id",):
        return f'{number} is a number to YAML: quote the account id (account_id: "{number:012d}")'
    if kind == "missing":
        return "required key is missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "string_pattern_mismatch":
        return f"{err.get('input')!r} is not valid ({msg})"
    return msg


def default_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG)


def load(path: str | Path | None = None) -> Config:
    """Read and validate envs.yaml; raise ConfigError naming file, key path and line."""
    file = Path(path) if path is not None else default_path()
    try:
        with file.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError as e:
        raise ConfigError(
            f"{file}: no such file",
            hint="pass -f FILE, set TIERUP_CONFIG, or run from the folder that holds envs.yaml",
        ) from e
    except IsADirectoryError as e:
        raise ConfigError(f"{file}: is a directory, not a file", hint="pass -f FILE") from e
    except OSError as e:
        raise ConfigError(f"{file}: cannot read: {e.strerror}") from e
    if len(raw) > MAX_BYTES:
        raise ConfigError(
            f"{file}:1: larger than {MAX_BYTES // (1024 * 1024)} MiB: not an envs.yaml",
            hint="check that -f names the right file",
        )
    return loads(decode(raw, str(file)), str(file))


def decode(raw: bytes, file: str = DEFAULT_CONFIG) -> str:
    """envs.yaml's bytes as text: UTF-8 (a BOM is allowed), else a ConfigError naming the byte."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(
            f"{file}:1: not UTF-8 text: the file starts with a UTF-16 byte order mark",
            hint="save it as UTF-8",
        )
    nul = raw.find(b"\x00")
    if nul >= 0:  # no text file has one: UTF-16 without a mark, or binary
        raise _not_text(raw, nul, file)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _not_text(raw, e.start, file) from e


def _not_text(raw: bytes, offset: int, file: str) -> ConfigError:
    line = raw.count(b"\n", 0, offset) + 1
    column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return ConfigError(
        f"{file}:{line}: not UTF-8 text: byte {offset} (line {line}, column {column}) is "
        f"0x{raw[offset]:02x}",
        hint="save it as UTF-8 (a latin-1 or UTF-16 file must be converted, "
        "e.g. iconv -f latin1 -t utf-8)",
    )


# libyaml's parser when PyYAML was built with it: the pure-Python one takes a tenth of a
# second on a config of a few hundred services, on every command
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str, file: str = DEFAULT_CONFIG) -> tuple[yaml.Node | None, Any]:
    """One parse: the node tree (for lines and duplicate keys) and the data built from it.

    Aliases make the tree a graph: its size once expanded is checked before anything is built
    from it, so a document that expands past ``MAX_NODES`` (a billion laughs) is refused at once.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_expansion(node, file)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node, file: str) -> None:
    """Refuse a node graph that expands past MAX_NODES or MAX_DEPTH, or refers to itself."""
    sizes: dict[int, int] = {}  # node id -> expanded size, for each node once
    # depth-first without recursion: (node, depth, children done?)
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    open_ids: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            open_ids.discard(key)
            total = 1 + sum(sizes[id(c)] for c in _children(node))
            sizes[key] = total
            if total > MAX_NODES:
                _too_big(node, file, f"it expands to more than {MAX_NODES:,} values")
            continue
        if key in sizes:
            continue
        if key in open_ids:
            _too_big(node, file, "an alias refers to a node that contains it")
        if depth > MAX_DEPTH:
            _too_big(node, file, f"it nests deeper than {MAX_DEPTH} levels")
        open_ids.add(key)
        stack.append((node, depth, True))
        for child in _children(node):
            if id(child) not in sizes:
                stack.append((child, depth + 1, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _too_big(node: yaml.Node, file: str, why: str) -> None:
    raise ConfigError(
        f"{file}:{node.start_mark.line + 1}: refused: {why}",
        hint="envs.yaml needs no deep nesting and few aliases; write the values out",
    )


def loads(text: str, file: str = DEFAULT_CONFIG) -> Config:
    try:
        node, data = _parse(text, file)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        position = getattr(e, "position", None)  # the reader's errors carry a character offset
        if mark is None and isinstance(position, int):
            line = f":{text.count(chr(10), 0, position) + 1}"
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{file}{line}: not valid YAML: {problem}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{file}:1: the file must be a mapping with `version: 1` at the top")
    assert node is not None
    # a key missing at the top level is reported on the document's first line
    lines: dict[tuple[str | int, ...], int] = {(): node.start_mark.line + 1}
    _walk(node, (), lines, file)
    located = _Lines(lines)
    if data.get("version") != 1:
        vline = located.find(("version",)) or 1
        raise ConfigError(
            f"{file}:{vline}: version: expected 1, got {data.get('version')!r}",
            hint="this tierup reads envs.yaml version 1",
        )
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        errors = _explained(e.errors())
        first = errors[0]
        loc = _clean_loc(tuple(first["loc"]))
        ctx = first.get("ctx") or {}
        err = ctx.get("error")
        if isinstance(err, _LocatedError):
            loc, text_msg = err.loc, err.message
        else:
            text_msg = _message(first)
        found = located.find(loc)
        where = f"{file}:{found}" if found else file
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{where}: {_format_loc(loc)}: {text_msg}{more}") from e


def _explained(errors: list[Any]) -> list[Any]:
    """Unknown keys first, each with its likely meaning; a required key that a misspelt key
    stands for is the same mistake, not another one."""
    unknown = [err for err in errors if err["type"] == "extra_forbidden"]
    if not unknown:
        return errors
    rest = [err for err in errors if err["type"] != "extra_forbidden"]
    out: list[Any] = []
    for err in unknown:
        loc = _clean_loc(tuple(err["loc"]))
        missing = [
            m
            for m in rest
            if m["type"] == "missing" and _clean_loc(tuple(m["loc"]))[:-1] == loc[:-1]
        ]
        names = [str(_clean_loc(tuple(m["loc"]))[-1]) for m in missing]
        match = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
        if not match:
            match = difflib.get_close_matches(str(loc[-1]), _known_keys(), n=1, cutoff=0.75)
        else:
            rest = [m for m in rest if m not in missing or str(m["loc"][-1]) != match[0]]
        out.append({**err, "suggestion": match[0] if match else None})
    return out + rest


@functools.cache
def _known_keys() -> tuple[str, ...]:
    """Every key envs.yaml may have anywhere (what a misspelt key is compared with)."""
    keys: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            keys.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(Config.model_json_schema(by_alias=True))
    return tuple(sorted(keys))


def json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tierup envs.yaml (version 1)"
    return steps_config.extend_schema(schema)
