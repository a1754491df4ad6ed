"""CloudFormation stack updates on moto: change sets as CloudFormation makes them.

moto 5.2 defaults ChangeSetType to CREATE (so UsePreviousTemplate without it crashes), reports
"No updates are to be performed." where CloudFormation creates a FAILED change set, lists no
Modify for a parameter change (or every resource as Add), and executes a change set at once:
the stack reads UPDATE_COMPLETE, the service stays on a task definition it has just
deregistered, the new revision loses its container names, and nothing ever rolls back.
`install()` wraps moto's own methods so that, seen through moto's HTTP server:

- CreateChangeSet (ChangeSetType UPDATE by default) honours UsePreviousTemplate and
  UsePreviousValue. The change set is CREATE_PENDING until it is first described, then
  CREATE_COMPLETE with one Modify per resource the change reaches: the resources that name a
  changed parameter, and those that reference a resource being replaced (an ECS task
  definition is replaced by any change; a service is modified in place), each with its
  Replacement and Details (ParameterReference / ResourceReference, the causing entity).
  A change set that changes nothing is FAILED with "The submitted information didn't contain
  changes. Submit different information to create a change set."
- DescribeChangeSet of a change set that is not there (deleted) is ChangeSetNotFound.
- ExecuteChangeSet registers the new task definition revision (the old one stays ACTIVE until
  cleanup), moves the service to it through the ECS emulation (a new PRIMARY deployment) and
  leaves the stack UPDATE_IN_PROGRESS with the new parameter values. Every DescribeStacks or
  DescribeStackEvents steps the service's rollout; when it is COMPLETED the stack goes through
  UPDATE_COMPLETE_CLEANUP_IN_PROGRESS (the old revision is deregistered) to UPDATE_COMPLETE.
- When the rollout fails (ECS's circuit breaker: see the ECS emulation's `sandbox-fail` tag),
  or when the update was told to fail (`fail_next_stack_update`), the resource is
  UPDATE_FAILED with the reason, the stack goes UPDATE_ROLLBACK_IN_PROGRESS, the previous
  template, parameter values and task definition come back (the service is deployed back),
  and the stack ends UPDATE_ROLLBACK_COMPLETE. The stack's events carry every step and reason.

Stacks created with a DeploymentConfiguration on an AWS::ECS::Service get it (moto drops it), so
the circuit breaker acts on them as on a service created directly.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from moto.cloudformation.exceptions import CloudFormationError, ValidationError
from moto.cloudformation.models import (
    Change,
    ChangeSet,
    CloudFormationBackend,
    Event,
    Stack,
)
from moto.cloudformation.parsing import ResourceMap
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.responses import ActionResult
from moto.core.utils import pascal_to_camelcase, remap_nested_keys
from moto.ecs.models import Service, TaskDefinition, ecs_backends

from tierup.pipeline.sandbox.emulation_core import (
    Emulation,
    normalize_deployment_configuration,
    set_deployment_configuration,
)

__all__ = ["NO_CHANGES", "CloudFormationEmulation", "install"]

NO_CHANGES = (
    "The submitted information didn't contain changes. "
    "Submit different information to create a change set."
)
STACK_TYPE = "AWS::CloudFormation::Stack"


class ChangeSetNotFound(CloudFormationError):
    """What CloudFormation answers for a change set that is not there (moto: "Stack with id
    ... does not exist", a ValidationError)."""

    code = "ChangeSetNotFound"

    def __init__(self, name: str) -> None:
        super().__init__(f"ChangeSet [{name}] does not exist")


BUSY = ("_IN_PROGRESS",)

# property -> RequiresRecreation, for the resource types a deploy touches; others: Conditionally
_ALWAYS: dict[str, frozenset[str] | None] = {
    "AWS::ECS::TaskDefinition": None,  # every property but Tags
    "AWS::ECS::Service": frozenset(
        {"ServiceName", "Cluster", "LaunchType", "Role", "DeploymentController"}
    ),
    "AWS::ECS::Cluster": frozenset({"ClusterName"}),
}


class InvalidChangeSetStatus(CloudFormationError):
    code = "InvalidChangeSetStatus"


def _busy(stack: Stack) -> ValidationError:
    return ValidationError(
        stack.stack_id,
        message=f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.",
    )


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def _references(node: Any) -> set[tuple[str, str]]:
    """(kind, name) for every Ref, Fn::GetAtt and Fn::Sub variable under `node`."""
    out: set[tuple[str, str]] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                out.add(("Ref", value))
            elif key == "Fn::GetAtt":
                name = value[0] if isinstance(value, list) else str(value).split(".", 1)[0]
                out.add(("GetAtt", str(name)))
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                for var in re.findall(r"\$\{([^}!][^}]*)\}", str(text)):
                    kind = "GetAtt" if "." in var else "Ref"
                    out.add((kind, var.split(".", 1)[0]))
                if isinstance(value, list) and len(value) > 1:
                    out |= _references(value[1])
            else:
                out |= _references(value)
    elif isinstance(node, list):
        for item in node:
            out |= _references(item)
    return out


def _recreation(resource_type: str, prop: str) -> str:
    if resource_type not in _ALWAYS:
        return "Conditionally"
    always = _ALWAYS[resource_type]
    if always is None:
        return "Never" if prop == "Tags" else "Always"
    return "Always" if prop in always else "Never"


@dataclass
class _Change:
    logical_id: str
    resource_type: str
    details: list[dict[str, Any]] = field(default_factory=list)

    @property
    def replacement(self) -> str:
        kinds = {d["Target"]["RequiresRecreation"] for d in self.details}
        if "Always" in kinds:
            return "True"
        if kinds == {"Never"}:
            return "False"
        return "Conditional"


def compute_changes(
    template: dict[str, Any], before: dict[str, str], after: dict[str, str]
) -> list[_Change]:
    """The resources a change of parameter values reaches, causes before their dependents."""
    resources: dict[str, Any] = template.get("Resources") or {}
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    found: dict[str, _Change] = {}

    def note(logical: str, prop: str, source: str, entity: str, evaluation: str) -> bool:
        kind = resources[logical].get("Type", "")
        change = found.setdefault(logical, _Change(logical, kind))
        was = change.replacement if change.details else None
        detail = {
            "Target": {
                "Attribute": "Properties",
                "Name": prop,
                "RequiresRecreation": _recreation(kind, prop),
            },
            "Evaluation": evaluation,
            "ChangeSource": source,
            "CausingEntity": entity,
        }
        if detail not in change.details:
            change.details.append(detail)
        return was != "True" and change.replacement == "True"

    replaced: list[str] = []
    for logical, body in resources.items():
        for prop, value in ((body or {}).get("Properties") or {}).items():
            for kind, name in _references(value):
                if (
                    kind == "Ref"
                    and name in changed
                    and note(logical, prop, "ParameterReference", name, "Static")
                ):
                    replaced.append(logical)
    while replaced:
        cause = replaced.pop(0)
        for logical, body in resources.items():
            if logical == cause:
                continue
            for prop, value in ((body or {}).get("Properties") or {}).items():
                for kind, name in _references(value):
                    if name != cause:
                        continue
                    source = "ResourceReference" if kind == "Ref" else "ResourceAttribute"
                    entity = cause if kind == "Ref" else f"{cause}.{prop}"
                    if note(logical, prop, source, entity, "Dynamic"):
                        replaced.append(logical)
    return _in_dependency_order(found, resources)


def _in_dependency_order(found: dict[str, _Change], resources: dict[str, Any]) -> list[_Change]:
    deps = {
        logical: {n for _, n in _references(resources[logical]) if n in found and n != logical}
        for logical in found
    }
    ordered: list[_Change] = []
    placed: set[str] = set()
    while len(ordered) < len(found):
        ready = [n for n in found if n not in placed and deps[n] <= placed]
        if not ready:  # a cycle: CloudFormation would refuse the template; keep going
            ready = [n for n in found if n not in placed][:1]
        for n in ready:
            placed.add(n)
            ordered.append(found[n])
    return ordered


def _parameter_values(template: dict[str, Any], given: dict[str, Any]) -> dict[str, str]:
    slots = template.get("Parameters") or {}
    out = {k: _text(v.get("Default")) for k, v in slots.items() if "Default" in (v or {})}
    out.update({k: _text(v) for k, v in given.items() if k in slots})
    return out


@dataclass(eq=False)
class _ServiceUpdate:
    logical_id: str
    service: Service
    backend: Any  # moto's ECS backend of the stack's account and region
    previous_task_definition: str
    deployment_id: str | None = None
    rollback_deployment_id: str | None = None


@dataclass(eq=False)
class _Update:
    stack: Stack
    change_set: ChangeSet
    template: Any
    template_dict: dict[str, Any]
    input_parameters: dict[str, Any]
    parameters: dict[str, Any]
    changes: list[str]
    replaced: list[tuple[str, TaskDefinition, TaskDefinition]] = field(default_factory=list)
    services: list[_ServiceUpdate] = field(default_factory=list)
    failure: str | None = None
    failed_resource: str | None = None
    phase: str = "updating"  # updating | cleanup | rolling_back | rollback_cleanup


class CloudFormationEmulation:
    """State and settings of the CloudFormation part of the emulation."""

    def __init__(self, ecs: Emulation) -> None:
        self._ecs = ecs
        self._updates: dict[str, _Update] = {}
        self._pending_change_sets: dict[str, tuple[str, str, str | None]] = {}
        self._fail_next: dict[str, str] = {}
        self._current: _Update | None = None

    # -- settings ---------------------------------------------------------------------------

    def fail_next_stack_update(self, stack: str, reason: str) -> None:
        """The next executed change set of stack `stack` (a name) fails with `reason`."""
        with self._ecs.lock:
            self._fail_next[stack] = reason

    def reset(self) -> None:
        with self._ecs.lock:
            self._updates.clear()
            self._pending_change_sets.clear()
            self._fail_next.clear()
            self._current = None

    def install(self) -> None:
        wrap = self._ecs.wrap
        wrap(CloudFormationResponse, "create_change_set", self._response_create_change_set)
        wrap(CloudFormationBackend, "describe_change_set", self._describe_change_set)
        wrap(CloudFormationBackend, "execute_change_set", self._execute_change_set)
        wrap(CloudFormationBackend, "describe_stacks", self._describe_stacks)
        wrap(CloudFormationBackend, "describe_stack_events", self._describe_stack_events)
        wrap(ResourceMap, "build_resource_diff", self._build_resource_diff)
        self._ecs.wrap_classmethod(
            TaskDefinition, "update_from_cloudformation_json", self._update_task_definition
        )
        self._ecs.wrap_classmethod(Service, "create_from_cloudformation_json", self._create_service)

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
            raise _busy(stack)
        response.validate_template_and_stack_body()
        if response._get_bool_param("UsePreviousTemplate", False):
            template = stack.template
        elif response._get_param("TemplateURL"):
            template = response._get_stack_from_s3_url(response._get_param("TemplateURL"))
        else:
            template = response._get_param("TemplateBody")
        template_dict = Stack.parse_template(template) if isinstance(template, str) else template
        template_text = template if isinstance(template, str) else json.dumps(template)
        current = {k: _text(v) for k, v in stack.stack_parameters.items()}
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
                given[key] = _text(p.get("ParameterValue"))
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
        after = _parameter_values(template_dict, given)
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
    def _change(stack: Stack, change: _Change) -> Change:
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

    # -- executing --------------------------------------------------------------------------

    def _execute_change_set(
        self, original: Any, backend: CloudFormationBackend, args: dict[str, Any]
    ) -> None:
        name = args["change_set_name"]
        change_set = backend.change_sets.get(name) or next(
            (c for c in backend.change_sets.values() if c.change_set_name == name), None
        )
        if change_set is None or change_set.change_set_type != "UPDATE":
            return original(**args)  # type: ignore[no-any-return]
        if change_set.execution_status != "AVAILABLE":
            raise InvalidChangeSetStatus(
                f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current "
                f"status of [{change_set.status}]"
            )
        stack = backend.stacks[change_set.stack_id]
        if stack.stack_id in self._updates or any(stack.status.endswith(b) for b in BUSY):
            raise _busy(stack)
        resource_map = stack.resource_map
        update = _Update(
            stack=stack,
            change_set=change_set,
            template=stack.template,
            template_dict=resource_map._template,
            input_parameters=dict(resource_map.input_parameters),
            parameters=dict(stack.parameters),
            changes=[c.logical_resource_id for c in change_set.changes],
        )
        ecs = ecs_backends[stack.account_id][stack.region_name]
        for logical, parsed in resource_map._parsed_resources.items():
            if isinstance(parsed, Service) and logical in update.changes:
                primary = self._ecs.rollout(parsed)
                update.services.append(
                    _ServiceUpdate(
                        logical,
                        parsed,
                        ecs,
                        str(parsed.task_definition),
                        deployment_id=primary.id if primary else None,
                    )
                )
        events_before = len(stack.events)
        self._current = update
        try:
            original(**args)
        except Exception as e:  # a resource CloudFormation could not update: roll back
            update.failure = f'Resource handler returned message: "{e}"'
            update.failed_resource = update.changes[0] if update.changes else stack.name
        finally:
            self._current = None
        del stack.events[events_before:]
        stack._parse_template()
        stack.status = "UPDATE_IN_PROGRESS"
        stack.parameters = dict(change_set.parameters)
        change_set.execution_status = "EXECUTE_IN_PROGRESS"
        self._event(
            stack, stack.name, stack.stack_id, STACK_TYPE, "UPDATE_IN_PROGRESS", "User Initiated"
        )
        replaced = {logical: (old, new) for logical, old, new in update.replaced}
        for logical in update.changes:
            kind = self._type(update, logical)
            if logical in replaced:
                old, new = replaced[logical]
                self._event(
                    stack,
                    logical,
                    old.arn,
                    kind,
                    "UPDATE_IN_PROGRESS",
                    "Requested update requires the creation of a new physical resource; hence "
                    "creating one.",
                )
                self._event(stack, logical, new.arn, kind, "UPDATE_COMPLETE")
            else:
                self._event(
                    stack, logical, self._physical(stack, logical), kind, "UPDATE_IN_PROGRESS"
                )
        for s in update.services:
            now = self._ecs.rollout(s.service)
            s.deployment_id = now.id if now is not None and now.id != s.deployment_id else None
        forced = self._fail_next.pop(stack.name, None)
        if forced is not None and update.failure is None:
            update.failure = forced
            update.failed_resource = (
                update.services[0].logical_id
                if update.services
                else (update.changes[-1] if update.changes else stack.name)
            )
        self._updates[stack.stack_id] = update

    # -- progress ---------------------------------------------------------------------------

    def _describe_stacks(
        self, original: Any, backend: CloudFormationBackend, args: dict[str, Any]
    ) -> list[Stack]:
        stacks: list[Stack] = original(**args)
        for stack in stacks:
            self._advance(stack)
        return stacks

    def _describe_stack_events(
        self, original: Any, backend: CloudFormationBackend, args: dict[str, Any]
    ) -> Any:
        self._advance(backend.get_stack(args["stack_name"]))
        return original(**args)

    def _advance(self, stack: Stack) -> None:
        update = self._updates.get(stack.stack_id)
        if update is None:
            return
        if update.phase in ("updating", "rolling_back"):
            for s in update.services:
                self._ecs.advance(s.backend, s.service)
        if update.phase == "updating":
            failure = update.failure or self._rollout_failure(update)
            if failure is not None:
                self._start_rollback(update, failure)
            elif all(self._completed(s, s.deployment_id) for s in update.services):
                for s in update.services:
                    self._service_event(stack, s, "UPDATE_COMPLETE")
                self._stack_event(stack, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
                update.phase = "cleanup"
        elif update.phase == "cleanup":
            for logical, old, _new in update.replaced:
                self._retire(stack, logical, old)
            self._stack_event(stack, "UPDATE_COMPLETE")
            update.change_set.execution_status = "EXECUTE_COMPLETE"
            del self._updates[stack.stack_id]
        elif update.phase == "rolling_back":
            if all(self._completed(s, s.rollback_deployment_id) for s in update.services):
                for s in update.services:
                    self._service_event(stack, s, "UPDATE_COMPLETE")
                self._stack_event(stack, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
                update.phase = "rollback_cleanup"
        elif update.phase == "rollback_cleanup":
            for logical, _old, new in update.replaced:
                self._retire(stack, logical, new)
            self._stack_event(stack, "UPDATE_ROLLBACK_COMPLETE")
            update.change_set.execution_status = "EXECUTE_FAILED"
            del self._updates[stack.stack_id]

    def _completed(self, update: _ServiceUpdate, deployment_id: str | None) -> bool:
        if deployment_id is None:
            return True
        view = self._ecs.rollout(update.service, deployment_id)
        return view is None or (view.status == "PRIMARY" and view.rollout == "COMPLETED")

    def _rollout_failure(self, update: _Update) -> str | None:
        for s in update.services:
            if s.deployment_id is None:
                continue
            view = self._ecs.rollout(s.service, s.deployment_id)
            if view is not None and view.status == "PRIMARY" and view.rollout != "FAILED":
                continue
            detail = (view.failure or view.reason) if view is not None else ""
            update.failed_resource = s.logical_id
            return (
                "Resource handler returned message: \"Error occurred during operation 'ECS "
                "Deployment Circuit Breaker was triggered'.\" (RequestToken: "
                f"{uuid.uuid4()}, HandlerErrorCode: GeneralServiceException)"
                + (f" {detail}" if detail else "")
            )
        return None

    def _start_rollback(self, update: _Update, reason: str) -> None:
        stack = update.stack
        failed = update.failed_resource or stack.name
        self._event(
            stack,
            failed,
            self._physical(stack, failed),
            self._type(update, failed),
            "UPDATE_FAILED",
            reason,
        )
        self._stack_event(
            stack,
            "UPDATE_ROLLBACK_IN_PROGRESS",
            f"The following resource(s) failed to update: [{failed}]. ",
        )
        resource_map = stack.resource_map
        resource_map._template = update.template_dict
        resource_map._resource_json_map = update.template_dict.get("Resources", {})
        resource_map.input_parameters = update.input_parameters
        resource_map.load_parameters()
        for logical, old, _new in update.replaced:
            resource_map._parsed_resources[logical] = old
        stack.template = update.template
        stack._parse_template()
        stack.parameters = update.parameters
        for s in update.services:
            self._service_event(stack, s, "UPDATE_IN_PROGRESS")
            s.backend.update_service(
                {
                    "cluster": s.service.cluster_name,
                    "service": s.service.name,
                    "task_definition": s.previous_task_definition,
                }
            )
            primary = self._ecs.rollout(s.service)
            s.rollback_deployment_id = primary.id if primary is not None else None
        update.phase = "rolling_back"

    def _retire(self, stack: Stack, logical: str, task_definition: TaskDefinition) -> None:
        kind = "AWS::ECS::TaskDefinition"
        self._event(stack, logical, task_definition.arn, kind, "DELETE_IN_PROGRESS")
        ecs_backends[stack.account_id][stack.region_name].deregister_task_definition(
            task_definition.arn
        )
        self._event(stack, logical, task_definition.arn, kind, "DELETE_COMPLETE")

    # -- moto's resource updates ------------------------------------------------------------

    def _build_resource_diff(
        self, original: Any, resource_map: ResourceMap, args: dict[str, Any]
    ) -> dict[str, Any]:
        diff: dict[str, Any] = original(**args)
        parameters = args.get("parameters")
        if not parameters:
            return diff
        template = args["other_template"]
        if self._current is not None:
            # executing a change set: what it reaches was computed when it was created
            reached = self._current.changes
        else:
            before = {k: _text(v) for k, v in resource_map.resolved_parameters.items()}
            after = _parameter_values(template, parameters)
            reached = [c.logical_id for c in compute_changes(template, before, after)]
        modify = list(dict.fromkeys([*reached, *diff["Modify"]]))
        diff["Modify"] = [n for n in modify if n in (template.get("Resources") or {})]
        return diff

    def _update_task_definition(self, original: Any, cls: type, args: dict[str, Any]) -> Any:
        current: TaskDefinition = args["original_resource"]
        properties = args["cloudformation_json"].get("Properties") or {}
        wanted = remap_nested_keys(properties.get("ContainerDefinitions", []), pascal_to_camelcase)
        family = properties.get("Family", current.family)
        if family == current.family and _same_containers(current.container_definitions, wanted):
            return current
        # CloudFormation replaces a task definition: a new revision now, the old one deregistered
        # only when the update completes (so that a rollback can point back at it)
        new: TaskDefinition = TaskDefinition.create_from_cloudformation_json(
            args["new_resource_name"],
            args["cloudformation_json"],
            args["account_id"],
            args["region_name"],
        )
        if self._current is not None:
            logical = getattr(current, "logical_resource_id", None) or ""
            self._current.replaced.append((logical, current, new))
        return new

    def _create_service(self, original: Any, cls: type, args: dict[str, Any]) -> Any:
        service = original(**args)
        properties = args["cloudformation_json"].get("Properties") or {}
        config = properties.get("DeploymentConfiguration")
        if isinstance(config, dict):
            set_deployment_configuration(
                service,
                normalize_deployment_configuration(remap_nested_keys(config, pascal_to_camelcase)),
            )
        return service

    # -- events -----------------------------------------------------------------------------

    @staticmethod
    def _event(
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

    def _service_event(self, stack: Stack, update: _ServiceUpdate, status: str) -> None:
        self._event(stack, update.logical_id, update.service.arn, "AWS::ECS::Service", status)

    def _stack_event(self, stack: Stack, status: str, reason: str | None = None) -> None:
        stack.status = status
        self._event(stack, stack.name, stack.stack_id, STACK_TYPE, status, reason)

    @staticmethod
    def _physical(stack: Stack, logical: str) -> str | None:
        if logical == stack.name:
            return str(stack.stack_id)
        parsed = stack.resource_map._parsed_resources.get(logical)
        return getattr(parsed, "physical_resource_id", None)

    @staticmethod
    def _type(update: _Update, logical: str) -> str:
        if logical == update.stack.name:
            return STACK_TYPE
        resources = update.change_set.template_dict.get("Resources") or {}
        return str((resources.get(logical) or {}).get("Type", ""))


def _same_containers(current: Iterable[dict[str, Any]], wanted: list[dict[str, Any]]) -> bool:
    have = list(current)
    if len(have) != len(wanted):
        return False
    return all(all(h.get(k) == v for k, v in w.items()) for h, w in zip(have, wanted, strict=True))


def install(ecs: Emulation) -> CloudFormationEmulation:
    part = CloudFormationEmulation(ecs)
    part.install()
    return part
