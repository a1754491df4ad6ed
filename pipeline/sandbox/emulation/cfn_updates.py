"""A CloudFormation stack update in progress, and the stack events that tell its story.

`Update` is what executing a change set started: the stack, the change set, what to put back
on a rollback (template, parameter values, the task definitions it replaced) and the ECS
services it moves (`ServiceUpdate`, with their deployments through the ECS emulation). The
event functions append to the stack's events as CloudFormation does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import ChangeSet, Event, Stack
from moto.ecs.models import Service, TaskDefinition

__all__ = [
    "BUSY",
    "STACK_TYPE",
    "ServiceUpdate",
    "Update",
    "busy",
    "event",
    "physical_id",
    "service_event",
    "stack_event",
    "type_of",
]

STACK_TYPE = "AWS::CloudFormation::Stack"
BUSY = ("_IN_PROGRESS",)


def busy(stack: Stack) -> ValidationError:
    return ValidationError(
        stack.stack_id,
        message=f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.",
    )


@dataclass(eq=False)
class ServiceUpdate:
    logical_id: str
    service: Service
    backend: Any  # moto's ECS backend of the stack's account and region
    previous_task_definition: str
    deployment_id: str | None = None
    rollback_deployment_id: str | None = None


@dataclass(eq=False)
class Update:
    stack: Stack
    change_set: ChangeSet
    template: Any
    template_dict: dict[str, Any]
    input_parameters: dict[str, Any]
    parameters: dict[str, Any]
    changes: list[str]
    replaced: list[tuple[str, TaskDefinition, TaskDefinition]] = field(default_factory=list)
    services: list[ServiceUpdate] = field(default_factory=list)
    failure: str | None = None
    failed_resource: str | None = None
    phase: str = "updating"  # updating | cleanup | rolling_back | rollback_cleanup


def event(
    stack: Stack,
    logical: str,
    physical: str | None,
    resource_type: str,
    status: str,
    reason: str | None = None,
) -> None:
    stack.events.append(
        Event(
            stack_id=stack.stack_id,
            stack_name=stack.name,
            logical_resource_id=logical,
            physical_resource_id=physical or "",
            resource_type=resource_type,
            resource_status=status,
            resource_status_reason=reason,
            resource_properties=None,
        )
    )


def service_event(stack: Stack, update: ServiceUpdate, status: str) -> None:
    event(stack, update.logical_id, update.service.arn, "AWS::ECS::Service", status)


def stack_event(stack: Stack, status: str, reason: str | None = None) -> None:
    stack.status = status
    event(stack, stack.name, stack.stack_id, STACK_TYPE, status, reason)


def physical_id(stack: Stack, logical: str) -> str | None:
    if logical == stack.name:
        return str(stack.stack_id)
    parsed = stack.resource_map._parsed_resources.get(logical)
    return getattr(parsed, "physical_resource_id", None)


def type_of(update: Update, logical: str) -> str:
    if logical == update.stack.name:
        return STACK_TYPE
    resources = update.change_set.template_dict.get("Resources") or {}
    return str((resources.get(logical) or {}).get("Type", ""))
