"""CloudFormation change sets on moto: CreateChangeSet and DescribeChangeSet as CloudFormation
answers them.

moto 5.2 defaults ChangeSetType to CREATE (so UsePreviousTemplate without it crashes), reports
"No updates are to be performed." where CloudFormation creates a FAILED change set, and lists no
Modify for a parameter change (or every resource as Add). Here CreateChangeSet (ChangeSetType
UPDATE by default) honours UsePreviousTemplate and UsePreviousValue; the change set is
CREATE_PENDING until it is first described, then CREATE_COMPLETE with one Modify per resource
the change reaches (`cfn_changes`), or FAILED with `NO_CHANGES` when it changes nothing.
DescribeChangeSet of a change set that is not there (deleted) is ChangeSetNotFound.
"""

from __future__ import annotations

import json
from typing import Any

from moto.cloudformation.exceptions import CloudFormationError, ValidationError
from moto.cloudformation.models import Change, ChangeSet, CloudFormationBackend, Stack
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.responses import ActionResult

from tierup.pipeline.sandbox.emulation.cfn_changes import (
    ResourceChange,
    compute_changes,
    parameter_values,
    text,
)
from tierup.pipeline.sandbox.emulation.cfn_updates import BUSY, busy
from tierup.pipeline.sandbox.emulation.ecs import Emulation

__all__ = ["NO_CHANGES", "ChangeSets"]

NO_CHANGES = (
    "The submitted information didn't contain changes. "
    "Submit different information to create a change set."
)


class ChangeSetNotFound(CloudFormationError):
    """What CloudFormation answers for a change set that is not there (moto: "Stack with id
    ... does not exist", a ValidationError)."""

    code = "ChangeSetNotFound"

    def __init__(self, name: str) -> None:
        super().__init__(f"ChangeSet [{name}] does not exist")


class ChangeSets:
    """The change sets created and not yet described: what they become when they are."""

    def __init__(self, ecs: Emulation) -> None:
        self._ecs = ecs
        self._pending_change_sets: dict[str, tuple[str, str, str | None]] = {}

    def reset(self) -> None:
        with self._ecs.lock:
            self._pending_change_sets.clear()

    def install(self) -> None:
        wrap = self._ecs.wrap
        wrap(CloudFormationResponse, "create_change_set", self._response_create_change_set)
        wrap(CloudFormationBackend, "describe_change_set", self._describe_change_set)

    # -- change sets ------------------------------------------------------------------------

    def _response_create_change_set(
        self, original: Any, response: CloudFormationResponse, args: dict[str, Any]
    ) -> Any:
        kind = response._get_param("ChangeSetType") or "UPDATE"
        if kind != "UPDATE":
            return original(**args)
        backend = response.cloudformation_backend
        stack_name = response._get_param("StackName")
        stack = backend.get_stack(stack_name)
        if any(stack.status.endswith(b) for b in BUSY):
            raise busy(stack)
        response.validate_template_and_stack_body()
        if response._get_bool_param("UsePreviousTemplate", False):
            template = stack.template
        elif response._get_param("TemplateURL"):
            template = response._get_stack_from_s3_url(response._get_param("TemplateURL"))
        else:
            template = response._get_param("TemplateBody")
        template_dict = Stack.parse_template(template) if isinstance(template, str) else template
        template_text = template if isinstance(template, str) else json.dumps(template)
        current = {k: text(v) for k, v in stack.stack_parameters.items()}
        given: dict[str, str] = {}
        for p in response._get_param("Parameters", []) or []:
            key = p["ParameterKey"]
            if p.get("UsePreviousValue"):
                if key not in current:
                    raise ValidationError(
                        message=f"Invalid input for parameter key {key}. Cannot specify "
                        "usePreviousValue as true for a parameter key not in the previous template"
                    )
                given[key] = current[key]
            else:
                given[key] = text(p.get("ParameterValue"))
        slots = template_dict.get("Parameters") or {}
        missing = [k for k, v in slots.items() if k not in given and "Default" not in (v or {})]
        if missing:
            raise ValidationError(message=f"Parameters: [{', '.join(missing)}] must have values")
        tags = {t["Key"]: t["Value"] for t in response._get_param("Tags", []) or []}
        change_set_id, stack_id = backend.create_change_set(
            stack_name=stack_name,
            change_set_name=response._get_param("ChangeSetName"),
            template=template_text,
            parameters=given,
            description=response._get_param("Description"),
            notification_arns=response._get_param("NotificationARNs", []),
            tags=tags,
            role_arn=response._get_param("RoleARN"),
            change_set_type="UPDATE",
        )
        change_set = backend.change_sets[change_set_id]
        after = parameter_values(template_dict, given)
        changes = compute_changes(template_dict, current, after)
        previous = stack.template
        same_template = (
            Stack.parse_template(previous) if isinstance(previous, str) else previous
        ) == template_dict
        change_set.changes = [self._change(stack, c) for c in changes]
        final: tuple[str, str, str | None] = ("CREATE_COMPLETE", "AVAILABLE", None)
        if not changes and same_template:
            final = ("FAILED", "UNAVAILABLE", NO_CHANGES)
        change_set.status = "CREATE_PENDING"
        change_set.execution_status = "UNAVAILABLE"
        change_set.status_reason = None
        self._pending_change_sets[change_set_id] = final
        return ActionResult({"Id": change_set_id, "StackId": stack_id})

    @staticmethod
    def _change(stack: Stack, change: ResourceChange) -> Change:
        out = Change("Modify", change.logical_id, change.resource_type)
        parsed = stack.resource_map._parsed_resources.get(change.logical_id)
        physical = getattr(parsed, "physical_resource_id", None)
        setattr(out, "physical_resource_id", physical)  # noqa: B010  (moto's Change lacks it)
        setattr(out, "replacement", change.replacement)  # noqa: B010
        setattr(out, "scope", ["Properties"])  # noqa: B010
        setattr(out, "details", change.details)  # noqa: B010
        return out

    def _describe_change_set(
        self, original: Any, backend: CloudFormationBackend, args: dict[str, Any]
    ) -> ChangeSet:
        name = args["change_set_name"]
        if name not in backend.change_sets and not any(
            c.change_set_name == name for c in backend.change_sets.values()
        ):
            raise ChangeSetNotFound(name)
        change_set: ChangeSet = original(**args)
        final = self._pending_change_sets.pop(change_set.change_set_id, None)
        if final is not None:
            change_set.status, change_set.execution_status, change_set.status_reason = final
        return change_set
