"""``wait``: follow each rollout the deploy started until it is stable, failed or timed out."""

from __future__ import annotations

from tierup.stages.step import WAIT
from tierup.stages.steps.phase import Phase


class Wait(Phase):
    summary = "wait until every rollout is stable or failed"

    def __init__(self) -> None:
        super().__init__(WAIT)


STEP = Wait()
