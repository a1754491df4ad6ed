"""After a promotion's rollouts: put back what failed (`--rollback-on-failure`) or everything
(`--atomic`), and say what was put back and whether that itself became stable.

- task-definition environments go back to the revision each service ran before;
- force-new-deployment environments share the tier's tag: going back means moving the tag back
  to the digest it had and forcing a new deployment of every service that runs it, in every
  environment of the tier (the result says so);
- a revision that names a mutable tag moved by this promotion only means the old image once the
  tag is back, so such a tag goes back first, and every service that depends on it follows;
- cloudformation and codedeploy environments roll back through their strategy (a change set
  back to the previous parameter value; CodeDeploy's stop-and-roll-back, or a deployment of
  the previous revision), once per write (the services of one stack together).

- a step (envs.yaml's `steps`) that failed after the tier's tag moved and before `deploy` left
  its environment's services unwritten (`not_deployed`): the tag write, their only write, goes
  back (to the digest it had), and every service that took the new image through the tag
  follows; a step that failed after `deploy` failed its services as a failed rollout does.

`--rollback-on-failure` acts on failures (FAILED, or rolled back by ECS's circuit breaker); a
timeout is not a failure (the rollout may still finish). `--atomic` acts when any environment
of the tier did not end on the new state, timeouts included, moves back every tag the run moved,
and the command then fails (exit 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tierup.pipeline import executor
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.config_tiers import Tier
from tierup.pipeline.results import (
    NOT_DEPLOYED,
    SUCCESS,
    CommandResult,
    RollbackOutcome,
    ServiceOutcome,
    Status,
)
from tierup.stages import all_strategies
from tierup.stages import strategy as strategy_stage
from tierup.stages import wait as wait_stage
from tierup.stages.adapters.registry import TagWrite
from tierup.stages.deploy import Applied, ServicePlan
from tierup.stages.errors import InputError
from tierup.stages.plan import MoveTag, Plan, Redeploy, Revert, Step

if TYPE_CHECKING:
    from tierup.pipeline.plan import EnvPlan, PromotionPlan

ON_FAILURE = "rollback-on-failure"
ATOMIC = "atomic"

FAILURES = frozenset({wait_stage.FAILED, wait_stage.ROLLED_BACK})
NOT_NEW = FAILURES | {wait_stage.TIMED_OUT}

Key = tuple[str, str]  # (environment, service)


def check_flags(*, wait: bool, rollback_on_failure: bool | None, atomic: bool | None) -> None:
    """Rolling back on failure needs to know the failure: refuse it with --no-wait."""
    if not wait and (rollback_on_failure or atomic):
        flag = "--atomic" if atomic else "--rollback-on-failure"
        raise InputError(
            f"{flag} needs --wait: failures are only known by waiting for the rollouts",
            hint=f"drop --no-wait, or drop {flag}",
        )


def mode_for(tier: Tier, *, rollback_on_failure: bool | None, atomic: bool | None) -> str | None:
    """Flags win over the tier's settings."""
    if atomic if atomic is not None else tier.atomic:
        return ATOMIC
    if rollback_on_failure if rollback_on_failure is not None else tier.rollback_on_failure:
        return ON_FAILURE
    return None


@dataclass
class _Job:
    env: EnvPlan
    plan: ServicePlan
    applied: Applied
    outcome: ServiceOutcome
    action: str = "none"  # task-definition | force-new-deployment | <own strategy> | none
    reason: str = ""
    error: str | None = None
    done: Applied | None = None


@dataclass
class _TagBack:
    image: str
    repository: str
    tag: str
    from_digest: str
    to_digest: str
    status: str = "planned"
    error: str | None = None


@dataclass
class Recovery:
    mode: str
    trigger: list[str] = field(default_factory=list)
    tags: dict[str, _TagBack] = field(default_factory=dict)
    jobs: dict[Key, _Job] = field(default_factory=dict)

    def plan(self) -> Plan:
        """The compensation: the tags back first, then one write per service, or per stack
        (the services of one stack go back by one change set), computed from what was applied."""
        steps: list[Step] = [
            MoveTag(i, t.repository, t.tag, t.to_digest, t.from_digest, TagWrite.MOVED, back=True)
            for i, t in self.tags.items()
        ]
        groups: dict[tuple[str, str], list[_Job]] = {}
        for j in self.jobs.values():
            if j.action != "none" and j.error is None:
                own = j.action == j.env.strategy and _owns_rollback(j.env.strategy)
                key = j.plan.group if own and j.plan.group else j.plan.service
                groups.setdefault((j.env.name, key), []).append(j)
        for jobs in groups.values():
            first = jobs[0]
            if first.action == "force-new-deployment":
                steps.append(
                    Redeploy(
                        first.env.name,
                        first.env.env.cluster,
                        first.plan.service,
                        first.applied.task_definition,
                        first.reason,
                    )
                )
            else:
                steps.append(
                    Revert(
                        first.env.name,
                        first.env.env.cluster,
                        tuple(j.applied for j in jobs),
                        first.action,
                        first.reason,
                        by_ecs=all(j.outcome.status == wait_stage.ROLLED_BACK for j in jobs),
                    )
                )
        return Plan(tuple(steps))

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "trigger": self.trigger,
            "tags": {
                i: {
                    k: v
                    for k, v in {
                        "repository": t.repository,
                        "tag": t.tag,
                        "from_digest": t.from_digest,
                        "to_digest": t.to_digest,
                        "status": t.status,
                        "error": t.error,
                    }.items()
                    if v is not None
                }
                for i, t in self.tags.items()
            },
            "services": [f"{e}/{s}" for (e, s), j in self.jobs.items() if j.action != "none"],
        }


