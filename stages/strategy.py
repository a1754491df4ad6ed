"""How an environment picks up a new image: one interface, four strategies.

A strategy plans one environment (reads only: the plan is what ``--dry-run`` prints), applies
the plans that write (one group of services at a time: a service, or the services of one
stack), waits for the writes' own answer, and rolls them back. This module is the protocol and
the types every strategy shares; the implementations import only it, and
``stages.all_strategies`` imports them all and is the registry. The pipeline runs every
environment through ``all_strategies.get(name)`` and never needs to know which strategy it drives:

- ``force-new-deployment`` and ``task-definition``: ECS's rolling update (``stages.deploy``,
  followed by deployment id through ``stages.wait``, rolled back to the previous revision by
  ``stages.rollback.rollback_service``); ``restore`` is not theirs: a rolling restore is
  planned per service by ``stages.rollback`` (``plan_rollback`` -> ``apply_rollback``);
- ``cloudformation``: a change set of the stack's image parameter (``stages.cloudformation``);
- ``codedeploy``: a blue/green CodeDeploy deployment with an AppSpec (``stages.codedeploy``);
- ``ecs``: ECS's own blue/green, canary or linear deployment (``stages.ecs_native``).

    from tierup.stages import all_strategies
    s = all_strategies.get("cloudformation")
    planned = s.plan(ctx, target)
    applied = s.apply(ctx, [p for p in planned.services if p.writes])
    states = s.wait(ctx, applied, timeout=900)

What the pipeline must know of a strategy it learns from the strategy's ``capabilities`` (a
``Capabilities``; a strategy that declares none has the defaults) and from a few optional
methods that only some strategies have (``describe_rollback``, ``plan_undo``, ``undo_steps``,
``validate_remote``, ``running``, ``stop``): never from its name. A strategy a library user
registers thus gets the same treatment as the built-in one whose capabilities it declares.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from tierup.stages import deploy as deploy_stage
from tierup.stages import wait as wait_stage
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.deploy import Applied, ImageTarget, ServicePlan
from tierup.stages.errors import TierupError
from tierup.stages.types import ServiceState, TaskDefinition, TaskImage

if TYPE_CHECKING:  # their adapters are imported by the strategies that use them, when used
    from tierup.stages.adapters.cloudformation import CloudFormation
    from tierup.stages.adapters.codedeploy import CodeDeploy

OnChange = Callable[[wait_stage.RolloutState], None]
T = TypeVar("T")

# the settings a strategy may need: an attribute of ``Target`` and ``Settings`` (and the
# environment's block of that name in envs.yaml)
SETTINGS = ("cloudformation", "codedeploy", "ecs")
# how `continue` and `stop` reach a strategy's deployments
SERVICE_DEPLOYMENTS = "service-deployments"  # ECS's ServiceDeployment API
DEPLOYMENT_GROUP = "deployment-group"  # the active deployment of a CodeDeploy group


@dataclass(frozen=True)
class Capabilities:
    """What a strategy declares, so that the pipeline treats it right without its name."""

    # it deploys by forcing a new deployment of the same revision: its services follow the
    # tier's tag, which must be mutable, and every task definition must name that tag
    follows_tag: bool = False
    # rollback and restore go through its own writes (``rollback``, ``restore``): update_service
    # would drift a stack, and CodeDeploy's services refuse it
    owns_rollback: bool = False
    # one write moves every service of an environment (a stack's shared image parameter)
    one_write: bool = False
    # its services name an immutable reference (a commit tag, a digest), not the tier's tag
    immutable_refs: bool = False
    # the settings it needs: one of SETTINGS, or None
    settings: str | None = None
    # how `continue` / `stop` (and `where`'s paused deployments) reach its deployments: one of
    # SERVICE_DEPLOYMENTS, DEPLOYMENT_GROUP, or None (nothing to continue or stop)
    release_control: str | None = None
    # a rollback of a service whose deployment still runs stops it with its rollback
    # (``running`` then ``stop``) instead of deploying the earlier revision
    stops_running: bool = False


def capabilities(strategy: object) -> Capabilities:
    """``strategy.capabilities``, or the defaults for a strategy that declares none."""
    declared = getattr(strategy, "capabilities", None)
    return declared if isinstance(declared, Capabilities) else Capabilities()


@dataclass(frozen=True)
class StackSettings:
    """``cloudformation: {stack, image_parameter}`` of an environment."""

    stack: str
    image_parameter: str
    # planning from a saved plan: read the change set that plan made (None: it made none, the
    # stack had nothing to change) instead of making one, so that the one reviewed is executed
    change_set: str | None = None
    from_plan: bool = False


@dataclass(frozen=True)
class CodeDeploySettings:
    """``codedeploy: {application, deployment_group, ...}`` of an environment."""

    application: str
    deployment_group: str
    deployment_config: str | None = None
    container: str | None = None
    container_port: int | None = None
    hooks: tuple[tuple[str, str], ...] = ()  # lifecycle event -> Lambda function


@dataclass(frozen=True)
class EcsSettings:
    """``ecs: {mode, ...}`` of an environment, as ECS's ``deploymentConfiguration`` keys."""

    configuration: Mapping[str, Any]  # strategy, bakeTimeInMinutes, lifecycleHooks, ...
    alternate_target_group: str | None = None
    test_listener_rule: str | None = None


@dataclass(frozen=True)
class Settings:
    """An environment's strategy settings; each strategy reads the one it needs."""

    cloudformation: StackSettings | None = None
    codedeploy: CodeDeploySettings | None = None
    ecs: EcsSettings | None = None


@dataclass(frozen=True)
class Running:
    """A deployment of a service that has not ended, which a rollback can stop."""

    deployment: str
    description: str
    source_task_definition: str | None = None  # what stopping it with its rollback goes back to


