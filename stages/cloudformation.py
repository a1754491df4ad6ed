"""Deploy through a CloudFormation stack: change the image parameter, nothing else.

For services a stack owns, an update outside the stack drifts it. The only write is a change
set on the stack's previous template (``UsePreviousTemplate``) with every parameter
``UsePreviousValue`` except the image parameter, which gets an immutable reference (the stamp,
the commit SHA tag or the digest: a mutable tag would read the same at every promotion and
change nothing). Planning creates the change set, since only CloudFormation can say what it
changes; ``--dry-run`` shows it and deletes it, a real run executes exactly it, and a plan saved
with ``--out`` keeps it: planning from that plan reads it again (``StackSettings.from_plan``)
instead of making another, so the change set reviewed is the one executed. A change set
that changes nothing (FAILED "didn't contain changes", or "No updates are to be performed")
is ``unchanged``. The update's answer is the stack's: UPDATE_COMPLETE, or UPDATE_ROLLBACK_COMPLETE
with the reasons its events give. A rollback is another change set, back to the previous value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from tierup.stages import rollback as rb
from tierup.stages import stack_update
from tierup.stages import wait as wait_stage
from tierup.stages.deploy import (
    Applied,
    ContainerTarget,
    DeployError,
    ServicePlan,
    agreed_digest,
    pick_container,
)
from tierup.stages.errors import TierupError
from tierup.stages.rollback import pinned_reference
from tierup.stages.strategy import (
    Capabilities,
    Context,
    OnChange,
    Planned,
    RestoreTarget,
    Settings,
    StackSettings,
    Target,
)
from tierup.stages.types import ImageRef

STRATEGY = "cloudformation"


class CloudFormationStrategy:
    """``strategy: cloudformation``: the environment's services belong to one stack."""

    name = STRATEGY
    capabilities = Capabilities(
        owns_rollback=True, one_write=True, immutable_refs=True, settings="cloudformation"
    )

    def describe_rollback(self, applied: Applied) -> str:
        """What a rollback of ``applied`` writes, in words (a compensation's reason)."""
        return f"a change set back to {rollback_reference(applied)}"

    def plan_undo(
        self, plans: Sequence[rb.RollbackPlan], *, environment: str, configured: Sequence[str]
    ) -> tuple[list[rb.RollbackPlan], list[str]]:
        """A rollback or restore as the stack's writes: the stack registers the revision
        itself, from its image parameter, which every service of the stack shares."""
        out: list[rb.RollbackPlan] = []
        for p in plans:
            if p.writes:
                revision = p.target_task_definition.rsplit("/", 1)[-1]
                refs = ", ".join(ref for _, ref in p.images)
                p = replace(
                    p,
                    reregistered=False,
                    reason=f"back to {revision} ({rb.source_text(p.target)}): the stack's image "
                    f"parameter -> {refs}",
                )
            out.append(p)
        moving = {p.service for p in out if p.writes}
        others = [s for s in configured if s not in moving]
        notes = []
        if moving and others:
            notes.append(
                f"{environment}: the stack's image parameter is shared: "
                f"{', '.join(others)} run what it names too"
            )
        return out, notes

    def undo_steps(
        self,
        plans: Sequence[rb.RollbackPlan],
        *,
        environment: str,
        cluster: str,
        settings: Settings,
    ) -> list[dict[str, Any]]:
        """One change set for every service a rollback or restore moves."""
        if not plans:
            return []
        stack = settings.cloudformation.stack if settings.cloudformation else "?"
        references = sorted({ref for p in plans for _, ref in p.images})
        names = ", ".join(p.service for p in plans)
        return [
            {
                "write": "cloudformation:CreateChangeSet+ExecuteChangeSet",
                "environment": environment,
                "cluster": cluster,
                "stack": stack,
                "services": [p.service for p in plans],
                "action": "change-set",
                "images": references,
                "summary": f"{environment}: stack {stack}: image parameter -> "
                f"{', '.join(references)} ({names})",
            }
        ]

    def validate_remote(self, ctx: Context, services: Sequence[str]) -> tuple[str, str] | None:
        """The stack exists and has the image parameter; ``(error, hint)`` or None."""
        cfg = ctx.stack
        if cfg is None:
            return None
        stack = ctx.cloudformation().describe_stack(cfg.stack)
        if stack.parameter(cfg.image_parameter) is None:
            return (
                f"stack {cfg.stack!r} has no parameter {cfg.image_parameter!r}",
                "set cloudformation.image_parameter to the stack's image parameter",
            )
        return None

    def plan(self, ctx: Context, target: Target) -> Planned:
        out = Planned()
        settings = target.cloudformation
        if settings is None:
            err = DeployError(
                f"environment {target.environment!r} uses strategy cloudformation without "
                "`cloudformation: {stack, image_parameter}`",
                hint="add it to the environment in envs.yaml",
            )
            out.errors = {s.service: err for s in target.services}
            return out
        images = {t.image: t for s in target.services for t in s.wanted.values()}
        if len(images) != 1:
            err = DeployError(
                f"strategy cloudformation sets one parameter ({settings.image_parameter}) of "
                f"stack {settings.stack!r}, but the services of {target.environment!r} run "
                f"images {', '.join(sorted(images)) or 'none'}",
                hint="give each image its own environment and stack, or use another strategy",
            )
            out.errors = {s.service: err for s in target.services}
            return out
        image = next(iter(images.values()))
        reference = image.digest_uri if target.pin == "digest" else image.immutable_uri
        cfn = ctx.cloudformation()
        try:
            resources = cfn.stack_resources(settings.stack)
            in_stack = {
                physical.rsplit("/", 1)[-1]: logical
                for logical, physical, kind in resources
                if kind == stack_update.SERVICE_TYPE
            }
            for s in target.services:
                if s.service not in in_stack:
                    out.errors[s.service] = DeployError(
                        f"service {s.service!r} is not a resource of stack {settings.stack!r}",
                        hint="a service the stack does not own cannot be deployed through it: "
                        "move it to another environment",
                    )
            services = [s for s in target.services if s.service not in out.errors]
            containers = {
                s.service: tuple(
                    ContainerTarget(pick_container(s.service, c, s.task_def), t, reference)
                    for c, t in s.wanted.items()
                )
                for s in services
            }
            if not services:
                return out
            update = _plan_update(
                ctx,
                settings,
                reference,
                f"tierup: {image.image} {image.digest} to {target.environment}",
            )
        except TierupError as e:
            for s in target.services:
                out.errors.setdefault(s.service, e)
            return out
        touched_ids = {c.logical_id for c in update.changes}
        touched = [s.service for s in services if in_stack[s.service] in touched_ids]
        step = {
            "write": stack_update.WRITE,
            "environment": target.environment,
            "cluster": target.cluster,
            "service": ", ".join(touched),
            "services": touched,
            "action": stack_update.UPDATE_STACK,
            "reason": update.reason,
            "stack": settings.stack,
            "change_set": update.describe(),
        }
        for s in services:
            writes = not update.unchanged and s.service in touched
            reason = update.reason
            if not update.unchanged and not writes:
                reason = f"unchanged: change set {update.change_set_name} does not change it"
            out.services.append(
                ServicePlan(
                    environment=target.environment,
                    cluster=target.cluster,
                    service=s.service,
                    strategy=STRATEGY,
                    action=stack_update.UPDATE_STACK if writes else "skip",
                    reason=reason,
                    task_definition=s.task_def.arn,
                    containers=containers[s.service],
                    previous_digests=tuple(
                        (c.container, agreed_digest(list(s.running), c.container))
                        for c in containers[s.service]
                    ),
                    group=f"stack:{settings.stack}",
                    step=step,
                    payload=update,
                )
            )
        if update.change_set_id is not None and not touched and not settings.from_plan:
            # the change set touches no service of this environment: nothing runs it
            stack_update.discard(cfn, update)
        return out

    def apply(self, ctx: Context, plans: Sequence[ServicePlan]) -> dict[str, Applied]:
        update = _update_of(plans)
        since = stack_update.execute(ctx.cloudformation(), update)
        return {
            p.service: _applied(
                p.service, p.task_definition, update, since, dict(p.previous_digests)
            )
            for p in plans
        }

    def wait(
        self,
        ctx: Context,
        applied: Mapping[str, Applied],
        *,
        timeout: float,
        on_change: OnChange | None = None,
    ) -> dict[str, wait_stage.RolloutState]:
        out: dict[str, wait_stage.RolloutState] = {}
        # a rollback that had nothing to write: the stack already holds the previous value
        there = [s for s, a in applied.items() if a.deployment_id is None]
        if there:
            found = ctx.ecs.describe_services(ctx.cluster, there, allow_missing=True)
            for service in there:
                stack = applied[service].extra.get("stack")
                out[service] = wait_stage.settled(
                    service,
                    "",
                    wait_stage.COMPLETED,
                    found.get(service),
                    detail=f"stack {stack} already holds the previous value",
                )
        by_stack: dict[str, dict[str, Applied]] = {}
        for service, a in applied.items():
            if a.deployment_id is not None:
                by_stack.setdefault(str(a.extra["stack"]), {})[service] = a
        for stack, group in by_stack.items():
            first = next(iter(group.values()))
            change_set = str(first.deployment_id)

            def told(
                p: stack_update.StackProgress,
                group: dict[str, Applied] = group,
                cs: str = change_set,
            ) -> None:
                if on_change is None:
                    return
                for service in group:
                    on_change(
                        wait_stage.RolloutState(
                            service,
                            cs,
                            p.state,
                            reason=p.reason,
                            detail=f"stack {p.stack} {p.status}",
                        )
                    )

            result = stack_update.wait_stack(
                ctx.cloudformation(),
                stack,
                since=first.extra.get("since_event"),
                timeout=timeout,
                sleep=ctx.sleep,
                clock=ctx.clock,
                interval=ctx.interval,
                on_change=told,
                retries=ctx.retries,
                target=ctx.environment,
            )
            states = ctx.poll(
                lambda group=group: ctx.ecs.describe_services(  # type: ignore[misc]
                    ctx.cluster, list(group), allow_missing=True
                ),
                what=f"describing the services of cluster {ctx.cluster}",
            )
            for service in group:
                out[service] = wait_stage.settled(
                    service,
                    change_set,
                    result.state,
                    states.get(service),
                    reason=result.reason,
                    events=result.events,
                    detail=f"stack {stack} {result.status}",
                )
        return out

    def rollback(self, ctx: Context, applied: Mapping[str, Applied]) -> dict[str, Applied]:
        out: dict[str, Applied] = {}
        done: dict[str, tuple[stack_update.StackUpdate | None, str | None]] = {}
        cfn = ctx.cloudformation()
        for service, a in applied.items():
            stack = a.extra.get("stack")
            if not stack:
                continue
            stack = str(stack)
            if stack not in done:
                settings = StackSettings(stack, str(a.extra["parameter"]))
                done[stack] = (None, None)
                # CloudFormation rolled the stack back itself: nothing to write (a pinned copy
                # of the same value would be a second change set nobody asked for)
                if not _back_where_it_was(ctx, settings, a):
                    back = _plan_update(
                        ctx,
                        settings,
                        rollback_reference(a),
                        f"tierup: rollback of {ctx.environment}",
                    )
                    if not back.unchanged:
                        done[stack] = (back, stack_update.execute(cfn, back))
            back_update, since = done[stack]
            if back_update is None:
                # CloudFormation rolled it back itself, or it never changed: nothing to write
                out[service] = Applied(
                    service,
                    None,
                    a.previous_task_definition,
                    a.task_definition,
                    extra={"written": False, "stack": stack},
                )
            else:
                out[service] = _applied(service, a.task_definition, back_update, since)
                out[service] = replace(out[service], task_definition=a.previous_task_definition)
        return out

    def restore(self, ctx: Context, targets: Mapping[str, RestoreTarget]) -> dict[str, Applied]:
        """One change set: the image parameter set to what the targets' revisions run."""
        settings = ctx.stack
        if settings is None:
            raise DeployError(
                f"environment {ctx.environment!r} has no `cloudformation: {{stack, "
                "image_parameter}`",
                hint="add it to the environment in envs.yaml",
            )
        references = set()
        for t in targets.values():
            td = ctx.task_definition(t.task_definition)
            for c in td.containers:
                references.add(t.images.get(c.name, c.image))
        if len(references) != 1:
            raise DeployError(
                f"stack {settings.stack!r}: the target revisions run "
                f"{', '.join(sorted(references)) or 'no image'}, but its one image parameter "
                f"{settings.image_parameter} can name only one",
                hint="restore the services of this stack to revisions of one image",
            )
        reference = references.pop()
        cfn = ctx.cloudformation()
        update = _plan_update(ctx, settings, reference, f"tierup: restore of {ctx.environment}")
        if update.unchanged:
            return {
                s: Applied(
                    s,
                    None,
                    t.task_definition,
                    t.task_definition,
                    extra={"written": False, "stack": settings.stack},
                )
                for s, t in targets.items()
            }
        since = stack_update.execute(cfn, update)
        return {s: _applied(s, t.task_definition, update, since) for s, t in targets.items()}

    def discard(self, ctx: Context, plans: Sequence[ServicePlan]) -> None:
        seen: set[str] = set()
        for p in plans:
            update = p.payload
            if isinstance(update, stack_update.StackUpdate) and update.change_set_id not in seen:
                seen.add(str(update.change_set_id))
                # a preview left behind changes nothing; the next run makes its own
                with contextlib.suppress(TierupError):
                    stack_update.discard(ctx.cloudformation(), update)


