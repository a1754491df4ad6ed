"""What runs in the accounts `tierup init` reads: clusters, services, the images they name."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from tierup.pipeline.sessions import AwsSessions
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.errors import InputError
from tierup.stages.parallel import each
from tierup.stages.types import ImageRef

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
