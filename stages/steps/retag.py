"""``retag``: point the tier's tag at the promoted digest (``stages.retag``), once per tier.

Steps listed before it run before anything is written; a failure there stops the promotion.
"""

from __future__ import annotations

from tierup.stages.step import RETAG
from tierup.stages.steps.phase import Phase


class Retag(Phase):
    summary = "move the tier's tag to the promoted digest (once for the tier)"

    def __init__(self) -> None:
        super().__init__(RETAG)


STEP = Retag()