def _plan_update(
    ctx: Context, settings: StackSettings, reference: str, description: str
) -> stack_update.StackUpdate:
    return stack_update.plan_stack_update(
        ctx.cloudformation(),
        environment=ctx.environment,
        settings=settings,
        reference=reference,
        description=description,
        sleep=ctx.sleep,
        clock=ctx.clock,
        interval=min(ctx.interval, 2.0),
    )


def _update_of(plans: Sequence[ServicePlan]) -> stack_update.StackUpdate:
    updates = {id(p.payload): p.payload for p in plans}
    if len(updates) != 1:
        raise DeployError("plans of several stack updates cannot be applied as one")
    update = next(iter(updates.values()))
    if not isinstance(update, stack_update.StackUpdate):
        raise DeployError("a cloudformation plan without its change set")
    return update


def _applied(
    service: str,
    current: str,
    update: stack_update.StackUpdate,
    since: str | None,
    previous_digests: Mapping[str, str | None] | None = None,
) -> Applied:
    return Applied(
        service=service,
        deployment_id=update.change_set_id,
        task_definition=current,  # the stack registers the new revision itself; see wait
        previous_task_definition=current,
        extra={
            "stack": update.stack,
            "change_set": update.change_set_name,
            "parameter": update.parameter,
            "value": update.new_value,
            "previous_value": update.old_value,
            "since_event": since,
            "previous_digests": dict(previous_digests or {}),
            "written": True,
        },
    )


