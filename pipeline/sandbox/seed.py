"""Fill a sandbox (moto's server) with what an envs.yaml describes.

In the registry account (ECR registries only): one repository per image, a repository policy
that lets every environment's account pull, and one image per repository tagged with the commit.
In each environment's account, reached by assuming its role (`role_arn`, or
`arn:aws:iam::<account>:role/tierup-sandbox`): the cluster, one task definition per service and
the service itself (desired count 2, rolling deployments with the circuit breaker and rollback on).

Task definition families are `<environment>-<service>` (characters other than letters, digits,
`-` and `_` become `-`). A service with `image:` has one container, named by `container:` or else
like the service; a service with `containers:` has one container per entry. Each container names
`<registry>/<repository>:<tag>` where the tag is the tier's tag for a mutable tier and the commit
SHA for an immutable (stamped) tier.

Seeding is idempotent: what exists already is left as it is. Credentials come from the
environment (any value works against moto; dummy ones are used when there are none).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from tierup.pipeline.config import Config, EcrRegistry, Environment, OciRegistry, ServiceConfig
from tierup.pipeline.sandbox import seed_steps, seed_strategies
from tierup.pipeline.sandbox.seed_strategies import family_name
from tierup.stages import all_strategies
from tierup.stages.adapters.aws import is_client_error
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.errors import ConfigError
from tierup.stages.strategy import capabilities
from tierup.stages.types import ServiceState

__all__ = [
    "DEFAULT_DEPLOYMENT_CONFIGURATION",
    "DEFAULT_DESIRED_COUNT",
    "DEFAULT_ROLE_NAME",
    "PULL_ACTIONS",
    "SeedResult",
    "SeededEnvironment",
    "SeededService",
    "family_name",
    "image_manifest",
    "push_commit_images",
    "registry_host",
    "role_arn_for",
    "seed",
]

DEFAULT_ROLE_NAME = "tierup-sandbox"
DEFAULT_DESIRED_COUNT = 2
SESSION_NAME = "tierup-sandbox-seed"
CONTAINER_MEMORY_MIB = 128
MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
PULL_ACTIONS = (
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
)
POLICY_SID = "TierupSandboxPull"
DEFAULT_DEPLOYMENT_CONFIGURATION: Mapping[str, Any] = {
    "deploymentCircuitBreaker": {"enable": True, "rollback": True},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}
_DUMMY_CREDENTIALS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}


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


@dataclass(frozen=True)
class SeedResult:
    commit: str
    registry: str  # host that image references start with
    repositories: tuple[str, ...]  # created or found (ECR only)
    digests: Mapping[str, str]  # image name -> digest of the commit's image (ECR only)
    environments: tuple[SeededEnvironment, ...] = field(default=())

    def environment(self, name: str) -> SeededEnvironment:
        for env in self.environments:
            if env.name == name:
                return env
        raise KeyError(name)


# -- naming -----------------------------------------------------------------------------------


def role_arn_for(account_id: str, role_arn: str | None) -> str:
    return role_arn or f"arn:aws:iam::{account_id}:role/{DEFAULT_ROLE_NAME}"


def registry_host(config: Config) -> str:
    registry = config.registry
    if isinstance(registry, EcrRegistry):
        return f"{registry.account_id}.dkr.ecr.{registry.region}.amazonaws.com"
    return re.sub(r"^https?://", "", registry.url)


def image_manifest(repository: str, commit: str) -> str:
    """A Docker v2 manifest whose config and layer digests derive from repository and commit.

    moto computes an image's digest from its layer digests, so each repository and commit gets
    its own digest, and the same inputs always give the same manifest bytes.
    """

    def digest(kind: str) -> str:
        return "sha256:" + hashlib.sha256(f"{kind}:{repository}:{commit}".encode()).hexdigest()

    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1469,
            "digest": digest("config"),
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 2479,
                "digest": digest("layer"),
            }
        ],
    }
    return json.dumps(manifest, indent=3)


def _tier_tag(config: Config, env: Environment, commit: str) -> str:
    tier = config.tier(env.tier)
    return commit if tier.immutable else tier.tag


def _containers(service_name: str, service: ServiceConfig) -> dict[str, str]:
    """Container name -> image name."""
    return {
        (container if container is not None else service_name): image
        for container, image in service.images().items()
    }


# -- sessions ---------------------------------------------------------------------------------


class _Clients:
    """boto3 clients at the sandbox endpoint, per assumed role and region."""

    def __init__(self, endpoint_url: str) -> None:
        self._endpoint_url = endpoint_url
        session = boto3.session.Session()
        credentials = session.get_credentials()
        if credentials is None:
            self._base: dict[str, Any] = dict(_DUMMY_CREDENTIALS)
        else:
            frozen = credentials.get_frozen_credentials()
            self._base = {
                "aws_access_key_id": frozen.access_key,
                "aws_secret_access_key": frozen.secret_key,
                "aws_session_token": frozen.token,
            }
        self._assumed: dict[tuple[str, str | None], dict[str, Any]] = {}

    def _credentials(self, role_arn: str, external_id: str | None, region: str) -> dict[str, Any]:
        key = (role_arn, external_id)
        if key not in self._assumed:
            sts = boto3.client(
                "sts", endpoint_url=self._endpoint_url, region_name=region, **self._base
            )
            params: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": SESSION_NAME}
            if external_id:
                params["ExternalId"] = external_id
            creds = sts.assume_role(**params)["Credentials"]
            self._assumed[key] = {
                "aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"],
            }
        return self._assumed[key]

    def client(self, service: str, *, role_arn: str, external_id: str | None, region: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self._endpoint_url,
            region_name=region,
            **self._credentials(role_arn, external_id, region),
        )


# -- registry ---------------------------------------------------------------------------------


def _ecr_client(clients: _Clients, registry: EcrRegistry) -> Any:
    return clients.client(
        "ecr",
        role_arn=role_arn_for(registry.account_id, registry.role_arn),
        external_id=registry.external_id,
        region=registry.region,
    )


def _pull_policy(accounts: Iterable[str]) -> str:
    principals = [f"arn:aws:iam::{a}:root" for a in sorted(set(accounts))]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": POLICY_SID,
                    "Effect": "Allow",
                    "Principal": {"AWS": principals},
                    "Action": list(PULL_ACTIONS),
                }
            ],
        },
        indent=2,
    )


def _ensure_repository(ecr: Any, repository: str, policy: str | None) -> None:
    try:
        ecr.create_repository(repositoryName=repository)
    except ClientError as e:
        if not is_client_error(e, "RepositoryAlreadyExistsException"):
            raise
    if policy is None:
        return
    try:
        current = ecr.get_repository_policy(repositoryName=repository)["policyText"]
    except ClientError as e:
        if not is_client_error(e, "RepositoryPolicyNotFoundException"):
            raise
        current = None
    if current is None or json.loads(current) != json.loads(policy):
        ecr.set_repository_policy(repositoryName=repository, policyText=policy)


def _put_image(ecr: Any, repository: str, manifest: str, tag: str) -> str:
    """Tag `manifest` in `repository`; return its digest (unchanged when already so)."""
    try:
        resp = ecr.put_image(
            repositoryName=repository,
            imageManifest=manifest,
            imageManifestMediaType=MANIFEST_MEDIA_TYPE,
            imageTag=tag,
        )
        return str(resp["image"]["imageId"]["imageDigest"])
    except ClientError as e:
        if not is_client_error(e, "ImageAlreadyExistsException"):
            raise
    found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    return str(found["imageDetails"][0]["imageDigest"])


def _tag_exists(ecr: Any, repository: str, tag: str) -> bool:
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ClientError as e:
        if is_client_error(e, "ImageNotFoundException"):
            return False
        raise
    return True


def _push(
    ecr: Any, config: Config, commit: str, tags: Iterable[str], *, move_tags: bool
) -> dict[str, str]:
    digests: dict[str, str] = {}
    extra = [t for t in tags if t != commit]
    for name, image in config.images.items():
        # images sharing a repository are different images: their prefix tells them apart
        manifest = image_manifest(image.repository + image.tag_prefix, commit)
        digests[name] = _put_image(ecr, image.repository, manifest, image.tag(commit))
        for tag in extra:
            if move_tags or not _tag_exists(ecr, image.repository, image.tag(tag)):
                _put_image(ecr, image.repository, manifest, image.tag(tag))
    return digests


def _require_ecr(config: Config) -> EcrRegistry:
    if isinstance(config.registry, OciRegistry):
        raise ConfigError(
            "the sandbox can only push images to an ECR registry",
            hint="use `registry: {account_id, region}` in envs.yaml for the sandbox",
        )
    return config.registry


def push_commit_images(
    config: Config,
    *,
    endpoint_url: str,
    commit: str,
    tags: Iterable[str] = (),
) -> dict[str, str]:
    """Put one image per repository for `commit`, tagged with it and with `tags`.

    A tag in `tags` that is on another image moves here. Returns image name -> digest. The
    repositories must exist (seed() makes them).
    """
    registry = _require_ecr(config)
    clients = _Clients(endpoint_url)
    return _push(_ecr_client(clients, registry), config, commit, list(tags), move_tags=True)


# -- environments -----------------------------------------------------------------------------


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


def _env_client(clients: _Clients, service: str, env: Environment) -> Any:
    return clients.client(
        service,
        role_arn=role_arn_for(env.account_id, env.role_arn),
        external_id=env.external_id,
        region=env.region,
    )


def _seed_environment(
    clients: _Clients,
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
    clients: _Clients,
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


def seed(
    config: Config,
    *,
    endpoint_url: str,
    commit: str,
    desired_count: int = DEFAULT_DESIRED_COUNT,
    tag_tiers: bool = False,
) -> SeedResult:
    """Create the registry and every environment of `config` at `endpoint_url`.

    `commit` is the SHA the first images are tagged with. With `tag_tiers`, the mutable tier
    tags (`dev`, `staging`) are put on those images where the tag does not exist yet, so that
    services start on them.
    """
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", commit):
        raise ConfigError(f"{commit!r} cannot be an image tag")
    clients = _Clients(endpoint_url)
    repositories: tuple[str, ...] = ()
    digests: dict[str, str] = {}
    if isinstance(config.registry, EcrRegistry):
        registry = config.registry
        ecr = _ecr_client(clients, registry)
        accounts = [e.account_id for e in config.environments.values()]
        tenants = [a for a in accounts if a != registry.account_id]
        policy = _pull_policy(tenants) if tenants else None
        repositories = tuple(dict.fromkeys(i.repository for i in config.images.values()))
        for repository in repositories:
            _ensure_repository(ecr, repository, policy)
        tier_tags = [t.tag for t in config.tiers if not t.immutable] if tag_tiers else []
        digests = _push(ecr, config, commit, tier_tags, move_tags=False)
    environments = tuple(
        _seed_environment(clients, config, name, env, commit, desired_count)
        for name, env in config.environments.items()
    )
    seed_steps.ensure_alarms(config, lambda service, env: _env_client(clients, service, env))
    return SeedResult(
        commit=commit,
        registry=registry_host(config),
        repositories=repositories,
        digests=digests,
        environments=environments,
    )
