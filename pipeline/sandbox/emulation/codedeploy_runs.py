"""A CodeDeploy deployment of an ECS service, as the emulation runs it: its lifecycle events,
what it deploys, where its traffic stands, and how it ended.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

from moto.codedeploy.models import DeploymentGroup, DeploymentInfo
from moto.ecs.models import Service
from moto.moto_api._internal import mock_random

from tierup.pipeline.sandbox.emulation.ecs_deployments import RolloutView

__all__ = [
    "ACTIVE",
    "LIFECYCLE",
    "ROLLBACK_CREATOR",
    "Run",
    "new_deployment_id",
    "traffic_steps",
    "waits_at_ready",
]

LIFECYCLE = (
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "AllowTestTraffic",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AllowTraffic",
    "AfterAllowTraffic",
)
ACTIVE = ("Created", "Queued", "InProgress", "Baking", "Ready")
ROLLBACK_CREATOR = "codeDeployRollback"


def waits_at_ready(group: DeploymentGroup) -> bool:
    """A blue/green group whose replacement waits for ContinueDeployment before rerouting."""
    option = (group.blue_green_deployment_configuration or {}).get("deploymentReadyOption") or {}
    return bool(option.get("actionOnTimeout") == "STOP_DEPLOYMENT")


def traffic_steps(config_name: str | None) -> list[int]:
    """Percent of production traffic on the replacement task set after each shift."""
    name = config_name or ""
    canary = re.search(r"Canary(\d+)Percent", name)
    if canary:
        return [int(canary.group(1)), 100]
    linear = re.search(r"Linear(\d+)Percent", name)
    if linear:
        step = max(1, int(linear.group(1)))
        return [*range(step, 100, step), 100]
    return [100]


def new_deployment_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "d-" + "".join(mock_random.choice(alphabet) for _ in range(9))


@dataclass(eq=False)
class Run:
    info: DeploymentInfo
    account_id: str
    region: str
    group: DeploymentGroup
    task_definition: str | None = None
    container: str | None = None
    port: int | None = None
    hooks: dict[str, str] = field(default_factory=dict)
    service: Service | None = None
    images: Any = None  # what a rollback deploys: the original deployment's resolved images
    original: RolloutView | None = None
    ecs_deployment: str | None = None
    event: int = 0
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: list[int] = field(default_factory=list)
    shifted: int = 0
    error: tuple[str, str] | None = None
    rollback: dict[str, str] = field(default_factory=dict)
    forced: tuple[str, str] | None = None
    invalid: str | None = None
    ready_done: bool = False  # ContinueDeployment let it past Ready

    @property
    def traffic(self) -> int:
        return self.steps[self.shifted - 1] if self.shifted else 0

    @property
    def target_id(self) -> str:
        if self.service is None:
            return ""
        return f"{self.service.cluster_name}:{self.service.name}"
