"""ECS rollouts on moto: what moto's ECS backend does not do, done the way ECS does it.

moto 5.2 keeps every deployment IN_PROGRESS, never rotates `deployments`, starts no service
tasks, ignores `serviceName` in ListTasks, moves tasks to STOPPED as they are described, reports
no `imageDigest` and drops `deploymentConfiguration` on CreateService. `install()` wraps moto's
own methods (never boto3's, never tierup's) so that, seen through moto's HTTP server
(``pipeline.sandbox.emulation`` installs this with the other services' emulations):

- create_service starts stable: one PRIMARY deployment, COMPLETED, `desiredCount` RUNNING tasks
  (startedBy = deployment id, group = `service:NAME`) whose containers report the digest their
  image resolved to in moto's ECR at that moment.
- update_service with forceNewDeployment or another task definition starts a new PRIMARY
  deployment (IN_PROGRESS, its own tasks, digests resolved now); the previous one turns ACTIVE.
- every describe_services advances the PRIMARY deployment one step; after `polls_to_complete`
  steps it is COMPLETED and the older deployments are gone, their tasks STOPPED.
- a deployment whose image is bad (see `Emulation.verdict_for`) has its tasks stop; with the
  circuit breaker enabled it ends FAILED after the same number of steps, and with rollback a new
  PRIMARY deployment goes back to the last COMPLETED one (its task definition and digests).
  Without the circuit breaker ECS keeps retrying, and so does this: the rollout never ends.
- a hanging image never completes (its tasks stay PENDING), to exercise timeouts.

Images are marked bad with `mark_bad(digest)` or by giving the digest, in ECR, a tag that starts
with `sandbox-fail` (`aws ecr put-image ... --image-tag sandbox-fail`); a tag
`sandbox-fail.<cluster>` marks it bad in that cluster only (one environment of a tier fails, the
others run it). An image reference that does not resolve in ECR, or that another account may not
pull (repository policy), fails with CannotPullContainerError as on ECS. Images hang with
`mark_hang(digest)`, a `sandbox-hang*` tag, or `sandbox-hang.<cluster>` for one cluster.
Image references outside ECR are taken as pullable, with no digest.

Beyond rollouts, as ECS does: DescribeServices takes at most 10 services a call; task
definitions keep every field RegisterTaskDefinition accepts (moto drops `enableFaultInjection`
and `trustedExecutionConfiguration`) and report `registeredAt` / `deregisteredAt`; tasks of an
awsvpc service without security groups get the VPC's default (moto's task needs the key).

Services with the CODE_DEPLOY deployment controller start stable as the others do but take a
new task definition only from a CodeDeploy deployment (`emulation_codedeploy`); EXTERNAL ones are
left to moto. CloudFormation stack updates (`emulation_cfn`) reach ECS through the same wrapped
methods, so their services roll out as above.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import inspect
import json
import math
import re
import threading
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from moto.core.utils import utcnow
from moto.ecr.models import ecr_backends
from moto.ecs.exceptions import (
    EcsClientException,
    InvalidParameterException,
    ServiceNotFoundException,
)
from moto.ecs.models import (
    Container,
    EC2ContainerServiceBackend,
    Service,
    Task,
    TaskDefinition,
)
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.moto_api._internal import mock_random

__all__ = [
    "DEFAULT_POLLS_TO_COMPLETE",
    "FAIL_TAG_PREFIX",
    "HANG_TAG_PREFIX",
    "Emulation",
    "RolloutView",
    "Verdict",
    "normalize_deployment_configuration",
    "policy_allows_pull",
    "set_deployment_configuration",
]

DEFAULT_POLLS_TO_COMPLETE = 2
MAX_HISTORY = 100  # deployments kept per service for ListServiceDeployments
DESCRIBE_SERVICES_MAX = 10
# RegisterTaskDefinition fields moto's own model drops, and the attribute that carries each
TASK_DEFINITION_KEEPS = {
    "enableFaultInjection": "enable_fault_injection",
    "trustedExecutionConfiguration": "trusted_execution_configuration",
}
FAIL_TAG_PREFIX = "sandbox-fail"
HANG_TAG_PREFIX = "sandbox-hang"
MAX_EVENTS = 100

PULL_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")

_ECR_IMAGE_RE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repo>[a-z0-9][a-z0-9._/-]*?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z0-9_+.-]+:[A-Fa-f0-9]{32,}))?$"
)

_DEFAULT_DEPLOYMENT_CONFIGURATION: dict[str, Any] = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}

VerdictKind = Literal["ok", "fail", "hang"]


@dataclass(frozen=True)
class Verdict:
    """What a deployment's images make of its tasks: start, fail (with the reason), or hang."""

    kind: VerdictKind
    reason: str = ""
    stop_code: str = ""


