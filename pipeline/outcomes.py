"""What a promotion's run says: each environment's and service's outcome, the ledger events it
writes (the write-ahead event opened before the first write, and the closing one).
"""

from __future__ import annotations

from typing import Any

from tierup.pipeline.events import (
    EnvironmentRecord,
    Event,
    EventStatus,
    ImageRecord,
    ServiceRecord,
)
from tierup.pipeline.plan import EnvPlan, PromotionPlan
from tierup.pipeline.results import (
    CommandResult,
    EnvironmentOutcome,
    ServiceOutcome,
    landed,
)
from tierup.stages import wait as wait_stage
from tierup.stages.deploy import Applied, ServicePlan
from tierup.stages.errors import TierupError
from tierup.stages.record import Recorder

SKIPPED_UNREACHABLE = "skipped: left out with --skip-unreachable (not read, not deployed)"


def open_event(
    recorder: Recorder[Event],
    command: str,
    tier: str | None,
    result: CommandResult,
    services: list[dict[str, Any]],
) -> str | None:
    """Record the run's planned writes before the first one; the open event's id (None when
    nothing will be written, or the recorder keeps no ids). ``services``: what each service
    runs before and its target, so that a reconciliation can tell what moved."""
    if not result.plan:
        return None
    opened = recorder.record(
        Event(
            command=command,
            invocation=result.title.removeprefix("tierup "),
            tier=tier,
            status=EventStatus.OPEN,
            intent={"writes": list(result.plan), "services": services},
        )
    )
    return opened.id or None


def settle_waited(so: ServiceOutcome, st: wait_stage.RolloutState, *, done: str) -> None:
    """A service's outcome once its rollout was waited for (``done``: the status of success)."""
    so.status = {
        wait_stage.COMPLETED: done,
        wait_stage.TIMED_OUT: "timed_out",
        wait_stage.ROLLED_BACK: wait_stage.ROLLED_BACK,
    }.get(st.state, "failed")
    if so.status == done:
        return
    so.events = list(st.events)
    if so.status == wait_stage.ROLLED_BACK:
        so.error = wait_stage.rolled_back_message(st)
        so.hint = "the new image did not start; see the service events below"
    elif so.status == "timed_out":
        so.error = st.reason
        so.hint = "raise --timeout or wait_timeout; the rollout may still finish"
    else:
        so.error = st.reason or st.state
        so.hint = "see the service events below and `tierup where`"


def env_outcome(
    e: EnvPlan,
    applied: dict[tuple[str, str], Applied],
    errors: dict[tuple[str, str], TierupError],
    waited: dict[tuple[str, str], wait_stage.RolloutState] | None = None,
    wait: bool = False,
) -> EnvironmentOutcome:
    out = EnvironmentOutcome.of(e.name, e.env, e.strategy)
    if e.error is not None:
        out.status, out.error, out.hint = "failed", e.error.message, e.error.hint
        return out
    for s in e.services:
        prev = next((d for _, d in s.previous_digests if d), None)
        so = ServiceOutcome(
            service=s.service,
            status="planned" if s.writes else "skipped",
            task_definition=s.task_definition,
            previous_task_definition=s.task_definition,
            image=", ".join(c.reference for c in s.containers),
            digest=s.containers[0].target.digest if s.containers else None,
            previous_digest=prev,
            reason=s.reason,
        )
        key = (e.name, s.service)
        if key in errors:
            err = errors[key]
            so.status, so.error, so.hint = "failed", err.message, err.hint
        elif key in applied:
            a = applied[key]
            so.deployment_id, so.task_definition = a.deployment_id, a.task_definition
            so.status = "deployed"
            st = (waited or {}).get(key)
            if st is not None and st.task_definition:
                so.task_definition = st.task_definition
            if wait and st is not None:
                settle_waited(so, st, done="completed")
        out.services.append(so)
    for name, err in e.service_errors.items():
        out.services.append(
            ServiceOutcome(service=name, status="failed", error=err.message, hint=err.hint)
        )
    out.settle()
    return out


def promotion_event(plan: PromotionPlan, result: CommandResult) -> Event:
    planned = {(e.name, s.service): s for e in plan.envs for s in e.services}
    return Event(
        command=plan.command,
        invocation=result.title.removeprefix("tierup "),
        tier=plan.tier.name,
        status=str(result.status),
        images=tuple(
            ImageRecord(
                image=i.image,
                repository=i.repository,
                tag=i.tag,
                from_digest=i.previous_digest,
                to_digest=i.digest,
                commit=i.commit,
                status=i.status,
            )
            for i in result.images
        ),
        environments={
            e.name: EnvironmentRecord(
                status=e.status,
                services={
                    s.service: _service_record(s, planned.get((e.name, s.service)))
                    for s in e.services
                },
                extra={"skipped": "unreachable"} if e.hint == SKIPPED_UNREACHABLE else {},
            )
            for e in result.environments
        },
        # what --rollback-on-failure / --atomic undid: the tags moved back, the services
        extra={"rollback": result.data["rollback"]} if "rollback" in result.data else {},
    )


def _service_record(s: ServiceOutcome, plan: ServicePlan | None) -> ServiceRecord:
    ok = landed(s)
    # every container: a rollback must put each one back, not only the first
    before = {c: d for c, d in plan.previous_digests if d} if plan is not None else {}
    after = (
        {c.container: c.target.digest for c in plan.containers}
        if plan is not None and ok
        else dict(before)
    )
    td_after = s.task_definition if ok else s.previous_task_definition
    digest_after = s.digest if ok else s.previous_digest
    extra: dict[str, Any] = {}
    rb = s.rollback
    if rb is not None and rb.task_definition and rb.status not in ("failed", "not_rolled_back"):
        # what runs after the run is what the rollback put back, not what was tried
        td_after, digest_after, after = rb.task_definition, s.previous_digest, dict(before)
        extra["rollback"] = rb.status
    return ServiceRecord(
        status=s.status,
        task_definition_before=s.previous_task_definition,
        task_definition_after=td_after,
        digest_before=s.previous_digest,
        digest_after=digest_after,
        images_before=before,
        images_after=after,
        extra=extra,
    )
