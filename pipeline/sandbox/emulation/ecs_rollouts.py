"""ECS rollouts on moto: how a service's deployments progress, complete, fail and roll back.

moto 5.2 keeps every deployment IN_PROGRESS, never rotates `deployments` and starts no service
tasks. `Rollouts` does it the way ECS does, and is the ground the other emulated services
stand on (their deployments are ECS deployments too):

- a service starts stable: one PRIMARY deployment, COMPLETED, `desiredCount` RUNNING tasks
  whose containers report the digest their image resolved to in moto's ECR at that moment.
- a new deployment (`deploy`, or UpdateService: `ecs`) is PRIMARY and IN_PROGRESS, with its
  own tasks and the digests resolved now; the previous one turns ACTIVE.
- every step (`advance`, one per DescribeServices) advances the PRIMARY deployment; after
  `polls_to_complete` steps it is COMPLETED and the older deployments are gone, their tasks
  STOPPED.
- a deployment whose image is bad (see `image_marks`) has its tasks stop; with the circuit
  breaker enabled it ends FAILED after the same number of steps, and with rollback a new
  PRIMARY deployment goes back to the last COMPLETED one (its task definition and digests).
  Without the circuit breaker ECS keeps retrying, and so does this: the rollout never ends.
- a hanging image never completes (its tasks stay PENDING), to exercise timeouts.
"""

from __future__ import annotations

import dataclasses
import math
import weakref

from moto.core.utils import utcnow
from moto.ecs.exceptions import InvalidParameterException
from moto.ecs.models import EC2ContainerServiceBackend, Service, TaskDefinition

from tierup.pipeline.sandbox.emulation.ecr import Image, resolve_image
from tierup.pipeline.sandbox.emulation.ecs_configuration import (
    circuit_breaker,
    normalize_deployment_configuration,
    set_deployment_configuration,
)
from tierup.pipeline.sandbox.emulation.ecs_deployments import (
    Deployment,
    EmulatedTask,
    RolloutState,
    RolloutView,
    new_deployment,
    set_running,
    start_tasks,
    stop_tasks,
    task_list,
)
from tierup.pipeline.sandbox.emulation.image_marks import Verdict, verdict_for
from tierup.pipeline.sandbox.emulation.patching import Patcher

__all__ = ["DEFAULT_POLLS_TO_COMPLETE", "Rollouts"]

DEFAULT_POLLS_TO_COMPLETE = 2
MAX_HISTORY = 100  # deployments kept per service for ListServiceDeployments