_OK = Verdict("ok")


@dataclass(frozen=True)
class _Image:
    """One container's image as a deployment resolved it when it started."""

    container: str
    image: str
    digest: str | None
    ecr: tuple[str, str, str] | None  # registry account, region, repository
    pull_error: str | None


class _EmulatedContainer(Container):
    def __init__(self, task_def: TaskDefinition, definition: dict[str, Any], image: _Image) -> None:
        super().__init__(task_def)
        self.name = definition.get("name")
        self.image = definition.get("image")
        self.cpu = definition.get("cpu", 0)
        self.memory = definition.get("memory")
        self.environment = definition.get("environment")
        self.command = definition.get("command")
        self.image_digest = image.digest
        self.runtime_id: str | None = None
        self.reason: str | None = None
        setattr(self, "exitCode", None)  # noqa: B010  (moto's attribute name, typed as int)


class _EmulatedTask(Task):
    """A service task: only the emulation moves its status (describe_tasks does not)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        now = utcnow()
        self.created_at: datetime = now
        self.pull_started_at: datetime | None = None
        self.pull_stopped_at: datetime | None = None
        self.started_at: datetime | None = None
        self.stopping_at: datetime | None = None
        self.stopped_at: datetime | None = None
        self.execution_stopped_at: datetime | None = None
        self.stop_code: str | None = None
        self.version = 1

    def advance(self) -> None:
        return None

    @property
    def status(self) -> str | None:
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        self._status = value

    @property
    def live(self) -> bool:
        return self.desired_status == "RUNNING"


@dataclass(eq=False)
class _Deployment:
    id: str
    task_definition: str
    images: tuple[_Image, ...]
    desired: int
    launch_type: str | None
    platform_version: str | None
    network_configuration: dict[str, Any] | None
    status: str = "PRIMARY"
    rollout: str = "IN_PROGRESS"
    reason: str = ""
    steps: int = 0
    failed_tasks: int = 0
    is_rollback: bool = False
    rollback_of: str | None = None  # the failed deployment this one rolls back
    sources: tuple[str, ...] = ()  # the deployments that ran when this one started
    hang_reported: bool = False
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    tasks: list[_EmulatedTask] = field(default_factory=list)

    def live_tasks(self) -> list[_EmulatedTask]:
        return [t for t in self.tasks if t.live]

    def count(self, status: str) -> int:
        return sum(1 for t in self.tasks if t.live and t.last_status == status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "taskDefinition": self.task_definition,
            "desiredCount": self.desired,
            "pendingCount": self.count("PENDING"),
            "runningCount": self.count("RUNNING"),
            "failedTasks": self.failed_tasks,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "launchType": self.launch_type,
            "platformVersion": self.platform_version,
            "networkConfiguration": self.network_configuration or None,
            "rolloutState": self.rollout,
            "rolloutStateReason": self.reason,
        }


@dataclass(eq=False)
class _ServiceState:
    deployments: list[_Deployment]  # newest first; the PRIMARY one is first
    last_completed: _Deployment | None
    events: list[dict[str, Any]] = field(default_factory=list)  # newest first
    # every deployment ever started, newest first: ECS's service deployment history
    # (ListServiceDeployments and friends, `emulation_history`)
    history: list[_Deployment] = field(default_factory=list)

    @property
    def primary(self) -> _Deployment:
        return self.deployments[0]

    def event(self, message: str) -> None:
        entry = {"id": str(uuid.uuid4()), "createdAt": utcnow(), "message": message}
        self.events = [entry, *self.events][:MAX_EVENTS]


@dataclass(frozen=True)
class RolloutView:
    """One deployment of a service, as the other emulations see it."""

    id: str
    status: str  # PRIMARY | ACTIVE
    rollout: str  # IN_PROGRESS | COMPLETED | FAILED
    task_definition: str
    running: int
    desired: int
    failed_tasks: int
    reason: str
    failure: str | None  # the latest service event saying why its tasks fail
    images: tuple[_Image, ...]


def _new_deployment_id() -> str:
    return f"ecs-svc/{mock_random.randint(10**18, 10**19 - 1)}"


def _new_deployment(
    service: Service, task_definition: str, images: tuple[_Image, ...], **fields: Any
) -> _Deployment:
    """A deployment of `service` as it is configured now."""
    return _Deployment(
        id=_new_deployment_id(),
        task_definition=task_definition,
        images=images,
        desired=service.desired_count,
        launch_type=service.launch_type,
        platform_version=service.platform_version,
        network_configuration=service.network_configuration or None,
        **fields,
    )


def _task_id(task: Task) -> str:
    return str(task.task_arn).rsplit("/", 1)[-1]


def _task_list(tasks: list[_EmulatedTask]) -> str:
    return " ".join(f"(task {_task_id(t)})" for t in tasks)


def normalize_deployment_configuration(config: object) -> dict[str, Any]:
    """ECS's defaults, overlaid with what the caller gave (None values dropped)."""
    merged = copy.deepcopy(_DEFAULT_DEPLOYMENT_CONFIGURATION)
    if isinstance(config, dict):
        for key, value in config.items():
            if value is None:
                continue
            if key == "deploymentCircuitBreaker" and isinstance(value, dict):
                merged[key] = {
                    "enable": bool(value.get("enable", False)),
                    "rollback": bool(value.get("rollback", False)),
                }
            else:
                merged[key] = copy.deepcopy(value)
    return merged


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    if isinstance(value, list):
        return list(value)
    return [value]


