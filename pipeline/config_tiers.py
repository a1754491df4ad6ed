"""A tier in envs.yaml (its tag, where it comes from, its defaults for its environments) and
the checks across the tiers: unique names and tags, no tag that could name another tier's
stamp, ``from`` naming another tier, no cycle."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from tierup.pipeline import steps_config, tag_template
from tierup.pipeline.config_fields import ConfigModel, LocatedError, Name, Pin
from tierup.pipeline.config_strategy import EcsNativeConfig, Strategy, follows_tag
from tierup.stages.step import Duration


class Gates(ConfigModel):
    soak: Duration | None = None
    require_source_healthy: bool = False
    allowed_branches: list[str] | None = None


class Tier(ConfigModel):
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
        return tag_template.check_template(v)

    @property
    def immutable(self) -> bool:
        return bool(tag_template.template_fields(self.tag))

    @model_validator(mode="after")
    def _strategy(self) -> Tier:
        if self.immutable and self.strategy is not None and follows_tag(self.strategy):
            raise ValueError(
                f"strategy {self.strategy} cannot be used on tier {self.name!r}: its tag "
                f"{self.tag!r} is immutable, so forcing a deployment would not change the image; "
                "use task-definition"
            )
        return self


def check_tiers(tiers: list[Tier]) -> None:
    """At least one tier; unique names and tags; no tag that could name another tier's stamp;
    ``from`` names another tier of the file. The first mistake is raised."""
    if not tiers:
        raise LocatedError(("tiers",), "at least one tier is needed")
    seen: set[str] = set()
    for i, t in enumerate(tiers):
        if t.name in seen:
            raise LocatedError(("tiers", i, "name"), f"duplicate tier name {t.name!r}")
        seen.add(t.name)
    tags: dict[str, str] = {}
    for i, t in enumerate(tiers):
        if t.tag in tags:
            raise LocatedError(
                ("tiers", i, "tag"), f"tiers {tags[t.tag]!r} and {t.name!r} share tag {t.tag!r}"
            )
        tags[t.tag] = t.name
        stamps_of = _stamps_it_could_render(t, tiers)
        if stamps_of is not None:
            raise LocatedError(
                ("tiers", i, "tag"),
                f"tier {t.name!r} tag {t.tag!r} could name a stamp of tier "
                f"{stamps_of.name!r} ({stamps_of.tag!r}): promoting {t.name!r} would move "
                "that stamp; give the tiers tags that cannot meet",
            )
        if t.from_ is not None and t.from_ not in seen:
            raise LocatedError(
                ("tiers", i, "from"), f"tier {t.name!r} comes from unknown tier {t.from_!r}"
            )
        if t.from_ == t.name:
            raise LocatedError(("tiers", i, "from"), f"tier {t.name!r} comes from itself")


def check_chains(tiers: list[Tier]) -> None:
    """Following ``from`` never comes back to a tier (names are unique and known by now)."""
    by_name = {t.name: t for t in tiers}
    for i, t in enumerate(tiers):
        chain = [t.name]
        cur = t
        while cur.from_ is not None:
            if cur.from_ in chain:
                path = " -> ".join([*chain, cur.from_])
                raise LocatedError(("tiers", i, "from"), f"tiers form a cycle: {path}")
            chain.append(cur.from_)
            cur = by_name[cur.from_]


def _stamps_it_could_render(tier: Tier, tiers: list[Tier]) -> Tier | None:
    """Another immutable tier whose stamps ``tier``'s tag could render (a constant tag that
    looks like a stamp, or a template whose output does), if there is one."""
    from tierup.stages.resolve import tag_pattern

    rendered = tag_template.sample(tier.tag) if tier.immutable else tier.tag
    for other in tiers:
        if other is not tier and other.immutable and tag_pattern(other.tag).match(rendered):
            return other
    return None
