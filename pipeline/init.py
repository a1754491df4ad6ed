"""`tierup init`: a commented envs.yaml from what runs in the accounts.

It reads (never writes) the ECS clusters and services of the caller's account, or of the
accounts reached through `--role-arn`, the images their task definitions name, and guesses
the tiers from the tags those images carry (`staging` is a tier whose tag moves; a stamp
`prod-20261126T103000Z` is a stamped tier), or from the cluster's name when the task
definitions name commits or digests. What cannot be guessed is asked for with `--tier-for`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tierup.pipeline import config_load as config_mod
from tierup.pipeline.results import CommandResult
from tierup.pipeline.sessions import AwsSessions
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.errors import InputError
from tierup.stages.parallel import each
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
IGNORE_LINE = ".tierup/"
MAX_WORKERS = 8


@dataclass(frozen=True)
class Account:
    """Where to look: the caller's account (no role) or one reached through a role."""

    account_id: str
    role_arn: str | None
    region: str


@dataclass(frozen=True)
class FoundService:
    name: str
    containers: tuple[tuple[str, ImageRef], ...]  # container -> image the task definition names


@dataclass
class FoundCluster:
    account: Account
    name: str
    services: list[FoundService] = field(default_factory=list)


@dataclass(frozen=True)
class TierGuess:
    name: str
    immutable: bool
    why: str


def role_account(role_arn: str) -> str:
    m = re.match(r"^arn:aws[\w-]*:iam::(\d{12}):role/.+$", role_arn)
    if m is None:
        raise InputError(
            f"--role-arn {role_arn!r} is not a role ARN",
            hint="e.g. arn:aws:iam::222222222222:role/deployer",
        )
    return m.group(1)


def accounts(
    sessions: AwsSessions,
    *,
    region: str,
    role_arns: Sequence[str],
    account_ids: Sequence[str],
    role_name: str | None,
) -> list[Account]:
    """The accounts to read: each --role-arn, each --account through --role-name, or else
    the caller's own."""
    out = [Account(role_account(arn), arn, region) for arn in role_arns]
    for account_id in account_ids:
        if not re.fullmatch(r"\d{12}", account_id):
            raise InputError(f"--account {account_id!r} is not a 12-digit account id")
        if role_name is None:
            raise InputError(
                f"--account {account_id} needs a role to reach it",
                hint="pass --role-name NAME (the role in each account) or --role-arn ARN",
            )
        out.append(Account(account_id, f"arn:aws:iam::{account_id}:role/{role_name}", region))
    if not out:
        out.append(Account(caller_account(sessions, region), None, region))
    return out


def caller_account(sessions: AwsSessions, region: str) -> str:
    arn = sessions.caller_arn(region=region)
    m = re.match(r"^arn:aws[\w-]*:(?:iam|sts)::(\d{12}):", arn or "")
    if m is None:
        raise InputError(
            "cannot tell which AWS account the credentials belong to",
            hint="set AWS credentials (AWS_PROFILE, ...) or pass --role-arn",
        )
    return m.group(1)


def discover(
    sessions: AwsSessions, targets: Sequence[Account], clusters: Sequence[str]
) -> list[FoundCluster]:
    """Every cluster (or those named), its services and the images their containers name."""

    def ecs_of(account: Account) -> Ecs:
        return Ecs(sessions.client("ecs", region=account.region, role_arn=account.role_arn))

    pairs: list[tuple[Account, str]] = []
    for account in targets:
        names = list(clusters) or ecs_of(account).list_clusters()
        pairs += [(account, name) for name in names]

    def one(pair: tuple[Account, str]) -> FoundCluster:
        account, name = pair
        ecs = ecs_of(account)
        found = FoundCluster(account, name)
        services = ecs.describe_services(name, ecs.list_services(name))
        definitions = {}
        for service_name, state in sorted(services.items()):
            arn = state.task_definition
            if arn not in definitions:
                definitions[arn] = ecs.describe_task_definition(arn)
            td = definitions[arn]
            found.services.append(
                FoundService(
                    service_name,
                    tuple((c.name, ImageRef.parse(c.image)) for c in td.containers),
                )
            )
        return found

    return list(each(one, pairs, MAX_WORKERS))


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


