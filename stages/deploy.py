"""Deploy one ECS service by its environment's strategy: decide (reads), then apply (writes).

``plan_service`` reads nothing itself: it decides from the service's state, task definition
and running tasks, so that ``--dry-run`` shows exactly what ``apply`` will write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tierup.stages.adapters.ecs import Ecs
from tierup.stages.adapters.registry import Registry
from tierup.stages.errors import TierupError
from tierup.stages.types import ContainerImage, ImageRef, ServiceState, TaskDefinition, TaskImage

FORCE_NEW_DEPLOYMENT = "force-new-deployment"
TASK_DEFINITION = "task-definition"
REGISTER = "register-task-definition"
UNPIN = "unpin"

# RegisterTaskDefinition accepts these; describe_task_definition also returns read-only keys
READ_ONLY_KEYS = frozenset(
    {
        "taskDefinitionArn",
        "revision",
        "status",
        "requiresAttributes",
        "compatibilities",
        "registeredAt",
        "registeredBy",
        "deregisteredAt",
        "deleteRequestedAt",
    }
)


class DeployError(TierupError):
    """A service cannot be deployed as configured (its own error, others go on)."""


@dataclass(frozen=True)
class ImageTarget:
    """What a service should run for one image after the promotion."""

    image: str
    repository: str
    tag: str
    digest: str
    tag_uri: str
    digest_uri: str
    commit_uri: str | None = None  # the commit SHA tag on the same digest, when known
    immutable_tag: bool = False  # the tier's tag is a stamp: it never moves

    @classmethod
    def at(
        cls,
        registry: Registry,
        image: str,
        repository: str,
        tag: str,
        digest: str,
        *,
        commit: str | None,
        immutable_tag: bool,
    ) -> ImageTarget:
        """The target ``tag`` of ``repository`` names, on ``digest``, with the registry's URIs."""
        return cls(
            image=image,
            repository=repository,
            tag=tag,
            digest=digest,
            tag_uri=registry.image_uri(repository, tag),
            digest_uri=registry.image_uri(repository, digest),
            commit_uri=registry.image_uri(repository, commit) if commit else None,
            immutable_tag=immutable_tag,
        )

    @property
    def immutable_uri(self) -> str:
        """A reference that names this digest for good: the stamp, the commit tag, or the digest.

        Strategies that only act when a reference changes (a stack parameter) need one; a
        mutable tier tag would read the same at every promotion.
        """
        if self.immutable_tag:
            return self.tag_uri
        return self.commit_uri or self.digest_uri


@dataclass(frozen=True)
class ContainerTarget:
    container: str
    target: ImageTarget
    reference: str  # what the task definition should name (tag_uri or digest_uri)


@dataclass(frozen=True)
class ServicePlan:
    """One service's decision: a frozen instruction the executor runs or prints."""

    environment: str
    cluster: str
    service: str
    strategy: str
    action: str  # force-new-deployment | register-task-definition | skip
    reason: str
    task_definition: str
    containers: tuple[ContainerTarget, ...]
    previous_digests: tuple[tuple[str, str | None], ...] = ()
    # services whose write is one (the services of one stack): planned, applied and rolled
    # back together, and listed once in the plan
    group: str | None = None
    # a strategy's own description of the write and its own plan (a change set, an AppSpec)
    step: Mapping[str, Any] | None = field(default=None, compare=False)
    payload: object = field(default=None, compare=False, repr=False)

    @property
    def writes(self) -> bool:
        return self.action != "skip"

    def describe(self) -> dict[str, Any]:
        if self.step is not None:
            return dict(self.step)
        out: dict[str, Any] = {
            "write": "ecs:UpdateService"
            if self.action == FORCE_NEW_DEPLOYMENT
            else ("ecs:RegisterTaskDefinition+UpdateService" if self.writes else "none"),
            "environment": self.environment,
            "cluster": self.cluster,
            "service": self.service,
            "action": self.action,
            "reason": self.reason,
            "task_definition": self.task_definition,
        }
        if self.action in (REGISTER, UNPIN):
            out["images"] = {c.container: c.reference for c in self.containers}
        return out