def _back_where_it_was(ctx: Context, settings: StackSettings, applied: Applied) -> bool:
    """Did CloudFormation's own rollback put the service back on what it ran before ``applied``?

    The stack's image parameter names its previous value again, and the service's tasks run
    the digests that ran before (a parameter naming a tag that moved since would start tasks
    on the new digest: then a change set pinning the digest that ran is still needed).
    """
    previous = applied.extra.get("previous_value")
    if not previous:
        return False
    info = ctx.cloudformation().describe_stack(settings.stack)
    if info.status.endswith("_IN_PROGRESS"):
        return False
    if info.parameter(settings.image_parameter) != str(previous):
        return False
    digests = {c: d for c, d in dict(applied.extra.get("previous_digests") or {}).items() if d}
    if not digests:
        return True
    running = ctx.ecs.running_images(ctx.cluster, applied.service).get(applied.service, [])
    return all(agreed_digest(running, c) == d for c, d in digests.items())


def rollback_reference(applied: Applied) -> str:
    """The parameter value to go back to: the previous one, pinned to the digest that ran
    when it named a tag (a tier tag has moved on since)."""
    value = str(applied.extra["previous_value"])
    ref = ImageRef.parse(value)
    digests = {d for d in dict(applied.extra.get("previous_digests") or {}).values() if d}
    if ref.digest is None and len(digests) == 1:
        return pinned_reference(value, digests.pop())
    return value
