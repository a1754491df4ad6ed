"""A promotion as a list of steps: each environment's list, planned, shown and run in order.

``plan`` reads envs.yaml's ``steps`` for every environment of a promotion (an environment's
list wins over its tier's) and returns None when none has one: the promotion is then exactly
today's retag -> deploy -> wait. Otherwise:

1. the steps listed before ``retag`` run in every environment; a failure there stops the whole
   promotion before anything is written (the tag is shared by the tier);
2. the tier's tag moves (the promotion's executor);
3. every environment runs the rest of its list at once: ``deploy`` and ``wait`` through the
   executor's own functions (passed in), the other steps in order, each with its condition
   (``if: success | failure | always``), retries and timeout;
4. ``settle`` puts each environment's step outcomes in the result; a failed step before
   ``deploy`` leaves the environment undeployed, one after it fails the environment's
   services, so that ``--rollback-on-failure`` / ``--atomic`` put them back as they do a
   failed rollout;
5. promotion-wide steps (``notify``) run once, after the ledger event is written, with the
   final summary and the event's id.

The dry run lists the same items in the same order (``plan_items``).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tierup.pipeline import events
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.events import Event
from tierup.pipeline.executor import Report
from tierup.pipeline.results import NOT_DEPLOYED, CommandResult, EnvironmentOutcome, ImageOutcome
from tierup.pipeline.step_lists import (
    EnvPlanLike,
    EnvSteps,
    PlannedStep,
    PromotionLike,
    client_of,
    environment_context,
    images_of,
    listed_after,
    no_client,
    plan_item,
    planned_step,
    promotion_wide,
    remember_secrets,
    step_outcome,
)
from tierup.pipeline.steps_config import StepSpec
from tierup.stages import wait as wait_stage
from tierup.stages.deploy import Applied
from tierup.stages.errors import TierupError
from tierup.stages.parallel import each
from tierup.stages.plan import Deploy, MoveTag, Plan
from tierup.stages.step import (
    ALWAYS,
    DEPLOY,
    FAILURE,
    PHASES,
    RETAG,
    SUCCESS,
    WAIT,
    StepContext,
    StepResult,
    is_soft,
)

# the commands whose runs follow a tier's steps; a rollback or a restore only goes back
STEP_COMMANDS = frozenset({"promote", "stamp", "deploy"})

Key = tuple[str, str]  # (environment, service)
Say = Callable[[str], None]


ApplyEnv = Callable[[Any], Report]  # the executor's report of one environment's writes
WaitEnv = Callable[[Any, dict[Key, Applied]], dict[Key, wait_stage.RolloutState]]


@dataclass
class StepRun:
    """The step lists of one promotion's environments, and what running them did."""

    clients: Clients
    envs: dict[str, EnvSteps]
    promotion: list[PlannedStep]
    environ: Mapping[str, str]
    applied: dict[Key, Applied] = field(default_factory=dict)
    errors: dict[Key, TierupError] = field(default_factory=dict)
    tag_moved: bool = False
    # the promotion-wide steps' outcomes (notify), once they ran after the ledger event
    promoted: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the dry run ------------------------------------------------------------------

    def plan_items(self, plan: PromotionLike, steps: Plan) -> list[dict[str, Any]]:
        """The plan as a real run executes it: the writes of ``steps`` among the lists' steps."""
        retags = [s.describe() for s in steps.of_type(MoveTag) if s.writes]
        deploys = {e.name: [d.describe() for d in e.deploy_steps()] for e in plan.envs}
        # the cleanups after the rollouts
        rest = [s.describe() for s in steps.writing if not isinstance(s, MoveTag | Deploy)]
        out: list[dict[str, Any]] = []
        for es in self.envs.values():
            out += [plan_item(es.name, p) for p in es.before_retag()]
        out += retags
        for es in self.envs.values():
            for p in es.after_retag():
                if p.uses == DEPLOY:  # the environment's writes, as today's plan lists them
                    out += deploys.get(es.name, [])
                else:
                    out.append(plan_item(es.name, p))
        out += rest
        out += [plan_item(None, p) for p in self.promotion]
        return out

    # -- running ------------------------------------------------------------------------

    def before_retag(self, say: Say) -> bool:
        """The steps listed before ``retag``, every environment at once; False: stop."""

        def one(es: EnvSteps) -> None:
            for p in es.before_retag():
                self._step(es, p, say)

        each(one, list(self.envs.values()))
        return not any(es.failed for es in self.envs.values())

    def retagged(self, images: Sequence[ImageOutcome]) -> None:
        """The tier's tag writes (one for every environment) as each list's ``retag``."""
        failed = [i for i in images if i.status == "failed"]
        self.tag_moved = any(i.status in ("moved", "created") for i in images)
        output = ", ".join(f"{i.image} {i.tag}: {i.status}" for i in images) or "no tag moves"
        for es in self.envs.values():
            p = next(p for p in es.items if p.uses == RETAG)
            out = step_outcome(p, "failed" if failed else "ok")
            out["output"] = output
            if failed:
                out["error"] = "; ".join(f"{i.image}: {i.error}" for i in failed)
            es.outcomes[p.alias] = out

    def skip_rest(self, why: str) -> None:
        """The promotion stopped: every step not run yet is skipped, saying why."""
        for es in self.envs.values():
            es.failed = es.failed or why
            for p in es.items:
                if p.alias not in es.outcomes and not p.promotion_wide:
                    es.outcomes[p.alias] = step_outcome(p, "skipped", reason=why)

    def environments(
        self,
        envs: Sequence[EnvPlanLike],
        *,
        apply: ApplyEnv,
        wait: WaitEnv | None,
        say: Say,
    ) -> dict[Key, wait_stage.RolloutState]:
        """Each environment's list after ``retag``, every environment at once.

        What the deploys wrote and their errors fill ``applied`` and ``errors`` as they
        happen (an interrupted run still knows what it wrote); returns what the waits saw.
        """
        applied, errors = self.applied, self.errors
        waited: dict[Key, wait_stage.RolloutState] = {}

        def one(e: EnvPlanLike) -> None:
            es = self.envs.get(e.name)
            if es is None:
                return
            mine: dict[Key, Applied] = {}
            for p in es.after_retag():
                if p.uses == DEPLOY:
                    if es.failed or e.error is not None:
                        es.outcomes[p.alias] = step_outcome(
                            p, "skipped", reason=es.failed or "the environment could not be read"
                        )
                        if es.failed is None and e.error is not None:
                            es.failed = f"the environment could not be read: {e.error.message}"
                        continue
                    start = self.clients.clock()
                    report = apply(e)
                    done, failed = report.applied, report.errors
                    mine = dict(done)
                    with self._lock:
                        applied.update(done)
                        errors.update(failed)
                    es.deployed = True
                    status = "failed" if failed else "ok"
                    out = step_outcome(p, status, duration=self.clients.clock() - start)
                    out["output"] = f"{len(done)} service(s) deployed" + (
                        f", {len(failed)} failed" if failed else ""
                    )
                    es.outcomes[p.alias] = out
                    if failed:
                        es.failed = f"deploy failed: {next(iter(failed.values())).message}"
                elif p.uses == WAIT:
                    # what was deployed is followed even when another service's write failed
                    started = {k: a for k, a in mine.items() if a.deployment_id is not None}
                    if wait is None or not started:
                        why = "--no-wait" if wait is None else (es.failed or "nothing deployed")
                        es.outcomes[p.alias] = step_outcome(p, "skipped", reason=why)
                        continue
                    start = self.clients.clock()
                    states = wait(e, started)
                    with self._lock:
                        waited.update(states)
                    bad = {k: s for k, s in states.items() if s.state != wait_stage.COMPLETED}
                    status = "ok"
                    if bad:
                        kinds = {s.state for s in bad.values()}
                        status = "timed_out" if kinds == {wait_stage.TIMED_OUT} else "failed"
                    out = step_outcome(p, status, duration=self.clients.clock() - start)
                    out["output"] = ", ".join(f"{k[1]}: {s.state}" for k, s in states.items())
                    es.outcomes[p.alias] = out
                    if bad:
                        k, s = next(iter(bad.items()))
                        es.failed = es.failed or f"rollout of {k[1]} {s.state}"
                elif (
                    wait is None
                    and listed_after(es, p, WAIT)
                    and p.spec.condition(p.step) != ALWAYS
                ):
                    es.outcomes[p.alias] = step_outcome(p, "skipped", reason="--no-wait")
                else:
                    self._step(es, p, say)

        each(one, list(envs), 64)
        return waited

    def _step(self, es: EnvSteps, p: PlannedStep, say: Say) -> None:
        cond = p.spec.condition(p.step)
        if (cond == SUCCESS and es.failed) or (cond == FAILURE and not es.failed):
            why = es.failed if cond == SUCCESS else "nothing failed before it"
            es.outcomes[p.alias] = step_outcome(p, "skipped", reason=why)
            return
        out = self.run_step(p, es.context)
        es.outcomes[p.alias] = out
        say(f"{es.name}: step {p.alias} ({p.uses}): {out['status']}")
        if out["status"] != "ok" and not is_soft(p.step) and es.failed is None:
            es.failed = f"step {p.alias!r} ({p.uses}) failed: {out.get('error')}"

    def run_step(self, p: PlannedStep, ctx: StepContext) -> dict[str, Any]:
        """One step with its retries and timeout: its outcome."""
        clock = self.clients.clock
        attempts = p.spec.retry.attempts if p.spec.retry else 1
        interval = p.spec.retry.interval if p.spec.retry else 0
        start = clock()
        result = StepResult.failed("not run")
        tries = 0
        for tries in range(1, attempts + 1):
            ctx.deadline = clock() + p.spec.timeout if p.spec.timeout is not None else None
            try:
                result = p.step.run(p.config, ctx)
            except TierupError as e:
                result = StepResult.failed(e.message, e.hint)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # a plug-in's bug is its step's failure, not the run's
                result = StepResult.failed(f"{type(e).__name__}: {e}", "see the step's code")
            if result.ok or tries == attempts:
                break
            if interval:
                self.clients.sleep(interval)
        out = step_outcome(p, "ok" if result.ok else "failed", duration=clock() - start)
        if result.output:
            out["output"] = result.output
        if tries > 1:
            out["attempts"] = tries
        if not result.ok:
            out["error"] = result.error or "failed"
            if result.hint:
                out["hint"] = result.hint
        return out

    # -- into the result, the ledger, and the promotion-wide steps ------------------------

    def settle(self, result: CommandResult, applied: Mapping[Key, Applied]) -> None:
        """Each environment's steps in the result; a failed step fails the environment."""
        for eo in result.environments:
            es = self.envs.get(eo.name)
            if es is None:
                continue
            step_failed = any(
                not p.phase and es.outcomes.get(p.alias, {}).get("status") == "failed"
                for p in es.items
            )
            if es.failed is not None and (step_failed or (not es.deployed and eo.error is None)):
                _fail_environment(eo, es, applied, tag_moved=self.tag_moved)
            eo.steps = es.listed()
        failed = [
            f"{es.name}: {es.failed}"
            for es in self.envs.values()
            if es.failed and es.failed.startswith("step ")
        ]
        result.notes += failed

    def annotate(self, event: Event) -> Event:
        """The ledger event with each environment's step outcomes (notify runs after it)."""
        environments = dict(event.environments)
        for name, entry in environments.items():
            es = self.envs.get(name)
            if es is not None:
                steps = [
                    {k: v for k, v in o.items() if k in ("as", "uses", "status", "duration")}
                    | ({"error": o["error"]} if "error" in o else {})
                    for o in es.listed()
                    if not promotion_wide(es, o["as"])
                ]
                environments[name] = dataclasses.replace(
                    entry, extra={**entry.extra, "steps": steps}
                )
        return dataclasses.replace(event, environments=environments)

    def amendment(self, event: Event) -> Event | None:
        """What the promotion-wide steps did, for the ledger: an amendment of ``event``
        (recorded before they ran, so that they could name it); None when none ran."""
        if not self.promotion or not event.id:
            return None
        keep = ("as", "uses", "status", "duration", "output", "error", "attempts", "reason")
        return events.amendment(event, [{k: o[k] for k in keep if k in o} for o in self.promoted])

    def after_record(self, result: CommandResult, event_id: str | None, say: Say) -> None:
        """The promotion-wide steps (notify), once, with the final summary and event id;
        their outcomes, for the ledger, in ``promoted``."""
        if not self.promotion:
            return
        summary = _summary(result, event_id)
        ok = str(result.status) == "ok"
        ctx = StepContext(
            environment=",".join(self.envs),
            tier=result.tier or "",
            account_id="",
            region="",
            cluster="",
            services=(),
            images=next(iter(self.envs.values())).context.images if self.envs else {},
            client=no_client,
            sleep=self.clients.sleep,
            clock=self.clients.clock,
            environ=self.environ,
            summary=lambda: summary,
        )
        for p in self.promotion:
            cond = p.spec.condition(p.step)
            if (cond == SUCCESS and not ok) or (cond == FAILURE and ok):
                out = step_outcome(p, "skipped", reason=f"the promotion is {result.status}")
            else:
                out = self.run_step(p, ctx)
                say(f"step {p.alias} ({p.uses}): {out['status']}")
                if out["status"] != "ok":
                    result.notes.append(
                        f"step {p.alias!r} ({p.uses}) failed: {out.get('error')}"
                        + (" (it does not fail the promotion)" if is_soft(p.step) else "")
                    )
            self.promoted.append(out)
            for es in self.envs.values():
                if any(q.key() == p.key() for q in es.items):
                    es.outcomes[p.alias] = out
        for eo in result.environments:
            listed = self.envs.get(eo.name)
            if listed is not None:
                eo.steps = listed.listed()


