"""A world with one environment on strategy ecs (ECS-native deployments), and its readers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.guarded import promote
from tests.support.world import World, env_block, make_world
from tierup.stages.adapters.ecs import Ecs

ACCOUNT = "777777777777"
ENV = "native"
CLUSTER = "native-cluster"


def make(tmp_path: Path, aws_env: str, ecs: str) -> World:
    """dev on a rolling update, staging's environment `native` on strategy ecs with ``ecs``; a
    second commit promoted to dev."""
    envs = "\n".join(
        [
            env_block("dev", "dev", "111111111111", {"api": "{image: api}"}),
            env_block(
                "native", "staging", ACCOUNT, {"api": "{image: api}"}, strategy="ecs", ecs=ecs
            ),
        ]
    )
    w = make_world(tmp_path, aws_env, envs)
    w.push_images(w.commit("second"))
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    return w


def ecs(w: World) -> Any:
    return w.ecs(ACCOUNT)


def deployments(w: World) -> list[dict[str, Any]]:
    """Every service deployment of native/api, newest first (each read moves them a step)."""
    rows = ecs(w).list_service_deployments(cluster=CLUSTER, service="api")["serviceDeployments"]
    arns = [r["serviceDeploymentArn"] for r in rows]
    found = ecs(w).describe_service_deployments(serviceDeploymentArns=arns)["serviceDeployments"]
    return sorted(found, key=lambda d: arns.index(d["serviceDeploymentArn"]))


def running(w: World) -> set[str | None]:
    images = Ecs(ecs(w)).running_images(CLUSTER, "api")
    return {t.digest for t in images.get("api", [])}
