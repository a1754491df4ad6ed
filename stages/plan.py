"""A plan: a frozen list of typed, frozen steps, each one write (or one thing followed).

Every writing command plans first, reading only, and gets a ``Plan``; ``describe()`` is what
``--dry-run`` prints and ``--json`` lists, item for item the writes a real run makes. An
executor runs the steps: a registry step against the registry, an environment's step against
that environment's ``Context`` and strategy (``apply``), and then follows what they started.

- ``MoveTag``: a tag write (``registry:PutImage``): a promotion's retag, or a tag moved back;
- ``Deploy``: one write of a strategy's deploy (a service, or the services of one stack);
- ``Undo``: one service put back on a revision by ECS's rolling update (register a copy,
  update the service, force a new deployment, stop a running deployment with its rollback);
  ``follow`` (ECS already goes there) writes nothing and is only followed;
- ``Restore``: services put back on revisions through a strategy's own write (a change set, a
  CodeDeploy deployment);
- ``Revert``: what a run applied, put back through the strategy (``Strategy.rollback``);
- ``Redeploy``: a new deployment of the revision a service runs (it follows a tag moved back);
- ``Deregister``: old revisions of a family deregistered (retention).

    plan = Plan((MoveTag.of(retag_plan), Deploy("dev", (service_plan,))))
    plan.describe()  # -> [{"write": "registry:PutImage", ...}, {"write": "ecs:...", ...}]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from tierup.stages import rollback as rb
from tierup.stages.adapters.registry import Registry, TagWrite
from tierup.stages.deploy import Applied, DeployError, ServicePlan
from tierup.stages.retag import RetagPlan
from tierup.stages.strategy import Context, RestoreTarget, Running, Strategy

S = TypeVar("S")


class Step(Protocol):
    """One instruction of a plan: it says what it writes (``describe``) and whether it does."""

    @property
    def writes(self) -> bool: ...

    def describe(self) -> dict[str, Any]: ...


class EnvironmentStep(Step, Protocol):
    """A step of one environment, run against its context and strategy."""

    @property
    def environment(self) -> str: ...

    @property
    def services(self) -> tuple[str, ...]: ...

    def apply(self, ctx: Context, strategy: Strategy) -> dict[str, Applied]: ...

    def said(self, service: str, done: Applied) -> str:
        """What the step started for ``service``, in words (a progress line)."""
        ...


@dataclass(frozen=True)
class MoveTag:
    """Point ``tag`` of ``repository`` at ``digest`` (``from_digest``: where it was)."""

    image: str
    repository: str
    tag: str
    digest: str
    from_digest: str | None
    action: TagWrite  # created | moved (| unchanged: planned, not written)
    retag: RetagPlan | None = field(default=None, compare=False, repr=False)
    back: bool = False  # a tag moved back to the digest it had before a run

    @classmethod
    def of(cls, plan: RetagPlan) -> MoveTag:
        return cls(
            plan.image,
            plan.repository,
            plan.tag,
            plan.manifest.digest,
            plan.current_digest,
            plan.action,
            retag=plan,
        )

    @property
    def writes(self) -> bool:
        return self.action is not TagWrite.UNCHANGED

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "write": "registry:PutImage",
            "image": self.image,
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
            "from_digest": self.from_digest,
            "action": "moved-back" if self.back else str(self.action),
        }
        return out

    def apply_back(self, registry: Registry) -> TagWrite:
        """A tag moved back: point it at ``digest`` again, as the registry keeps that manifest."""
        return rb.rollback_tag(registry, self.repository, self.tag, self.digest)


@dataclass(frozen=True)
class Deploy:
    """One write of a strategy's deploy: a service, or the services of one stack."""

    environment: str
    plans: tuple[ServicePlan, ...]

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(p.service for p in self.plans)

    @property
    def writes(self) -> bool:
        return any(p.writes for p in self.plans)

    def describe(self) -> dict[str, Any]:
        return self.plans[0].describe()  # the services of one stack: one write, said once

    def apply(self, ctx: Context, strategy: Strategy) -> dict[str, Applied]:
        return strategy.apply(ctx, list(self.plans))

    def said(self, service: str, done: Applied) -> str:
        action = next(p.action for p in self.plans if p.service == service)
        return f"{action} -> deployment {done.deployment_id}"


@dataclass(frozen=True)
class Undo:
    """One service back on a revision through ECS's rolling update (or a stopped deployment)."""

    environment: str
    plan: rb.RollbackPlan

    @property
    def services(self) -> tuple[str, ...]:
        return (self.plan.service,)

    @property
    def writes(self) -> bool:
        return self.plan.writes

    def describe(self) -> dict[str, Any]:
        return self.plan.describe()

    def apply(self, ctx: Context, strategy: Strategy) -> dict[str, Applied]:
        p = self.plan
        if p.action == rb.STOP and p.deployment is not None:
            stop = getattr(strategy, "stop_running", None)
            if stop is None:
                raise DeployError(f"strategy {strategy.name} cannot stop a running deployment")
            running = Running(p.deployment, "", p.target_task_definition)
            done: Applied = stop(
                ctx, p.service, running, previous_task_definition=p.current_task_definition
            )
            return {p.service: done}
        return {p.service: rb.apply_rollback(ctx.ecs, p)}

    def said(self, service: str, done: Applied) -> str:
        return f"{self.plan.action} -> deployment {done.deployment_id}"