class Rollouts(Patcher):
    """Every service's rollout state, and the settings its rollouts follow (on the patching
    machinery, whose lock every change of that state is made under)."""

    def __init__(self) -> None:
        super().__init__()
        self.polls_to_complete: int = DEFAULT_POLLS_TO_COMPLETE
        self.bad_digests: set[str] = set()
        self.hang_digests: set[str] = set()
        self._services: weakref.WeakKeyDictionary[Service, RolloutState] = (
            weakref.WeakKeyDictionary()
        )

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

    def verdict_for(
        self, task_account: str, images: tuple[Image, ...], *, cluster: str | None = None
    ) -> Verdict:
        """Fail if an image could not be pulled or is marked bad; hang if one is marked so."""
        return verdict_for(
            images, bad_digests=self.bad_digests, hang_digests=self.hang_digests, cluster=cluster
        )

    # -- for the other emulated services ----------------------------------------------------

    def deploy(
        self,
        backend: EC2ContainerServiceBackend,
        service: Service,
        task_definition_arn: str,
        *,
        images: tuple[Image, ...] | None = None,
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
            deployment: Deployment | None = state.primary
        else:
            deployment = next((d for d in state.deployments if d.id == deployment_id), None)
        if deployment is None:
            return None
        return state.view(deployment)

    def history(
        self, backend: EC2ContainerServiceBackend, service: Service
    ) -> tuple[list[Deployment], Deployment | None]:
        """Every deployment of ``service`` ever started (newest first), and its PRIMARY one."""
        state = self._state(backend, service)
        if state is None:
            return [], None
        return list(state.history), state.primary

    # -- rollouts ----------------------------------------------------------------------------

    def _state(self, backend: EC2ContainerServiceBackend, service: Service) -> RolloutState | None:
        state = self._services.get(service)
        if state is None:
            state = self._adopt(backend, service)
        return state

    def _adopt(self, backend: EC2ContainerServiceBackend, service: Service) -> RolloutState | None:
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
        deployment = new_deployment(service, task_definition.arn, images, rollout="COMPLETED")
        deployment.reason = f"ECS deployment {deployment.id} completed."
        state = RolloutState(
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
        state: RolloutState,
        task_definition_arn: str,
        *,
        images: tuple[Image, ...] | None = None,
        is_rollback: bool = False,
    ) -> Deployment:
        task_definition = backend.describe_task_definition(task_definition_arn)
        now = utcnow()
        sources = tuple(d.id for d in state.deployments if d.live_tasks() or d.status == "PRIMARY")
        rolled_back = state.primary.id if is_rollback and state.deployments else None
        for previous in state.deployments:
            if previous.status == "PRIMARY":
                previous.status = "ACTIVE"
                previous.updated_at = now
        deployment = new_deployment(
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
        self, backend: EC2ContainerServiceBackend, service: Service, state: RolloutState
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
        state: RolloutState,
        deployment: Deployment,
        verdict: Verdict,
        needed: int,
    ) -> None:
        failing = deployment.live_tasks()
        if not failing and deployment.desired > 0:
            failing = start_tasks(backend, service, deployment, deployment.desired, "PENDING")
        exit_code = 1 if verdict.stop_code == "EssentialContainerExited" else None
        stop_tasks(failing, verdict.reason, verdict.stop_code, exit_code=exit_code)
        deployment.failed_tasks += len(failing)
        state.event(
            f"(service {service.name}) is unable to consistently start tasks successfully: "
            f"{verdict.reason}. For more information, see the Troubleshooting section of the "
            "Amazon ECS Developer Guide."
        )
        breaker = circuit_breaker(service)
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
        state: RolloutState,
        deployment: Deployment,
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
                set_running(task, now)
        if not done:
            return
        deployment.rollout = "COMPLETED"
        deployment.reason = f"ECS deployment {deployment.id} completed."
        stopped: list[EmulatedTask] = []
        for older in state.deployments[1:]:
            live = older.live_tasks()
            stop_tasks(
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
                f"{task_list(stopped)}."
            )
        state.event(f"(service {service.name}) (deployment {deployment.id}) deployment completed.")
        state.event(f"(service {service.name}) has reached a steady state.")

    def _reconcile(
        self,
        backend: EC2ContainerServiceBackend,
        service: Service,
        state: RolloutState,
        deployment: Deployment,
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
            stop_tasks(
                extra,
                f"Scaling activity initiated by (deployment {deployment.id})",
                "ServiceSchedulerInitiated",
            )
            state.event(
                f"(service {service.name}) has stopped {len(extra)} running tasks: "
                f"{task_list(extra)}."
            )

    def _start_and_report(
        self,
        backend: EC2ContainerServiceBackend,
        service: Service,
        state: RolloutState,
        deployment: Deployment,
        count: int,
        status: str,
    ) -> None:
        """Start `count` tasks of `deployment` and say so in the service's events, as ECS does."""
        started = start_tasks(backend, service, deployment, count, status)
        if started:
            state.event(
                f"(service {service.name}) has started {len(started)} tasks: {task_list(started)}."
            )

    def _render(
        self, backend: EC2ContainerServiceBackend, service: Service, state: RolloutState
    ) -> None:
        """Write the rollout state onto moto's service object, which moto serializes."""
        service.deployments = [d.as_dict() for d in state.deployments]
        service.running_count = sum(d.count("RUNNING") for d in state.deployments)
        service.pending_count = sum(d.count("PENDING") for d in state.deployments)
        service.events = list(state.events)

    def _resolve(
        self, backend: EC2ContainerServiceBackend, task_definition: TaskDefinition
    ) -> tuple[Image, ...]:
        return tuple(
            resolve_image(
                str(d.get("name")), str(d.get("image") or ""), task_account=backend.account_id
            )
            for d in task_definition.container_definitions
        )
