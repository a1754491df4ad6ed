"""Seeding the sandbox from envs.yaml, and running the sandbox server in the background."""

from __future__ import annotations

import functools
import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.ecs.models import EC2ContainerServiceBackend

from tests.support.world import assumed_client
from tierup.pipeline import config as config_module
from tierup.pipeline import config_load
from tierup.pipeline.config import Config
from tierup.pipeline.sandbox import emulation, seed, server
from tierup.pipeline.sandbox.emulation.ecr import policy_allows_pull
from tierup.pipeline.sandbox.emulation.ecs_rollouts import DEFAULT_POLLS_TO_COMPLETE
from tierup.pipeline.sandbox.seed_clients import role_arn_for
from tierup.pipeline.sandbox.seed_registry import MANIFEST_MEDIA_TYPE, image_manifest, registry_host
from tierup.pipeline.sandbox.seed_strategies import family_name
from tierup.pipeline.sandbox.server import moto_server
from tierup.stages.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
ENVS_YAML = ROOT / "envs.yaml"
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40
CREDENTIALS = ("testing-key", "testing-secret")


@dataclass
class Endpoint:
    url: str

    def client(self, service: str, account: str, region: str = "us-east-1") -> Any:
        return assumed_client(
            self.url, service, account, region, role="tests", credentials=CREDENTIALS
        )

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()


@pytest.fixture(scope="session")
def endpoint() -> Iterator[Endpoint]:
    emulation.install()
    moto = moto_server()
    moto.start()
    host, port = moto.get_host_and_port()
    try:
        yield Endpoint(f"http://{host}:{port}")
    finally:
        moto.stop()


@pytest.fixture(scope="module")
def credentials() -> Iterator[None]:
    """seed() reads credentials from the environment: dummies, and nothing from ~/.aws."""
    names = [n for n in os.environ if n.startswith("AWS_")]
    saved = {n: os.environ[n] for n in names}
    for n in names:
        del os.environ[n]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing-key",
            "AWS_SECRET_ACCESS_KEY": "testing-secret",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    try:
        yield
    finally:
        for n in [n for n in os.environ if n.startswith("AWS_")]:
            del os.environ[n]
        os.environ.update(saved)


@pytest.fixture(scope="module")
def config() -> Config:
    return config_load.load(ENVS_YAML)


@pytest.fixture(scope="module")
def seeded(endpoint: Endpoint, credentials: None, config: Config) -> seed.SeedResult:
    endpoint.reset()
    emulation.reset()
    return seed.seed(config, endpoint_url=endpoint.url, commit=COMMIT_A)


def _snapshot(endpoint: Endpoint, config: Config) -> dict[str, Any]:
    """Everything seed() writes, as the API shows it."""
    assert isinstance(config.registry, config_module.EcrRegistry)
    registry = config.registry.account_id
    ecr = endpoint.client("ecr", registry)
    out: dict[str, Any] = {}
    for repo in ecr.describe_repositories()["repositories"]:
        name = repo["repositoryName"]
        images = ecr.describe_images(repositoryName=name)["imageDetails"]
        out[f"repo:{name}"] = sorted(
            (i["imageDigest"], tuple(sorted(i["imageTags"]))) for i in images
        )
        out[f"policy:{name}"] = ecr.get_repository_policy(repositoryName=name)["policyText"]
    for env_name, env in config.environments.items():
        ecs = endpoint.client("ecs", env.account_id, env.region)
        out[f"clusters:{env_name}"] = ecs.list_clusters()["clusterArns"]
        out[f"tds:{env_name}"] = sorted(ecs.list_task_definitions()["taskDefinitionArns"])
        services = ecs.describe_services(cluster=env.cluster, services=list(env.services))
        out[f"services:{env_name}"] = sorted(
            (s["serviceName"], s["taskDefinition"], tuple(d["id"] for d in s["deployments"]))
            for s in services["services"]
        )
        out[f"tasks:{env_name}"] = sorted(ecs.list_tasks(cluster=env.cluster)["taskArns"])
    return out


# -- naming -------------------------------------------------------------------------------------


