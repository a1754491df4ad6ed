"""Put a service back on a task definition it ran before: find the target, decide, apply.

Used by a promotion that rolls back on failure (``rollback_service``) and by `tierup rollback`
and `tierup restore` (``plan_rollback`` -> ``apply_rollback``). ECS's rules: a service cannot be
updated to an INACTIVE revision (deregistered by a cleanup or by CloudFormation), so such a
revision is registered again as a faithful copy (every field RegisterTaskDefinition accepts,
tags included) and the copy is used.

What ran before comes from the caller when it knows (the ledger, a snapshot), else from
ECS's deployment history (``from_ecs_history``), else from the previous ACTIVE revision of
the family (``previous_revision``). ``plan_rollback`` reads nothing itself: it decides from
the current and target task definitions, the running tasks and what the registry holds, so
that ``--dry-run`` shows exactly what ``apply_rollback`` writes. A target that names a mutable
tag is pinned to the digest that ran then (``repo@sha256:...``), since the tag now points at
something else; an image the registry no longer holds is refused before any write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tierup.stages.adapters.ecs import Ecs
from tierup.stages.adapters.registry import Registry, TagWrite
from tierup.stages.deploy import Applied, registration_input, with_images
from tierup.stages.errors import InputError, RegistryError
from tierup.stages.types import ImageRef, ServiceState, TaskDefinition, TaskImage

LEDGER = "ledger"
ECS_HISTORY = "ecs-history"
PREVIOUS_REVISION = "previous-revision"
EXPLICIT = "explicit"
SNAPSHOT = "snapshot"

UPDATE = "update-service"  # the target revision is ACTIVE and names what ran: point at it
REGISTER = "register-task-definition"  # a copy (re-registered and/or pinned), then point at it
REDEPLOY = "force-new-deployment"  # the service is on the target's content but not running it
FOLLOW = "follow"  # ECS is already rolling out the target: follow that deployment, write nothing
# the service's deployment still runs from the target: stop it with its rollback (a strategy's
# ``stop_running``, e.g. ECS's StopServiceDeployment)
STOP = "stop-deployment"
SKIP = "skip"


class RollbackRefused(InputError):
    """A rollback that must not be attempted; found before any write."""


@dataclass(frozen=True)
class RollbackTarget:
    """What to go back to: a task definition and, where known, the digests that ran then."""

    task_definition: str
    digests: tuple[tuple[str, str], ...] = ()  # container -> digest
    source: str = EXPLICIT
    detail: str = ""
    event: str = ""  # the ledger event whose writes this target reverts (source ledger)

    def digest_of(self, container: str) -> str | None:
        return next((d for c, d in self.digests if c == container), None)


@dataclass(frozen=True)
class ImageLookup:
    """What the registry says about one reference: does it exist, and which digest is it now.

    ``exists`` is None when the reference is in a registry tierup cannot read.
    """

    exists: bool | None
    digest: str | None = None


Lookup = Callable[[str], ImageLookup]


@dataclass(frozen=True)
class RollbackPlan:
    """One service's rollback decision: a frozen instruction the executor runs or prints."""

    environment: str
    cluster: str
    service: str
    action: str  # update-service | register-task-definition | force-new-deployment |
    # stop-deployment | follow | skip
    reason: str
    target: RollbackTarget
    current_task_definition: str
    target_task_definition: str
    images: tuple[tuple[str, str], ...]  # container -> reference the service will run
    digests_before: tuple[tuple[str, str | None], ...]
    digests_after: tuple[tuple[str, str | None], ...]
    pinned: tuple[str, ...] = ()  # containers whose mutable tag was pinned to a digest
    reregistered: bool = False  # the target was INACTIVE: a faithful copy is registered
    notes: tuple[str, ...] = ()
    deployment: str | None = None  # stop-deployment: the deployment stopped with its rollback
    params: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    state: ServiceState | None = field(default=None, compare=False, repr=False)
    target_def: TaskDefinition | None = field(default=None, compare=False, repr=False)

    @property
    def writes(self) -> bool:
        return self.action not in (SKIP, FOLLOW)

    def describe(self) -> dict[str, Any]:
        write = {
            UPDATE: "ecs:UpdateService",
            REDEPLOY: "ecs:UpdateService",
            REGISTER: "ecs:RegisterTaskDefinition+UpdateService",
            STOP: "ecs:StopServiceDeployment",
        }.get(self.action, "none")
        out: dict[str, Any] = {
            "write": write,
            "environment": self.environment,
            "cluster": self.cluster,
            "service": self.service,
            "action": self.action,
            "reason": self.reason,
            "source": self.target.source,
            "task_definition": self.target_task_definition,
            "from_task_definition": self.current_task_definition,
            "images": dict(self.images),
        }
        if self.pinned:
            out["pinned"] = {c: dict(self.images)[c] for c in self.pinned}
        if self.reregistered:
            out["reregistered"] = True
        if self.deployment is not None:
            out["deployment"] = self.deployment
        return out


