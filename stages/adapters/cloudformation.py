"""CloudFormation through one typed adapter: stacks, change sets, events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tierup.stages.adapters.aws import error_message, is_client_error, raise_translated
from tierup.stages.errors import AwsError

# "nothing to do", as a FAILED change set's reason or as a ValidationError
NO_CHANGES_MARKERS = ("didn't contain changes", "No updates are to be performed")


class StackMissing(AwsError):
    default_hint = "check cloudformation.stack (and the region) of the environment in envs.yaml"


class ChangeSetMissing(AwsError):
    """A change set that is no longer there (deleted, or executed and gone with its stack)."""


@dataclass(frozen=True)
class StackInfo:
    name: str
    stack_id: str
    status: str
    status_reason: str | None
    parameters: tuple[tuple[str, str], ...]

    def parameter(self, key: str) -> str | None:
        return next((v for k, v in self.parameters if k == key), None)


@dataclass(frozen=True)
class ResourceChange:
    """One resource a change set touches, and why."""

    action: str  # Add | Modify | Remove | Import | Dynamic
    logical_id: str
    resource_type: str
    physical_id: str | None
    replacement: str | None  # True | False | Conditional
    details: tuple[str, ...]  # "ContainerDefinitions <- parameter ImageUrl (replaces it)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "resource": self.logical_id,
            "type": self.resource_type,
            "action": self.action,
            "replacement": self.replacement,
            "physical_id": self.physical_id,
            "details": list(self.details),
        }


@dataclass(frozen=True)
class ChangeSetInfo:
    change_set_id: str
    status: str  # CREATE_PENDING | CREATE_IN_PROGRESS | CREATE_COMPLETE | FAILED | ...
    status_reason: str | None
    changes: tuple[ResourceChange, ...]
    name: str = ""
    stack_id: str = ""
    execution_status: str = ""  # AVAILABLE | UNAVAILABLE | EXECUTE_* | OBSOLETE
    parameters: tuple[tuple[str, str], ...] = ()  # as the change set sets them

    def parameter(self, key: str) -> str | None:
        return next((v for k, v in self.parameters if k == key), None)

    @property
    def no_changes(self) -> bool:
        return self.status == "FAILED" and any(
            m in (self.status_reason or "") for m in NO_CHANGES_MARKERS
        )


@dataclass(frozen=True)
class StackEvent:
    event_id: str
    timestamp: datetime | None
    logical_id: str
    physical_id: str | None
    resource_type: str
    status: str
    reason: str | None


def _detail(d: dict[str, Any]) -> str:
    target = d.get("Target") or {}
    name = target.get("Name") or target.get("Attribute") or "?"
    source = d.get("ChangeSource")
    entity = d.get("CausingEntity")
    what = {
        "ParameterReference": f"parameter {entity}",
        "ResourceReference": f"resource {entity}",
        "ResourceAttribute": f"attribute {entity}",
        "DirectModification": "the template",
    }.get(str(source), str(source or "?"))
    out = f"{name} <- {what}"
    recreation = target.get("RequiresRecreation")
    if recreation == "Always":
        out += " (replaces it)"
    elif recreation == "Conditionally":
        out += " (may replace it)"
    return out


def _change(c: dict[str, Any]) -> ResourceChange | None:
    rc = c.get("ResourceChange")
    if not isinstance(rc, dict):
        return None
    return ResourceChange(
        action=str(rc.get("Action", "")),
        logical_id=str(rc.get("LogicalResourceId", "")),
        resource_type=str(rc.get("ResourceType", "")),
        physical_id=rc.get("PhysicalResourceId"),
        replacement=rc.get("Replacement"),
        details=tuple(_detail(d) for d in rc.get("Details") or []),
    )


def _event(e: dict[str, Any]) -> StackEvent:
    return StackEvent(
        event_id=str(e.get("EventId", "")),
        timestamp=e.get("Timestamp"),
        logical_id=str(e.get("LogicalResourceId", "")),
        physical_id=e.get("PhysicalResourceId"),
        resource_type=str(e.get("ResourceType", "")),
        status=str(e.get("ResourceStatus", "")),
        reason=e.get("ResourceStatusReason"),
    )


class CloudFormation:
    """One account and region's CloudFormation, through an injected boto3 client."""

    def __init__(self, client: Any) -> None:
        self._cfn = client

    def describe_stack(self, name: str) -> StackInfo:
        try:
            resp = self._cfn.describe_stacks(StackName=name)
        except Exception as e:
            if is_client_error(e, "ValidationError") and "does not exist" in error_message(e):
                raise StackMissing(f"CloudFormation stack {name!r} does not exist") from e
            raise_translated(e, f"describing stack {name}")
        stack = resp["Stacks"][0]
        return StackInfo(
            name=str(stack.get("StackName", name)),
            stack_id=str(stack.get("StackId", "")),
            status=str(stack.get("StackStatus", "")),
            status_reason=stack.get("StackStatusReason"),
            parameters=tuple(
                (str(p["ParameterKey"]), str(p.get("ParameterValue", "")))
                for p in stack.get("Parameters") or []
            ),
        )

    def stack_resources(self, name: str) -> list[tuple[str, str, str]]:
        """(logical id, physical id, type) of every resource of the stack."""
        out: list[tuple[str, str, str]] = []
        try:
            for page in self._cfn.get_paginator("list_stack_resources").paginate(StackName=name):
                out.extend(
                    (
                        str(r.get("LogicalResourceId", "")),
                        str(r.get("PhysicalResourceId", "")),
                        str(r.get("ResourceType", "")),
                    )
                    for r in page.get("StackResourceSummaries", [])
                )
        except Exception as e:
            raise_translated(e, f"listing the resources of stack {name}")
        return out

    def create_change_set(
        self, stack: str, name: str, parameters: list[dict[str, Any]], description: str
    ) -> str | None:
        """An UPDATE change set on the stack's previous template; None if nothing would change."""
        try:
            resp = self._cfn.create_change_set(
                StackName=stack,
                ChangeSetName=name,
                ChangeSetType="UPDATE",
                UsePreviousTemplate=True,
                Parameters=parameters,
                # the template is the one the stack already runs: acknowledging its
                # capabilities changes nothing it did not have
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
                Description=description[:1024],
            )
        except Exception as e:
            if is_client_error(e, "ValidationError") and any(
                m in error_message(e) for m in NO_CHANGES_MARKERS
            ):
                return None
            raise_translated(e, f"creating a change set for stack {stack}")
        return str(resp["Id"])

    def describe_change_set(self, change_set_id: str) -> ChangeSetInfo:
        changes: list[ResourceChange] = []
        token: str | None = None
        first: dict[str, Any] | None = None
        try:
            while True:
                params: dict[str, Any] = {"ChangeSetName": change_set_id}
                if token:
                    params["NextToken"] = token
                resp = self._cfn.describe_change_set(**params)
                first = first or resp
                changes.extend(c for c in map(_change, resp.get("Changes") or []) if c)
                token = resp.get("NextToken")
                if not token:
                    break
        except Exception as e:
            if is_client_error(e, "ChangeSetNotFound", "ChangeSetNotFoundException"):
                raise ChangeSetMissing(f"change set {change_set_id} does not exist") from e
            raise_translated(e, f"describing change set {change_set_id}")
        assert first is not None
        return ChangeSetInfo(
            change_set_id=str(first.get("ChangeSetId", change_set_id)),
            status=str(first.get("Status", "")),
            status_reason=first.get("StatusReason"),
            changes=tuple(changes),
            name=str(first.get("ChangeSetName", "")),
            stack_id=str(first.get("StackId", "")),
            execution_status=str(first.get("ExecutionStatus", "")),
            parameters=tuple(
                (str(p["ParameterKey"]), str(p.get("ParameterValue", "")))
                for p in first.get("Parameters") or []
                if "ParameterKey" in p
            ),
        )

    def execute_change_set(self, change_set_id: str) -> None:
        try:
            self._cfn.execute_change_set(ChangeSetName=change_set_id)
        except Exception as e:
            raise_translated(e, f"executing change set {change_set_id}")

    def delete_change_set(self, change_set_id: str) -> None:
        try:
            self._cfn.delete_change_set(ChangeSetName=change_set_id)
        except Exception as e:
            if is_client_error(e, "ChangeSetNotFound", "ChangeSetNotFoundException"):
                return
            raise_translated(e, f"deleting change set {change_set_id}")

    def events(self, stack: str, *, until: str | None = None, pages: int = 10) -> list[StackEvent]:
        """The stack's events, newest first, down to (not including) event id ``until``."""
        out: list[StackEvent] = []
        token: str | None = None
        try:
            for _ in range(pages):
                params: dict[str, Any] = {"StackName": stack}
                if token:
                    params["NextToken"] = token
                resp = self._cfn.describe_stack_events(**params)
                for raw in resp.get("StackEvents") or []:
                    event = _event(raw)
                    if until is not None and event.event_id == until:
                        return out
                    out.append(event)
                token = resp.get("NextToken")
                if not token or until is None:
                    break
        except Exception as e:
            raise_translated(e, f"reading the events of stack {stack}")
        return out