def _principal_matches(principal: object, account: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    for p in _as_list(principal.get("AWS")):
        if not isinstance(p, str):
            continue
        if p in ("*", account) or re.match(rf"^arn:aws[a-zA-Z-]*:iam::{account}:", p):
            return True
    return False


def _action_matches(actions: object, wanted: str) -> bool:
    return any(
        isinstance(a, str) and fnmatch.fnmatchcase(wanted.lower(), a.lower())
        for a in _as_list(actions)
    )


def policy_allows_pull(policy_text: str | None, account: str) -> bool:
    """Whether an ECR repository policy lets `account` pull (BatchGetImage and layers)."""
    if not policy_text:
        return False
    try:
        document = json.loads(policy_text)
    except ValueError:
        return False
    if not isinstance(document, dict):
        return False
    allowed = dict.fromkeys(PULL_ACTIONS, False)
    for statement in _as_list(document.get("Statement")):
        if not isinstance(statement, dict):
            continue
        if not _principal_matches(statement.get("Principal"), account):
            continue
        for action in PULL_ACTIONS:
            if not _action_matches(statement.get("Action"), action):
                continue
            if statement.get("Effect") == "Deny":
                return False
            if statement.get("Effect") == "Allow":
                allowed[action] = True
    return all(allowed.values())


def set_deployment_configuration(service: Service, config: dict[str, Any]) -> None:
    setattr(service, "deployment_configuration", config)  # noqa: B010  (moto has no such field)


def _circuit_breaker(service: Service) -> dict[str, Any]:
    config = getattr(service, "deployment_configuration", None)
    breaker = config.get("deploymentCircuitBreaker") if isinstance(config, dict) else None
    return breaker if isinstance(breaker, dict) else {}


def _task_network(config: object) -> dict[str, Any] | None:
    """A service's network configuration as its tasks get it: without security groups, ECS
    uses the VPC's default one (moto's task wants the key)."""
    if not isinstance(config, dict) or not config:
        return None
    awsvpc = config.get("awsvpcConfiguration")
    if isinstance(awsvpc, dict) and "securityGroups" not in awsvpc:
        return {**config, "awsvpcConfiguration": {**awsvpc, "securityGroups": []}}
    return config


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


def _not_found(image: str) -> str:
    return (
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
        f"failed to resolve ref {image}: {image}: not found"
    )


def _forbidden(image: str, account: str) -> str:
    host = image.split("/", 1)[0]
    return (
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
        f"failed to resolve ref {image}: pulling from host {host} failed with status code "
        f"403 Forbidden (the repository policy does not let account {account} pull)"
    )


class Emulation:
    """The emulation's settings and state. Get the installed one with `install()`."""

    def __init__(self) -> None:
        self.polls_to_complete: int = DEFAULT_POLLS_TO_COMPLETE
        self.bad_digests: set[str] = set()
        self.hang_digests: set[str] = set()
        self._lock = threading.RLock()
        self._services: weakref.WeakKeyDictionary[Service, _ServiceState] = (
            weakref.WeakKeyDictionary()
        )
        self._originals: dict[tuple[type, str], Any] = {}
        self._added: list[tuple[type, str]] = []
        # the CloudFormation and CodeDeploy emulations, set by `install()`
        self.cloudformation: Any = None
        self.codedeploy: Any = None
        self.tasks: Any = None  # one-off tasks (RunTask): emulation_tasks
        self.native: Any = None  # ECS-native blue/green, canary, linear: emulation_ecs_native

    # -- settings ---------------------------------------------------------------------------

    def mark_bad(self, digest: str) -> None:
        """Tasks of deployments that run `digest` fail from now on."""
        with self._lock:
            self.bad_digests.add(digest)

    def mark_hang(self, digest: str) -> None:
        """Deployments that run `digest` never complete from now on."""
        with self._lock:
            self.hang_digests.add(digest)

    def reset(self) -> None:
        """Forget every service's rollout state and every mark; back to the defaults."""
        with self._lock:
            self._services.clear()
            self.bad_digests.clear()
            self.hang_digests.clear()
            self.polls_to_complete = DEFAULT_POLLS_TO_COMPLETE
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

    @property
    def installed(self) -> bool:
        return bool(self._originals)

    @property
    def lock(self) -> threading.RLock:
        """Held around every wrapped call; the other emulations share it."""
        return self._lock

    # -- installing ------------------------------------------------------------------------

    def _install(self) -> bool:
        """Wrap moto's ECS backend; False when it already was (nothing done)."""
        with self._lock:
            if self._originals:
                return False
            backend = EC2ContainerServiceBackend
            self._wrap(backend, "create_service", self._create_service)
            self._wrap(backend, "update_service", self._update_service)
            self._wrap(backend, "describe_services", self._describe_services)
            self._wrap(backend, "list_tasks", self._list_tasks)
            self._wrap(backend, "describe_tasks", self._describe_tasks)
            self._wrap(backend, "describe_clusters", self._describe_clusters)
            self._wrap(backend, "delete_service", self._delete_service)
            self._wrap(backend, "stop_task", self._passthrough)
            self._wrap(EC2ContainerServiceResponse, "create_service", self._response_create_service)
            self._wrap(
                EC2ContainerServiceResponse,
                "register_task_definition",
                self._response_register_task_definition,
            )
            self._wrap(backend, "deregister_task_definition", self._deregister_task_definition)
            # an ENI in a VPC without DNS hostnames has no private_dns_name in moto, and moto's
            # awsvpc task reads it: every FARGATE/awsvpc task would answer HTTP 500
            from moto.ec2.models.elastic_network_interfaces import NetworkInterface

            if "private_dns_name" not in NetworkInterface.__dict__:
                setattr(NetworkInterface, "private_dns_name", _PrivateDnsName())  # noqa: B010
                self._added.append((NetworkInterface, "private_dns_name"))
            return True

    def uninstall(self) -> None:
        """Put moto's own methods back."""
        with self._lock:
            for (cls, name), original in self._originals.items():
                setattr(cls, name, original)
            self._originals.clear()
            for cls, name in self._added:
                if name in cls.__dict__:
                    delattr(cls, name)
            self._added.clear()

    def wrap(self, cls: type, name: str, handler: Callable[..., Any]) -> None:
        """Replace moto's `cls.name` by `handler(original, obj, arguments)`, under the lock."""
        self._wrap(cls, name, handler)

    def wrap_classmethod(self, cls: type, name: str, handler: Callable[..., Any]) -> None:
        """As `wrap`, for a classmethod: `handler(original, cls, arguments)`."""
        original = cls.__dict__[name]
        self._originals[(cls, name)] = original
        function = original.__func__
        signature = inspect.signature(function)

        def wrapper(klass: Any, *args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(klass, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.pop(next(iter(signature.parameters)))
            with self._lock:
                return handler(lambda **kw: function(klass, **kw), klass, arguments)

        wrapper.__name__ = name
        setattr(cls, name, classmethod(wrapper))

    def add_method(self, cls: type, name: str, method: Callable[..., Any]) -> None:
        """Give moto's `cls` an operation it lacks (removed again by `uninstall`)."""
        existing = cls.__dict__.get(name)
        if existing is not None and not getattr(existing, "_tierup_added", False):
            raise ValueError(f"{cls.__name__}.{name} exists; wrap it instead")
        lock = self._lock

        def locked(obj: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(obj, *args, **kwargs)

        locked.__name__ = name
        locked._tierup_added = True  # type: ignore[attr-defined]
        if (cls, name) in self._originals or (cls, name) in self._added:
            pass  # this emulation's own, layered (ecs_native over history): the first one stays
        elif existing is not None:  # another emulation's: it comes back on uninstall
            self._originals[(cls, name)] = existing
        else:
            self._added.append((cls, name))
        setattr(cls, name, locked)

    def _wrap(self, cls: type, name: str, handler: Callable[..., Any]) -> None:
        original = cls.__dict__[name]
        self._originals[(cls, name)] = original
        signature = inspect.signature(original)

        def wrapper(obj: Any, *args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(obj, *args, **kwargs)
            bound.apply_defaults()
            with self._lock:
                return handler(original, obj, bound.arguments)

        wrapper.__name__ = name
        wrapper.__qualname__ = f"{cls.__name__}.{name}"
        wrapper.__doc__ = original.__doc__
        setattr(cls, name, wrapper)

    # -- the wrapped methods -----------------------------------------------------------------

    def _create_service(
        self, original: Any, backend: EC2ContainerServiceBackend, args: dict[str, Any]
    ) -> Service:
        # an awsvpc service without security groups gets the VPC's default, as on ECS (moto's
        # Service indexes the key and would answer HTTP 500)
        if args.get("network_configuration"):
            args["network_configuration"] = _task_network(args["network_configuration"])
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
                self._stop(
                    deployment.live_tasks(),
                    f"Service {service.name} was deleted",
                    "ServiceSchedulerInitiated",
                )
            self._render(backend, service, state)
        return service

    # -- for the CloudFormation and CodeDeploy emulations -----------------------------------

    def deploy(
        self,
        backend: EC2ContainerServiceBackend,
        service: Service,
        task_definition_arn: str,
        *,
        images: tuple[_Image, ...] | None = None,
        is_rollback: bool = False,
    ) -> str | None:
        """Start a new PRIMARY deployment of `task_definition_arn`, whatever the controller.

        `images` (from a `RolloutView`) reuses what an earlier deployment resolved, as a
        reroute to an original task set does. Returns the deployment id.
        """
        state = self._state(backend, service)
        if state is None:
            return None
        deployment = self._start_deployment(
            backend, service, state, task_definition_arn, images=images, is_rollback=is_rollback
        )
        self._render(backend, service, state)
        return deployment.id

    def advance(self, backend: EC2ContainerServiceBackend, service: Service) -> None:
        """One step of the service's rollout, as one DescribeServices makes."""
        state = self._state(backend, service)
        if state is not None and service.status == "ACTIVE":
            self._step(backend, service, state)
            self._render(backend, service, state)

    def rollout(self, service: Service, deployment_id: str | None = None) -> RolloutView | None:
        """Where deployment `deployment_id` (default: the PRIMARY one) of `service` stands."""
        state = self._services.get(service)
        if state is None:
            return None
        if deployment_id is None:
            deployment: _Deployment | None = state.primary
        else:
            deployment = next((d for d in state.deployments if d.id == deployment_id), None)
        if deployment is None:
            return None
        failure = next(
            (
                e["message"]
                for e in state.events
                if "unable to consistently start tasks" in str(e["message"])
            ),
            None,
        )
        return RolloutView(
            id=deployment.id,
            status=deployment.status,
            rollout=deployment.rollout,
            task_definition=deployment.task_definition,
            running=deployment.count("RUNNING"),
            desired=deployment.desired,
            failed_tasks=deployment.failed_tasks,
            reason=deployment.reason,
            failure=failure if deployment.failed_tasks else None,
            images=deployment.images,
        )

    def history(
        self, backend: EC2ContainerServiceBackend, service: Service
    ) -> tuple[list[_Deployment], _Deployment | None]:
        """Every deployment of ``service`` ever started (newest first), and its PRIMARY one."""
        state = self._state(backend, service)
        if state is None:
            return [], None
        return list(state.history), state.primary

    # -- rollouts ----------------------------------------------------------------------------

    def _state(self, backend: EC2ContainerServiceBackend, service: Service) -> _ServiceState | None:
        state = self._services.get(service)
        if state is None:
            state = self._adopt(backend, service)
        return state

    def _adopt(self, backend: EC2ContainerServiceBackend, service: Service) -> _ServiceState | None:
        """A service the emulation has not seen yet starts stable, as after CreateService."""
        if service.deployment_controller.get("type", "ECS") not in ("ECS", "CODE_DEPLOY"):
            return None
        if not service.task_definition:
            return None
        if not hasattr(service, "deployment_configuration"):
            set_deployment_configuration(service, normalize_deployment_configuration(None))
        task_definition = backend.describe_task_definition(str(service.task_definition))
        if task_definition.network_mode == "awsvpc" and not service.network_configuration:
            raise InvalidParameterException(
                "Network Configuration must be provided when networkMode 'awsvpc' is specified."
            )
        # It starts stable by definition: what it runs counts as pulled, even where the image
        # does not resolve (yet), so that a rollback to it completes.
        images = tuple(
            dataclasses.replace(i, pull_error=None) for i in self._resolve(backend, task_definition)
        )
        deployment = _new_deployment(service, task_definition.arn, images, rollout="COMPLETED")
        deployment.reason = f"ECS deployment {deployment.id} completed."
        state = _ServiceState(
            deployments=[deployment], last_completed=deployment, history=[deployment]
        )
        self._services[service] = state
        service.task_definition = task_definition.arn
        self._start_and_report(backend, service, state, deployment, deployment.desired, "RUNNING")
        state.event(f"(service {service.name}) has reached a steady state.")
        self._render(backend, service, state)
        return state

    def _start_deployment(
        self,
        backend: EC2ContainerServiceBackend,
        service: Service,
        state: _ServiceState,
        task_definition_arn: str,
        *,
        images: tuple[_Image, ...] | None = None,
        is_rollback: bool = False,
    ) -> _Deployment:
        task_definition = backend.describe_task_definition(task_definition_arn)
        now = utcnow()
        sources = tuple(d.id for d in state.deployments if d.live_tasks() or d.status == "PRIMARY")
        rolled_back = state.primary.id if is_rollback and state.deployments else None
        for previous in state.deployments:
            if previous.status == "PRIMARY":
                previous.status = "ACTIVE"
                previous.updated_at = now
        deployment = _new_deployment(
            service,
            task_definition.arn,
            images if images is not None else self._resolve(backend, task_definition),
            is_rollback=is_rollback,
            rollback_of=rolled_back,
            sources=sources,
            created_at=now,
            updated_at=now,
        )
        deployment.reason = f"ECS deployment {deployment.id} in progress."
        state.deployments = [deployment, *state.deployments]
        state.history = [deployment, *state.history][:MAX_HISTORY]
        service.task_definition = task_definition.arn
        self._start_and_report(backend, service, state, deployment, deployment.desired, "PENDING")
        return deployment

    def _step(
        self, backend: EC2ContainerServiceBackend, service: Service, state: _ServiceState
    ) -> None:
        deployment = state.primary
        if deployment.rollout == "COMPLETED":
            self._reconcile(backend, service, state, deployment, "RUNNING")
            return
        if deployment.rollout != "IN_PROGRESS":
            return
        deployment.steps += 1
        deployment.updated_at = utcnow()
        needed = max(1, self.polls_to_complete)
        verdict = self.verdict_for(
            backend.account_id, deployment.images, cluster=str(service.cluster_name)
        )
        if verdict.kind == "fail":
            self._fail_step(backend, service, state, deployment, verdict, needed)
        elif verdict.kind == "hang":
            self._reconcile(backend, service, state, deployment, "PENDING")
            if not deployment.hang_reported:
                deployment.hang_reported = True
                state.event(
                    f"(service {service.name}) was unable to place a task because no container "
                    f"instance met all of its requirements. Reason: {verdict.reason}"
                )
        else:
            self._progress_step(backend, service, state, deployment, needed)

    def _fail_step(
        self,
        backend: EC2ContainerServiceBackend,
        service: Service,
        state: _ServiceState,
        deployment: _Deployment,
        verdict: Verdict,
        needed: int,
    ) -> None:
        failing = deployment.live_tasks()
        if not failing and deployment.desired > 0:
            failing = self._start_tasks(backend, service, deployment, deployment.desired, "PENDING")
        exit_code = 1 if verdict.stop_code == "EssentialContainerExited" else None
        self._stop(failing, verdict.reason, verdict.stop_code, exit_code=exit_code)
        deployment.failed_tasks += len(failing)
        state.event(
            f"(service {service.name}) is unable to consistently start tasks successfully: "
            f"{verdict.reason}. For more information, see the Troubleshooting section of the "
            "Amazon ECS Developer Guide."
        )
        breaker = _circuit_breaker(service)
        if deployment.steps < needed or not breaker.get("enable"):
            self._start_and_report(
                backend, service, state, deployment, deployment.desired, "PENDING"
            )
            return
        deployment.rollout = "FAILED"
        deployment.reason = "ECS deployment circuit breaker: tasks failed to start."
        state.event(
            f"(service {service.name}) (deployment {deployment.id}) deployment failed: "
            "tasks failed to start."
        )
        target = state.last_completed
        if (
            breaker.get("rollback")
            and not deployment.is_rollback
            and target is not None
            and target is not deployment
        ):
            state.event(f"(service {service.name}) rolling back to deployment {target.id}.")
            self._start_deployment(
                backend,
                service,
                state,
                target.task_definition,
                images=target.images,
                is_rollback=True,
            )

    def _progress_step(
        self,
        backend: EC2ContainerServiceBackend,
        service: Service,
        state: _ServiceState,
        deployment: _Deployment,
        needed: int,
    ) -> None:
        self._reconcile(backend, service, state, deployment, "PENDING")
        done = deployment.steps >= needed
        running = (
            deployment.desired
            if done
            else math.ceil(deployment.desired * deployment.steps / needed)
        )
        now = utcnow()
        for task in deployment.live_tasks()[:running]:
            if task.last_status != "RUNNING":
                self._set_running(task, now)
        if not done:
            return
        deployment.rollout = "COMPLETED"
        deployment.reason = f"ECS deployment {deployment.id} completed."
        stopped: list[_EmulatedTask] = []
        for older in state.deployments[1:]:
            live = older.live_tasks()
            self._stop(
                live,
                f"Scaling activity initiated by (deployment {deployment.id})",
                "ServiceSchedulerInitiated",
            )
            stopped.extend(live)
        state.deployments = [deployment]
        state.last_completed = deployment
        if stopped:
            state.event(
                f"(service {service.name}) has stopped {len(stopped)} running tasks: "
                f"{_task_list(stopped)}."
            )
        state.event(f"(service {service.name}) (deployment {deployment.id}) deployment completed.")
        state.event(f"(service {service.name}) has reached a steady state.")

    def _reconcile(
        self,
        backend: EC2ContainerServiceBackend,
        service: Service,
        state: _ServiceState,
        deployment: _Deployment,
        status: str,
    ) -> None:
        """Start or stop tasks until `deployment` has `desired` live ones."""
        live = deployment.live_tasks()
        if len(live) < deployment.desired:
            self._start_and_report(
                backend, service, state, deployment, deployment.desired - len(live), status
            )
        elif len(live) > deployment.desired:
            extra = live[deployment.desired :]
            self._stop(
                extra,
                f"Scaling activity initiated by (deployment {deployment.id})",
                "ServiceSchedulerInitiated",
            )
            state.event(
                f"(service {service.name}) has stopped {len(extra)} running tasks: "
                f"{_task_list(extra)}."
            )

    def _start_and_report(
        self,
        backend: EC2ContainerServiceBackend,
        service: Service,
        state: _ServiceState,
        deployment: _Deployment,
        count: int,
        status: str,
    ) -> None:
        """Start `count` tasks of `deployment` and say so in the service's events, as ECS does."""
        started = self._start_tasks(backend, service, deployment, count, status)
        if started:
            state.event(
                f"(service {service.name}) has started {len(started)} tasks: {_task_list(started)}."
            )

    def _start_tasks(
        self,
        backend: EC2ContainerServiceBackend,
        service: Service,
        deployment: _Deployment,
        count: int,
        status: str,
    ) -> list[_EmulatedTask]:
        if count <= 0:
            return []
        cluster = backend._get_cluster(service.cluster_name)
        task_definition = backend.describe_task_definition(deployment.task_definition)
        images = {i.container: i for i in deployment.images}
        now = utcnow()
        started: list[_EmulatedTask] = []
        tasks = backend.tasks.setdefault(cluster.name, {})
        for _ in range(count):
            task = _EmulatedTask(
                cluster=cluster,
                task_definition=task_definition,
                container_instance_arn=None,
                resource_requirements=None,
                backend=backend,
                group=f"service:{service.name}",
                launch_type=service.launch_type or "",
                started_by=deployment.id,
                tags=[],
                networking_configuration=_task_network(service.network_configuration),
                platform_version=service.platform_version,
            )
            task.containers = [
                _EmulatedContainer(  # type: ignore[abstract]  # moto's Container, as moto makes it
                    task_definition,
                    definition,
                    images.get(
                        str(definition.get("name")),
                        _Image(str(definition.get("name")), "", None, None, None),
                    ),
                )
                for definition in task_definition.container_definitions
            ]
            task.desired_status = "RUNNING"
            task.pull_started_at = now
            if status == "RUNNING":
                self._set_running(task, now)
            else:
                task.last_status = "PENDING"
                for container in task.containers:
                    container.last_status = "PENDING"
            tasks[task.task_arn] = task
            deployment.tasks.append(task)
            started.append(task)
        return started

    @staticmethod
    def _set_running(task: _EmulatedTask, now: datetime) -> None:
        task.last_status = "RUNNING"
        task.pull_stopped_at = task.pull_stopped_at or now
        task.started_at = task.started_at or now
        for container in task.containers:
            container.last_status = "RUNNING"
            if isinstance(container, _EmulatedContainer):
                container.runtime_id = container.runtime_id or uuid.uuid4().hex
        task.version += 1

    @staticmethod
    def _stop(
        tasks: list[_EmulatedTask],
        reason: str,
        stop_code: str,
        *,
        exit_code: int | None = None,
    ) -> None:
        now = utcnow()
        for task in tasks:
            task.desired_status = "STOPPED"
            task.last_status = "STOPPED"
            task.stopped_reason = reason
            task.stop_code = stop_code
            task.stopping_at = now
            task.stopped_at = now
            task.execution_stopped_at = now
            task.version += 1
            for container in task.containers:
                container.last_status = "STOPPED"
                if isinstance(container, _EmulatedContainer):
                    if stop_code == "TaskFailedToStart":
                        container.reason = reason
                    if exit_code is not None:
                        setattr(container, "exitCode", exit_code)  # noqa: B010
                    elif stop_code != "TaskFailedToStart":
                        setattr(container, "exitCode", 0)  # noqa: B010

    def _render(
        self, backend: EC2ContainerServiceBackend, service: Service, state: _ServiceState
    ) -> None:
        """Write the rollout state onto moto's service object, which moto serializes."""
        service.deployments = [d.as_dict() for d in state.deployments]
        service.running_count = sum(d.count("RUNNING") for d in state.deployments)
        service.pending_count = sum(d.count("PENDING") for d in state.deployments)
        service.events = list(state.events)

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

    # -- images ------------------------------------------------------------------------------

    def _resolve(
        self, backend: EC2ContainerServiceBackend, task_definition: TaskDefinition
    ) -> tuple[_Image, ...]:
        return tuple(
            self.resolve_image(
                str(d.get("name")), str(d.get("image") or ""), task_account=backend.account_id
            )
            for d in task_definition.container_definitions
        )

    def resolve_image(self, container: str, image: str, *, task_account: str) -> _Image:
        """What `image` resolves to in moto's ECR now, as a task in `task_account` pulls it."""
        match = _ECR_IMAGE_RE.match(image)
        if match is None:
            return _Image(container, image, None, None, None)
        account, region, repo_name = match["account"], match["region"], match["repo"]
        tag, digest = match["tag"], match["digest"]
        if tag is None and digest is None:
            tag = "latest"
        ecr = (account, region, repo_name)
        try:
            registry = ecr_backends[account][region]
        except KeyError:
            return _Image(container, image, None, ecr, _not_found(image))
        repository = registry.repositories.get(repo_name)
        if repository is None:
            return _Image(container, image, None, ecr, _not_found(image))
        found = None
        for candidate in list(repository.images):
            if tag is not None and tag not in candidate.image_tags:
                continue
            if digest is not None and candidate.get_image_digest() != digest:
                continue
            found = candidate
            break
        if found is None:
            return _Image(container, image, None, ecr, _not_found(image))
        if account != task_account and not policy_allows_pull(repository.policy, task_account):
            return _Image(container, image, None, ecr, _forbidden(image, task_account))
        return _Image(container, image, found.get_image_digest(), ecr, None)

    def _tags_of(self, image: _Image) -> list[str]:
        if image.ecr is None or image.digest is None:
            return []
        account, region, repo_name = image.ecr
        try:
            repository = ecr_backends[account][region].repositories.get(repo_name)
        except KeyError:
            return []
        if repository is None:
            return []
        return [
            tag
            for candidate in list(repository.images)
            if candidate.get_image_digest() == image.digest
            for tag in candidate.image_tags
        ]

    def verdict_for(
        self, task_account: str, images: tuple[_Image, ...], *, cluster: str | None = None
    ) -> Verdict:
        """Fail if an image could not be pulled or is marked bad; hang if one is marked so.

        A mark tag `<prefix>.<cluster>` applies in that cluster only.
        """
        for image in images:
            if image.pull_error:
                return Verdict("fail", image.pull_error, "TaskFailedToStart")
        tagged = [(image, self._tags_of(image)) for image in images]
        for image, tags in tagged:
            if image.digest is None:
                continue
            if image.digest in self.bad_digests or any(
                _marked(t, FAIL_TAG_PREFIX, cluster) for t in tags
            ):
                return Verdict(
                    "fail",
                    f"Essential container in task exited (container {image.container}, "
                    f"image {image.image}, {image.digest} is marked bad)",
                    "EssentialContainerExited",
                )
        for image, tags in tagged:
            if image.digest is None:
                continue
            if image.digest in self.hang_digests or any(
                _marked(t, HANG_TAG_PREFIX, cluster) for t in tags
            ):
                return Verdict("hang", f"image {image.image} ({image.digest}) is marked to hang")
        return _OK


def _marked(tag: str, prefix: str, cluster: str | None) -> bool:
    if not tag.startswith(prefix):
        return False
    rest = tag[len(prefix) :]
    if rest.startswith("."):
        return cluster is not None and rest[1:] == cluster
    return True
