"""What ``retag``, ``deploy`` and ``wait`` share: the promotion's own steps.

They are today's stages (``stages.retag``, the environment's deploy strategy, ``stages.wait``),
run by the pipeline's executor; in a step list they say where the other steps go.
"""

from __future__ import annotations

from typing import Any

from tierup.stages.step import NoConfig, StepContext, StepError, StepResult


class Phase:
    """A step the pipeline's executor runs itself (its ``run`` is never called)."""

    config = NoConfig
    summary = ""

    def __init__(self, name: str) -> None:
        self.name = name

    def describe(self, config: Any, ctx: StepContext) -> str:
        return self.summary

    def run(self, config: Any, ctx: StepContext) -> StepResult:
        raise StepError(
            f"step {self.name!r} is run by the promotion's executor, not on its own",
            hint=f"compose stages.{self.name} directly from Python",
        )