@dataclass(frozen=True)
class Applied:
    service: str
    deployment_id: str | None
    task_definition: str
    previous_task_definition: str
    registered: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def pick_container(service: str, wanted: str | None, task_def: TaskDefinition) -> str:
    """The container an ``image:`` entry means: named, the only one, or named like the service."""
    names = [c.name for c in task_def.containers]
    if wanted is not None:
        if wanted not in names:
            raise DeployError(
                f"service {service!r}: task definition {task_def.arn} has no container {wanted!r} "
                f"(containers: {', '.join(names)})",
                hint="fix `container` in envs.yaml",
            )
        return wanted
    if len(names) == 1:
        return names[0]
    if service in names:
        return service
    raise DeployError(
        f"service {service!r}: task definition {task_def.arn} has {len(names)} containers "
        f"({', '.join(names)}) and none is named {service!r}",
        hint="name the container: `{image: NAME, container: NAME}` or use `containers:`",
    )


def names_reference(image: str, reference: str) -> bool:
    """Does a task definition's image string name ``reference`` (same repo and tag/digest)?"""
    a, b = ImageRef.parse(image), ImageRef.parse(reference)
    if a.repository != b.repository:
        return False
    if a.registry and b.registry and a.registry != b.registry:
        return False
    if b.digest:
        return a.digest == b.digest
    return a.digest is None and (a.tag or "latest") == (b.tag or "latest")


def plan_service(
    *,
    environment: str,
    strategy: str,
    pin: str,
    service: str,
    wanted: dict[str | None, ImageTarget],
    state: ServiceState,
    task_def: TaskDefinition,
    running: list[TaskImage],
    tag_moved: bool,
    tag_change: str | None = None,
) -> ServicePlan:
    """Decide what to do with one service; raise DeployError when it cannot be deployed."""
    if strategy not in (FORCE_NEW_DEPLOYMENT, TASK_DEFINITION):
        raise DeployError(
            f"service {service!r}: plan_service plans the rolling strategies, not {strategy!r}",
            hint="plan an environment with tierup.stages.all_strategies.get(strategy).plan",
        )
    containers: list[ContainerTarget] = []
    for wanted_container, target in wanted.items():
        name = pick_container(service, wanted_container, task_def)
        ref = (
            target.digest_uri
            if (pin == "digest" and strategy == TASK_DEFINITION)
            else target.tag_uri
        )
        containers.append(ContainerTarget(container=name, target=target, reference=ref))

    current_refs = {c.container: task_def.image_of(c.container) or "" for c in containers}
    names_target = all(names_reference(current_refs[c.container], c.reference) for c in containers)
    prev = tuple((c.container, agreed_digest(running, c.container)) for c in containers)

    pinned = [c for c in containers if is_pinned_copy(current_refs[c.container], c.reference)]
    if strategy == FORCE_NEW_DEPLOYMENT:
        wrong = [
            c
            for c in containers
            if not names_reference(current_refs[c.container], c.reference) and c not in pinned
        ]
        if wrong:
            c = wrong[0]
            raise DeployError(
                f"service {service!r}: task definition {task_def.arn} names "
                f"{current_refs[c.container] or 'no image'} for container {c.container!r}, not the "
                f"tier's tag {c.reference}; a forced deployment would not change its image",
                hint=f"register a revision naming {c.reference}, or use strategy task-definition",
            )
    action = (
        FORCE_NEW_DEPLOYMENT if strategy == FORCE_NEW_DEPLOYMENT else "register-task-definition"
    )
    if strategy == TASK_DEFINITION and names_target and not tag_moved:
        # the revision already names the target: a forced deployment is enough if one is needed
        action = FORCE_NEW_DEPLOYMENT

    reason = _why_deploy(state, containers, running, names_target, tag_moved, tag_change)
    if pinned:
        action = UNPIN
        # a rollback or restore pinned the tier's tag to a digest; name the tag again
        refs = ", ".join(f"{current_refs[c.container]} -> {c.reference}" for c in pinned)
        reason = f"unpinned: {refs} ({reason})"
    if reason is None:
        return ServicePlan(
            environment=environment,
            cluster=state.cluster,
            service=service,
            strategy=strategy,
            action="skip",
            reason="already runs the target",
            task_definition=task_def.arn,
            containers=tuple(containers),
            previous_digests=prev,
        )
    return ServicePlan(
        environment=environment,
        cluster=state.cluster,
        service=service,
        strategy=strategy,
        action=action,
        reason=reason,
        task_definition=task_def.arn,
        containers=tuple(containers),
        previous_digests=prev,
    )


def is_pinned_copy(current: str, wanted: str) -> bool:
    """Does ``current`` pin by digest the repository that ``wanted`` names by tag?"""
    if not current:
        return False
    a, b = ImageRef.parse(current), ImageRef.parse(wanted)
    if a.digest is None or b.digest is not None or a.tag is not None:
        return False
    return a.repository == b.repository and (
        not a.registry or not b.registry or a.registry == b.registry
    )


