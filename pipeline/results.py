"""Result objects every command returns; text and ``--json`` are two renderings of them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tierup.pipeline.exit_codes import ExitCode

if TYPE_CHECKING:
    from tierup.pipeline.config import Environment


class Status(StrEnum):
    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    TIMED_OUT = "timed_out"

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode[self.name]  # each status has the exit code of its name


# item statuses that count as "ended on the new state"
SUCCESS = frozenset(
    {
        "ok",
        "created",
        "moved",
        "unchanged",
        "deployed",
        "completed",
        "skipped",
        "built",
        "pushed",
        "exists",
        "registered",
        "planned",
        "rolled_back",
        "restored",
        "recorded",
        "continued",  # tierup continue
        "stopped",  # tierup stop (without --rollback)
    }
)
TIMEOUT = frozenset({"timed_out"})
# a service left unwritten because a step listed before `deploy` failed in its environment
NOT_DEPLOYED = "not_deployed"


@dataclass
class RollbackOutcome:
    """What a promotion did to put one service back after a failure, and how that went."""

    action: str  # task-definition | force-new-deployment | none
    status: str  # completed | failed | rolled_back_by_ecs | timed_out | deployed | not_rolled_back
    task_definition: str | None = None
    deployment_id: str | None = None
    reason: str | None = None
    error: str | None = None
    events: list[str] = field(default_factory=list)


@dataclass
class ServiceOutcome:
    service: str
    status: str
    task_definition: str | None = None
    previous_task_definition: str | None = None
    deployment_id: str | None = None
    image: str | None = None
    digest: str | None = None
    previous_digest: str | None = None
    reason: str | None = None
    error: str | None = None
    hint: str | None = None
    events: list[str] = field(default_factory=list)
    rollback: RollbackOutcome | None = None


@dataclass
class EnvironmentOutcome:
    name: str
    tier: str
    account_id: str
    region: str
    cluster: str
    strategy: str
    status: str = "ok"
    services: list[ServiceOutcome] = field(default_factory=list)
    error: str | None = None
    hint: str | None = None
    # envs.yaml's `steps`, in list order, each {as, uses, status, duration, output, error}
    steps: list[dict[str, Any]] = field(default_factory=list)
    retries: int = 0  # reads of AWS (rollout polls) that failed and were tried again

    @classmethod
    def of(cls, name: str, env: Environment, strategy: str) -> EnvironmentOutcome:
        """An environment's outcome, before its services are added."""
        return cls(
            name=name,
            tier=env.tier,
            account_id=env.account_id,
            region=env.region,
            cluster=env.cluster,
            strategy=strategy,
        )

    def settle(self) -> None:
        """Derive the environment's status from its services unless an error already set it."""
        if self.error is not None:
            self.status = "failed"
            return
        if self.services:
            self.status = str(overall(s.status for s in self.services))


@dataclass
class ImageOutcome:
    image: str
    repository: str
    status: str
    tag: str | None = None
    digest: str | None = None
    previous_digest: str | None = None
    source: str | None = None
    commit: str | None = None
    note: str | None = None
    error: str | None = None
    hint: str | None = None


def landed(s: ServiceOutcome) -> bool:
    """Did the service's write land: a deployment it started, or nothing to write?

    Not when the write was refused or never made, nor when ECS's circuit breaker put the
    previous version back: the service then stays where it was.
    """
    if s.status in ("planned", "rolled_back_by_ecs"):
        return False
    return not (s.status == "failed" and s.deployment_id is None)


def overall(statuses: Iterable[str]) -> Status:
    """ok / partial / failed / timed_out from item statuses, as DESIGN.md's exit table says."""
    items = list(statuses)
    if not items or all(s in SUCCESS for s in items):
        return Status.OK
    if all(s in SUCCESS or s in TIMEOUT for s in items):
        return Status.TIMED_OUT
    if any(s in SUCCESS or s == "partial" for s in items):
        return Status.PARTIAL
    return Status.FAILED


@dataclass
class CommandResult:
    command: str
    status: Status = Status.OK
    tier: str | None = None
    dry_run: bool = False
    images: list[ImageOutcome] = field(default_factory=list)
    environments: list[EnvironmentOutcome] = field(default_factory=list)
    plan: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    hint: str | None = None
    # a decision item statuses cannot express: an --atomic rollback is a failure (exit 1)
    status_override: Status | None = None
    # the command as given (`deploy --env mb-staging`), for titles and the ledger
    invocation: str | None = None

    @property
    def title(self) -> str:
        """``tierup`` and the command as given (or its name and tier)."""
        if self.invocation:
            return f"tierup {self.invocation}"
        return f"tierup {self.command}" + (f" --tier {self.tier}" if self.tier else "")

    @property
    def exit_code(self) -> ExitCode:
        return self.status.exit_code

    def settle(self) -> Status:
        for env in self.environments:
            env.settle()
        if self.status_override is not None:
            self.status = self.status_override
        elif self.error is not None or any(i.status in ("failed", "conflict") for i in self.images):
            self.status = Status.FAILED
        elif self.environments:
            # the new state is what the environments run: a moved tag alone is not success
            self.status = overall(e.status for e in self.environments)
        else:
            self.status = overall(i.status for i in self.images)
        return self.status

    def count_retries(self, count: Callable[[str], int]) -> None:
        """Each environment's retried polls, from the command's RetryLog (``count(env)``)."""
        for env in self.environments:
            env.retries = count(env.name)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": str(self.status), "command": self.command}
        if self.tier is not None:
            out["tier"] = self.tier
        if self.dry_run:
            out["dry_run"] = True
        if self.images:
            out["images"] = {i.image: _clean(dataclasses.asdict(i)) for i in self.images}
        if self.environments:
            out["environments"] = {
                e.name: {
                    **_clean(
                        {
                            k: v
                            for k, v in dataclasses.asdict(
                                dataclasses.replace(e, services=[])
                            ).items()
                            if k != "services"
                        }
                    ),
                    "services": {s.service: _clean(dataclasses.asdict(s)) for s in e.services},
                }
                for e in self.environments
            }
        if self.plan:
            out["plan"] = self.plan
        if self.notes:
            out["notes"] = self.notes
        out.update(self.data)
        if self.error is not None:
            out["error"] = self.error
            out["hint"] = self.hint
        return out


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _clean(v) if isinstance(v, dict) else v
        for k, v in d.items()
        if v is not None and v != []
    }
