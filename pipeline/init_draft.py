"""The guesses of `tierup init`: the registry, an image per repository, tiers, environments."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from tierup.pipeline.init_discover import FoundCluster, FoundService
from tierup.stages.errors import InputError
from tierup.stages.types import ImageRef, is_commit_sha

ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
STAMP = re.compile(r"^(?P<tier>[A-Za-z0-9_][A-Za-z0-9_.-]*?)-\d{8}T\d{6}Z$")
# the usual path to production; a tier named otherwise goes before prod, by name
ORDER = {
    "dev": 0,
    "development": 0,
    "sandbox": 0,
    "test": 1,
    "testing": 1,
    "qa": 1,
    "int": 1,
    "integration": 1,
    "staging": 2,
    "stage": 2,
    "stg": 2,
    "preprod": 3,
    "pre-prod": 3,
    "uat": 3,
    "prod": 5,
    "production": 5,
    "prd": 5,
}
UNKNOWN_ORDER = 4


@dataclass(frozen=True)
class TierGuess:
    name: str
    immutable: bool
    why: str


def _registry_of(found: Sequence[FoundCluster]) -> tuple[str, str]:
    """The ECR registry (account, region) most images come from."""
    hosts: Counter[tuple[str, str]] = Counter()
    for cluster in found:
        for service in cluster.services:
            for _, ref in service.containers:
                m = ECR_HOST.match(ref.registry)
                if m:
                    hosts[(m.group(1), m.group(2))] += 1
    if not hosts:
        raise InputError(
            "no service names an image in an ECR registry",
            hint="tierup promotes images of an ECR registry; check --cluster / --role-arn",
        )
    return hosts.most_common(1)[0][0]


def _image_names(repositories: Sequence[str]) -> dict[str, str]:
    """repository -> image name: the repository's last part, unless two repositories share it."""
    last = Counter(r.rsplit("/", 1)[-1] for r in repositories)
    out: dict[str, str] = {}
    for repo in repositories:
        short = repo.rsplit("/", 1)[-1]
        out[repo] = short if last[short] == 1 else repo.replace("/", "-")
    return out


def guess_tier(
    cluster: FoundCluster, refs: Sequence[ImageRef], known: Sequence[str]
) -> TierGuess | None:
    """From the tags the task definitions name, else from the cluster's name."""
    mutable = sorted(
        {r.tag for r in refs if r.tag and not is_commit_sha(r.tag) and not STAMP.match(r.tag)}
    )
    stamped = sorted({m.group("tier") for r in refs if r.tag and (m := STAMP.match(r.tag))})
    if len(mutable) == 1 and not stamped:
        return TierGuess(
            mutable[0], False, f"guessed: its task definitions name the tag {mutable[0]}"
        )
    if len(stamped) == 1 and not mutable:
        return TierGuess(
            stamped[0], True, f"guessed: its task definitions name {stamped[0]}-<timestamp> stamps"
        )
    if mutable or stamped:
        return None  # several tags: a person must say which is the tier's
    words = re.split(r"[-_.]", cluster.name.lower())
    for word in words:
        if word in ORDER or word in known:
            return TierGuess(
                word,
                True,
                "guessed from the cluster's name (its task definitions name commits or digests)",
            )
    return None


@dataclass
class Draft:
    registry: tuple[str, str]
    images: dict[str, str]  # image name -> repository
    image_users: dict[str, list[str]]
    tiers: list[TierGuess]
    environments: list[tuple[str, FoundCluster, TierGuess, dict[str, dict[str, str]]]]
    skipped: list[str]


def draft(
    found: Sequence[FoundCluster],
    *,
    tier_for: dict[str, str],
    tier_order: Sequence[str],
) -> Draft:
    registry = _registry_of(found)
    in_registry: list[tuple[FoundCluster, FoundService, str, ImageRef]] = []
    skipped: list[str] = []
    for cluster in found:
        for service in cluster.services:
            mine = [
                (c, ref)
                for c, ref in service.containers
                if (m := ECR_HOST.match(ref.registry)) and (m.group(1), m.group(2)) == registry
            ]
            if not mine:
                images = ", ".join(ref.repository for _, ref in service.containers)
                skipped.append(
                    f"{cluster.name}/{service.name}: no image of the registry ({images})"
                )
            in_registry += [(cluster, service, c, ref) for c, ref in mine]
    repositories = sorted({ref.repository for *_, ref in in_registry})
    names = _image_names(repositories)
    users: dict[str, list[str]] = {names[r]: [] for r in repositories}
    for cluster, service, _, ref in in_registry:
        where = f"{cluster.name}/{service.name}"
        if where not in users[names[ref.repository]]:
            users[names[ref.repository]].append(where)

    cluster_names = Counter(c.name for c in found)
    guesses: dict[int, TierGuess] = {}
    unknown: list[str] = []
    for index, cluster in enumerate(found):
        refs = [ref for c, _, _, ref in in_registry if c is cluster]
        if not refs:
            continue
        named = tier_for.get(f"{cluster.account.account_id}/{cluster.name}")
        if named is None:
            named = tier_for.get(cluster.name)
        if named is not None:
            name = named
            immutable = all(r.digest or (r.tag and is_commit_sha(r.tag)) for r in refs)
            guesses[index] = TierGuess(name, immutable, "given with --tier-for")
            continue
        guess = guess_tier(cluster, refs, list(tier_order))
        if guess is None:
            tags = sorted({r.tag or r.digest or "?" for r in refs})
            label = cluster.name
            if cluster_names[cluster.name] > 1:
                label = f"{cluster.account.account_id}/{cluster.name}"
            unknown.append(f"{label} (names {', '.join(t[:19] for t in tags)})")
        else:
            guesses[index] = guess
    if unknown:
        raise InputError(
            f"cannot guess the tier of cluster(s) {'; '.join(unknown)}",
            hint="say it with --tier-for CLUSTER=TIER or ACCOUNT/CLUSTER=TIER (repeatable)",
        )
    tiers: dict[str, TierGuess] = {}
    for guess in guesses.values():
        have = tiers.get(guess.name)
        if have is None or (have.immutable and not guess.immutable):
            tiers[guess.name] = guess

    def rank(name: str) -> tuple[float, str]:
        if name in tier_order:
            return (list(tier_order).index(name), "")
        return (len(tier_order) + ORDER.get(name, UNKNOWN_ORDER), name)

    ordered = sorted(tiers.values(), key=lambda t: rank(t.name))
    environments = []
    for index, cluster in enumerate(found):
        if index not in guesses:
            continue
        env_name = cluster.name
        if cluster_names[cluster.name] > 1:
            env_name = f"{cluster.name}-{cluster.account.account_id}"
        services: dict[str, dict[str, str]] = {}
        for c, service, container, ref in in_registry:
            if c is cluster:
                services.setdefault(service.name, {})[container] = names[ref.repository]
        environments.append((env_name, cluster, guesses[index], services))
    return Draft(
        registry, {names[r]: r for r in repositories}, users, ordered, environments, skipped
    )
