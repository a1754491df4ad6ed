"""ECS on moto, as ECS answers: the emulation's root, which wraps moto's ECS operations.

moto 5.2 keeps every deployment IN_PROGRESS, never rotates `deployments`, starts no service
tasks, ignores `serviceName` in ListTasks, moves tasks to STOPPED as they are described, reports
no `imageDigest` and drops `deploymentConfiguration` on CreateService. `Emulation._install()`
wraps moto's own methods (never boto3's, never tierup's) so that, seen through moto's HTTP
server (``pipeline.sandbox.emulation`` installs this with the other services' emulations),
services roll out as `ecs_rollouts` describes: CreateService starts stable; UpdateService with
forceNewDeployment or another task definition starts a new PRIMARY deployment; every
DescribeServices advances it one step.

Beyond rollouts, as ECS does: DescribeServices takes at most 10 services a call; task
definitions keep every field RegisterTaskDefinition accepts (moto drops `enableFaultInjection`
and `trustedExecutionConfiguration`) and report `registeredAt` / `deregisteredAt`; tasks of an
awsvpc service without security groups get the VPC's default (moto's task needs the key).

Services with the CODE_DEPLOY deployment controller start stable as the others do but take a
new task definition only from a CodeDeploy deployment (`codedeploy`); EXTERNAL ones are left to
moto. CloudFormation stack updates (`cloudformation`) reach ECS through the same wrapped
methods, so their services roll out as above.
"""

from __future__ import annotations

import copy
from typing import Any

from moto.core.utils import utcnow
from moto.ecs.exceptions import (
    EcsClientException,
    InvalidParameterException,
    ServiceNotFoundException,
)
from moto.ecs.models import EC2ContainerServiceBackend, Service, Task, TaskDefinition
from moto.ecs.responses import EC2ContainerServiceResponse

from tierup.pipeline.sandbox.emulation.ecs_configuration import (
    normalize_deployment_configuration,
    set_deployment_configuration,
)
from tierup.pipeline.sandbox.emulation.ecs_deployments import stop_tasks, task_network
from tierup.pipeline.sandbox.emulation.ecs_rollouts import Rollouts

__all__ = ["Emulation"]

DESCRIBE_SERVICES_MAX = 10
# RegisterTaskDefinition fields moto's own model drops, and the attribute that carries each
TASK_DEFINITION_KEEPS = {
    "enableFaultInjection": "enable_fault_injection",
    "trustedExecutionConfiguration": "trusted_execution_configuration",
}


class _PrivateDnsName:
    """An ENI's private DNS name, as EC2 gives every interface one (``ip-10-0-0-1.ec2.internal``)
    even in a VPC whose DNS hostnames are off."""

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        name = obj.__dict__.get("private_dns_name")
        if name:
            return name
        ip = getattr(obj, "private_ip_address", None)
        return f"ip-{ip.replace('.', '-')}.ec2.internal" if ip else None

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__["private_dns_name"] = value