def test_names() -> None:
    assert family_name("mb-dev", "api") == "mb-dev-api"
    assert family_name("eu.prod", "api") == "eu-prod-api"
    assert role_arn_for("111111111111", None) == ("arn:aws:iam::111111111111:role/tierup-sandbox")
    assert role_arn_for("111111111111", "arn:aws:iam::111111111111:role/x") == (
        "arn:aws:iam::111111111111:role/x"
    )
    a, b = (
        image_manifest("api", COMMIT_A),
        image_manifest("api", COMMIT_B),
    )
    assert a == image_manifest("api", COMMIT_A)
    assert a != b != image_manifest("worker", COMMIT_B)
    assert json.loads(a)["mediaType"] == MANIFEST_MEDIA_TYPE


# -- seeding envs.yaml --------------------------------------------------------------------------


def test_seed_creates_the_registry(
    endpoint: Endpoint, config: Config, seeded: seed.SeedResult
) -> None:
    assert isinstance(config.registry, config_module.EcrRegistry)
    registry = config.registry.account_id
    assert seeded.registry == f"{registry}.dkr.ecr.us-east-1.amazonaws.com"
    assert set(seeded.repositories) == {"api", "worker"}
    assert set(seeded.digests) == {"api", "worker"}
    assert seeded.digests["api"] != seeded.digests["worker"]

    ecr = endpoint.client("ecr", registry)
    accounts = {e.account_id for e in config.environments.values()}
    assert len(accounts) == 6
    for name in ("api", "worker"):
        images = ecr.describe_images(repositoryName=name)["imageDetails"]
        assert [(i["imageDigest"], i["imageTags"]) for i in images] == [
            (seeded.digests[name], [COMMIT_A])
        ]
        policy = json.loads(ecr.get_repository_policy(repositoryName=name)["policyText"])
        (statement,) = policy["Statement"]
        assert statement["Effect"] == "Allow"
        assert set(statement["Action"]) == {
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
            "ecr:BatchCheckLayerAvailability",
        }
        assert set(statement["Principal"]["AWS"]) == {f"arn:aws:iam::{a}:root" for a in accounts}
        for account in accounts:
            assert policy_allows_pull(json.dumps(policy), account)
    # the registry lives in its own account only
    with pytest.raises(ClientError):
        endpoint.client("ecr", "111111111111").describe_repositories(repositoryNames=["api"])


def test_seed_creates_every_environment_in_its_own_account(
    endpoint: Endpoint, config: Config, seeded: seed.SeedResult
) -> None:
    assert [e.name for e in seeded.environments] == list(config.environments)
    host = seeded.registry
    for env_name, env in config.environments.items():
        ecs = endpoint.client("ecs", env.account_id, env.region)
        result = seeded.environment(env_name)
        assert (result.account_id, result.cluster) == (env.account_id, env.cluster)
        clusters = ecs.describe_clusters(clusters=[env.cluster])["clusters"]
        assert [c["status"] for c in clusters] == ["ACTIVE"]
        immutable = config.tier(env.tier).immutable
        tag = COMMIT_A if immutable else config.tier(env.tier).tag
        services = ecs.describe_services(cluster=env.cluster, services=list(env.services))
        assert not services["failures"]
        by_name = {s["serviceName"]: s for s in services["services"]}
        assert set(by_name) == set(env.services)
        for seeded_service in result.services:
            assert seeded_service.created
            s = by_name[seeded_service.name]
            assert s["serviceArn"] == seeded_service.arn
            assert s["desiredCount"] == 2
            assert s["deploymentConfiguration"]["deploymentCircuitBreaker"] == {
                "enable": True,
                "rollback": True,
            }
            (dep,) = s["deployments"]
            assert dep["status"] == "PRIMARY" and dep["rolloutState"] == "COMPLETED"
            assert dep["runningCount"] == 2

            td = ecs.describe_task_definition(taskDefinition=s["taskDefinition"])["taskDefinition"]
            assert td["taskDefinitionArn"] == seeded_service.task_definition
            assert td["family"] == f"{env_name}-{seeded_service.name}"
            svc_config = env.services[seeded_service.name]
            wanted = {
                (c if c is not None else seeded_service.name): f"{host}/{image}:{tag}"
                for c, image in svc_config.images().items()
            }
            assert {c["name"]: c["image"] for c in td["containerDefinitions"]} == wanted
            assert dict(seeded_service.images) == wanted

            arns = ecs.list_tasks(cluster=env.cluster, serviceName=seeded_service.name)
            tasks = ecs.describe_tasks(cluster=env.cluster, tasks=arns["taskArns"])["tasks"]
            assert len(tasks) == 2
            for task in tasks:
                assert task["startedBy"] == dep["id"]
                for c in task["containers"]:
                    image_name = svc_config.images().get(c["name"]) or svc_config.image
                    # stamped tiers name the commit tag, which exists; `dev`/`staging` do not yet
                    expected = seeded.digests[str(image_name)] if immutable else None
                    assert c.get("imageDigest") == expected
        # and nowhere else: the next account does not have this cluster's services
        other = next(e for e in config.environments.values() if e.account_id != env.account_id)
        other_ecs = endpoint.client("ecs", other.account_id, other.region)
        assert env.cluster == other.cluster or not [
            c
            for c in other_ecs.describe_clusters(clusters=[env.cluster])["clusters"]
            if c.get("status") == "ACTIVE"
        ]