def _q(value: str) -> str:
    """A YAML scalar: quoted when YAML would read it as something else than this string."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:/@-]*", value) and value.lower() not in (
        "yes",
        "no",
        "on",
        "off",
        "true",
        "false",
        "null",
    ):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(d: Draft, *, when: datetime, source: str) -> str:
    account, region = d.registry
    lines = [
        f"# envs.yaml written by `tierup init` on {when:%Y-%m-%d} from {source}.",
        "# Guesses are marked `guessed`: check them, then run `tierup validate --remote`.",
        "# The format: README.md, section Configuration (`tierup schema` prints its JSON Schema).",
        "version: 1",
        "",
        "# the ECR registry the services' images come from",
        f'registry: {{account_id: "{account}", region: {region}}}',
        "",
        "# one image per repository the task definitions name (all but repository are build",
        "# settings: context, dockerfile, target, build_args, platform, labels)",
        "images:",
    ]
    for name, repo in d.images.items():
        users = d.image_users.get(name, [])
        shown = ", ".join(users[:3]) + (f" and {len(users) - 3} more" if len(users) > 3 else "")
        lines.append(f"  {_q(name)}: {{repository: {_q(repo)}}}  # run by {shown}")
    lines += ["", "# the path to production, in order (guessed)", "tiers:"]
    previous = None
    for tier in d.tiers:
        tag = f"{tier.name}-{{timestamp}}" if tier.immutable else tier.name
        source_part = f", from: {_q(previous)}" if previous else ""
        kind = "stamped: each release gets a new tag" if tier.immutable else "a tag that moves"
        lines.append(f'  - {{name: {_q(tier.name)}, tag: "{tag}"{source_part}}}  # {kind}')
        previous = tier.name
    lines += ["", "environments:"]
    for env_name, cluster, guess, services in d.environments:
        lines += [
            f"  {_q(env_name)}:",
            f"    tier: {_q(guess.name)}  # {guess.why}",
            f'    account_id: "{cluster.account.account_id}"',
        ]
        if cluster.account.role_arn:
            lines.append(f"    role_arn: {cluster.account.role_arn}")
        lines += [
            f"    region: {cluster.account.region}",
            f"    cluster: {_q(cluster.name)}",
            "    services:",
        ]
        for service_name, containers in services.items():
            if len(containers) == 1:
                (image,) = containers.values()
                lines.append(f"      {_q(service_name)}: {{image: {_q(image)}}}")
            else:
                body = ", ".join(f"{_q(c)}: {_q(i)}" for c, i in containers.items())
                lines.append(f"      {_q(service_name)}: {{containers: {{{body}}}}}")
    if d.skipped:
        lines += ["", "# not included:"] + [f"#   {s}" for s in d.skipped]
    return "\n".join(lines) + "\n"


def ignores_state(folder: Path) -> bool:
    path = folder / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = {line.strip() for line in text.splitlines()}
    return bool(lines & {".tierup", ".tierup/", "/.tierup", "/.tierup/"})


def add_to_gitignore(folder: Path) -> bool:
    """Add `.tierup/` (the local ledger, locks and sandbox state) to .gitignore; False if it
    was there already."""
    if ignores_state(folder):
        return False
    path = folder / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    path.write_text(text + IGNORE_LINE + "\n", encoding="utf-8")
    return True


def init(
    sessions: AwsSessions,
    *,
    output: Path,
    region: str,
    role_arns: Sequence[str] = (),
    account_ids: Sequence[str] = (),
    role_name: str | None = None,
    clusters: Sequence[str] = (),
    tier_for: dict[str, str] | None = None,
    tier_order: Sequence[str] = (),
    force: bool = False,
    gitignore: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> CommandResult:
    if output.exists() and not force:
        raise InputError(
            f"{output} exists", hint="pass --force to replace it, or -o FILE to write elsewhere"
        )
    targets = accounts(
        sessions, region=region, role_arns=role_arns, account_ids=account_ids, role_name=role_name
    )
    found = discover(sessions, targets, clusters)
    if not any(c.services for c in found):
        where = ", ".join(sorted({t.account_id for t in targets}))
        raise InputError(
            f"no ECS service found in account(s) {where} ({region})",
            hint="pass --region, --cluster, or --role-arn for the accounts that run them",
        )
    d = draft(found, tier_for=dict(tier_for or {}), tier_order=tier_order)
    ids = [t.account_id for t in targets]
    source = ("account " if len(ids) == 1 else "accounts ") + ", ".join(ids) + f" ({region})"
    text = render(d, when=clock(), source=source)
    config_mod.loads(text, str(output))  # what init writes, validate reads
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    result = CommandResult(command="init")
    result.data = {
        "file": str(output),
        "registry": {"account_id": d.registry[0], "region": d.registry[1]},
        "images": d.images,
        "tiers": [
            {"name": t.name, "immutable": t.immutable, "guessed_from": t.why} for t in d.tiers
        ],
        "environments": {
            name: {"tier": g.name, "account_id": c.account.account_id, "cluster": c.name}
            for name, c, g, _ in d.environments
        },
        "skipped": d.skipped,
    }
    result.notes.append(f"wrote {output}: check the guesses, then run `tierup validate --remote`")
    folder = output.parent.resolve()
    if gitignore:
        added = add_to_gitignore(folder)
        result.data["gitignore"] = "added" if added else "present"
        if added:
            result.notes.append(f"added {IGNORE_LINE} to {folder / '.gitignore'}")
    elif ignores_state(folder):
        result.data["gitignore"] = "present"
    else:
        result.data["gitignore"] = "missing"
        result.notes.append(
            f"tierup keeps its local state in {IGNORE_LINE}: add it to .gitignore "
            "(`tierup init --gitignore` does)"
        )
    return result
