"""``alarm``: CloudWatch alarms must stay OK for a bake time; one in ALARM fails the step.

Alarms are named, or found by name prefix, in the environment's own account and region. They
are read every ``interval`` until ``bake`` has passed (``bake: 0`` reads them once). An alarm
with INSUFFICIENT_DATA passes unless ``insufficient_data: fail``. No alarm found is a failure:
a misspelt prefix must not bake nothing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tierup.stages.adapters.cloudwatch import AlarmState, CloudWatch
from tierup.stages.step import Duration, StepConfig, StepContext, StepResult


class AlarmConfig(StepConfig):
    names: list[str] = Field(default_factory=list, description="alarm names (templated)")
    prefix: str | None = Field(default=None, description="every alarm whose name starts so")
    bake: Duration = Field(default=0, description="how long they must stay OK")
    interval: Duration = Field(default=10, description="seconds between reads")
    insufficient_data: Literal["ok", "fail"] = "ok"

    @model_validator(mode="after")
    def _some(self) -> AlarmConfig:
        if not self.names and not self.prefix:
            raise ValueError("name alarms in `names`, or give a `prefix`")
        return self


class Alarm:
    name = "alarm"
    config = AlarmConfig

    def describe(self, config: Any, ctx: StepContext) -> str:
        c: AlarmConfig = config
        return f"alarms {_what(c, ctx)} stay OK for {c.bake}s"

    def run(self, config: Any, ctx: StepContext) -> StepResult:
        c: AlarmConfig = config
        cw = CloudWatch(ctx.client("cloudwatch"))
        names = [ctx.render(n) for n in c.names]
        prefix = ctx.render(c.prefix) if c.prefix else None
        start = ctx.clock()
        reads = 0
        while True:
            reads += 1
            alarms = cw.alarms(names=names, prefix=prefix)
            missing = [n for n in names if n not in {a.name for a in alarms}]
            if not alarms or missing:
                return StepResult.failed(
                    f"no alarm {', '.join(missing) or _what(c, ctx)} in account "
                    f"{ctx.account_id} ({ctx.region})",
                    "check the alarm names or prefix; alarms are read in the environment's "
                    "account and region",
                )
            bad = [a for a in alarms if _fails(a, c)]
            if bad:
                return StepResult.failed(
                    "; ".join(f"alarm {a.name} is {a.state}: {a.reason}".rstrip(": ") for a in bad),
                    "the new image may be unhealthy; see the alarms' metrics",
                )
            baked = ctx.clock() - start
            if baked >= c.bake:
                return StepResult(
                    True,
                    output=f"{len(alarms)} alarm(s) OK for {c.bake}s ({reads} reads): "
                    + ", ".join(a.name for a in alarms),
                )
            if ctx.remaining(float(c.bake)) <= 0:
                return StepResult.failed(
                    f"the step's timeout passed after {baked:.0f}s of a {c.bake}s bake",
                    "give the step a timeout longer than its bake",
                )
            ctx.sleep(min(float(c.interval), c.bake - baked, ctx.remaining(float(c.bake))))


def _what(c: AlarmConfig, ctx: StepContext) -> str:
    parts = [ctx.render(n) for n in c.names]
    if c.prefix:
        parts.append(f"{ctx.render(c.prefix)}*")
    return ", ".join(parts)


def _fails(a: AlarmState, c: AlarmConfig) -> bool:
    return a.state == "ALARM" or (a.state == "INSUFFICIENT_DATA" and c.insufficient_data == "fail")


STEP = Alarm()
