"""Task definition retention for the environments a promotion registers revisions in.

Planned with the promotion (reads only, so that `--dry-run` lists the deregistrations), run
after the rollouts and any rollback, sparing whatever came into use in between.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from tierup.pipeline.clients import Clients
from tierup.pipeline.lock import require_guard
from tierup.pipeline.plan import EnvPlan
from tierup.pipeline.results import CommandResult
from tierup.stages import retention as retention_stage
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.deploy import Applied
from tierup.stages.errors import TierupError
from tierup.stages.parallel import each
from tierup.stages.types import ServiceState


def in_use(states: Iterable[ServiceState]) -> set[str]:
    """Every revision a deployment of these services runs (PRIMARY and ACTIVE alike)."""
    out: set[str] = set()
    for s in states:
        out.add(s.task_definition)
        out.update(d.task_definition for d in s.deployments)
    return {u for u in out if u}


def plan_env(
    ecs: Ecs, plan: EnvPlan, *, keep: int, protected: Iterable[str]
) -> list[retention_stage.RetentionPlan]:
    """One plan per family a service of ``plan`` registers a new revision in."""
    registering = Counter(retention_stage.family_of(s.task_definition) for s in plan.registering())
    used = in_use(plan.states.values())
    protected = list(protected)
    out = []
    for family, count in sorted(registering.items()):
        try:
            rp = retention_stage.plan_family(
                ecs, family, keep=keep, in_use=used, protected=protected, registering=count
            )
        except TierupError as e:
            # cleaning up is not worth failing a deployment for (a role may lack the permission)
            rp = retention_stage.RetentionPlan(family, keep, (), error=e.message)
        if rp.deregister or rp.kept_for_safety or rp.error:
            out.append(rp)
    return out


def run(
    clients: Clients,
    envs: list[EnvPlan],
    applied: dict[tuple[str, str], Applied],
    result: CommandResult,
    say: Callable[[str], None],
    protected: frozenset[str] = frozenset(),
) -> None:
    """Deregister what each environment's plan names; record it in ``result.data``.

    Spared, whatever the plan says: revisions in use now and those ``protected``. Only inside
    a guarded command (a promotion's).
    """
    require_guard("retention")
    report: list[dict[str, Any]] = []
    lock = threading.Lock()

    def one(plan: EnvPlan) -> None:
        used: set[str] | None = None  # what the environment runs now, read once
        for rp in plan.retention:
            entry: dict[str, Any] = {"environment": plan.name, "family": rp.family}
            if rp.error is not None:
                entry.update(status="failed", error=rp.error)
                with lock:
                    report.append(entry)
                continue
            if not rp.deregister:
                continue
            missing = [
                s.service
                for s in plan.registering(rp.family)
                if not (a := applied.get((plan.name, s.service))) or not a.registered
            ]
            if missing:
                # the count assumed those registrations: keep everything rather than too little
                entry["status"] = "skipped"
                entry["reason"] = f"no new revision was registered for {', '.join(missing)}"
            else:
                try:
                    ecs = clients.ecs(plan.env)
                    if used is None:
                        states = ecs.describe_services(
                            plan.env.cluster, list(plan.env.services), allow_missing=True
                        )
                        used = in_use(states.values()) | set(protected)
                        used.update(
                            a.task_definition for (e, _s), a in applied.items() if e == plan.name
                        )
                    done, spared = retention_stage.apply_retention(ecs, rp, in_use_now=used)
                    entry.update(status="ok", deregistered=done)
                    if spared:
                        entry["spared"] = spared
                    if done:
                        say(f"{plan.name}: deregistered {len(done)} old revision(s) of {rp.family}")
                except TierupError as e:
                    entry.update(status="failed", error=e.message, hint=e.hint)
            with lock:
                report.append(entry)

    with_plans = [
        e for e in envs if e.error is None and any(r.deregister or r.error for r in e.retention)
    ]
    each(one, with_plans)
    if report:
        result.data["retention"] = sorted(report, key=lambda r: (r["environment"], r["family"]))
        failed = [r for r in report if r["status"] == "failed"]
        for r in failed:
            result.notes.append(
                f"{r['environment']}: old revisions of {r['family']} were not deregistered: "
                f"{r['error']}"
            )