# -- refusals --------------------------------------------------------------------------------


def check_controller(environment: str, state: ServiceState) -> None:
    """Refuse a service that ECS will not move with update_service (a rolling strategy's write)."""
    if state.deployment_controller == "CODE_DEPLOY":
        raise RollbackRefused(
            f"{environment}/{state.name}: the service has the CODE_DEPLOY deployment "
            "controller; update_service cannot give it another task definition",
            hint="set `strategy: codedeploy` for this environment and roll back with CodeDeploy",
        )


class ImagesMissing(RollbackRefused):
    """Rollback targets whose images the registry no longer holds (lifecycle expiry)."""

    default_hint = (
        "the registry's lifecycle policy may have expired them: roll back to another revision "
        "(--to REVISION) or push the images again"
    )


def refuse_missing(plans: list[RollbackPlan], missing: dict[tuple[str, str], list[str]]) -> None:
    """Raise ImagesMissing naming every missing image, before any write."""
    if not missing:
        return
    parts = [f"{env}/{svc}: {', '.join(refs)}" for (env, svc), refs in sorted(missing.items())]
    raise ImagesMissing(
        f"rollback refused: target images no longer exist in the registry: {'; '.join(parts)}"
    )


# -- targets ---------------------------------------------------------------------------------


def previous_revision(ecs: Ecs, current: TaskDefinition) -> RollbackTarget | None:
    """The newest ACTIVE revision of the family older than the current one."""
    arns = ecs.list_task_definitions(current.family, "ACTIVE")
    older = [(int(a.rsplit(":", 1)[-1]), a) for a in arns]
    older = [(n, a) for n, a in older if n < current.revision]
    if not older:
        return None
    _, arn = max(older)
    return RollbackTarget(
        task_definition=arn,
        source=PREVIOUS_REVISION,
        detail=f"the ACTIVE revision before {current.family}:{current.revision}",
    )


def from_ecs_history(
    ecs: Ecs, cluster: str, state: ServiceState, running: list[TaskImage]
) -> RollbackTarget | None:
    """The last SUCCESSFUL deployment before the current one, from ListServiceDeployments.

    None when ECS does not offer the history (an older endpoint, a missing permission, or
    moto) or when it holds nothing older that differs from what runs now.
    """
    history = ecs.service_deployments(cluster, state.name)
    if not history or len(history) < 2:
        return None
    candidates = [d for d in history[1:] if d.status == "SUCCESSFUL" and d.target_revision]
    if not candidates:
        return None
    revisions = ecs.service_revisions([d.target_revision for d in candidates])
    now = agreed_digests(running, state)
    for d in candidates:
        rev = revisions.get(d.target_revision)
        if rev is None or not rev.task_definition:
            continue
        digests = tuple((i.container, i.digest) for i in rev.images if i.digest)
        same_digests = all(now.get(c) in (None, dg) for c, dg in digests)
        if rev.task_definition == state.task_definition and same_digests:
            continue
        return RollbackTarget(
            task_definition=rev.task_definition,
            digests=digests,
            source=ECS_HISTORY,
            detail=f"service deployment {d.arn}",
        )
    return None


def agreed_digests(running: list[TaskImage], state: ServiceState) -> dict[str, str]:
    """Container -> the one digest the PRIMARY deployment's tasks report (where they agree)."""
    primary = state.primary
    mine = [t for t in running if primary is None or t.started_by in (None, primary.id)]
    if not mine:
        mine = running
    seen: dict[str, set[str | None]] = {}
    for t in mine:
        seen.setdefault(t.container, set()).add(t.digest)
    out: dict[str, str] = {}
    for container, digests in seen.items():
        only = next(iter(digests)) if len(digests) == 1 else None
        if only is not None:
            out[container] = only
    return out


