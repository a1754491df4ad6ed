"""Fill a sandbox (moto's server) with what an envs.yaml describes.

In the registry account (ECR registries only): one repository per image, a repository policy
that lets every environment's account pull, and one image per repository tagged with the commit
(`seed_registry`). In each environment's account, reached by assuming its role
(`seed_clients`): the cluster, one task definition per service and the service itself (desired
count 2; `seed_environments`), and the alarms its steps watch (`seed_steps`).

Seeding is idempotent: what exists already is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tierup.pipeline.config import Config, EcrRegistry
from tierup.pipeline.sandbox import seed_steps
from tierup.pipeline.sandbox.seed_clients import Clients, env_client
from tierup.pipeline.sandbox.seed_environments import SeededEnvironment, seed_environment
from tierup.pipeline.sandbox.seed_registry import (
    ecr_client,
    ensure_repository,
    pull_policy,
    push_images,
    registry_host,
    require_ecr,
)
from tierup.stages.errors import ConfigError

__all__ = ["DEFAULT_DESIRED_COUNT", "SeedResult", "push_commit_images", "seed"]

DEFAULT_DESIRED_COUNT = 2


@dataclass(frozen=True)
class SeedResult:
    commit: str
    registry: str  # host that image references start with
    repositories: tuple[str, ...]  # created or found (ECR only)
    digests: Mapping[str, str]  # image name -> digest of the commit's image (ECR only)
    environments: tuple[SeededEnvironment, ...] = field(default=())

    def environment(self, name: str) -> SeededEnvironment:
        for env in self.environments:
            if env.name == name:
                return env
        raise KeyError(name)


def push_commit_images(
    config: Config,
    *,
    endpoint_url: str,
    commit: str,
    tags: Iterable[str] = (),
) -> dict[str, str]:
    """Put one image per repository for `commit`, tagged with it and with `tags`.

    A tag in `tags` that is on another image moves here. Returns image name -> digest. The
    repositories must exist (seed() makes them).
    """
    registry = require_ecr(config)
    clients = Clients(endpoint_url)
    return push_images(ecr_client(clients, registry), config, commit, list(tags), move_tags=True)


def seed(
    config: Config,
    *,
    endpoint_url: str,
    commit: str,
    desired_count: int = DEFAULT_DESIRED_COUNT,
    tag_tiers: bool = False,
) -> SeedResult:
    """Create the registry and every environment of `config` at `endpoint_url`.

    `commit` is the SHA the first images are tagged with. With `tag_tiers`, the mutable tier
    tags (`dev`, `staging`) are put on those images where the tag does not exist yet, so that
    services start on them.
    """
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", commit):
        raise ConfigError(f"{commit!r} cannot be an image tag")
    clients = Clients(endpoint_url)
    repositories: tuple[str, ...] = ()
    digests: dict[str, str] = {}
    if isinstance(config.registry, EcrRegistry):
        registry = config.registry
        ecr = ecr_client(clients, registry)
        accounts = [e.account_id for e in config.environments.values()]
        tenants = [a for a in accounts if a != registry.account_id]
        policy = pull_policy(tenants) if tenants else None
        repositories = tuple(dict.fromkeys(i.repository for i in config.images.values()))
        for repository in repositories:
            ensure_repository(ecr, repository, policy)
        tier_tags = [t.tag for t in config.tiers if not t.immutable] if tag_tiers else []
        digests = push_images(ecr, config, commit, tier_tags, move_tags=False)
    environments = tuple(
        seed_environment(clients, config, name, env, commit, desired_count)
        for name, env in config.environments.items()
    )
    seed_steps.ensure_alarms(config, lambda service, env: env_client(clients, service, env))
    return SeedResult(
        commit=commit,
        registry=registry_host(config),
        repositories=repositories,
        digests=digests,
        environments=environments,
    )
