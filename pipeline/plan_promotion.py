"""Planning a promotion (reads only): where each image's digest comes from (a tier, a commit,
a digest), the tag each gets, the tag writes, and every environment of the tier.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.config_tiers import Tier
from tierup.pipeline.plan import EnvPlan, PromotionPlan
from tierup.pipeline.plan_environments import plan_environments, preflight, read_environments
from tierup.pipeline.promote import Source
from tierup.pipeline.tag_template import TIMESTAMP_FORMAT, render_tag
from tierup.stages import resolve, retag
from tierup.stages.adapters.registry import Registry, TagWrite
from tierup.stages.deploy import ImageTarget
from tierup.stages.errors import InputError
from tierup.stages.parallel import each


def _timestamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def resolve_sources(
    config: Config, clients: Clients, *, tier: Tier, source: Source, images: list[str]
) -> list[resolve.Resolved]:
    """Every image must resolve before anything is written (exit 2 otherwise)."""
    registry = clients.registry
    src_tier = config.tier(source.value) if source.kind == "tier" and source.value else None
    if source.kind == "default":
        src_tier = config.source_tier(tier.name)
    if src_tier is not None and src_tier.name == tier.name:
        raise InputError(f"tier {tier.name!r} cannot be promoted from itself")
    head: tuple[str, list[str]] | None = None
    if source.kind == "default" and src_tier is None:
        head = clients.head_commit()

    def one(name: str) -> resolve.Resolved:
        image = config.image(name)
        repo, prefix = image.repository, image.tag_prefix
        registry.describe_repository(repo)
        if source.kind == "digest":
            assert source.value is not None
            return resolve.resolve_digest(registry, name, repo, source.value)
        if source.kind == "commit":
            assert source.value is not None
            return resolve.resolve_commit(registry, name, repo, source.value, prefix=prefix)
        if src_tier is not None:
            return resolve.resolve_tier(
                registry,
                name,
                repo,
                tier=src_tier.name,
                template=image.tag(src_tier.tag),
                prefix=prefix,
            )
        assert head is not None
        return resolve.resolve_commit(
            registry, name, repo, head[0], ancestors=head[1], prefix=prefix
        )

    return each(one, images)


def needs_commit(template: str) -> bool:
    return "{commit}" in template or "{short_commit}" in template


def commit_of(
    registry: Registry, repository: str, r: resolve.Resolved, prefix: str = ""
) -> str | None:
    """The commit a resolved image was built from: its source's, else the commit tag(s) on
    its digest (whatever the source: a tier, a digest, a commit)."""
    if r.commit:
        return r.commit
    for info in registry.list_images(repository):
        if info.digest == r.manifest.digest:
            commits = resolve.commits_on(info, prefix)
            return commits[0] if commits else None
    return None


def _render(
    tier: Tier, resolved: resolve.Resolved, commit: str | None, now: datetime, prefix: str = ""
) -> str:
    if needs_commit(tier.tag) and not commit:
        raise InputError(
            f"image {resolved.image!r} ({resolved.manifest.repository}@{resolved.manifest.digest}"
            f", from {resolved.source}) has no commit tag: tier {tier.name!r} tag {tier.tag!r} "
            "needs its commit",
            hint="promote an image built by `tierup build` (tagged with its commit SHA), or "
            "give this digest its commit tag",
        )
    return prefix + render_tag(tier.tag, timestamp=_timestamp(now), commit=commit or "")


def _plan_image(
    config: Config, registry: Registry, tier: Tier, r: resolve.Resolved, now: datetime
) -> tuple[retag.RetagPlan, ImageTarget]:
    image = config.image(r.image)
    repo = image.repository
    tag = _render(tier, r, r.commit, now, image.tag_prefix)
    if tier.immutable:
        # a stamp already on this digest, the newest if several, is reused: stamping a digest
        # again changes nothing, however many stamps other digests got since
        mine = [i for i in registry.list_images(repo) if i.digest == r.manifest.digest]
        existing = resolve.newest_tag(mine, image.tag(tier.tag))
        if existing is not None:
            tag = existing[0]
    plan = retag.plan_retag(registry, r.image, repo, tag, r.manifest, immutable_tag=tier.immutable)
    return plan, ImageTarget.at(
        registry,
        r.image,
        repo,
        tag,
        r.manifest.digest,
        commit=r.commit,
        immutable_tag=tier.immutable,
    )


def tag_changes(
    retags: list[retag.RetagPlan], *, stamp: bool = False, back: bool = False
) -> dict[str, str]:
    """Image -> what its tag write does, in words, for the images whose tag is written."""
    out: dict[str, str] = {}
    for r in retags:
        digest = r.manifest.digest[:19]
        if r.action is TagWrite.CREATED:
            out[r.image] = f"new {'stamp' if stamp else 'tag'} {r.tag} on {digest}"
        elif r.action is TagWrite.MOVED:
            out[r.image] = f"the tag {r.tag} moved {'back ' if back else ''}to {digest}"
    return out


def plan_promotion(
    config: Config,
    clients: Clients,
    *,
    tier_name: str,
    source: Source,
    images: list[str] | None,
    deploy: bool,
    now: datetime,
    command: str = "promote",
    protected: frozenset[str] = frozenset(),
    skip_unreachable: frozenset[str] = frozenset(),
) -> PromotionPlan:
    """Read everything the promotion touches; raise PreflightError (nothing written) when a
    role, cluster, service or task definition of the tier cannot be read."""
    tier = config.tier(tier_name)
    names = images or list(config.images)
    for n in names:
        config.image(n)
    tier_envs = config.environments_of(tier.name)
    for skip in sorted(skip_unreachable):
        if skip not in tier_envs:
            raise InputError(
                f"--skip-unreachable {skip}: not an environment of tier {tier.name!r}",
                hint=f"pick from: {', '.join(tier_envs) or '(none)'}",
            )
    env_names = [n for n in tier_envs if n not in skip_unreachable]
    registry = clients.registry
    with ThreadPoolExecutor(max_workers=1) as background:
        reading = (
            background.submit(read_environments, config, clients, tier=tier, env_names=env_names)
            if deploy
            else None
        )
        resolved = resolve_sources(config, clients, tier=tier, source=source, images=names)
        if needs_commit(tier.tag):
            resolved = each(
                lambda r: dataclasses.replace(
                    r,
                    commit=commit_of(
                        registry,
                        config.image(r.image).repository,
                        r,
                        config.image(r.image).tag_prefix,
                    ),
                ),
                resolved,
            )
        planned = each(lambda r: _plan_image(config, registry, tier, r, now), resolved)
        read = reading.result() if reading is not None else None
    retags = [p for p, _t in planned]
    targets = {t.image: t for _p, t in planned}
    moved = tag_changes(retags, stamp=tier.immutable)
    envs: list[EnvPlan] = []
    if deploy:
        envs = plan_environments(
            config,
            clients,
            tier=tier,
            targets=targets,
            moved=moved,
            protected=protected,
            read=read,
        )
        preflight(envs)
    return PromotionPlan(
        command=command,
        tier=tier,
        tag=tier.tag,
        resolved=resolved,
        retags=retags,
        targets=targets,
        envs=envs,
        deploy=deploy,
        skipped=[
            (n, e, config.strategy_for(n))
            for n, e in tier_envs.items()
            if deploy and n in skip_unreachable
        ],
    )


def commits_of_digest(
    clients: Clients, repository: str, digest: str, prefix: str = ""
) -> list[str]:
    for info in clients.registry.list_images(repository):
        if info.digest == digest:
            return resolve.commits_on(info, prefix)
    return []
