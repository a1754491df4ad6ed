"""``deploy``: the environment's services pick up the new image through its strategy."""

from __future__ import annotations

from stages.step import DEPLOY
from stages.steps.phase import Phase


class Deploy(Phase):
    summary = "deploy the environment's services with its strategy"

    def __init__(self) -> None:
        super().__init__(DEPLOY)


STEP = Deploy()
