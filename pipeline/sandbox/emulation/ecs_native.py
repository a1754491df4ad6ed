"""ECS-native blue/green, canary and linear deployments on moto, as ECS runs them.

moto knows nothing of ``deploymentConfiguration.strategy``. An UpdateService that starts a new
deployment of a service whose deployment configuration says BLUE_GREEN, CANARY or LINEAR is,
seen through moto's HTTP server, a service deployment that moves through ECS's lifecycle stages
(PRE_SCALE_UP, SCALE_UP, POST_SCALE_UP, TEST_TRAFFIC_SHIFT, POST_TEST_TRAFFIC_SHIFT,
PRODUCTION_TRAFFIC_SHIFT, POST_PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME, CLEAN_UP), one stage each
time it is read (ListServiceDeployments, DescribeServiceDeployments) and never before its bake
time has passed on ``clock`` (injectable: tests move it instead of sleeping):

- production traffic shifts all at once (BLUE_GREEN), to ``canaryPercent`` then, after
  ``canaryBakeTimeInMinutes``, to 100 (CANARY), or by ``stepPercent`` every
  ``stepBakeTimeInMinutes`` (LINEAR); ``bakeTimeInMinutes`` is waited in BAKE_TIME;
- a lifecycle hook of a stage runs as the deployment enters it: a PAUSE hook waits
  (AWAITING_ACTION) until ContinueServiceDeployment; an AWS_LAMBDA hook succeeds unless its
  function name contains ``fail``, and then the deployment rolls back;
- a rollback (a failed hook, ContinueServiceDeployment with ROLLBACK, StopServiceDeployment with
  ROLLBACK) deploys the source revision again, with the digests it ran, through the rolling
  emulation: ROLLBACK_IN_PROGRESS, then ROLLBACK_SUCCESSFUL once that rollout completed;
  StopServiceDeployment with ABORT leaves the service as it is: STOPPED;
- a newer UpdateService stops the deployment in progress (STOPPED).

The three read calls keep the rolling emulation's answers (``ecs_history``) and carry, for
these deployments, their own status, ``lifecycleStage``, ``lifecycleHookDetails`` and the traffic
weights of the source and target revisions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ecs.exceptions import InvalidParameterException
from moto.ecs.models import EC2ContainerServiceBackend, Service
from moto.ecs.responses import EC2ContainerServiceResponse

from tierup.pipeline.sandbox.emulation.ecs_history import deployment_arn

if TYPE_CHECKING:
    from tierup.pipeline.sandbox.emulation.ecs import Emulation

__all__ = ["NATIVE", "EcsNative", "install", "traffic_shifts"]

NATIVE = frozenset({"BLUE_GREEN", "CANARY", "LINEAR"})
FINAL = frozenset({"SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"})
BEFORE_SHIFT = ("PRE_SCALE_UP", "SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT")


def traffic_shifts(config: dict[str, Any]) -> list[tuple[float, float]]:
    """(production share of the new revision, seconds to bake after it) per traffic shift."""
    strategy = config.get("strategy")
    if strategy == "CANARY":
        canary = config.get("canaryConfiguration") or {}
        percent = float(canary.get("canaryPercent", 10.0))
        return [(percent, 60.0 * float(canary.get("canaryBakeTimeInMinutes", 0))), (100.0, 0.0)]
    if strategy == "LINEAR":
        linear = config.get("linearConfiguration") or {}
        step = max(1.0, float(linear.get("stepPercent", 10.0)))
        bake = 60.0 * float(linear.get("stepBakeTimeInMinutes", 0))
        out: list[tuple[float, float]] = []
        share = step
        while share < 100.0:
            out.append((share, bake))
            share += step
        return [*out, (100.0, 0.0)]
    return [(100.0, 0.0)]


@dataclass
class _Run:
    backend: EC2ContainerServiceBackend
    service: Service
    deployment_id: str
    source_id: str | None
    config: dict[str, Any]
    # (lifecycle stage, production share of the new revision, seconds to wait before the next)
    plan: list[tuple[str, float, float]] = field(default_factory=list)
    index: int = 0
    status: str = "IN_PROGRESS"
    reason: str = ""
    ready_at: float = 0.0
    hook: dict[str, Any] | None = None  # the hook the deployment waits at
    hooks_run: set[int] = field(default_factory=set)
    rollback_id: str | None = None
    stopped_at: Any = None

    @property
    def stage(self) -> str:
        return self.plan[min(self.index, len(self.plan) - 1)][0]

    @property
    def traffic(self) -> float:
        if self.status.startswith("ROLLBACK") or (self.status == "STOPPED" and self.rollback_id):
            return 0.0
        return self.plan[min(self.index, len(self.plan) - 1)][1]


class EcsNative:
    """The ECS-native deployment model, added to moto's ECS responses."""

    def __init__(self, ecs: Emulation) -> None:
        self._ecs = ecs
        self.clock: Callable[[], float] = time.time
        self._runs: dict[str, _Run] = {}  # by the ECS deployment id
        self._previous: dict[str, Any] = {}

    def reset(self) -> None:
        self._runs.clear()
        self.clock = time.time

    def install(self) -> None:
        response = EC2ContainerServiceResponse
        for name in ("list_service_deployments", "describe_service_deployments"):
            self._previous[name] = response.__dict__[name]
        self._ecs.wrap(response, "update_service", self._update_service)
        add = self._ecs.add_method
        add(response, "list_service_deployments", self._list)
        add(response, "describe_service_deployments", self._describe)
        add(response, "continue_service_deployment", self._continue)
        add(response, "stop_service_deployment", self._stop)

    # -- starting ----------------------------------------------------------------------------

    def _update_service(
        self, original: Any, response: EC2ContainerServiceResponse, args: dict[str, Any]
    ) -> ActionResult:
        params = response._get_params()
        backend = response.ecs_backend
        service = backend._get_service(params.get("cluster") or "default", params["service"])
        _history, before = self._ecs.history(backend, service)
        result: ActionResult = original(response)
        _history, primary = self._ecs.history(backend, service)
        if primary is None or (before is not None and primary.id == before.id):
            return result
        for run in self._runs.values():
            if run.service is service and run.status not in FINAL:
                run.status, run.reason = "STOPPED", "a newer deployment replaced it"
                run.stopped_at = utcnow()
        config = dict(getattr(service, "deployment_configuration", None) or {})
        if config.get("strategy") in NATIVE:
            run = _Run(backend, service, primary.id, before.id if before else None, config)
            run.plan = [(s, 0.0, 0.0) for s in BEFORE_SHIFT]
            run.plan += [
                ("PRODUCTION_TRAFFIC_SHIFT", p, bake) for p, bake in traffic_shifts(config)
            ]
            run.plan += [
                ("POST_PRODUCTION_TRAFFIC_SHIFT", 100.0, 0.0),
                ("BAKE_TIME", 100.0, 60.0 * float(config.get("bakeTimeInMinutes") or 0)),
                ("CLEAN_UP", 100.0, 0.0),
            ]
            # POST_TEST_TRAFFIC_SHIFT comes between the test and the production shifts
            run.plan.insert(len(BEFORE_SHIFT), ("POST_TEST_TRAFFIC_SHIFT", 0.0, 0.0))
            run.ready_at = self.clock()
            self._runs[primary.id] = run
            self._enter(run)
        return result

    # -- the lifecycle -----------------------------------------------------------------------

    def _hooks_of(self, run: _Run) -> list[tuple[int, dict[str, Any]]]:
        return [
            (i, h)
            for i, h in enumerate(run.config.get("lifecycleHooks") or [])
            if run.stage in (h.get("lifecycleStages") or [])
        ]

    def _enter(self, run: _Run) -> None:
        """Run the hooks of the stage ``run`` has just entered."""
        if run.plan[run.index - 1][0] == run.stage and run.index > 0:
            return  # a further traffic shift of the same stage: its hooks ran already
        for i, hook in self._hooks_of(run):
            if i in run.hooks_run:
                continue
            run.hooks_run.add(i)
            if hook.get("targetType") == "PAUSE":
                run.hook = {
                    "hookId": f"hook-{i}",
                    "targetType": "PAUSE",
                    "status": "AWAITING_ACTION",
                    "timeoutAction": "ROLLBACK",
                }
                return
            target = str(hook.get("hookTargetArn") or "")
            if "fail" in target.rsplit(":", 1)[-1]:
                self._rollback(run, f"lifecycle hook {target} failed in stage {run.stage}")
                return

    def _advance(self, run: _Run) -> None:
        """One step of ``run``, as one read makes."""
        self._ecs.advance(run.backend, run.service)
        if run.status in FINAL:
            return
        if run.status == "ROLLBACK_IN_PROGRESS":
            view = self._ecs.rollout(run.service, run.rollback_id)
            if view is not None and view.rollout in ("COMPLETED", "FAILED"):
                run.status = (
                    "ROLLBACK_SUCCESSFUL" if view.rollout == "COMPLETED" else ("ROLLBACK_FAILED")
                )
                run.stopped_at = utcnow()
            return
        if run.hook is not None or self.clock() < run.ready_at:
            return
        if run.index >= len(run.plan) - 1:
            run.status, run.reason = "SUCCESSFUL", "the service deployment completed"
            run.stopped_at = utcnow()
            return
        run.index += 1
        run.ready_at = self.clock() + run.plan[run.index][2]  # the bake of the step entered
        self._enter(run)

    def _rollback(self, run: _Run, reason: str) -> None:
        run.reason, run.hook = reason, None
        history, _primary = self._ecs.history(run.backend, run.service)
        source = next((d for d in history if d.id == run.source_id), None)
        if source is None:
            run.status = "ROLLBACK_FAILED"
            return
        run.rollback_id = self._ecs.deploy(
            run.backend, run.service, source.task_definition, images=source.images, is_rollback=True
        )
        run.status = "ROLLBACK_IN_PROGRESS"

    # -- the operations ----------------------------------------------------------------------

    def _by_arn(self, response: EC2ContainerServiceResponse, arn: str) -> _Run:
        for run in self._runs.values():
            if (
                run.backend is response.ecs_backend
                and deployment_arn(run.service, run.deployment_id) == arn
            ):
                return run
        raise InvalidParameterException(
            f"{arn}: not an ECS-native (blue/green, canary, linear) service deployment"
        )

    def _doc(self, run: _Run, row: dict[str, Any]) -> None:
        row["status"] = run.status
        row["statusReason"] = run.reason
        row["lifecycleStage"] = run.stage
        if run.status in FINAL:
            row["finishedAt"] = row.get("finishedAt") or run.stopped_at or utcnow()
        else:
            row.pop("finishedAt", None)
        if "targetServiceRevision" in row:
            row["targetServiceRevision"]["requestedProductionTrafficWeight"] = run.traffic
            for source in row.get("sourceServiceRevisions") or []:
                source["requestedProductionTrafficWeight"] = 100.0 - run.traffic
            if run.hook is not None:
                row["lifecycleHookDetails"] = [dict(run.hook)]
            if run.rollback_id and "rollback" not in row:
                row["rollback"] = {"reason": run.reason, "startedAt": run.stopped_at or utcnow()}

    def _rows(self, response: EC2ContainerServiceResponse, name: str, key: str) -> ActionResult:
        answer: ActionResult = self._previous[name](response)
        rows = cast("dict[str, Any]", answer.result)[key]
        for row in rows:
            for run in list(self._runs.values()):
                arn = deployment_arn(run.service, run.deployment_id)
                if run.backend is response.ecs_backend and row["serviceDeploymentArn"] == arn:
                    self._advance(run)
                    self._doc(run, row)
        return answer

    def _list(self, response: EC2ContainerServiceResponse) -> ActionResult:
        return self._rows(response, "list_service_deployments", "serviceDeployments")

    def _describe(self, response: EC2ContainerServiceResponse) -> ActionResult:
        return self._rows(response, "describe_service_deployments", "serviceDeployments")

    def _continue(self, response: EC2ContainerServiceResponse) -> ActionResult:
        arn = str(response._get_param("serviceDeploymentArn"))
        run = self._by_arn(response, arn)
        if run.hook is None or run.status in FINAL:
            raise InvalidParameterException(f"{arn} is not waiting at a lifecycle hook")
        hook_id = response._get_param("hookId")
        if hook_id and hook_id != run.hook["hookId"]:
            raise InvalidParameterException(
                f"{arn} waits at hook {run.hook['hookId']}, not {hook_id}"
            )
        if (response._get_param("action") or "CONTINUE") == "ROLLBACK":
            self._rollback(run, "rolled back at a lifecycle hook by ContinueServiceDeployment")
        else:
            run.hook = None
            run.ready_at = self.clock()
        return ActionResult({"serviceDeploymentArn": arn})

    def _stop(self, response: EC2ContainerServiceResponse) -> ActionResult:
        arn = str(response._get_param("serviceDeploymentArn"))
        run = self._by_arn(response, arn)
        if run.status in FINAL or run.status == "ROLLBACK_IN_PROGRESS":
            raise InvalidParameterException(f"{arn} has already ended ({run.status})")
        if (response._get_param("stopType") or "ROLLBACK") == "ROLLBACK":
            self._rollback(run, "stopped and rolled back by StopServiceDeployment")
        else:
            run.status, run.reason, run.hook = "STOPPED", "stopped by StopServiceDeployment", None
            run.stopped_at = utcnow()
        return ActionResult({"serviceDeploymentArn": arn})


def install(ecs: Emulation) -> EcsNative:
    native = EcsNative(ecs)
    native.install()
    return native