@dataclass(frozen=True)
class ServiceTarget:
    """One service of an environment, as it is now, and what it should run."""

    service: str
    wanted: Mapping[str | None, ImageTarget]  # container (None: pick it) -> target
    state: ServiceState
    task_def: TaskDefinition
    running: tuple[TaskImage, ...] = ()
    tag_moved: bool = False
    # what happened to the tag, in words (a new stamp, a tag moved back), for the plan's reason
    tag_change: str | None = None


@dataclass(frozen=True)
class Target:
    """What a strategy plans: one environment's services and its strategy settings."""

    environment: str
    cluster: str
    strategy: str
    pin: str
    services: tuple[ServiceTarget, ...]
    cloudformation: StackSettings | None = None
    codedeploy: CodeDeploySettings | None = None
    ecs: EcsSettings | None = None


@dataclass
class Context:
    """The clients and clock one environment's deploy uses (all injected)."""

    environment: str
    cluster: str
    ecs: Ecs
    client: Callable[[str], Any]  # a boto3 client of the environment's account and region
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    interval: float = 5.0
    task_defs: dict[str, TaskDefinition] = field(default_factory=dict)
    # where failed polls are counted, by environment (shared by a command's contexts)
    retries: wait_stage.RetryLog | None = None
    # the environment's strategy settings, for writes that start from a target, not a plan
    stack: StackSettings | None = None
    route: CodeDeploySettings | None = None
    native: EcsSettings | None = None
    _cloudformation: CloudFormation | None = None
    _codedeploy: CodeDeploy | None = None

    def cloudformation(self) -> CloudFormation:
        if self._cloudformation is None:
            from tierup.stages.adapters.cloudformation import CloudFormation

            self._cloudformation = CloudFormation(self.client("cloudformation"))
        return self._cloudformation

    def codedeploy(self) -> CodeDeploy:
        if self._codedeploy is None:
            from tierup.stages.adapters.codedeploy import CodeDeploy

            self._codedeploy = CodeDeploy(self.client("codedeploy"))
        return self._codedeploy

    def poll(self, read: Callable[[], T], *, what: str, grace: float = 60.0) -> T:
        """``read()`` after a wait, a transient failure tried again for ``grace`` seconds."""
        return wait_stage.poll(
            read,
            what=what,
            deadline=self.clock() + grace,
            sleep=self.sleep,
            clock=self.clock,
            interval=self.interval,
            retries=self.retries,
            target=self.environment,
        )

    def task_definition(self, arn: str) -> TaskDefinition:
        td = self.task_defs.get(arn)
        if td is None:
            td = self.ecs.describe_task_definition(arn)
            self.task_defs[arn] = td
        return td


@dataclass(frozen=True)
class RestoreTarget:
    """What a service should run again (a rollback to a revision, a snapshot's restore).

    ``images`` gives, per container, the exact reference to run where it differs from what the
    revision names (a tag that has moved on since, pinned to the digest that ran then).
    """

    task_definition: str
    images: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Planned:
    """A strategy's plan of one environment: per service, a plan or why it cannot deploy."""

    services: list[ServicePlan] = field(default_factory=list)
    errors: dict[str, TierupError] = field(default_factory=dict)


class Strategy(Protocol):
    name: str

    def plan(self, ctx: Context, target: Target) -> Planned:
        """Decide, reading only (a CloudFormation preview is a change set, deleted by discard)."""
        ...

    def apply(self, ctx: Context, plans: Sequence[ServicePlan]) -> dict[str, Applied]:
        """Write one group's plans; per service, what the write started."""
        ...

    def wait(
        self,
        ctx: Context,
        applied: Mapping[str, Applied],
        *,
        timeout: float,
        on_change: OnChange | None = None,
    ) -> dict[str, wait_stage.RolloutState]:
        """Follow what ``apply`` (or ``rollback``) started until it is done or out of time."""
        ...

    def rollback(self, ctx: Context, applied: Mapping[str, Applied]) -> dict[str, Applied]:
        """Put the services back where they were before ``applied``; follow it with ``wait``."""
        ...

    def restore(self, ctx: Context, targets: Mapping[str, RestoreTarget]) -> dict[str, Applied]:
        """Put the services on the given revisions (one write per group); follow with ``wait``."""
        ...

    def discard(self, ctx: Context, plans: Sequence[ServicePlan]) -> None:
        """Drop what planning left behind when the plan is not applied (a dry run)."""
        ...


def describe_rollback(strategy: Strategy, applied: Applied) -> str:
    """What ``strategy.rollback`` of ``applied`` writes, in words: the strategy's own
    ``describe_rollback`` where it has one."""
    own = getattr(strategy, "describe_rollback", None)
    if own is not None:
        return str(own(applied))
    return f"{strategy.name} back to the revision it ran before, {applied.previous_task_definition}"


def groups(plans: Sequence[ServicePlan]) -> list[list[ServicePlan]]:
    """The plans that write, one list per write (a service, or the services of one stack)."""
    out: dict[str, list[ServicePlan]] = {}
    for p in plans:
        if p.writes:
            out.setdefault(p.group or f"service:{p.service}", []).append(p)
    return list(out.values())


def plan_rolling(target: Target, service: ServiceTarget, strategy: str) -> ServicePlan:
    """``stages.deploy``'s plan of one service of ``target`` under a rolling ``strategy``."""
    return deploy_stage.plan_service(
        environment=target.environment,
        strategy=strategy,
        pin=target.pin,
        service=service.service,
        wanted=dict(service.wanted),
        state=service.state,
        task_def=service.task_def,
        running=list(service.running),
        tag_moved=service.tag_moved,
        tag_change=service.tag_change,
    )