@dataclass(frozen=True)
class Restore:
    """Services back on revisions through a strategy's own write (one write for the group)."""

    environment: str
    strategy: str
    plans: tuple[rb.RollbackPlan, ...]
    text: Mapping[str, Any] = field(compare=False)  # the strategy's description of its write

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(p.service for p in self.plans)

    @property
    def writes(self) -> bool:
        return True

    def describe(self) -> dict[str, Any]:
        return dict(self.text)

    def targets(self) -> dict[str, RestoreTarget]:
        return {
            p.service: RestoreTarget(
                p.target_task_definition, {c: dict(p.images)[c] for c in p.pinned}
            )
            for p in self.plans
        }

    def apply(self, ctx: Context, strategy: Strategy) -> dict[str, Applied]:
        return strategy.restore(ctx, self.targets())

    def said(self, service: str, done: Applied) -> str:
        return f"{self.strategy} -> {done.deployment_id or 'nothing to do'}"


@dataclass(frozen=True)
class Revert:
    """What a run applied to these services, put back through the strategy's ``rollback``."""

    environment: str
    cluster: str
    applied: tuple[Applied, ...]
    action: str  # task-definition | the strategy's name (a stack, a CodeDeploy group)
    reason: str
    # ECS's circuit breaker already took every service back there: the rollback only follows
    by_ecs: bool = False

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(a.service for a in self.applied)

    @property
    def writes(self) -> bool:
        return not self.by_ecs

    def describe(self) -> dict[str, Any]:
        return {
            "write": "rollback",
            "environment": self.environment,
            "cluster": self.cluster,
            "services": list(self.services),
            "action": self.action,
            "reason": self.reason,
            "task_definition": self.applied[0].previous_task_definition,
        }

    def apply(self, ctx: Context, strategy: Strategy) -> dict[str, Applied]:
        return strategy.rollback(ctx, {a.service: a for a in self.applied})

    def said(self, service: str, done: Applied) -> str:
        return f"rollback ({self.action}) -> deployment {done.deployment_id or 'none needed'}"


@dataclass(frozen=True)
class Redeploy:
    """A new deployment of the revision ``service`` runs: it picks up a tag moved back."""

    environment: str
    cluster: str
    service: str
    previous_task_definition: str  # what the run being undone had deployed
    reason: str

    @property
    def services(self) -> tuple[str, ...]:
        return (self.service,)

    @property
    def writes(self) -> bool:
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "write": "ecs:UpdateService",
            "environment": self.environment,
            "cluster": self.cluster,
            "service": self.service,
            "action": "force-new-deployment",
            "reason": self.reason,
        }

    def apply(self, ctx: Context, strategy: Strategy) -> dict[str, Applied]:
        state = ctx.ecs.force_new_deployment(self.cluster, self.service)
        primary = state.primary
        return {
            self.service: Applied(
                self.service,
                primary.id if primary else None,
                state.task_definition,
                self.previous_task_definition,
            )
        }

    def said(self, service: str, done: Applied) -> str:
        return f"rollback (force-new-deployment) -> deployment {done.deployment_id}"


@dataclass(frozen=True)
class Deregister:
    """Old revisions of ``family`` deregistered, keeping the newest ``keep`` (retention)."""

    environment: str
    cluster: str
    service: str | None  # the service whose new revision made this family grow
    family: str
    keep: int
    task_definitions: tuple[str, ...]

    @property
    def writes(self) -> bool:
        return bool(self.task_definitions)

    def describe(self) -> dict[str, Any]:
        revisions = ", ".join(a.rsplit(":", 1)[-1] for a in self.task_definitions)
        return {
            "write": "ecs:DeregisterTaskDefinition",
            "environment": self.environment,
            "cluster": self.cluster,
            "service": self.service,
            "family": self.family,
            "action": "deregister-task-definitions",
            "reason": f"retention: keep {self.keep} revisions of {self.family}",
            "task_definitions": list(self.task_definitions),
            "summary": (
                f"{self.environment}: deregister {len(self.task_definitions)} old revision(s) of "
                f"{self.family} (revisions {revisions}; retention {self.keep})"
            ),
        }


@dataclass(frozen=True)
class Plan:
    """The steps of one command, in order; only those that write are described."""

    steps: tuple[Step, ...] = ()

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def writing(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.writes)

    def describe(self) -> list[dict[str, Any]]:
        """What ``--dry-run`` prints and ``--json`` lists: one item per write."""
        return [s.describe() for s in self.writing]

    def of_type(self, kind: type[S]) -> list[S]:
        return [s for s in self.steps if isinstance(s, kind)]

    def in_environments(self) -> list[EnvironmentStep]:
        """The steps an environment's context and strategy run (not the registry's)."""
        return [s for s in self.steps if isinstance(s, ENVIRONMENT_STEPS)]


ENVIRONMENT_STEPS = (Deploy, Undo, Restore, Revert, Redeploy)