def _fail_environment(
    eo: EnvironmentOutcome, es: EnvSteps, applied: Mapping[Key, Applied], *, tag_moved: bool
) -> None:
    assert es.failed is not None
    if not es.deployed:
        # stopped before deploy: none of its services was written
        for s in eo.services:
            if s.status == "planned":
                s.status, s.reason = NOT_DEPLOYED, es.failed
        eo.error = f"{es.failed}; the environment was not deployed"
        eo.hint = "fix what the step checks, then promote again (writes are safe to repeat)"
        if tag_moved:
            eo.hint += (
                "; the tier's tag has moved, so a service that restarts here would pick the "
                "new image up (`tierup rollback tier` moves the tag back)"
            )
        return
    # after deploy: its services did not pass, as a failed rollout does not
    marked = False
    for s in eo.services:
        if (eo.name, s.service) in applied and s.error is None:
            s.status = "failed"
            s.error = f"the rollout completed, but {es.failed}"
            s.hint = "see the step's output; --rollback-on-failure puts the service back"
            marked = True
    if not marked and not any(s.error for s in eo.services):
        # nothing was deployed by this run (already on the new image): the environment fails
        eo.error = es.failed
        eo.hint = "see the step's output"


def _summary(result: CommandResult, event_id: str | None) -> dict[str, Any]:
    doc = result.to_json()
    return {
        "command": result.command,
        "tier": result.tier,
        "status": str(result.status),
        "event": event_id,
        "images": {
            name: {
                k: i.get(k)
                for k in ("repository", "tag", "digest", "previous_digest", "commit", "status")
            }
            for name, i in (doc.get("images") or {}).items()
        },
        "environments": {
            name: {
                "status": e.get("status"),
                "steps": [
                    {"as": s["as"], "uses": s["uses"], "status": s["status"]}
                    for s in e.get("steps", [])
                ],
            }
            for name, e in (doc.get("environments") or {}).items()
        },
    }