def test_mb_prod_worker_has_two_containers(
    endpoint: Endpoint, config: Config, seeded: seed.SeedResult
) -> None:
    worker = next(s for s in seeded.environment("mb-prod").services if s.name == "worker")
    assert set(worker.images) == {"worker", "metrics"}
    assert worker.images["metrics"].split("/")[-1] == f"api:{COMMIT_A}"
    mb_dev_worker = next(s for s in seeded.environment("mb-dev").services if s.name == "worker")
    assert list(mb_dev_worker.images) == ["worker"]


def test_seed_is_idempotent(endpoint: Endpoint, config: Config, seeded: seed.SeedResult) -> None:
    before = _snapshot(endpoint, config)
    again = seed.seed(config, endpoint_url=endpoint.url, commit=COMMIT_A)
    assert _snapshot(endpoint, config) == before
    assert again.digests == seeded.digests
    assert not any(s.created for e in again.environments for s in e.services)
    assert [s.task_definition for e in again.environments for s in e.services] == [
        s.task_definition for e in seeded.environments for s in e.services
    ]


def test_second_commit_images_and_a_deployment_that_picks_them_up(
    endpoint: Endpoint, config: Config, seeded: seed.SeedResult
) -> None:
    digests_b = seed.push_commit_images(
        config, endpoint_url=endpoint.url, commit=COMMIT_B, tags=["dev"]
    )
    assert set(digests_b) == {"api", "worker"}
    for name in digests_b:
        assert digests_b[name] != seeded.digests[name]
    assert digests_b["api"] != digests_b["worker"]
    again = seed.push_commit_images(config, endpoint_url=endpoint.url, commit=COMMIT_B)
    assert again == digests_b

    env = config.environment("dev")
    ecs = endpoint.client("ecs", env.account_id, env.region)
    dep_id = ecs.update_service(cluster=env.cluster, service="api", forceNewDeployment=True)[
        "service"
    ]["deployments"][0]["id"]
    for _ in range(DEFAULT_POLLS_TO_COMPLETE):
        service = ecs.describe_services(cluster=env.cluster, services=["api"])["services"][0]
    assert [(d["id"], d["rolloutState"]) for d in service["deployments"]] == [(dep_id, "COMPLETED")]
    arns = ecs.list_tasks(cluster=env.cluster, serviceName="api")["taskArns"]
    tasks = ecs.describe_tasks(cluster=env.cluster, tasks=arns)["tasks"]
    assert {c["imageDigest"] for t in tasks for c in t["containers"]} == {digests_b["api"]}


def test_tag_tiers_puts_missing_tier_tags_only(endpoint: Endpoint, credentials: None) -> None:
    small = config_load.loads(
        """
version: 1
registry: {account_id: "777777777777", region: us-east-1}
images:
  web: {repository: tagtiers-web}
tiers:
  - {name: dev, tag: dev}
  - {name: prod, tag: "prod-{timestamp}", from: dev}
environments:
  one:
    tier: dev
    account_id: "888888888888"
    role_arn: arn:aws:iam::888888888888:role/deployer
    region: us-east-1
    cluster: tagtiers
    services:
      web: {image: web}
"""
    )
    first = seed.seed(small, endpoint_url=endpoint.url, commit=COMMIT_A, tag_tiers=True)
    ecs = endpoint.client("ecs", "888888888888")
    arns = ecs.list_tasks(cluster="tagtiers", serviceName="web")["taskArns"]
    tasks = ecs.describe_tasks(cluster="tagtiers", tasks=arns)["tasks"]
    assert {c["imageDigest"] for t in tasks for c in t["containers"]} == {first.digests["web"]}

    moved = seed.push_commit_images(small, endpoint_url=endpoint.url, commit=COMMIT_B, tags=["dev"])
    seed.seed(small, endpoint_url=endpoint.url, commit=COMMIT_A, tag_tiers=True)
    ecr = endpoint.client("ecr", "777777777777")
    found = ecr.describe_images(repositoryName="tagtiers-web", imageIds=[{"imageTag": "dev"}])
    assert found["imageDetails"][0]["imageDigest"] == moved["web"]  # re-seeding left it


