"""`tierup sandbox alarm`: put a CloudWatch alarm of an environment in a state (moto's
SetAlarmState), to try an `alarm` step's bake failing or passing."""

from __future__ import annotations

import os
from pathlib import Path

from tierup.pipeline.config import Config
from tierup.pipeline.results import CommandResult
from tierup.pipeline.sandbox import seed_steps
from tierup.stages.errors import InputError

STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")


def _endpoint(repo_path: Path) -> str:
    from tierup.pipeline.sandbox import control, server

    url = os.environ.get("AWS_ENDPOINT_URL")
    if url:
        return url
    state = server.read_state(repo_path / control.STATE_DIR)
    if state is None:
        raise InputError(
            "no sandbox is running here and AWS_ENDPOINT_URL is not set",
            hint='start one: eval "$(tierup sandbox up)"',
        )
    return state.endpoint_url


def set_alarm(
    config: Config, *, env: str, name: str, state: str, reason: str, repo_path: Path
) -> CommandResult:
    from tierup.pipeline.sandbox.seed_clients import Clients, role_arn_for

    environment = config.environment(env)
    if state not in STATES:
        raise InputError(f"--state {state!r}: use {', '.join(STATES)}")
    clients = Clients(_endpoint(repo_path))
    cloudwatch = clients.client(
        "cloudwatch",
        role_arn=role_arn_for(environment.account_id, environment.role_arn),
        external_id=environment.external_id,
        region=environment.region,
    )
    seed_steps.ensure_alarm(cloudwatch, name)
    cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason)
    result = CommandResult(command="sandbox alarm")
    result.data = {"environment": env, "alarm": name, "state": state, "reason": reason}
    return result