def plan(
    config: Config,
    clients: Clients,
    promotion: PromotionLike,
    *,
    environ: Mapping[str, str] | None = None,
) -> StepRun | None:
    """The step lists of ``promotion``'s environments; None when none lists steps."""
    if promotion.command not in STEP_COMMANDS or not promotion.envs:
        return None
    lists = {e.name: config.steps_for(e.name) for e in promotion.envs}
    if all(v is None for v in lists.values()):
        return None
    images = images_of(clients, promotion)
    env_vars = os.environ if environ is None else environ
    envs: dict[str, EnvSteps] = {}
    wide: dict[tuple[str, str, str], PlannedStep] = {}
    for e in promotion.envs:
        env = e.env
        specs = lists[e.name] or [StepSpec(uses=name) for name in PHASES]
        ctx = environment_context(
            e.name,
            env,
            client_of(clients, env),
            images=images,
            sleep=clients.sleep,
            clock=clients.clock,
            environ=env_vars,
            interval=clients.poll_interval,
        )
        items = [planned_step(s, ctx) for s in specs]
        for p in items:
            remember_secrets(p.config, env_vars)
        for p in items:
            if p.promotion_wide:
                wide.setdefault(p.key(), p)
        envs[e.name] = EnvSteps(e.name, ctx, items)
    return StepRun(clients, envs, list(wide.values()), env_vars)
