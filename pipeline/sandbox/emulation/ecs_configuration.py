"""A service's deployment configuration, which moto drops: ECS's defaults, kept on the service.

moto's CreateService ignores `deploymentConfiguration`; the emulation keeps it on moto's service
object, overlaid on ECS's defaults, so that the circuit breaker acts as on ECS (a service
created directly, by a CloudFormation stack or updated later alike).
"""

from __future__ import annotations

import copy
from typing import Any

from moto.ecs.models import Service

__all__ = [
    "circuit_breaker",
    "normalize_deployment_configuration",
    "set_deployment_configuration",
]

_DEFAULT_DEPLOYMENT_CONFIGURATION: dict[str, Any] = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}


def normalize_deployment_configuration(config: object) -> dict[str, Any]:
    """ECS's defaults, overlaid with what the caller gave (None values dropped)."""
    merged = copy.deepcopy(_DEFAULT_DEPLOYMENT_CONFIGURATION)
    if isinstance(config, dict):
        for key, value in config.items():
            if value is None:
                continue
            if key == "deploymentCircuitBreaker" and isinstance(value, dict):
                merged[key] = {
                    "enable": bool(value.get("enable", False)),
                    "rollback": bool(value.get("rollback", False)),
                }
            else:
                merged[key] = copy.deepcopy(value)
    return merged


def set_deployment_configuration(service: Service, config: dict[str, Any]) -> None:
    setattr(service, "deployment_configuration", config)  # noqa: B010  (moto has no such field)


def circuit_breaker(service: Service) -> dict[str, Any]:
    config = getattr(service, "deployment_configuration", None)
    breaker = config.get("deploymentCircuitBreaker") if isinstance(config, dict) else None
    return breaker if isinstance(breaker, dict) else {}
