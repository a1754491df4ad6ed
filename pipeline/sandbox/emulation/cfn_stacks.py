"""CloudFormation stack updates on moto: an executed change set rolls the stack's services out,
and rolls back when they fail.

moto 5.2 executes a change set at once: the stack reads UPDATE_COMPLETE, the service stays on a
task definition it has just deregistered, the new revision loses its container names, and
nothing ever rolls back. Here ExecuteChangeSet registers the new task definition revision (the
old one stays ACTIVE until cleanup), moves the service to it through the ECS emulation (a new
PRIMARY deployment) and leaves the stack UPDATE_IN_PROGRESS with the new parameter values.
Every DescribeStacks or DescribeStackEvents steps the service's rollout; when it is COMPLETED the
stack goes through UPDATE_COMPLETE_CLEANUP_IN_PROGRESS (the old revision is deregistered) to
UPDATE_COMPLETE. When the rollout fails, or when the update was told to fail
(`fail_next_stack_update`), the stack rolls back to UPDATE_ROLLBACK_COMPLETE.

Stacks created with a DeploymentConfiguration on an AWS::ECS::Service get it (moto drops it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from moto.cloudformation.exceptions import CloudFormationError
from moto.cloudformation.models import CloudFormationBackend, Stack
from moto.cloudformation.parsing import ResourceMap
from moto.core.utils import pascal_to_camelcase, remap_nested_keys
from moto.ecs.models import Service, TaskDefinition, ecs_backends

from tierup.pipeline.sandbox.emulation.cfn_changes import compute_changes, parameter_values, text
from tierup.pipeline.sandbox.emulation.cfn_updates import (
    BUSY,
    STACK_TYPE,
    ServiceUpdate,
    Update,
    busy,
    event,
    physical_id,
    service_event,
    stack_event,
    type_of,
)
from tierup.pipeline.sandbox.emulation.ecs import Emulation
from tierup.pipeline.sandbox.emulation.ecs_configuration import (
    normalize_deployment_configuration,
    set_deployment_configuration,
)

__all__ = ["StackUpdates"]


class InvalidChangeSetStatus(CloudFormationError):
    code = "InvalidChangeSetStatus"


class StackUpdates:
    """The stack updates in progress, and the failures asked for the next ones."""

    def __init__(self, ecs: Emulation) -> None:
        self._ecs = ecs
        self._updates: dict[str, Update] = {}
        self._fail_next: dict[str, str] = {}
        self._current: Update | None = None

    def fail_next_stack_update(self, stack: str, reason: str) -> None:
        """The next executed change set of stack `stack` (a name) fails with `reason`."""
        with self._ecs.lock:
            self._fail_next[stack] = reason

    def reset(self) -> None:
        with self._ecs.lock:
            self._updates.clear()
            self._fail_next.clear()
            self._current = None

    def install(self) -> None:
        wrap = self._ecs.wrap
        wrap(CloudFormationBackend, "execute_change_set", self._execute_change_set)
        wrap(CloudFormationBackend, "describe_stacks", self._describe_stacks)
        wrap(CloudFormationBackend, "describe_stack_events", self._describe_stack_events)
        wrap(ResourceMap, "build_resource_diff", self._build_resource_diff)
        self._ecs.wrap_classmethod(
            TaskDefinition, "update_from_cloudformation_json", self._update_task_definition
        )
        self._ecs.wrap_classmethod(Service, "create_from_cloudformation_json", self._create_service)

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
            raise busy(stack)
        resource_map = stack.resource_map
        update = Update(
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
                    ServiceUpdate(
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
        event(stack, stack.name, stack.stack_id, STACK_TYPE, "UPDATE_IN_PROGRESS", "User Initiated")
        replaced = {logical: (old, new) for logical, old, new in update.replaced}
        for logical in update.changes:
            kind = type_of(update, logical)
            if logical in replaced:
                old, new = replaced[logical]
                event(
                    stack,
                    logical,
                    old.arn,
                    kind,
                    "UPDATE_IN_PROGRESS",
                    "Requested update requires the creation of a new physical resource; hence "
                    "creating one.",
                )
                event(stack, logical, new.arn, kind, "UPDATE_COMPLETE")
            else:
                event(stack, logical, physical_id(stack, logical), kind, "UPDATE_IN_PROGRESS")
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
                    service_event(stack, s, "UPDATE_COMPLETE")
                stack_event(stack, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
                update.phase = "cleanup"
        elif update.phase == "cleanup":
            for logical, old, _new in update.replaced:
                self._retire(stack, logical, old)
            stack_event(stack, "UPDATE_COMPLETE")
            update.change_set.execution_status = "EXECUTE_COMPLETE"
            del self._updates[stack.stack_id]
        elif update.phase == "rolling_back":
            if all(self._completed(s, s.rollback_deployment_id) for s in update.services):
                for s in update.services:
                    service_event(stack, s, "UPDATE_COMPLETE")
                stack_event(stack, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
                update.phase = "rollback_cleanup"
        elif update.phase == "rollback_cleanup":
            for logical, _old, new in update.replaced:
                self._retire(stack, logical, new)
            stack_event(stack, "UPDATE_ROLLBACK_COMPLETE")
            update.change_set.execution_status = "EXECUTE_FAILED"
            del self._updates[stack.stack_id]

    def _completed(self, update: ServiceUpdate, deployment_id: str | None) -> bool:
        if deployment_id is None:
            return True
        view = self._ecs.rollout(update.service, deployment_id)
        return view is None or (view.status == "PRIMARY" and view.rollout == "COMPLETED")

    def _rollout_failure(self, update: Update) -> str | None:
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

    def _start_rollback(self, update: Update, reason: str) -> None:
        stack = update.stack
        failed = update.failed_resource or stack.name
        event(
            stack,
            failed,
            physical_id(stack, failed),
            type_of(update, failed),
            "UPDATE_FAILED",
            reason,
        )
        stack_event(
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
            service_event(stack, s, "UPDATE_IN_PROGRESS")
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
        event(stack, logical, task_definition.arn, kind, "DELETE_IN_PROGRESS")
        ecs_backends[stack.account_id][stack.region_name].deregister_task_definition(
            task_definition.arn
        )
        event(stack, logical, task_definition.arn, kind, "DELETE_COMPLETE")

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
            before = {k: text(v) for k, v in resource_map.resolved_parameters.items()}
            after = parameter_values(template, parameters)
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


def _same_containers(current: Iterable[dict[str, Any]], wanted: list[dict[str, Any]]) -> bool:
    have = list(current)
    if len(have) != len(wanted):
        return False
    return all(all(h.get(k) == v for k, v in w.items()) for h, w in zip(have, wanted, strict=True))
