"""Seeding an environment: in its account, the cluster, one task definition per service and the
service itself (rolling deployments with the circuit breaker and rollback on), or the stack or
CodeDeploy application that owns them when the environment's strategy needs one
(`seed_strategies`).

Task definition families are `<environment>-<service>` (characters other than letters, digits,
`-` and `_` become `-`). A service with `image:` has one container, named by `container:` or else
like the service; a service with `containers:` has one container per entry. Each container names
`<registry>/<repository>:<tag>` where the tag is the tier's tag for a mutable tier and the commit
SHA for an immutable (stamped) tier. What exists already is left as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from tierup.pipeline.config import Config, Environment, ServiceConfig
from tierup.pipeline.sandbox import seed_strategies
from tierup.pipeline.sandbox.seed_clients import Clients, role_arn_for
from tierup.pipeline.sandbox.seed_registry import registry_host
from tierup.pipeline.sandbox.seed_strategies import family_name
from tierup.stages import all_strategies
from tierup.stages.adapters.aws import is_client_error
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.strategy import capabilities
from tierup.stages.types import ServiceState

__all__ = [
    "DEFAULT_DEPLOYMENT_CONFIGURATION",
    "SeededEnvironment",
    "SeededService",
    "seed_environment",
]

CONTAINER_MEMORY_MIB = 128
DEFAULT_DEPLOYMENT_CONFIGURATION: Mapping[str, Any] = {
    "deploymentCircuitBreaker": {"enable": True, "rollback": True},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}


@dataclass(frozen=True)
class SeededService:
    name: str
    arn: str
    task_definition: str
    images: Mapping[str, str]  # container name -> image reference
    created: bool


@dataclass(frozen=True)
class SeededEnvironment:
    name: str
    account_id: str
    region: str
    cluster: str
    services: tuple[SeededService, ...]


def _tier_tag(config: Config, env: Environment, commit: str) -> str:
    tier = config.tier(env.tier)
    return commit if tier.immutable else tier.tag


def _containers(service_name: str, service: ServiceConfig) -> dict[str, str]:
    """Container name -> image name."""
    return {
        (container if container is not None else service_name): image
        for container, image in service.images().items()
    }


def _ensure_cluster(ecs: Any, cluster: str) -> None:
    found = ecs.describe_clusters(clusters=[cluster]).get("clusters", [])
    if any(c.get("status") == "ACTIVE" for c in found):
        return
    ecs.create_cluster(clusterName=cluster)


def _ensure_task_definition(
    ecs: Any, family: str, env_name: str, containers: Mapping[str, str]
) -> str:
    wanted = [(name, image) for name, image in containers.items()]
    try:
        current = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    except ClientError as e:
        if not is_client_error(e, "ClientException"):
            raise
        current = None
    if current is not None and current.get("status") == "ACTIVE":
        have = [(c["name"], c["image"]) for c in current.get("containerDefinitions", [])]
        if have == wanted:
            return str(current["taskDefinitionArn"])
    registered = ecs.register_task_definition(
        family=family,
        containerDefinitions=[
            {"name": name, "image": image, "essential": True, "memory": CONTAINER_MEMORY_MIB}
            for name, image in wanted
        ],
        tags=[{"key": "tierup:environment", "value": env_name}],
    )
    return str(registered["taskDefinition"]["taskDefinitionArn"])


def _active_services(ecs: Any, cluster: str, names: list[str]) -> dict[str, ServiceState]:
    found = Ecs(ecs).describe_services(cluster, names, allow_missing=True)
    return {name: s for name, s in found.items() if s.status == "ACTIVE"}


def _ensure_service(
    ecs: Any,
    cluster: str,
    name: str,
    task_definition: str,
    desired_count: int,
    existing: ServiceState | None,
) -> tuple[str, bool]:
    if existing is not None:
        return existing.arn, False
    created = ecs.create_service(
        cluster=cluster,
        serviceName=name,
        taskDefinition=task_definition,
        desiredCount=desired_count,
        launchType="EC2",
        deploymentController={"type": "ECS"},
        deploymentConfiguration=dict(DEFAULT_DEPLOYMENT_CONFIGURATION),
    )
    return str(created["service"]["serviceArn"]), True


def seed_environment(
    clients: Clients,
    config: Config,
    env_name: str,
    env: Environment,
    commit: str,
    desired_count: int,
) -> SeededEnvironment:
    ecs = clients.client(
        "ecs",
        role_arn=role_arn_for(env.account_id, env.role_arn),
        external_id=env.external_id,
        region=env.region,
    )
    _ensure_cluster(ecs, env.cluster)
    host = registry_host(config)
    tag = _tier_tag(config, env, commit)
    # a stack or a CodeDeploy group owns the services of a strategy that needs its settings
    if _owner(config, env_name) in ("cloudformation", "codedeploy"):
        return _seed_owned(clients, config, env_name, env, tag, desired_count, ecs)
    existing = _active_services(ecs, env.cluster, list(env.services))
    services: list[SeededService] = []
    for service_name, service in env.services.items():
        images = {
            container: f"{host}/{config.images[image].repository}:{config.images[image].tag(tag)}"
            for container, image in _containers(service_name, service).items()
        }
        arn = _ensure_task_definition(ecs, family_name(env_name, service_name), env_name, images)
        service_arn, created = _ensure_service(
            ecs, env.cluster, service_name, arn, desired_count, existing.get(service_name)
        )
        services.append(SeededService(service_name, service_arn, arn, images, created))
    return SeededEnvironment(env_name, env.account_id, env.region, env.cluster, tuple(services))


def _owner(config: Config, env_name: str) -> str | None:
    """The settings block (a stack, a CodeDeploy group, ...) the environment's strategy needs."""
    return capabilities(all_strategies.get(config.strategy_for(env_name))).settings


def _seed_owned(
    clients: Clients,
    config: Config,
    env_name: str,
    env: Environment,
    tag: str,
    desired_count: int,
    ecs: Any,
) -> SeededEnvironment:
    """An environment whose services a stack or CodeDeploy owns (see seed_strategies)."""
    host = registry_host(config)
    containers = {
        name: {
            c: f"{host}/{config.images[i].repository}:{config.images[i].tag(tag)}"
            for c, i in _containers(name, s).items()
        }
        for name, s in env.services.items()
    }

    def client(service: str) -> Any:
        return clients.client(
            service,
            role_arn=role_arn_for(env.account_id, env.role_arn),
            external_id=env.external_id,
            region=env.region,
        )

    if env.cloudformation is not None and _owner(config, env_name) == "cloudformation":
        seed_strategies.ensure_stack(
            client("cloudformation"),
            env_name,
            env,
            containers=containers,
            desired_count=desired_count,
        )
    elif env.codedeploy is not None:
        seed_strategies.ensure_codedeploy(
            ecs,
            client("codedeploy"),
            env_name,
            env,
            containers=containers,
            desired_count=desired_count,
        )
    by_name = _active_services(ecs, env.cluster, list(env.services))
    services = tuple(
        SeededService(
            name, by_name[name].arn, by_name[name].task_definition, containers[name], True
        )
        for name in env.services
        if name in by_name
    )
    return SeededEnvironment(env_name, env.account_id, env.region, env.cluster, services)
