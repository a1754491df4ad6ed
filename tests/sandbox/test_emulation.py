"""The sandbox's ECS emulation, seen as a user sees it: boto3 against moto's HTTP server."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.ecs.models import EC2ContainerServiceBackend

from tests.support.world import assumed_client
from tierup.pipeline.sandbox import emulation
from tierup.pipeline.sandbox.emulation.ecr import policy_allows_pull
from tierup.pipeline.sandbox.emulation.ecs import Emulation
from tierup.pipeline.sandbox.seed_registry import image_manifest
from tierup.pipeline.sandbox.server import moto_server

REGION = "us-east-1"
REGISTRY = "210987654321"
TENANT = "123412341234"
STRANGER = "432143214321"  # an account the repository policy does not name
DEPLOYMENT_ID = re.compile(r"^ecs-svc/\d{19}$")
CREDENTIALS = ("testing-key", "testing-secret")
MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


@dataclass
class World:
    endpoint_url: str

    @property
    def emulation(self) -> Emulation:
        return emulation.install()

    def client(self, service: str, account: str | None = None) -> Any:
        base: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": REGION,
            "aws_access_key_id": CREDENTIALS[0],
            "aws_secret_access_key": CREDENTIALS[1],
        }
        if account is not None:
            return assumed_client(
                self.endpoint_url, service, account, role="tests", credentials=CREDENTIALS
            )
        return boto3.client(service, **base)  # type: ignore[call-overload]


@pytest.fixture(scope="session")
def world() -> Iterator[World]:
    emulation.install()
    server = moto_server()
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield World(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ecr(world: World) -> Any:
    return world.client("ecr", REGISTRY)


@pytest.fixture(scope="module")
def ecs(world: World) -> Any:
    return world.client("ecs", TENANT)


@pytest.fixture
def emu(world: World) -> Iterator[Emulation]:
    """The installed emulation; settings changed by a test are put back afterwards."""
    e = world.emulation
    polls, bad, hang = e.polls_to_complete, set(e.bad_digests), set(e.hang_digests)
    try:
        yield e
    finally:
        e.polls_to_complete = polls
        e.bad_digests.clear()
        e.bad_digests.update(bad)
        e.hang_digests.clear()
        e.hang_digests.update(hang)


def _policy(*accounts: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "pull",
                    "Effect": "Allow",
                    "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in accounts]},
                    "Action": [
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                        "ecr:BatchCheckLayerAvailability",
                    ],
                }
            ],
        }
    )


class Repo:
    """A fresh ECR repository in the registry account that the tenant may pull from."""

    def __init__(self, ecr: Any, *, policy: bool = True) -> None:
        self.ecr = ecr
        self.name = f"app-{uuid.uuid4().hex[:10]}"
        ecr.create_repository(repositoryName=self.name)
        if policy:
            ecr.set_repository_policy(repositoryName=self.name, policyText=_policy(TENANT))

    def ref(self, tag: str) -> str:
        return f"{REGISTRY}.dkr.ecr.{REGION}.amazonaws.com/{self.name}:{tag}"

    def push(self, version: str, *tags: str) -> str:
        """Put the image `version` with `tags` (moving them); return its digest."""
        manifest = image_manifest(self.name, version)
        digest = ""
        for tag in tags:
            try:
                resp = self.ecr.put_image(
                    repositoryName=self.name,
                    imageManifest=manifest,
                    imageManifestMediaType=MEDIA_TYPE,
                    imageTag=tag,
                )
                digest = resp["image"]["imageId"]["imageDigest"]
            except ClientError as e:
                assert e.response["Error"]["Code"] == "ImageAlreadyExistsException"
        if not digest:
            found = self.ecr.describe_images(
                repositoryName=self.name, imageIds=[{"imageTag": tags[0]}]
            )
            digest = found["imageDetails"][0]["imageDigest"]
        return str(digest)


@dataclass
class Svc:
    ecs: Any
    cluster: str
    name: str
    task_definition: str

    def describe(self) -> dict[str, Any]:
        resp = self.ecs.describe_services(cluster=self.cluster, services=[self.name])
        return dict(resp["services"][0])

    def poll(self, times: int = 1) -> dict[str, Any]:
        service: dict[str, Any] = {}
        for _ in range(times):
            service = self.describe()
        return service

    def force(self) -> dict[str, Any]:
        resp = self.ecs.update_service(
            cluster=self.cluster, service=self.name, forceNewDeployment=True
        )
        return dict(resp["service"])

    def tasks(self, status: str = "RUNNING") -> list[dict[str, Any]]:
        arns = self.ecs.list_tasks(
            cluster=self.cluster, serviceName=self.name, desiredStatus=status
        )["taskArns"]
        if not arns:
            return []
        return list(self.ecs.describe_tasks(cluster=self.cluster, tasks=arns)["tasks"])

    def digests(self) -> set[str | None]:
        """What the tasks that run now report (pending ones are not running yet)."""
        return {
            c.get("imageDigest")
            for t in self.tasks()
            if t["lastStatus"] == "RUNNING"
            for c in t["containers"]
        }

    def describe_raw(self) -> dict[str, Any]:
        """The service without advancing it: read through update_service with no change."""
        resp = self.ecs.update_service(cluster=self.cluster, service=self.name)
        return dict(resp["service"])


def register(ecs: Any, family: str, images: dict[str, str]) -> str:
    resp = ecs.register_task_definition(
        family=family,
        containerDefinitions=[
            {"name": name, "image": image, "memory": 128, "essential": True}
            for name, image in images.items()
        ],
    )
    return str(resp["taskDefinition"]["taskDefinitionArn"])


def make_service(
    ecs: Any,
    images: dict[str, str],
    *,
    breaker: bool = True,
    rollback: bool = True,
    desired: int = 2,
    cluster: str | None = None,
) -> Svc:
    cluster = cluster or f"c-{uuid.uuid4().hex[:8]}"
    ecs.create_cluster(clusterName=cluster)
    name = f"s-{uuid.uuid4().hex[:8]}"
    td = register(ecs, f"{cluster}-{name}", images)
    params: dict[str, Any] = {
        "cluster": cluster,
        "serviceName": name,
        "taskDefinition": td,
        "desiredCount": desired,
    }
    if breaker or rollback:
        params["deploymentConfiguration"] = {
            "deploymentCircuitBreaker": {"enable": breaker, "rollback": rollback}
        }
    ecs.create_service(**params)
    return Svc(ecs, cluster, name, td)


def primary(service: dict[str, Any]) -> dict[str, Any]:
    found = [d for d in service["deployments"] if d["status"] == "PRIMARY"]
    assert len(found) == 1, service["deployments"]
    return dict(found[0])


def by_id(service: dict[str, Any], deployment_id: str) -> dict[str, Any] | None:
    for d in service["deployments"]:
        if d["id"] == deployment_id:
            return dict(d)
    return None


# -- installing ---------------------------------------------------------------------------------


def test_install_is_idempotent_and_wraps_moto_backend(world: World) -> None:
    wrapped = EC2ContainerServiceBackend.create_service
    first = emulation.install()
    assert emulation.install() is first
    assert EC2ContainerServiceBackend.create_service is wrapped
    assert emulation.current() is first
    assert first.installed


def test_uninstall_restores_the_methods_it_wrapped() -> None:
    before = {
        name: EC2ContainerServiceBackend.__dict__[name]
        for name in (
            "create_service",
            "update_service",
            "describe_services",
            "list_tasks",
            "describe_tasks",
        )
    }
    layer = Emulation()
    layer._install()
    try:
        for name, method in before.items():
            assert EC2ContainerServiceBackend.__dict__[name] is not method
    finally:
        layer.uninstall()
    for name, method in before.items():
        assert EC2ContainerServiceBackend.__dict__[name] is method


# -- create_service -----------------------------------------------------------------------------


def test_create_service_starts_stable_with_tasks_reporting_digests(ecr: Any, ecs: Any) -> None:
    repo = Repo(ecr)
    digest = repo.push("v1", "dev")
    svc = make_service(ecs, {"app": repo.ref("dev"), "sidecar": repo.ref("dev")})

    created = svc.describe_raw()
    assert len(created["deployments"]) == 1
    dep = primary(created)
    assert DEPLOYMENT_ID.match(dep["id"])
    assert dep["rolloutState"] == "COMPLETED"
    assert dep["runningCount"] == dep["desiredCount"] == 2
    assert dep["taskDefinition"] == svc.task_definition
    assert created["runningCount"] == 2
    assert created["deploymentConfiguration"]["deploymentCircuitBreaker"] == {
        "enable": True,
        "rollback": True,
    }
    assert any("has reached a steady state" in e["message"] for e in created["events"])

    for _ in range(3):  # describing tasks again and again does not stop them
        tasks = svc.tasks()
        assert len(tasks) == 2
        for task in tasks:
            assert task["lastStatus"] == "RUNNING"
            assert task["desiredStatus"] == "RUNNING"
            assert task["startedBy"] == dep["id"]
            assert task["group"] == f"service:{svc.name}"
            assert task["taskDefinitionArn"] == svc.task_definition
            assert {c["name"] for c in task["containers"]} == {"app", "sidecar"}
            for c in task["containers"]:
                assert c["imageDigest"] == digest
                assert c["image"] == repo.ref("dev")


def test_create_service_with_unresolvable_tag_is_stable_without_digest(ecr: Any, ecs: Any) -> None:
    repo = Repo(ecr)
    svc = make_service(ecs, {"app": repo.ref("not-pushed-yet")})
    assert primary(svc.describe())["rolloutState"] == "COMPLETED"
    assert svc.digests() == {None}
    assert len(svc.tasks()) == 2


def test_create_service_without_configuration_gets_ecs_defaults(ecr: Any, ecs: Any) -> None:
    repo = Repo(ecr)
    repo.push("v1", "dev")
    svc = make_service(ecs, {"app": repo.ref("dev")}, breaker=False, rollback=False)
    config = svc.describe()["deploymentConfiguration"]
    assert config["deploymentCircuitBreaker"] == {"enable": False, "rollback": False}
    assert config["maximumPercent"] == 200
    assert config["minimumHealthyPercent"] == 100


# -- update_service -----------------------------------------------------------------------------


def test_force_new_deployment_rotates_then_completes_on_the_digest_of_that_moment(
    ecr: Any, ecs: Any, emu: Emulation
) -> None:
    assert emu.polls_to_complete == 2
    repo = Repo(ecr)
    d1 = repo.push("v1", "dev")
    svc = make_service(ecs, {"app": repo.ref("dev")})
    old_id = primary(svc.describe())["id"]

    d2 = repo.push("v2", "dev")
    updated = svc.force()
    new = primary(updated)
    assert DEPLOYMENT_ID.match(new["id"]) and new["id"] != old_id
    assert new["rolloutState"] == "IN_PROGRESS"
    assert new["runningCount"] == 0
    assert new["desiredCount"] == 2
    old = by_id(updated, old_id)
    assert old is not None and old["status"] == "ACTIVE" and old["rolloutState"] == "COMPLETED"
    assert old["runningCount"] == 2

    d3 = repo.push("v3", "dev")  # the tag moves on; the deployment keeps what it resolved
    assert len({d1, d2, d3}) == 3

    first = svc.describe()
    assert primary(first)["id"] == new["id"]
    assert primary(first)["rolloutState"] == "IN_PROGRESS"
    assert len(first["deployments"]) == 2

    second = svc.describe()
    assert [d["id"] for d in second["deployments"]] == [new["id"]]
    done = primary(second)
    assert done["rolloutState"] == "COMPLETED"
    assert done["runningCount"] == done["desiredCount"] == 2
    assert second["runningCount"] == 2
    assert "has reached a steady state." in second["events"][0]["message"]

    running = svc.tasks()
    assert len(running) == 2
    assert {t["startedBy"] for t in running} == {new["id"]}
    assert svc.digests() == {d2}

    stopped = [t for t in svc.tasks("STOPPED") if t["startedBy"] == old_id]
    assert len(stopped) == 2
    for task in stopped:
        assert task["lastStatus"] == "STOPPED"
        assert f"deployment {new['id']}" in task["stoppedReason"]
        assert {c["imageDigest"] for c in task["containers"]} == {d1}

    assert primary(svc.poll(3))["id"] == new["id"]  # nothing moves without a new write


def test_polls_to_complete_is_a_setting(ecr: Any, ecs: Any, emu: Emulation) -> None:
    emu.polls_to_complete = 4
    repo = Repo(ecr)
    repo.push("v1", "dev")
    svc = make_service(ecs, {"app": repo.ref("dev")})
    dep_id = primary(svc.force())["id"]
    for _ in range(3):
        assert primary(svc.describe())["rolloutState"] == "IN_PROGRESS"
    final = svc.describe()
    assert primary(final)["id"] == dep_id
    assert primary(final)["rolloutState"] == "COMPLETED"


def test_new_task_definition_starts_a_deployment(ecr: Any, ecs: Any) -> None:
    repo = Repo(ecr)
    d1 = repo.push("v1", "v1")
    d2 = repo.push("v2", "v2")
    svc = make_service(ecs, {"app": repo.ref("v1")})
    old_id = primary(svc.describe())["id"]
    family = svc.task_definition.rsplit("/", 1)[-1].split(":")[0]
    td2 = register(ecs, family, {"app": repo.ref("v2")})

    updated = ecs.update_service(cluster=svc.cluster, service=svc.name, taskDefinition=family)[
        "service"
    ]
    new = primary(updated)
    assert new["id"] != old_id
    assert new["taskDefinition"] == td2
    assert updated["taskDefinition"] == td2
    assert svc.digests() == {d1}  # only the old deployment's tasks run yet

    final = svc.poll(2)
    assert [d["id"] for d in final["deployments"]] == [new["id"]]
    assert primary(final)["rolloutState"] == "COMPLETED"
    assert svc.digests() == {d2}


def test_update_without_changes_starts_no_deployment(ecr: Any, ecs: Any) -> None:
    repo = Repo(ecr)
    repo.push("v1", "dev")
    svc = make_service(ecs, {"app": repo.ref("dev")})
    dep_id = primary(svc.describe())["id"]
    same = ecs.update_service(
        cluster=svc.cluster, service=svc.name, taskDefinition=svc.task_definition
    )["service"]
    assert [d["id"] for d in same["deployments"]] == [dep_id]


def test_scaling_adjusts_tasks_of_the_primary_deployment(ecr: Any, ecs: Any) -> None:
    repo = Repo(ecr)
    digest = repo.push("v1", "dev")
    svc = make_service(ecs, {"app": repo.ref("dev")})
    dep_id = primary(svc.describe())["id"]
    scaled = ecs.update_service(cluster=svc.cluster, service=svc.name, desiredCount=3)["service"]
    assert [d["id"] for d in scaled["deployments"]] == [dep_id]
    assert primary(scaled)["runningCount"] == 3
    assert len(svc.tasks()) == 3 and svc.digests() == {digest}
    ecs.update_service(cluster=svc.cluster, service=svc.name, desiredCount=1)
    assert len(svc.tasks()) == 1
    assert primary(svc.describe())["runningCount"] == 1


def test_inactive_task_definition_is_refused(ecr: Any, ecs: Any) -> None:
    repo = Repo(ecr)
    repo.push("v1", "dev")
    svc = make_service(ecs, {"app": repo.ref("dev")})
    family = svc.task_definition.rsplit("/", 1)[-1].split(":")[0]
    td2 = register(ecs, family, {"app": repo.ref("dev")})
    ecs.deregister_task_definition(taskDefinition=td2)
    with pytest.raises(ClientError) as raised:
        ecs.update_service(cluster=svc.cluster, service=svc.name, taskDefinition=td2)
    assert "inactive" in str(raised.value)
    assert len(svc.describe()["deployments"]) == 1


# -- bad images, circuit breaker, rollback ------------------------------------------------------


def test_bad_digest_fails_the_deployment_with_the_circuit_breaker(
    ecr: Any, ecs: Any, emu: Emulation
) -> None:
    repo = Repo(ecr)
    d1 = repo.push("v1", "dev")
    svc = make_service(ecs, {"app": repo.ref("dev")}, breaker=True, rollback=False)
    old_id = primary(svc.describe())["id"]
    d2 = repo.push("v2", "dev")
    emu.mark_bad(d2)

    dep_id = primary(svc.force())["id"]
    assert primary(svc.describe())["rolloutState"] == "IN_PROGRESS"
    final = svc.describe()
    failed = primary(final)
    assert failed["id"] == dep_id  # no rollback: it stays PRIMARY, FAILED
    assert failed["rolloutState"] == "FAILED"
    assert failed["failedTasks"] > 0
    assert failed["runningCount"] == 0
    assert "circuit breaker" in failed["rolloutStateReason"]
    old = by_id(final, old_id)
    assert old is not None and old["status"] == "ACTIVE" and old["runningCount"] == 2
    messages = [e["message"] for e in final["events"]]
    assert any("unable to consistently start tasks" in m for m in messages)
    assert any(f"(deployment {dep_id}) deployment failed" in m for m in messages)

    assert svc.digests() == {d1}  # the old tasks still run
    failed_tasks = [t for t in svc.tasks("STOPPED") if t["startedBy"] == dep_id]
    assert len(failed_tasks) == failed["failedTasks"]
    for task in failed_tasks:
        assert task["stoppedReason"]
        assert {c["imageDigest"] for c in task["containers"]} == {d2}

    assert primary(svc.poll(2))["rolloutState"] == "FAILED"  # FAILED is final


def test_sandbox_fail_tag_fails_and_the_breaker_rolls_back_to_the_last_completed(
    ecr: Any, ecs: Any
) -> None:
    repo = Repo(ecr)
    d1 = repo.push("v1", "v1")
    d2 = repo.push("v2", "v2", "sandbox-fail")  # the user's way to mark an image bad
    svc = make_service(ecs, {"app": repo.ref("v1")})
    family = svc.task_definition.rsplit("/", 1)[-1].split(":")[0]
    good_id = primary(svc.describe())["id"]
    td2 = register(ecs, family, {"app": repo.ref("v2")})

    bad_id = primary(
        ecs.update_service(cluster=svc.cluster, service=svc.name, taskDefinition=td2)["service"]
    )["id"]
    svc.describe()
    after = svc.describe()
    rolled = primary(after)
    assert rolled["id"] not in (bad_id, good_id)
    assert rolled["taskDefinition"] == svc.task_definition
    assert rolled["rolloutState"] == "IN_PROGRESS"
    failed = by_id(after, bad_id)
    assert failed is not None
    assert failed["status"] != "PRIMARY" and failed["rolloutState"] == "FAILED"
    assert failed["failedTasks"] > 0
    assert any("rolling back to deployment" in e["message"] for e in after["events"])
    failed_tasks = [t for t in svc.tasks("STOPPED") if t["startedBy"] == bad_id]
    assert failed_tasks and {c["imageDigest"] for t in failed_tasks for c in t["containers"]} == {
        d2
    }

    final = svc.poll(2)
    assert [d["id"] for d in final["deployments"]] == [rolled["id"]]
    assert primary(final)["rolloutState"] == "COMPLETED"
    assert final["taskDefinition"] == svc.task_definition
    assert svc.digests() == {d1}


def test_rollback_after_a_moved_tag_returns_to_the_digest_that_ran(ecr: Any, ecs: Any) -> None:
    repo = Repo(ecr)
    d1 = repo.push("v1", "dev")
    svc = make_service(ecs, {"app": repo.ref("dev")})
    repo.push("v2", "dev", "sandbox-fail-2")
    bad_id = primary(svc.force())["id"]
    after = svc.poll(2)
    assert primary(after)["id"] != bad_id
    final = svc.poll(2)
    assert primary(final)["rolloutState"] == "COMPLETED"
    assert by_id(final, bad_id) is None
    assert svc.digests() == {d1}  # not what `dev` names now


def test_rollback_to_a_start_whose_tag_did_not_resolve_completes(ecr: Any, ecs: Any) -> None:
    repo = Repo(ecr)
    svc = make_service(ecs, {"app": repo.ref("dev")})  # as seeded: `dev` is not pushed yet
    repo.push("v1", "dev", "sandbox-fail")
    bad_id = primary(svc.force())["id"]
    svc.poll(2)
    final = svc.poll(2)
    assert [d["rolloutState"] for d in final["deployments"]] == ["COMPLETED"]
    assert primary(final)["id"] != bad_id
    assert svc.digests() == {None}


def test_unresolvable_image_fails_with_cannot_pull(ecr: Any, ecs: Any) -> None:
    repo = Repo(ecr)
    repo.push("v1", "v1")
    svc = make_service(ecs, {"app": repo.ref("v1")}, rollback=False)
    family = svc.task_definition.rsplit("/", 1)[-1].split(":")[0]
    td2 = register(ecs, family, {"app": repo.ref("no-such-tag")})
    dep_id = primary(
        ecs.update_service(cluster=svc.cluster, service=svc.name, taskDefinition=td2)["service"]
    )["id"]
    final = svc.poll(2)
    assert primary(final)["id"] == dep_id
    assert primary(final)["rolloutState"] == "FAILED"
    stopped = [t for t in svc.tasks("STOPPED") if t["startedBy"] == dep_id]
    assert stopped
    assert all("CannotPullContainerError" in t["stoppedReason"] for t in stopped)
    assert all(t["stopCode"] == "TaskFailedToStart" for t in stopped)
    assert any("CannotPullContainerError" in e["message"] for e in final["events"])


def test_without_the_circuit_breaker_a_bad_image_keeps_retrying(
    ecr: Any, ecs: Any, emu: Emulation
) -> None:
    repo = Repo(ecr)
    repo.push("v1", "dev")
    svc = make_service(ecs, {"app": repo.ref("dev")}, breaker=False, rollback=False)
    emu.mark_bad(repo.push("v2", "dev"))
    dep_id = primary(svc.force())["id"]
    counts = []
    for _ in range(4):
        dep = primary(svc.describe())
        assert dep["id"] == dep_id and dep["rolloutState"] == "IN_PROGRESS"
        counts.append(dep["failedTasks"])
    assert counts == sorted(counts) and counts[-1] > counts[0] > 0


def test_cross_account_pull_needs_the_repository_policy(ecr: Any, ecs: Any) -> None:
    repo = Repo(ecr, policy=False)
    digest = repo.push("v1", "dev")
    svc = make_service(ecs, {"app": repo.ref("dev")}, rollback=False)
    assert svc.digests() == {None}
    dep_id = primary(svc.force())["id"]
    failed = svc.poll(2)
    assert primary(failed)["rolloutState"] == "FAILED"
    stopped = [t for t in svc.tasks("STOPPED") if t["startedBy"] == dep_id]
    assert stopped and all("403 Forbidden" in t["stoppedReason"] for t in stopped)

    ecr.set_repository_policy(repositoryName=repo.name, policyText=_policy(STRANGER, TENANT))
    ok_id = primary(svc.force())["id"]
    done = svc.poll(2)
    assert primary(done)["id"] == ok_id and primary(done)["rolloutState"] == "COMPLETED"
    assert svc.digests() == {digest}


def test_policy_evaluation() -> None:
    allow = _policy(TENANT)
    assert policy_allows_pull(allow, TENANT)
    assert not policy_allows_pull(allow, STRANGER)
    assert not policy_allows_pull(None, TENANT)
    star = json.dumps({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "ecr:*"}})
    assert policy_allows_pull(star, STRANGER)
    deny = json.dumps(
        {
            "Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": "ecr:*"},
                {"Effect": "Deny", "Principal": {"AWS": STRANGER}, "Action": "ecr:BatchGet*"},
            ]
        }
    )
    assert not policy_allows_pull(deny, STRANGER)
    assert policy_allows_pull(deny, TENANT)


# -- hang ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["tag", "mark"])
def test_hanging_image_never_completes(ecr: Any, ecs: Any, emu: Emulation, how: str) -> None:
    repo = Repo(ecr)
    repo.push("v1", "dev")
    svc = make_service(ecs, {"app": repo.ref("dev")})
    if how == "tag":
        digest = repo.push("v2", "dev", "sandbox-hang")
    else:
        digest = repo.push("v2", "dev")
        emu.mark_hang(digest)
    dep_id = primary(svc.force())["id"]
    final = svc.poll(emu.polls_to_complete + 4)
    dep = primary(final)
    assert dep["id"] == dep_id
    assert dep["rolloutState"] == "IN_PROGRESS"
    assert dep["runningCount"] == 0 and dep["pendingCount"] == 2
    assert len(final["deployments"]) == 2
    assert any("unable to place a task" in e["message"] for e in final["events"])
    pending = [t for t in svc.tasks() if t["startedBy"] == dep_id]
    assert pending and all(t["lastStatus"] == "PENDING" for t in pending)
    assert {c["imageDigest"] for t in pending for c in t["containers"]} == {digest}


# -- list_tasks ---------------------------------------------------------------------------------


def test_list_tasks_honours_service_name_and_desired_status(ecr: Any, ecs: Any) -> None:
    repo = Repo(ecr)
    repo.push("v1", "dev")
    cluster = f"c-{uuid.uuid4().hex[:8]}"
    a = make_service(ecs, {"app": repo.ref("dev")}, cluster=cluster, desired=2)
    b = make_service(ecs, {"app": repo.ref("dev")}, cluster=cluster, desired=3)
    arn_a = set(ecs.list_tasks(cluster=cluster, serviceName=a.name)["taskArns"])
    arn_b = set(ecs.list_tasks(cluster=cluster, serviceName=b.name)["taskArns"])
    assert len(arn_a) == 2 and len(arn_b) == 3 and not arn_a & arn_b
    everything = set(ecs.list_tasks(cluster=cluster)["taskArns"])
    assert everything == arn_a | arn_b

    a.force()
    a.poll(2)
    assert len(ecs.list_tasks(cluster=cluster, serviceName=a.name)["taskArns"]) == 2
    stopped = ecs.list_tasks(cluster=cluster, serviceName=a.name, desiredStatus="STOPPED")
    assert set(stopped["taskArns"]) == arn_a
    assert (
        ecs.list_tasks(cluster=cluster, serviceName=b.name, desiredStatus="STOPPED")["taskArns"]
        == []
    )
    by_started = ecs.list_tasks(cluster=cluster, startedBy=primary(a.describe())["id"])
    assert len(by_started["taskArns"]) == 2
    with pytest.raises(ClientError) as raised:
        ecs.list_tasks(cluster=cluster, serviceName="no-such-service")
    assert raised.value.response["Error"]["Code"] == "ServiceNotFoundException"


def test_tasks_are_listed_and_described_within_their_own_cluster(ecr: Any, ecs: Any) -> None:
    repo = Repo(ecr)
    repo.push("v1", "dev")
    # one cluster's name is the start of the other's: moto alone would mix their tasks
    base = f"c-{uuid.uuid4().hex[:8]}"
    short = make_service(ecs, {"app": repo.ref("dev")}, cluster=base, desired=1)
    long = make_service(ecs, {"app": repo.ref("dev")}, cluster=f"{base}0", desired=2)
    mine = ecs.list_tasks(cluster=base)["taskArns"]
    theirs = ecs.list_tasks(cluster=f"{base}0")["taskArns"]
    assert len(mine) == 1 and len(theirs) == 2
    # by ARN or by id, each once, and never another cluster's task
    ids = [arn.rsplit("/", 1)[-1] for arn in mine]
    described = ecs.describe_tasks(cluster=base, tasks=[*mine, *ids, *theirs])["tasks"]
    assert [t["taskArn"] for t in described] == mine
    assert described[0]["group"] == f"service:{short.name}"
    assert {t["group"] for t in ecs.describe_tasks(cluster=f"{base}0", tasks=theirs)["tasks"]} == {
        f"service:{long.name}"
    }
    counts = {
        c["clusterName"]: c["runningTasksCount"] + c["pendingTasksCount"]
        for c in ecs.describe_clusters(clusters=[base, f"{base}0"])["clusters"]
    }
    assert counts == {base: 1, f"{base}0": 2}


def test_stopped_task_is_replaced(ecr: Any, ecs: Any) -> None:
    repo = Repo(ecr)
    digest = repo.push("v1", "dev")
    svc = make_service(ecs, {"app": repo.ref("dev")})
    victim = svc.tasks()[0]["taskArn"]
    ecs.stop_task(cluster=svc.cluster, task=victim, reason="testing")
    assert len(svc.tasks()) == 1
    after = svc.describe()
    assert primary(after)["runningCount"] == 2
    running = svc.tasks()
    assert len(running) == 2 and victim not in {t["taskArn"] for t in running}
    assert svc.digests() == {digest}


def test_concurrent_polls_keep_one_consistent_rollout(world: World, ecr: Any, ecs: Any) -> None:
    repo = Repo(ecr)
    repo.push("v1", "dev")
    svc = make_service(ecs, {"app": repo.ref("dev")})
    dep_id = primary(svc.force())["id"]
    errors: list[BaseException] = []

    def hammer() -> None:
        client = world.client("ecs", TENANT)
        try:
            for _ in range(5):
                client.describe_services(cluster=svc.cluster, services=[svc.name])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    final = svc.describe()
    assert [d["id"] for d in final["deployments"]] == [dep_id]
    assert primary(final)["rolloutState"] == "COMPLETED"
    assert len(svc.tasks()) == 2


def test_delete_service_stops_its_tasks(ecr: Any, ecs: Any) -> None:
    repo = Repo(ecr)
    repo.push("v1", "dev")
    svc = make_service(ecs, {"app": repo.ref("dev")})
    ecs.delete_service(cluster=svc.cluster, service=svc.name, force=True)
    arns = ecs.list_tasks(cluster=svc.cluster, desiredStatus="RUNNING")["taskArns"]
    assert arns == []