def recover(
    config: Config,
    clients: Clients,
    plan: PromotionPlan,
    result: CommandResult,
    applied: dict[Key, Applied],
    *,
    mode: str | None,
    wait: bool,
    timeout: int | None,
    say: Callable[[str], None],
) -> Recovery | None:
    """Roll back per ``mode`` when the rollouts call for it; update ``result`` in place."""
    if mode is None or result.dry_run:
        return None
    if not wait:
        result.notes.append(
            f"{mode}: not applied with --no-wait (failures are only known by waiting)"
        )
        return None
    outcomes = {(e.name, s.service): s for e in result.environments for s in e.services}
    envs = {e.name: e for e in plan.envs}
    candidates = {
        k: _Job(envs[k[0]], _service_plan(envs[k[0]], k[1]), a, outcomes[k])
        for k, a in applied.items()
        if k in outcomes and a.deployment_id is not None
    }
    # services a step stopped before `deploy`: unwritten, but the tier's tag moved for them
    halted = {k for k, o in outcomes.items() if o.status == NOT_DEPLOYED and k[0] in envs}
    moved = {r.image: r for r in plan.retags if r.action is TagWrite.MOVED and r.current_digest}
    if mode == ATOMIC:
        trigger = [f"{e}/{s}" for (e, s), o in outcomes.items() if o.status in NOT_NEW]
        trigger += [e.name for e in result.environments if e.error is not None]
        chosen = set(candidates) if trigger else set()
        # every write goes back: the tags too, whether or not a service takes them by tag
        first = set(moved) if trigger else set()
    else:
        chosen = {k for k in candidates if outcomes[k].status in FAILURES}
        trigger = [f"{e}/{s}" for (e, s) in chosen | halted]
        # the tag write is the only write a halted service had: it is the one to take back
        first = {
            c.target.image for k in halted for c in _service_plan(envs[k[0]], k[1]).containers
        } & set(moved)
    if not chosen and not first:
        return None
    rec = Recovery(mode=mode, trigger=sorted(set(trigger)))
    for image in sorted(first):
        r = moved[image]
        assert r.current_digest is not None
        rec.tags[image] = _TagBack(image, r.repository, r.tag, r.manifest.digest, r.current_digest)

    # a tag goes back when a chosen service depends on it; every service on it follows
    while True:
        for k in chosen:
            for image in _tag_images(candidates[k].plan) & set(moved):
                if image not in rec.tags:
                    r = moved[image]
                    assert r.current_digest is not None
                    rec.tags[image] = _TagBack(
                        image, r.repository, r.tag, r.manifest.digest, r.current_digest
                    )
        more = {
            k
            for k, j in candidates.items()
            if k not in chosen and _tag_images(j.plan) & set(rec.tags)
        }
        if not more:
            break
        chosen |= more

    for k in sorted(chosen):
        job = candidates[k]
        rec.jobs[k] = job
        _decide(job, plan, rec)
    compensation = rec.plan()
    if rec.tags:
        done = executor.write_tags(clients.registry, compensation.of_type(MoveTag), say)
        for t in done:
            tag = rec.tags[t.step.image]
            tag.status = t.status
            tag.error = t.error.message if t.error is not None else None
        for outcome in result.images:
            back = rec.tags.get(outcome.image)
            if back is not None and back.error is None:
                # the tier's tag is where it was: records must not count this run as a move
                outcome.status = "moved_back"
                outcome.note = f"moved back to {back.to_digest} by the rollback"
        _halted_hints(result, halted, rec)
        for job in rec.jobs.values():
            if job.action == "force-new-deployment":
                bad = [t for i, t in rec.tags.items() if i in _tag_images(job.plan) and t.error]
                if bad:
                    job.action, job.error = "none", f"the tag {bad[0].tag} could not move back"
        result.notes.append(_tag_note(plan, rec))
        compensation = rec.plan()  # a service whose tag could not move back stays
    waited = _run(config, clients, plan, rec, compensation, timeout, say)
    _report(rec, waited)
    if mode == ATOMIC:
        result.notes.append(
            f"--atomic: {', '.join(rec.trigger)} did not end on the new state, so every "
            f"environment of tier {plan.tier.name!r} was rolled back"
        )
        result.status_override = Status.FAILED
    # what the compensation wrote, as its plan's steps (the tags back first)
    result.data["rollback"] = {**rec.to_json(), "steps": compensation.describe()}
    return rec


