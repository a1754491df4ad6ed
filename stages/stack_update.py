"""A stack's image parameter changed through a change set: plan it (CloudFormation says what it
changes), execute exactly it or discard it, and follow the stack to its answer (UPDATE_COMPLETE,
or UPDATE_ROLLBACK_COMPLETE with the reasons its events give). The cloudformation
strategy deploys, rolls back and restores through these.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from tierup.stages import wait as wait_stage
from tierup.stages.adapters.cloudformation import (
    ChangeSetMissing,
    CloudFormation,
    ResourceChange,
    StackEvent,
)
from tierup.stages.deploy import (
    DeployError,
)
from tierup.stages.strategy import (
    StackSettings,
)

UPDATE_STACK = "update-stack"


WRITE = "cloudformation:ExecuteChangeSet"


CHANGE_SET_TIMEOUT = 300.0


SERVICE_TYPE = "AWS::ECS::Service"


SUCCEEDED = ("UPDATE_COMPLETE",)


FAILED = ("UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED", "UPDATE_FAILED")


# a stack in one of these cannot take an update until someone repairs it
STUCK = (
    "UPDATE_ROLLBACK_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "CREATE_FAILED",
    "DELETE_FAILED",
    "DELETE_COMPLETE",
    "REVIEW_IN_PROGRESS",
)


GENERIC_REASONS = ("Resource update cancelled", "User Initiated")


@dataclass(frozen=True)
class StackUpdate:
    """The planned change of one stack's image parameter, as CloudFormation computed it."""

    environment: str
    stack: str
    stack_id: str
    parameter: str
    old_value: str
    new_value: str
    change_set_id: str | None  # None: nothing to change
    change_set_name: str | None
    changes: tuple[ResourceChange, ...] = ()
    reason: str = ""

    @property
    def unchanged(self) -> bool:
        return self.change_set_id is None

    def describe(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "name": self.change_set_name,
            "id": self.change_set_id,
            "parameter": {"name": self.parameter, "from": self.old_value, "to": self.new_value},
            "changes": [c.as_dict() for c in self.changes],
        }


def change_set_name(environment: str) -> str:
    """``tierup-<env>-<UTC time>-<random>``: unique, and says who made it and when."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    env = "".join(c if c.isalnum() else "-" for c in environment)[:60].strip("-") or "env"
    return f"tierup-{env}-{stamp}-{secrets.token_hex(3)}"


def plan_stack_update(
    cfn: CloudFormation,
    *,
    environment: str,
    settings: StackSettings,
    reference: str,
    description: str,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    interval: float = 2.0,
    timeout: float = CHANGE_SET_TIMEOUT,
) -> StackUpdate:
    """Create (and wait for) the change set that sets the image parameter to ``reference``."""
    stack = cfn.describe_stack(settings.stack)
    if stack.status.endswith("_IN_PROGRESS"):
        raise DeployError(
            f"stack {settings.stack!r} is {stack.status}: another update is running",
            hint="wait until it ends, then run tierup again",
        )
    if stack.status in STUCK:
        raise DeployError(
            f"stack {settings.stack!r} is {stack.status} and cannot be updated",
            hint="repair the stack (e.g. continue-update-rollback) and run tierup again",
        )
    old = stack.parameter(settings.image_parameter)
    if old is None:
        known = ", ".join(k for k, _ in stack.parameters) or "none"
        raise DeployError(
            f"stack {settings.stack!r} has no parameter {settings.image_parameter!r} "
            f"(parameters: {known})",
            hint="fix cloudformation.image_parameter of the environment in envs.yaml",
        )
    base: dict[str, Any] = {
        "environment": environment,
        "stack": settings.stack,
        "stack_id": stack.stack_id,
        "parameter": settings.image_parameter,
        "old_value": old,
        "new_value": reference,
    }
    if old == reference:
        return StackUpdate(
            **base,
            change_set_id=None,
            change_set_name=None,
            reason=f"unchanged: {settings.image_parameter} already names {reference}",
        )
    if settings.from_plan:
        return _saved_update(cfn, settings, base, reference)
    parameters: list[dict[str, Any]] = [
        {"ParameterKey": k, "UsePreviousValue": True}
        for k, _ in stack.parameters
        if k != settings.image_parameter
    ]
    parameters.append({"ParameterKey": settings.image_parameter, "ParameterValue": reference})
    name = change_set_name(environment)
    change_set_id = cfn.create_change_set(settings.stack, name, parameters, description)
    if change_set_id is None:
        return StackUpdate(
            **base,
            change_set_id=None,
            change_set_name=None,
            reason="unchanged: CloudFormation says no updates are to be performed",
        )
    deadline = clock() + timeout
    while True:
        info = cfn.describe_change_set(change_set_id)
        if info.status in ("CREATE_COMPLETE", "FAILED", "DELETE_COMPLETE", "DELETE_FAILED"):
            break
        if clock() >= deadline:
            cfn.delete_change_set(change_set_id)
            raise DeployError(
                f"stack {settings.stack!r}: change set {name} was still {info.status} after "
                f"{int(timeout)}s",
                hint="look at the change set in the CloudFormation console; run tierup again",
            )
        sleep(min(interval, max(0.0, deadline - clock())))
    if info.no_changes:
        cfn.delete_change_set(change_set_id)
        return StackUpdate(
            **base,
            change_set_id=None,
            change_set_name=None,
            reason="unchanged: the change set contains no changes",
        )
    if info.status != "CREATE_COMPLETE":
        cfn.delete_change_set(change_set_id)
        raise DeployError(
            f"stack {settings.stack!r}: change set {name} {info.status}: "
            f"{info.status_reason or 'no reason given'}",
            hint="fix the stack or its parameters, then run tierup again",
        )
    return StackUpdate(
        **base,
        change_set_id=info.change_set_id,
        change_set_name=name,
        changes=info.changes,
        reason=f"stack {settings.stack}: {settings.image_parameter} {old} -> {reference}",
    )


class ChangeSetGone(DeployError):
    """The change set a saved plan reviewed can no longer be executed; nothing was written."""


def _saved_update(
    cfn: CloudFormation, settings: StackSettings, base: dict[str, Any], reference: str
) -> StackUpdate:
    """The update a saved plan made: its change set read again (never a new one), refused
    when it is gone, can no longer run, or no longer sets the parameter the plan needs."""
    stack, old = base["stack"], base["old_value"]
    if settings.change_set is None:
        raise ChangeSetGone(
            f"stack {stack!r}: {settings.image_parameter} is now {old}; the saved plan had "
            f"nothing to change there",
            hint="make a new plan (--out) and review it",
        )
    try:
        info = cfn.describe_change_set(settings.change_set)
    except ChangeSetMissing as e:
        raise ChangeSetGone(
            f"stack {stack!r}: change set {settings.change_set} of the saved plan is gone",
            hint="make a new plan (--out) and review it",
        ) from e
    name = info.name or settings.change_set
    if info.status != "CREATE_COMPLETE" or info.execution_status not in ("", "AVAILABLE"):
        raise ChangeSetGone(
            f"stack {stack!r}: change set {name} of the saved plan is {info.status}"
            f"/{info.execution_status or '?'} and cannot be executed",
            hint="make a new plan (--out) and review it",
        )
    sets = info.parameter(settings.image_parameter)
    if sets is not None and sets != reference:
        raise ChangeSetGone(
            f"stack {stack!r}: change set {name} sets {settings.image_parameter} to {sets}, "
            f"not {reference}",
            hint="make a new plan (--out) and review it",
        )
    return StackUpdate(
        **base,
        change_set_id=info.change_set_id,
        change_set_name=name,
        changes=info.changes,
        reason=f"stack {stack}: {settings.image_parameter} {old} -> {reference}",
    )


def execute(cfn: CloudFormation, update: StackUpdate) -> str | None:
    """Execute the planned change set; return the event id the update's own events follow."""
    if update.change_set_id is None:
        raise DeployError(f"stack {update.stack!r}: there is no change set to execute")
    recent = cfn.events(update.stack)
    cfn.execute_change_set(update.change_set_id)
    return recent[0].event_id if recent else None


