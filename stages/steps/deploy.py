"""``deploy``: the environment's services pick up the new image through its strategy."""

from __future__ import annotations

from tierup.stages.step import DEPLOY
from tierup.stages.steps.phase import Phase


class Deploy(Phase):
    summary = "deploy the environment's services with its strategy"

    def __init__(self) -> None:
        super().__init__(DEPLOY)


STEP = Deploy()