def is_stable(state: ServiceState) -> bool:
    primary = state.primary
    return (
        primary is not None
        and len(state.deployments) == 1
        and primary.rollout_state in (None, "COMPLETED")
        and primary.running == primary.desired
    )


# -- deciding --------------------------------------------------------------------------------


def pinned_reference(reference: str, digest: str) -> str:
    ref = ImageRef.parse(reference)
    return str(ImageRef(registry=ref.registry, repository=ref.repository, digest=digest))


def plan_rollback(
    ecs: Ecs,
    *,
    environment: str,
    state: ServiceState,
    current: TaskDefinition,
    target: RollbackTarget,
    target_def: TaskDefinition,
    running: list[TaskImage],
    lookup: Lookup,
    mutable_tag: Callable[[str], bool],
) -> tuple[RollbackPlan, list[str]]:
    """Decide one service's rollback; return the plan and the images the registry lacks.

    ``ecs`` is used only for RegisterTaskDefinition's input shape (no call is made).
    """
    images: list[tuple[str, str]] = []
    pinned: list[str] = []
    missing: list[str] = []
    notes: list[str] = []
    expected: list[tuple[str, str | None]] = []
    for c in target_def.containers:
        ref = c.image
        parsed = ImageRef.parse(ref)
        recorded = target.digest_of(c.name)
        final = ref
        if parsed.digest:
            found = lookup(ref)
            if found.exists is False:
                missing.append(ref)
            expected.append((c.name, parsed.digest))
        elif recorded:
            # a mutable tag is pinned whatever it points at now; another tag only if it moved
            # since (its digest is read only then)
            if mutable_tag(parsed.tag or "latest"):
                moved = True
            else:
                on_tag = lookup(ref)
                moved = on_tag.exists is not None and on_tag.digest != recorded
            if moved:
                final = pinned_reference(ref, recorded)
                pinned.append(c.name)
                if lookup(final).exists is False:
                    missing.append(f"{ref} ({recorded})")
            expected.append((c.name, recorded))
        else:
            found = lookup(ref)
            if found.exists is False:
                missing.append(ref)
            elif mutable_tag(parsed.tag or "latest"):
                notes.append(
                    f"container {c.name!r} names the mutable tag {ref} and the digest that ran "
                    "then is not recorded: it runs what the tag points at now"
                )
            expected.append((c.name, found.digest))
        images.append((c.name, final))

    reregister = target_def.status != "ACTIVE"
    params = with_images(registration_input(ecs, target_def), dict(images))
    same_content = params == registration_input(ecs, current)
    now = agreed_digests(running, state)
    runs_target = all(d is None or now.get(c) == d for c, d in expected)
    source = source_text(target)
    if same_content and is_stable(state) and runs_target:
        action, reason = SKIP, f"already runs {_revision(target_def)} ({source})"
        reregister = False
        pinned = []
    elif same_content:
        reregister = False
        primary = state.primary
        if (
            primary is not None
            and primary.task_definition == current.arn
            and primary.rollout_state not in ("FAILED", "COMPLETED")
        ):
            action = FOLLOW
            reason = (
                f"already rolling out {_revision(target_def)} ({source}): "
                f"following deployment {primary.id}"
            )
        else:
            action = REDEPLOY
            reason = f"already on {_revision(target_def)} ({source}) but not running it: redeploy"
    elif reregister or pinned:
        action = REGISTER
        what = []
        if reregister:
            what.append(f"re-register INACTIVE {_revision(target_def)} as a faithful copy")
        if pinned:
            what.append("pin " + ", ".join(f"{c} to {_short(target.digest_of(c))}" for c in pinned))
        reason = f"back to {_revision(target_def)} ({source}): {'; '.join(what)}"
    else:
        action = UPDATE
        reason = f"back to {_revision(target_def)} ({source})"
    if target.source == PREVIOUS_REVISION:
        notes.insert(0, "neither the ledger nor ECS's deployment history knew what ran before")
    plan = RollbackPlan(
        environment=environment,
        cluster=state.cluster,
        service=state.name,
        action=action,
        reason=reason,
        target=target,
        current_task_definition=current.arn,
        target_task_definition=target_def.arn,
        images=tuple(images),
        digests_before=tuple((c, now.get(c)) for c, _ in images),
        digests_after=tuple(expected),
        pinned=tuple(pinned),
        reregistered=reregister,
        notes=tuple(notes),
        params=params if action == REGISTER else {},
        state=state,
        target_def=target_def,
    )
    return plan, missing