def test_environments_of_twelve_services_are_described_ten_at_a_time(
    endpoint: Endpoint, credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = "\n".join(f"      s{i:02d}: {{image: web}}" for i in range(12))
    many = config_load.loads(
        f"""
version: 1
registry: {{account_id: "777777777777", region: us-east-1}}
images:
  web: {{repository: many-web}}
tiers:
  - {{name: dev, tag: dev}}
environments:
  plain:
    tier: dev
    account_id: "888888888888"
    region: us-east-1
    cluster: many-plain
    services:
{services}
  stacked:
    tier: dev
    account_id: "888888888888"
    region: us-east-1
    cluster: many-stacked
    strategy: cloudformation
    cloudformation: {{stack: many-stack, image_parameter: ImageUrl}}
    services:
{services}
"""
    )
    described: list[tuple[str, int]] = []
    original = EC2ContainerServiceBackend.describe_services

    @functools.wraps(original)
    def describe_services(self: Any, cluster_str: str, service_names_or_arns: Any) -> Any:
        described.append((cluster_str, len(service_names_or_arns)))
        return original(self, cluster_str, service_names_or_arns)

    monkeypatch.setattr(EC2ContainerServiceBackend, "describe_services", describe_services)
    names = [f"s{i:02d}" for i in range(12)]
    for _ in range(2):
        described.clear()
        result = seed.seed(many, endpoint_url=endpoint.url, commit=COMMIT_A)
        for env in ("plain", "stacked"):
            assert [s.name for s in result.environment(env).services] == names
            calls = sorted(n for cluster, n in described if cluster == f"many-{env}")
            assert calls == [2, 10], env


def test_bad_inputs(endpoint: Endpoint, config: Config) -> None:
    with pytest.raises(ConfigError):
        seed.seed(config, endpoint_url=endpoint.url, commit="not a tag")
    oci = config_load.loads(
        """
version: 1
registry: {type: oci, url: "http://127.0.0.1:5000"}
images: {api: {repository: api}}
tiers: [{name: dev, tag: dev}]
"""
    )
    with pytest.raises(ConfigError):
        seed.push_commit_images(oci, endpoint_url=endpoint.url, commit=COMMIT_A)
    assert registry_host(oci) == "127.0.0.1:5000"


# -- the server in the background ---------------------------------------------------------------


def test_background_server_serves_the_emulation_until_stopped(
    tmp_path: Path, credentials: None, config: Config
) -> None:
    state_dir = tmp_path / "sandbox"
    pid = server.start_background(0, state_dir, polls_to_complete=1)
    try:
        state = server.read_state(state_dir)
        assert state is not None and state.pid == pid
        assert (state_dir / server.PID_FILE).read_text().strip() == str(pid)
        with pytest.raises(server.SandboxError):
            server.start_background(0, state_dir)

        result = seed.seed(config, endpoint_url=state.endpoint_url, commit=COMMIT_A)
        prod = config.environment("prod")
        remote = Endpoint(state.endpoint_url)
        ecs = remote.client("ecs", prod.account_id)
        dep = ecs.update_service(cluster=prod.cluster, service="api", forceNewDeployment=True)[
            "service"
        ]["deployments"][0]
        assert dep["rolloutState"] == "IN_PROGRESS"
        service = ecs.describe_services(cluster=prod.cluster, services=["api"])["services"][0]
        assert [(d["id"], d["rolloutState"]) for d in service["deployments"]] == [
            (dep["id"], "COMPLETED")  # one poll: the server took --polls 1
        ]
        arns = ecs.list_tasks(cluster=prod.cluster, serviceName="api")["taskArns"]
        tasks = ecs.describe_tasks(cluster=prod.cluster, tasks=arns)["tasks"]
        assert {c["imageDigest"] for t in tasks for c in t["containers"]} == {result.digests["api"]}
    finally:
        stopped = server.stop_background(state_dir)
    assert stopped
    assert server.read_state(state_dir) is None
    assert not (state_dir / server.PID_FILE).exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert server.stop_background(state_dir) is False