class Emulation(Rollouts):
    """The emulation's settings and state. Get the installed one with `install()`."""

    def __init__(self) -> None:
        super().__init__()
        # the other emulated services, set by `install()`
        self.cloudformation: Any = None
        self.codedeploy: Any = None
        self.tasks: Any = None  # one-off tasks (RunTask): ecs_run_task
        self.native: Any = None  # ECS-native blue/green, canary, linear: ecs_native

    # -- settings ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every service's rollout state and every mark; back to the defaults."""
        with self._lock:
            super().reset()
            for part in (self.cloudformation, self.codedeploy, self.tasks, self.native):
                if part is not None:
                    part.reset()

    def fail_next_stack_update(self, stack: str, reason: str) -> None:
        """The next update of CloudFormation stack `stack` fails with `reason` and rolls back."""
        self.cloudformation.fail_next_stack_update(stack, reason)

    def fail_next_codedeploy(
        self, deployment_group: str, reason: str, *, code: str = "HOOK_EXECUTION_FAILURE"
    ) -> None:
        """The next CodeDeploy deployment of `deployment_group` fails with `code`: `reason`."""
        self.codedeploy.fail_next(deployment_group, reason, code=code)

    # -- installing ------------------------------------------------------------------------

    def _install(self) -> bool:
        """Wrap moto's ECS backend; False when it already was (nothing done)."""
        with self._lock:
            if self._originals:
                return False
            backend = EC2ContainerServiceBackend
            self.wrap(backend, "create_service", self._create_service)
            self.wrap(backend, "update_service", self._update_service)
            self.wrap(backend, "describe_services", self._describe_services)
            self.wrap(backend, "list_tasks", self._list_tasks)
            self.wrap(backend, "describe_tasks", self._describe_tasks)
            self.wrap(backend, "describe_clusters", self._describe_clusters)
            self.wrap(backend, "delete_service", self._delete_service)
            self.wrap(backend, "stop_task", self._passthrough)
            self.wrap(EC2ContainerServiceResponse, "create_service", self._response_create_service)
            self.wrap(
                EC2ContainerServiceResponse,
                "register_task_definition",
                self._response_register_task_definition,
            )
            self.wrap(backend, "deregister_task_definition", self._deregister_task_definition)
            # an ENI in a VPC without DNS hostnames has no private_dns_name in moto, and moto's
            # awsvpc task reads it: every FARGATE/awsvpc task would answer HTTP 500
            from moto.ec2.models.elastic_network_interfaces import NetworkInterface

            self.add_attribute(NetworkInterface, "private_dns_name", _PrivateDnsName())
            return True

    # -- the wrapped methods -----------------------------------------------------------------

    def _create_service(
        self, original: Any, backend: EC2ContainerServiceBackend, args: dict[str, Any]
    ) -> Service:
        # an awsvpc service without security groups gets the VPC's default, as on ECS (moto's
        # Service indexes the key and would answer HTTP 500)
        if args.get("network_configuration"):
            args["network_configuration"] = task_network(args["network_configuration"])
        service: Service = original(**args)
        try:
            self._adopt(backend, service)
        except Exception:
            backend.services.pop(f"{service.cluster_name}:{service.name}", None)
            raise
        return service

    def _response_create_service(
        self, original: Any, response: EC2ContainerServiceResponse, args: dict[str, Any]
    ) -> Any:
        result = original(**args)
        config = normalize_deployment_configuration(response._get_param("deploymentConfiguration"))
        payload = getattr(result, "result", None)
        service = payload.get("service") if isinstance(payload, dict) else None
        if isinstance(service, Service):
            set_deployment_configuration(service, config)
        return result

    def _response_register_task_definition(
        self, original: Any, response: EC2ContainerServiceResponse, args: dict[str, Any]
    ) -> Any:
        result = original(**args)
        payload = getattr(result, "result", None)
        task_definition = payload.get("taskDefinition") if isinstance(payload, dict) else None
        if isinstance(task_definition, TaskDefinition):
            # moto's serializer reads these snake_case attributes for the response's fields
            for key, attribute in TASK_DEFINITION_KEEPS.items():
                value = response._get_param(key)
                if value is not None:
                    setattr(task_definition, attribute, copy.deepcopy(value))
            setattr(task_definition, "registered_at", utcnow())  # noqa: B010
        return result

    def _deregister_task_definition(
        self, original: Any, backend: EC2ContainerServiceBackend, args: dict[str, Any]
    ) -> TaskDefinition:
        task_definition: TaskDefinition = original(**args)
        if getattr(task_definition, "deregistered_at", None) is None:
            setattr(task_definition, "deregistered_at", utcnow())  # noqa: B010
        return task_definition

    def _update_service(
        self, original: Any, backend: EC2ContainerServiceBackend, args: dict[str, Any]
    ) -> Service:
        props: dict[str, Any] = args["service_properties"]
        force = bool(props.get("force_new_deployment"))
        task_definition_str = props.get("task_definition")
        desired_changed = props.get("desired_count") is not None
        task_definition: TaskDefinition | None = None
        if task_definition_str:
            task_definition = backend.describe_task_definition(task_definition_str)
            if task_definition.status == "INACTIVE":
                raise EcsClientException("TaskDefinition is inactive")
            current = backend._get_service(props.get("cluster", "default"), props["service"])
            if current.deployment_controller.get("type") == "CODE_DEPLOY":
                raise InvalidParameterException(
                    "Unable to update task definition on services with a CODE_DEPLOY "
                    "deployment controller. Use AWS CodeDeploy to trigger a new deployment."
                )
        props["force_new_deployment"] = False  # the deployments are rotated here, not by moto
        service: Service = original(**args)
        if task_definition is not None:
            service.task_definition = task_definition.arn
        set_deployment_configuration(
            service,
            normalize_deployment_configuration(getattr(service, "deployment_configuration", None)),
        )
        state = self._state(backend, service)
        if state is None:
            return service
        new_definition = (
            task_definition is not None and task_definition.arn != state.primary.task_definition
        )
        if force or new_definition:
            self._start_deployment(backend, service, state, str(service.task_definition))
        elif desired_changed:
            primary = state.primary
            primary.desired = service.desired_count
            if primary.rollout == "COMPLETED":
                self._reconcile(backend, service, state, primary, "RUNNING")
        self._render(backend, service, state)
        return service

    def _describe_services(
        self, original: Any, backend: EC2ContainerServiceBackend, args: dict[str, Any]
    ) -> tuple[list[Service], list[dict[str, str]]]:
        names = args.get("service_names_or_arns") or []
        if len(names) > DESCRIBE_SERVICES_MAX:
            raise InvalidParameterException(
                f"services can have at most {DESCRIBE_SERVICES_MAX} items, got {len(names)}."
            )
        services, failures = original(**args)
        seen: set[int] = set()
        for service in services:
            if id(service) in seen or service.status != "ACTIVE":
                continue
            seen.add(id(service))
            state = self._state(backend, service)
            if state is None:
                continue
            self._step(backend, service, state)
            self._render(backend, service, state)
        return services, failures

    def _list_tasks(
        self, original: Any, backend: EC2ContainerServiceBackend, args: dict[str, Any]
    ) -> list[Task]:
        cluster_str = args.get("cluster_str")
        service_name = args.get("service_name")
        container_instance = args.get("container_instance")
        desired_status = args.get("desiredStatus")
        if cluster_str is not None and not desired_status:
            desired_status = "RUNNING"  # ListTasks' default, as on ECS
        tasks: list[Task]
        if cluster_str:
            # the cluster's own tasks: moto would scan every cluster's (and match names as
            # substrings), which grows with every task a long-lived sandbox has stopped
            cluster = backend._get_cluster(cluster_str)
            tasks = list(backend.tasks.get(cluster.name, {}).values())
            family = args.get("family")
            if family:
                revisions = set(backend.list_task_definitions(family))
                tasks = [t for t in tasks if t.task_definition_arn in revisions]
            started_by = args.get("started_by")
            if started_by:
                tasks = [t for t in tasks if t.started_by == started_by]
            tasks = [t for t in tasks if t.desired_status == desired_status]
            if service_name:
                name = str(service_name).rsplit("/", 1)[-1]
                if f"{cluster.name}:{name}" not in backend.services:
                    raise ServiceNotFoundException()
                tasks = [t for t in tasks if t.group == f"service:{name}"]
        else:
            tasks = original(
                backend,
                cluster_str=None,
                container_instance=None,
                family=args.get("family"),
                started_by=args.get("started_by"),
                service_name=None,
                desiredStatus=desired_status,
            )
        if container_instance:
            tasks = [
                t
                for t in tasks
                if t.container_instance_arn and container_instance in t.container_instance_arn
            ]
        return tasks

    def _describe_tasks(
        self, original: Any, backend: EC2ContainerServiceBackend, args: dict[str, Any]
    ) -> list[Task]:
        """The named tasks of the named cluster, looked up by ARN or id (moto compares every
        task of every cluster with every name asked for)."""
        cluster = backend._get_cluster(args["cluster_str"])
        wanted: list[str] = list(args.get("tasks") or [])
        if not wanted:
            raise InvalidParameterException("Tasks cannot be empty.")
        tasks: dict[str, Task] = backend.tasks.get(cluster.name, {})
        by_id = {arn.rsplit("/", 1)[-1]: task for arn, task in tasks.items()}
        found: dict[int, Task] = {}
        for name in wanted:
            task = tasks.get(name) or by_id.get(name.rsplit("/", 1)[-1])
            if task is not None and id(task) not in found:
                task.advance()
                found[id(task)] = task
        return list(found.values())

    def _passthrough(
        self, original: Any, backend: EC2ContainerServiceBackend, args: dict[str, Any]
    ) -> Any:
        """moto's own method, run under the emulation's lock (it touches emulated tasks)."""
        return original(**args)

    def _delete_service(
        self, original: Any, backend: EC2ContainerServiceBackend, args: dict[str, Any]
    ) -> Service:
        service: Service = original(**args)
        state = self._services.get(service)
        if state is not None and service.status == "INACTIVE":
            for deployment in state.deployments:
                stop_tasks(
                    deployment.live_tasks(),
                    f"Service {service.name} was deleted",
                    "ServiceSchedulerInitiated",
                )
            self._render(backend, service, state)
        return service

    def _describe_clusters(
        self, original: Any, backend: EC2ContainerServiceBackend, args: dict[str, Any]
    ) -> Any:
        """Each cluster's task counts, as its tasks stand now (counted when asked for, not on
        every service change)."""
        clusters, failures = original(**args)
        for cluster in clusters:
            tasks = list(backend.tasks.get(cluster.name, {}).values())
            cluster.running_tasks_count = sum(1 for t in tasks if t.last_status == "RUNNING")
            cluster.pending_tasks_count = sum(1 for t in tasks if t.last_status == "PENDING")
        return clusters, failures
