"""Seeding for envs.yaml's steps: the CloudWatch alarms that `alarm` steps watch.

Each environment gets, in its own account and region, every alarm its `alarm` steps name
(and `<prefix>sandbox` for a step that gives only a prefix), in state OK. `tierup sandbox
alarm` sets their state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tierup.pipeline.config import Config, Environment
from tierup.pipeline.step_lists import environment_context
from tierup.stages.step import StepError

SANDBOX_METRIC = "tierup-sandbox"
NAMESPACE = "tierup/sandbox"
PREFIX_SUFFIX = "sandbox"

Client = Callable[[str, Environment], Any]  # (service, environment) -> a boto3 client


def alarm_names(config: Config, env_name: str) -> list[str]:
    """The alarms the environment's `alarm` steps name (placeholders of the environment)."""
    env = config.environment(env_name)
    ctx = environment_context(env_name, env, lambda _s: None)
    out: list[str] = []
    for spec in config.steps_for(env_name) or []:
        if spec.uses != "alarm":
            continue
        names = list(spec.config.get("names") or [])
        prefix = spec.config.get("prefix")
        if prefix:
            names.append(f"{prefix}{PREFIX_SUFFIX}")
        for n in names:
            try:
                out.append(ctx.render(str(n)))
            except StepError:
                continue  # names an image's digest: known only when promoting
    return list(dict.fromkeys(out))


def ensure_alarm(cloudwatch: Any, name: str) -> None:
    """An alarm called `name` (a metric alarm on a sandbox metric), created once."""
    found = cloudwatch.describe_alarms(AlarmNames=[name]).get("MetricAlarms", [])
    if found:
        return
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace=NAMESPACE,
        MetricName=SANDBOX_METRIC,
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )


def ensure_alarms(config: Config, client: Client) -> dict[str, list[str]]:
    """Every environment's alarms; environment -> the alarm names."""
    out: dict[str, list[str]] = {}
    for env_name, env in config.environments.items():
        names = alarm_names(config, env_name)
        if not names:
            continue
        cloudwatch = client("cloudwatch", env)
        for name in names:
            ensure_alarm(cloudwatch, name)
        out[env_name] = names
    return out