def agreed_digest(running: list[TaskImage], container: str) -> str | None:
    """The digest every running task reports for ``container``; None if they disagree or none."""
    digests = {t.digest for t in running if t.container == container}
    if len(digests) == 1:
        return next(iter(digests))
    return None


def _why_deploy(
    state: ServiceState,
    containers: list[ContainerTarget],
    running: list[TaskImage],
    names_target: bool,
    tag_moved: bool,
    tag_change: str | None = None,
) -> str | None:
    """None when the service may be skipped (DESIGN.md's re-run rule), else why it deploys."""
    if tag_moved:
        return tag_change or "the tag moved to a new digest"
    if not names_target:
        return "its task definition does not name the target"
    primary = state.primary
    if primary is None:
        return "it has no PRIMARY deployment"
    if len(state.deployments) > 1:
        return f"it has {len(state.deployments)} deployments (a rollout is not finished)"
    if primary.rollout_state not in (None, "COMPLETED"):
        return f"its PRIMARY deployment is {primary.rollout_state}"
    if primary.running != primary.desired:
        return f"it runs {primary.running} of {primary.desired} tasks"
    if state.desired == 0:
        return None
    for c in containers:
        reported = [t.digest for t in running if t.container == c.container]
        if not reported or any(d is None for d in reported):
            return "its tasks do not report what they run"
        if any(d != c.target.digest for d in reported):
            return f"container {c.container!r} runs another digest"
    return None


def registration_input(ecs: Ecs, task_def: TaskDefinition) -> dict[str, Any]:
    """Every field RegisterTaskDefinition accepts, copied from a described task definition."""
    shape = ecs.client.meta.service_model.operation_model("RegisterTaskDefinition").input_shape
    accepted = set(shape.members)
    params = {k: v for k, v in task_def.raw.items() if k in accepted and k not in READ_ONLY_KEYS}
    tags = task_def.raw.get("tags")
    if tags:
        params["tags"] = tags
    else:
        params.pop("tags", None)
    return params


def with_images(params: dict[str, Any], images: dict[str, str]) -> dict[str, Any]:
    out = dict(params)
    out["containerDefinitions"] = [
        {**c, "image": images[c["name"]]} if c.get("name") in images else dict(c)
        for c in params.get("containerDefinitions", [])
    ]
    return out


def apply(ecs: Ecs, plan: ServicePlan, task_def: TaskDefinition | None = None) -> Applied:
    """Run one planned service deployment; return the deployment id the write created."""
    if plan.action == "skip":
        return Applied(plan.service, None, plan.task_definition, plan.task_definition)
    new_arn = plan.task_definition
    registered = False
    if plan.action in (REGISTER, UNPIN):
        current = task_def
        if current is None or not current.raw:
            # a revision known only from its tasks cannot be copied: read it whole
            current = ecs.describe_task_definition(plan.task_definition)
        params = with_images(
            registration_input(ecs, current), {c.container: c.reference for c in plan.containers}
        )
        new_arn = ecs.register_task_definition(params).arn
        registered = True
        state = ecs.update_service(plan.cluster, plan.service, task_definition=new_arn)
    else:
        state = ecs.force_new_deployment(plan.cluster, plan.service)
    primary = state.primary
    return Applied(
        service=plan.service,
        deployment_id=primary.id if primary else None,
        task_definition=new_arn,
        previous_task_definition=plan.task_definition,
        registered=registered,
    )


def revision_from_tasks(state: ServiceState, running: list[TaskImage]) -> TaskDefinition | None:
    """The images of the revision a service runs, as its PRIMARY deployment's tasks report them.

    A task reports every container of the revision it was started from, with the image string
    that revision names: enough for a force-new-deployment decision, without reading the
    revision itself. None when no such task runs (then read the revision). The result has no
    ``raw``: it cannot be copied into a new registration.
    """
    primary = state.primary
    if primary is None or primary.task_definition != state.task_definition:
        return None
    tasks: dict[str, list[TaskImage]] = {}
    for t in running:
        if t.started_by == primary.id:
            tasks.setdefault(t.task_arn, []).append(t)
    if not tasks:
        return None
    containers = next(iter(tasks.values()))
    name = state.task_definition.rsplit("/", 1)[-1]
    family, _, revision = name.rpartition(":")
    if not family or not revision.isdigit():
        return None
    return TaskDefinition(
        arn=state.task_definition,
        family=family,
        revision=int(revision),
        status="ACTIVE",
        containers=tuple(ContainerImage(name=c.container, image=c.image) for c in containers),
    )
