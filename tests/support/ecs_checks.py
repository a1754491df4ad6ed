"""Reading and marking the test world's ECS and ECR directly, as a user of the AWS APIs would."""

from __future__ import annotations

from typing import Any

from tests.support.world import REGISTRY, World
from tierup.stages.deploy import READ_ONLY_KEYS

HOST = f"{REGISTRY}.dkr.ecr.us-east-1.amazonaws.com"


def primary(world: World, env: str, service: str) -> dict[str, Any]:
    s = world.services(env)[service]
    return next(d for d in s["deployments"] if d["status"] == "PRIMARY")


def settle(world: World, env: str, polls: int = 6) -> None:
    """Let the emulation advance every rollout of an environment (each describe is a step)."""
    for _ in range(polls):
        world.services(env)


def mark_image(world: World, repository: str, digest: str, tag: str) -> None:
    """Give ``digest`` one more tag (`sandbox-fail`, `sandbox-fail.<cluster>`, ...)."""
    ecr = world.ecr()
    image = ecr.batch_get_image(
        registryId=REGISTRY, repositoryName=repository, imageIds=[{"imageDigest": digest}]
    )["images"][0]
    ecr.put_image(
        registryId=REGISTRY,
        repositoryName=repository,
        imageManifest=image["imageManifest"],
        imageManifestMediaType=image.get("imageManifestMediaType")
        or "application/vnd.docker.distribution.manifest.v2+json",
        imageTag=tag,
    )


def circuit_breaker(world: World, env: str, service: str, *, enable: bool, rollback: bool) -> None:
    e = world.config.environment(env)
    world.ecs(e.account_id).update_service(
        cluster=e.cluster,
        service=service,
        deploymentConfiguration={
            "deploymentCircuitBreaker": {"enable": enable, "rollback": rollback},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
        },
    )


def running_digests(world: World, env: str, service: str) -> set[str]:
    """The digests the RUNNING tasks of a service report (list_tasks + describe_tasks)."""
    e = world.config.environment(env)
    ecs = world.ecs(e.account_id)
    arns = ecs.list_tasks(cluster=e.cluster, serviceName=service, desiredStatus="RUNNING")[
        "taskArns"
    ]
    if not arns:
        return set()
    tasks = ecs.describe_tasks(cluster=e.cluster, tasks=arns)["tasks"]
    return {
        c.get("imageDigest")
        for t in tasks
        if t.get("lastStatus") == "RUNNING"
        for c in t["containers"]
    }


def stable_on(world: World, env: str, service: str) -> dict[str, Any]:
    """The service once its rollouts settled: one PRIMARY, COMPLETED deployment."""
    settle(world, env)
    s = world.services(env)[service]
    assert len(s["deployments"]) == 1, s["deployments"]
    d = s["deployments"][0]
    assert d["status"] == "PRIMARY" and d["rolloutState"] == "COMPLETED", d
    assert d["runningCount"] == d["desiredCount"]
    return s


def container_digests(world: World, env: str, service: str) -> dict[str, set[str | None]]:
    """Container -> the digests its RUNNING tasks report (describe_tasks)."""
    e = world.config.environment(env)
    ecs = world.ecs(e.account_id)
    arns = ecs.list_tasks(cluster=e.cluster, serviceName=service, desiredStatus="RUNNING")[
        "taskArns"
    ]
    out: dict[str, set[str | None]] = {}
    for t in ecs.describe_tasks(cluster=e.cluster, tasks=arns)["tasks"] if arns else []:
        if t["lastStatus"] != "RUNNING":
            continue
        for c in t["containers"]:
            out.setdefault(c["name"], set()).add(c.get("imageDigest"))
    return out


def stable(world: World, env: str, service: str) -> bool:
    """One deployment, COMPLETED; any service of the cluster, named in envs.yaml or not."""
    e = world.config.environment(env)
    s = world.ecs(e.account_id).describe_services(cluster=e.cluster, services=[service])
    deps = s["services"][0]["deployments"]
    return len(deps) == 1 and deps[0]["rolloutState"] == "COMPLETED"


def wait_stable(world: World, env: str, service: str, polls: int = 50) -> None:
    """Describe the service until its rollout settles (each describe is a step); fail if not."""
    for _ in range(polls):
        if stable(world, env, service):
            return
    raise AssertionError(f"{env}/{service} not stable after {polls} describes")


def content(td: dict[str, Any]) -> dict[str, Any]:
    """What RegisterTaskDefinition would be given to make ``td`` again."""
    return {k: v for k, v in td.items() if k not in READ_ONLY_KEYS}
