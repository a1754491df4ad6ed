"""What a promotion (and a deploy) plans: per environment, the services' decisions and the
revisions retention deregisters; for the tier, the tag writes. Planning fills these (reads only);
``steps`` lists, item for item, the writes a real run makes: the dry run prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from tierup.pipeline.config import Environment
from tierup.pipeline.config_tiers import Tier
from tierup.pipeline.events import Event
from tierup.pipeline.results import CommandResult
from tierup.stages import resolve, retag
from tierup.stages import retention as retention_stage
from tierup.stages import strategy as strategy_stage
from tierup.stages.adapters.registry import TagWrite
from tierup.stages.deploy import ImageTarget, ServicePlan
from tierup.stages.errors import TierupError
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

    def retention_steps(self) -> list[dict[str, Any]]:
        """The deregistrations retention plans, as plan steps (one per family)."""
        out: list[dict[str, Any]] = []
        for rp in self.retention:
            if not rp.deregister:
                continue
            service = next((s.service for s in self.registering(rp.family)), None)
            out.append(
                {
                    "write": "ecs:DeregisterTaskDefinition",
                    "environment": self.name,
                    "cluster": self.env.cluster,
                    "service": service,
                    "family": rp.family,
                    "action": "deregister-task-definitions",
                    "reason": f"retention: keep {rp.keep} revisions of {rp.family}",
                    "task_definitions": list(rp.deregister),
                    "summary": (
                        f"{self.name}: deregister {len(rp.deregister)} old revision(s) of "
                        f"{rp.family} (revisions "
                        f"{', '.join(a.rsplit(':', 1)[-1] for a in rp.deregister)}; "
                        f"retention {rp.keep})"
                    ),
                }
            )
        return out


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

    def steps(self) -> list[dict[str, Any]]:
        """The writes a real run makes, in order."""
        out: list[dict[str, Any]] = []
        for r in self.retags:
            if r.action is not TagWrite.UNCHANGED:
                out.append(
                    {
                        "write": "registry:PutImage",
                        "image": r.image,
                        "repository": r.repository,
                        "tag": r.tag,
                        "digest": r.manifest.digest,
                        "from_digest": r.current_digest,
                        "action": str(r.action),
                    }
                )
        if self.deploy:
            for e in self.envs:
                for group in strategy_stage.groups(e.services):
                    out.append(group[0].describe())  # the services of one stack: one write
            for e in self.envs:
                out.extend(e.retention_steps())
        return out