def discard(cfn: CloudFormation, update: StackUpdate) -> None:
    if update.change_set_id is not None:
        cfn.delete_change_set(update.change_set_id)


@dataclass(frozen=True)
class StackProgress:
    stack: str
    state: str  # in_progress | completed | failed | timed_out (stages.wait's words)
    status: str
    reason: str | None = None
    events: tuple[str, ...] = ()


def _reasons(events: list[StackEvent]) -> list[str]:
    out: list[str] = []
    for e in reversed(events):  # oldest first: the first failure is the cause
        if e.status.endswith("_FAILED") and e.reason and not e.reason.startswith(GENERIC_REASONS):
            line = f"{e.logical_id}: {e.reason}"
            if line not in out:
                out.append(line)
    return out


def progress(cfn: CloudFormation, stack: str, *, since: str | None) -> StackProgress:
    """Where the update that started after event ``since`` stands."""
    info = cfn.describe_stack(stack)
    events = cfn.events(stack, until=since)
    shown = tuple(
        f"{e.logical_id} {e.status}" + (f": {e.reason}" if e.reason else "") for e in events[:5]
    )
    started = bool(events) or info.status.endswith("_IN_PROGRESS")
    if not started or info.status.endswith("_IN_PROGRESS"):
        return StackProgress(stack, wait_stage.IN_PROGRESS, info.status, None, shown)
    if info.status in SUCCEEDED:
        return StackProgress(stack, wait_stage.COMPLETED, info.status, None, shown)
    reasons = _reasons(events) or [info.status_reason or "no reason given"]
    verb = (
        "CloudFormation rolled the stack back"
        if info.status == "UPDATE_ROLLBACK_COMPLETE"
        else "the stack update failed"
    )
    return StackProgress(
        stack,
        wait_stage.FAILED,
        info.status,
        f"{verb} ({info.status}): {'; '.join(reasons)}",
        shown,
    )


def wait_stack(
    cfn: CloudFormation,
    stack: str,
    *,
    since: str | None,
    timeout: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    interval: float = 5.0,
    on_change: Callable[[StackProgress], None] | None = None,
    retries: wait_stage.RetryLog | None = None,
    target: str = "",
) -> StackProgress:
    """Poll the stack until the update is UPDATE_COMPLETE, rolled back or failed, or time is out.

    A poll that fails (throttled, a 5xx) is tried again within the deadline.
    """
    deadline = clock() + timeout
    last: StackProgress | None = None
    while True:
        try:
            now = wait_stage.poll(
                lambda: progress(cfn, stack, since=since),
                what=f"reading stack {stack}",
                deadline=deadline,
                sleep=sleep,
                clock=clock,
                interval=interval,
                retries=retries,
                target=target,
            )
        except wait_stage.PollGaveUp as e:
            status = last.status if last is not None else "unknown"
            return StackProgress(stack, wait_stage.TIMED_OUT, status, e.message)
        if on_change is not None and (last is None or last.status != now.status):
            on_change(now)
        last = now
        if now.state != wait_stage.IN_PROGRESS:
            return now
        if clock() >= deadline:
            timed = replace(
                now,
                state=wait_stage.TIMED_OUT,
                reason=f"stack {stack} still {now.status} after {int(timeout)}s",
            )
            if on_change is not None:
                on_change(timed)
            return timed
        sleep(min(interval, max(0.0, deadline - clock())))
