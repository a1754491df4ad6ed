"""Keep a bounded number of task definition revisions per family, never the ones that matter.

A revision is never deregistered when it is in use (by any deployment of a service the caller
knows), when it is the revision before one in use (what a rollback goes back to), or when the
caller protects it (revisions that records such as the ledger or a snapshot still name).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tierup.stages.adapters.ecs import Ecs


@dataclass(frozen=True)
class RetentionPlan:
    family: str
    keep: int
    deregister: tuple[str, ...]
    kept_for_safety: tuple[str, ...] = ()  # beyond `keep`, but in use, previous or protected
    error: str | None = None  # the family could not be read: nothing will be deregistered


def revision_of(arn: str) -> int:
    return int(arn.rsplit(":", 1)[-1])


def family_of(arn: str) -> str:
    return arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]


def _same(a: str, b: str) -> bool:
    """ARNs or `family:revision` strings naming one revision."""
    return (family_of(a), revision_of(a)) == (family_of(b), revision_of(b))


def _has_revision(name: str) -> bool:
    return name.rsplit(":", 1)[-1].isdigit() and ":" in name.rsplit("/", 1)[-1]


def _named(arn: str, names: Iterable[str]) -> bool:
    return any(_same(arn, n) for n in names if _has_revision(n))


def plan_retention(
    family: str,
    active: list[str],
    *,
    keep: int,
    in_use: Iterable[str],
    protected: Iterable[str] = (),
    registering: int = 0,
) -> RetentionPlan:
    """Which of ``active`` (the family's ACTIVE revisions) to deregister.

    ``registering`` counts revisions that will be registered before the cleanup runs: they are
    the newest and take their place among the ``keep`` newest.
    """
    if keep < 1:
        raise ValueError("retention keeps at least one revision")
    revisions = sorted({a for a in active if family_of(a) == family}, key=revision_of)
    used = [u for u in in_use if _has_revision(u) and family_of(u) == family]
    protected = list(protected)
    safe: set[str] = set()
    for arn in revisions:
        if _named(arn, used) or _named(arn, protected):
            safe.add(arn)
    for u in used:
        # the revision before one in use is what a rollback of that service goes back to
        older = [a for a in revisions if revision_of(a) < revision_of(u)]
        if older:
            safe.add(older[-1])
    kept_slots = max(0, keep - registering)
    candidates = revisions[: max(0, len(revisions) - kept_slots)]
    deregister = tuple(a for a in candidates if a not in safe)
    kept_for_safety = tuple(a for a in candidates if a in safe)
    return RetentionPlan(family, keep, deregister, kept_for_safety)


def plan_family(
    ecs: Ecs,
    family: str,
    *,
    keep: int,
    in_use: Iterable[str],
    protected: Iterable[str] = (),
    registering: int = 0,
) -> RetentionPlan:
    """Read the family's ACTIVE revisions and plan (reads only)."""
    return plan_retention(
        family,
        ecs.list_task_definitions(family),
        keep=keep,
        in_use=in_use,
        protected=protected,
        registering=registering,
    )


def apply_retention(
    ecs: Ecs, plan: RetentionPlan, *, in_use_now: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """Deregister what the plan names, except what has come into use since it was made.

    Returns (deregistered, spared). Deregistering an INACTIVE revision again is harmless.
    """
    now = list(in_use_now)
    done: list[str] = []
    spared: list[str] = []
    for arn in plan.deregister:
        if _named(arn, now):
            spared.append(arn)
            continue
        ecs.deregister_task_definition(arn)
        done.append(arn)
    return done, spared
