"""The reviews a run goes through: ``--out`` keeps what was planned, ``apply`` refuses a
stale plan and marks the run's ledger events."""

from __future__ import annotations

import dataclasses
from typing import Any

from tierup.pipeline import undo
from tierup.pipeline.events import Event
from tierup.pipeline.results import CommandResult
from tierup.pipeline.saved_plan import SavedPlan, StalePlan
from tierup.pipeline.saved_plan_state import differences, state_of
from tierup.stages.record import Recorder

SHOWN_DIFFERENCES = 3


class Keeping:
    """``--out``: keep what the dry run planned."""

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None
        self.snapshot: str | None = None

    def planned(self, plan: object, result: CommandResult) -> None:
        self.state = state_of(plan)
        if isinstance(plan, undo.UndoPlan):
            self.snapshot = plan.snapshot

    def recorder(self, inner: Recorder[Event]) -> Recorder[Event]:
        return inner


class Checking:
    """``tierup apply``: refuse a plan whose world changed; mark the run's ledger events."""

    def __init__(self, saved: SavedPlan, origin: dict[str, Any]) -> None:
        self.saved = saved
        self.origin = origin
        self.checked = False

    def planned(self, plan: object, result: CommandResult) -> None:
        found = differences(self.saved.state, state_of(plan), self.saved.steps, result.plan)
        if found:
            raise stale(self.saved, found)
        self.checked = True

    def recorder(self, inner: Recorder[Event]) -> Recorder[Event]:
        return _Marking(inner, self.origin)


class _Marking:
    def __init__(self, inner: Recorder[Event], origin: dict[str, Any]) -> None:
        self.inner = inner
        self.origin = origin

    def record(self, event: Event, /) -> Event:
        return self.inner.record(
            dataclasses.replace(event, extra={**event.extra, "saved_plan": self.origin})
        )


def stale(saved: SavedPlan, found: list[str]) -> StalePlan:
    more = len(found) - SHOWN_DIFFERENCES
    listed = "; ".join(found[:SHOWN_DIFFERENCES]) + (f"; and {more} more" if more > 0 else "")
    return StalePlan(
        f"the saved plan {saved.id} (`{saved.invocation}`) is stale, nothing was written: {listed}",
        hint=f"make a new plan (tierup {saved.invocation} --out FILE), review it, apply it",
    )