def _revision(td: TaskDefinition) -> str:
    return f"{td.family}:{td.revision}"


def _short(digest: str | None) -> str:
    return (digest or "-")[:19]


def source_text(target: RollbackTarget) -> str:
    return f"{target.source}: {target.detail}" if target.detail else target.source


# -- applying --------------------------------------------------------------------------------


def rollback_service(
    ecs: Ecs,
    cluster: str,
    service: str,
    to_task_definition: str,
    *,
    state: ServiceState | None = None,
    task_def: TaskDefinition | None = None,
) -> Applied:
    """Deploy ``to_task_definition`` to ``service``; return the deployment to follow.

    When the service's PRIMARY deployment already runs that revision and has not failed
    (ECS's circuit breaker is rolling it back already), nothing is written and that
    deployment is the one to follow. Repeating the call is harmless.
    """
    current = state or ecs.describe_services(cluster, [service])[service]
    primary = current.primary
    target = task_def or ecs.describe_task_definition(to_task_definition)
    arn, registered = target.arn, False
    extra: dict[str, object] = {}
    if target.status != "ACTIVE":
        copy = ecs.register_task_definition(registration_input(ecs, target))
        arn, registered = copy.arn, True
        extra["registered_from"] = target.arn
    if (
        not registered
        and primary is not None
        and primary.task_definition == arn
        and primary.rollout_state != "FAILED"
    ):
        return Applied(
            service=service,
            deployment_id=primary.id,
            task_definition=arn,
            previous_task_definition=current.task_definition,
            extra={"written": False},
        )
    # the same revision as a failed PRIMARY needs a forced deployment to start again
    force = primary is not None and primary.task_definition == arn
    updated = ecs.update_service(cluster, service, task_definition=arn, force=force)
    now = updated.primary
    return Applied(
        service=service,
        deployment_id=now.id if now else None,
        task_definition=arn,
        previous_task_definition=current.task_definition,
        registered=registered,
        extra={**extra, "written": True},
    )


def apply_rollback(ecs: Ecs, plan: RollbackPlan) -> Applied:
    """Run one planned rollback; return the deployment to follow (None when nothing moves)."""
    if plan.action in (SKIP, FOLLOW, REDEPLOY):
        # the service already names the target: nothing to register, at most a redeploy
        primary = None
        if plan.action == REDEPLOY:
            primary = ecs.update_service(
                plan.cluster, plan.service, task_definition=plan.current_task_definition, force=True
            ).primary
        elif plan.action == FOLLOW and plan.state is not None:
            primary = plan.state.primary
        return Applied(
            plan.service,
            primary.id if primary else None,
            plan.current_task_definition,
            plan.current_task_definition,
            extra={"written": plan.action == REDEPLOY},
        )
    if plan.action == REGISTER:
        copy = ecs.register_task_definition(plan.params)
        done = rollback_service(
            ecs, plan.cluster, plan.service, copy.arn, state=plan.state, task_def=copy
        )
        return replace(
            done,
            registered=True,
            extra={**done.extra, "registered_from": plan.target_task_definition},
        )
    return rollback_service(
        ecs,
        plan.cluster,
        plan.service,
        plan.target_task_definition,
        state=plan.state,
        task_def=plan.target_def,
    )


def rollback_tag(registry: Registry, repository: str, tag: str, to_digest: str) -> TagWrite:
    """Point ``tag`` back at ``to_digest`` (the manifest as the registry keeps it)."""
    manifest = registry.get_manifest(repository, to_digest)
    if manifest is None:
        raise RegistryError(
            f"{repository}@{to_digest} is gone (a lifecycle policy may have expired it): "
            f"{repository}:{tag} cannot go back to it",
            hint="push or restore that image, or promote a known-good digest with --digest",
        )
    return registry.put_tag(repository, tag, manifest)
