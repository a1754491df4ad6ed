"""What a promotion (and a deploy) plans: per environment, the services' decisions and the
revisions retention deregisters; for the tier, the tag writes. Planning fills these (reads only);
``steps`` lists, item for item, the writes a real run makes: the dry run prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from tierup.pipeline.config import Environment
from tierup.pipeline.config_tiers import Tier
from tierup.pipeline.events import Event
from tierup.pipeline.executor import Where
from tierup.pipeline.results import CommandResult
from tierup.stages import resolve, retag
from tierup.stages import retention as retention_stage
from tierup.stages import strategy as strategy_stage
from tierup.stages.deploy import ImageTarget, ServicePlan
from tierup.stages.errors import TierupError
from tierup.stages.plan import Deploy, Deregister, MoveTag, Plan, Step
from tierup.stages.record import Recorder
from tierup.stages.retention import RetentionPlan
from tierup.stages.types import ServiceState, TaskDefinition, TaskImage


class Review(Protocol):
    """A saved plan's part in a run (``--out`` saves one, ``tierup apply`` runs one).

    The executor hands it what the run planned (a ``PromotionPlan`` or an undo plan, and the
    result whose ``plan`` lists the writes) before its first write: it keeps it, or refuses by
    raising. The run's ledger events go through ``recorder``, so they say where they came from.
    A dry run under review keeps what planning made (a change set) for the apply.
    """

    def planned(self, plan: object, result: CommandResult) -> None: ...

    def recorder(self, inner: Recorder[Event]) -> Recorder[Event]: ...


# the plan actions that register a revision (``unpin`` names the tier's tag again; a
# CodeDeploy deployment deploys a revision registered for it)
REGISTERS = ("register-task-definition", "unpin", "codedeploy-deployment")


@dataclass
class EnvPlan:
    name: str
    env: Environment
    strategy: str
    pin: str
    services: list[ServicePlan] = field(default_factory=list)
    service_errors: dict[str, TierupError] = field(default_factory=dict)
    task_defs: dict[str, TaskDefinition] = field(default_factory=dict)
    running: dict[str, list[TaskImage]] = field(default_factory=dict)
    error: TierupError | None = None
    states: dict[str, ServiceState] = field(default_factory=dict)
    retention: list[RetentionPlan] = field(default_factory=list)
    # what the preflight could not read: (target, error); a promotion writes nothing then
    unreadable: list[tuple[str, TierupError]] = field(default_factory=list)

    def registering(self, family: str | None = None) -> list[ServicePlan]:
        """The services that register a new revision (in ``family``, when given)."""
        return [
            s
            for s in self.services
            if s.action in REGISTERS
            and (family is None or retention_stage.family_of(s.task_definition) == family)
        ]

    def where(self) -> Where:
        """Where the executor runs this environment's steps."""
        return Where(self.name, self.env, self.strategy, self.task_defs)

    def deploy_steps(self) -> list[Deploy]:
        """One step per write: a service, or the services of one stack (none if unreadable)."""
        if self.error is not None:
            return []
        return [Deploy(self.name, tuple(g)) for g in strategy_stage.groups(self.services)]

    def retention_steps(self) -> list[Deregister]:
        """The deregistrations retention plans (one per family)."""
        return [
            Deregister(
                environment=self.name,
                cluster=self.env.cluster,
                service=next((s.service for s in self.registering(rp.family)), None),
                family=rp.family,
                keep=rp.keep,
                task_definitions=tuple(rp.deregister),
            )
            for rp in self.retention
            if rp.deregister
        ]


@dataclass
class PromotionPlan:
    command: str
    tier: Tier
    tag: str
    resolved: list[resolve.Resolved]
    retags: list[retag.RetagPlan]
    targets: dict[str, ImageTarget]
    envs: list[EnvPlan]
    deploy: bool
    # environments left out with --skip-unreachable: neither read nor deployed
    skipped: list[tuple[str, Environment, str]] = field(default_factory=list)
    invocation: str | None = None  # the command as given, when not `<command> --tier T`

    def steps(self) -> Plan:
        """The writes a real run makes, in order: tags, then deploys, then retention."""
        steps: list[Step] = [MoveTag.of(r) for r in self.retags]
        if self.deploy:
            for e in self.envs:
                steps.extend(e.deploy_steps())
            for e in self.envs:
                steps.extend(e.retention_steps())
        return Plan(tuple(steps))

    def where(self) -> dict[str, Where]:
        return {e.name: e.where() for e in self.envs}