def _owns_rollback(strategy: str) -> bool:
    """Whose writes only its own machinery may undo (a stack, a CodeDeploy group)."""
    return strategy_stage.capabilities(all_strategies.get(strategy)).owns_rollback


def _service_plan(env: EnvPlan, service: str) -> ServicePlan:
    return next(s for s in env.services if s.service == service)


def _tag_images(plan: ServicePlan) -> set[str]:
    """Images a service takes through a tag (not a digest): they follow the tag's moves."""
    return {
        c.target.image
        for c in plan.containers
        if c.reference == c.target.tag_uri and c.reference != c.target.digest_uri
    }


def _decide(job: _Job, plan: PromotionPlan, rec: Recovery) -> None:
    if _owns_rollback(job.env.strategy):
        job.action = job.env.strategy
        job.reason = strategy_stage.describe_rollback(
            all_strategies.get(job.env.strategy), job.applied
        )
        return
    if job.applied.registered:
        job.action = "task-definition"
        job.reason = f"back to the revision it ran before, {job.applied.previous_task_definition}"
        return
    images = _tag_images(job.plan)
    back = images & set(rec.tags)
    if back:
        job.action = "force-new-deployment"
        tags = ", ".join(f"{rec.tags[i].tag} -> {rec.tags[i].to_digest[:19]}" for i in sorted(back))
        job.reason = f"the tier's tag moved back ({tags}); a new deployment picks it up"
        return
    retag = {r.image: r for r in plan.retags}
    why = []
    for i in sorted(images):
        r = retag.get(i)
        if r is None or r.action is TagWrite.UNCHANGED:
            why.append(f"the tag of {i} did not move in this run: there is nothing before it")
        elif r.action is TagWrite.CREATED:
            why.append(f"the tag {r.tag} is new: it has no previous digest to go back to")
    job.action = "none"
    job.reason = "; ".join(why) or "nothing to go back to"


def _halted_hints(result: CommandResult, halted: set[Key], rec: Recovery) -> None:
    """An environment a step stopped before `deploy` no longer waits on a moved tag."""
    back = ", ".join(
        f"{t.repository}:{t.tag} -> {t.to_digest[:19]}" for t in rec.tags.values() if not t.error
    )
    for eo in result.environments:
        if back and any(e == eo.name for e, _s in halted):
            eo.hint = (
                "fix what the step checks, then promote again (writes are safe to repeat); "
                f"the tier's tag was moved back by the rollback ({back})"
            )


def _tag_note(plan: PromotionPlan, rec: Recovery) -> str:
    tags = ", ".join(f"{t.repository}:{t.tag} -> {t.to_digest[:19]}" for t in rec.tags.values())
    envs = sorted({e for (e, _s), j in rec.jobs.items() if j.action == "force-new-deployment"})
    return (
        f"a tier's tag is shared by every environment of tier {plan.tier.name!r}: rolling back "
        f"moved it back ({tags}) and forced a new deployment of every service that runs it "
        f"(in {', '.join(envs) or 'no environment'})"
    )


def _run(
    config: Config,
    clients: Clients,
    promotion: PromotionPlan,
    rec: Recovery,
    compensation: Plan,
    timeout: int | None,
    say: Callable[[str], None],
) -> dict[Key, wait_stage.RolloutState]:
    """Run the compensation's environment steps through the executor and follow them."""
    where = promotion.where()
    report = executor.apply(clients, compensation.in_environments(), where, say, phase="rollback")
    for key, a in report.applied.items():
        rec.jobs[key].done = a
    for key, err in report.errors.items():
        rec.jobs[key].error = err.message
    owns = {
        k
        for k, j in rec.jobs.items()
        if j.action == j.env.strategy and _owns_rollback(j.env.strategy)
    }
    # a strategy's rollback that wrote nothing (the stack already rolled back) still says
    # where the service stands
    return executor.follow(
        clients,
        report.applied,
        where,
        lambda env: timeout if timeout is not None else config.wait_timeout_for(env),
        say,
        phase="rollback",
        also=lambda k: k in owns,
    )


def _report(rec: Recovery, waited: dict[Key, wait_stage.RolloutState]) -> None:
    for key, job in rec.jobs.items():
        o = job.outcome
        if job.done is None:
            failed = job.error is not None and job.action != "none"
            o.rollback = RollbackOutcome(
                action=job.action,
                status="failed" if failed else "not_rolled_back",
                reason=job.reason,
                error=job.error,
            )
            continue
        st = waited.get(key)
        status = st.state if st is not None else "deployed"
        o.rollback = RollbackOutcome(
            action=job.action,
            status=status,
            task_definition=job.done.task_definition,
            deployment_id=job.done.deployment_id,
            reason=job.reason,
            error=None if status == wait_stage.COMPLETED or st is None else st.reason,
            events=list(st.events) if st is not None and status != wait_stage.COMPLETED else [],
        )
        if o.status in SUCCESS:
            # it had reached the new state; it no longer runs it
            o.status = "reverted"
            o.reason = "rolled back: " + job.reason
