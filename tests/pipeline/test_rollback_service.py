"""Rollback of a service and of a cluster on moto's server with the sandbox's ECS emulation."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto.ecr.responses import ECRResponse
from moto.ecs.responses import EC2ContainerServiceResponse

from tests.support.ecs_checks import (
    HOST,
    container_digests,
    content,
    mark_image,
    stable,
    wait_stable,
)
from tests.support.release_world import ledger_of, new_commit, ship, task_definition
from tests.support.world import REGISTRY, World, Writes, env_block, make_world
from tierup.pipeline import interrupt
from tierup.pipeline.clients import Clients
from tierup.pipeline.exit_codes import exit_code_of
from tierup.pipeline.promote import RunOptions
from tierup.pipeline.undo_run import rollback
from tierup.stages import rollback as rb
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.errors import TierupError
from tierup.stages.types import Deployment, ServiceState, TaskImage

pytestmark = pytest.mark.usefixtures("aws_env")


def ecs_of(world: World, env: str) -> tuple[Any, str]:
    e = world.config.environment(env)
    return world.ecs(e.account_id), e.cluster


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    return make_world(tmp_path, aws_env)


# -- what ran before -----------------------------------------------------------------------------


def test_service_rollback_goes_to_what_ran_before_not_to_revision_minus_one(world: World) -> None:
    one = new_commit(world, "one")
    ship(world, "dev", "staging", "prod", minute=1)
    ran_before = task_definition(world, "prod", "api")
    assert ran_before["revision"] == 2
    ecs, _cluster = ecs_of(world, "prod")
    # someone registers a revision that never runs: revision - 1 is now the wrong answer
    unrelated = ecs.register_task_definition(
        **{
            **content(ran_before),
            "containerDefinitions": [
                {**ran_before["containerDefinitions"][0], "image": f"{HOST}/api:experiment"}
            ],
        }
    )["taskDefinition"]
    assert unrelated["revision"] == 3
    new_commit(world, "two")
    ship(world, "dev", "staging", "prod", minute=2)
    now = task_definition(world, "prod", "api")
    assert now["revision"] == 4

    code, doc = world.cli_json("rollback", "service", "--env", "prod", "--service", "api")

    assert code == 0, doc
    api = doc["environments"]["prod"]["services"]["api"]
    assert api["status"] == "rolled_back"
    assert api["source"] == "ledger"
    assert api["task_definition"] == ran_before["taskDefinitionArn"]
    assert api["previous_task_definition"] == now["taskDefinitionArn"]
    after = task_definition(world, "prod", "api")
    assert after["taskDefinitionArn"] == ran_before["taskDefinitionArn"]
    assert after["revision"] != now["revision"] - 1
    assert container_digests(world, "prod", "api") == {"api": {one["api"]}}
    assert stable(world, "prod", "api")
    # recorded: the ledger's newest event is this rollback, with before and after
    event = ledger_of(world).events(env="prod", limit=1)[0]
    assert event["command"] == "rollback service"
    entry = event["environments"]["prod"]["services"]["api"]
    assert entry["task_definition_after"] == ran_before["taskDefinitionArn"]
    assert entry["digest_after"] == one["api"]


def test_mutable_tag_rollback_is_pinned_to_the_digest_that_ran(world: World) -> None:
    first = {name: world.tag_digest(name, "dev") for name in ("api", "worker")}
    new_commit(world, "one")
    ship(world, "dev")
    td = task_definition(world, "dev", "api")
    assert td["containerDefinitions"][0]["image"] == f"{HOST}/api:dev"

    code, doc = world.cli_json("rollback", "service", "--env", "dev", "--service", "api")

    assert code == 0, doc
    api = doc["environments"]["dev"]["services"]["api"]
    pinned = f"{HOST}/api@{first['api']}"
    assert api["pinned"] == {"api": pinned}
    now = task_definition(world, "dev", "api")
    assert now["containerDefinitions"][0]["image"] == pinned
    assert content({**now, "containerDefinitions": td["containerDefinitions"]}) == content(td)
    assert container_digests(world, "dev", "api") == {"api": {first["api"]}}
    # the tag still points at the new digest: only the service went back
    assert world.tag_digest("api", "dev") != first["api"]


def test_a_rollback_ecs_undoes_is_reported_as_rolled_back_by_ecs(world: World) -> None:
    first = world.tag_digest("api", "dev")
    new_commit(world, "one")
    ship(world, "dev")
    # the digest it goes back to no longer starts: ECS's circuit breaker puts the new one back
    mark_image(world, "api", str(first), "sandbox-fail")

    code, doc = world.cli_json("rollback", "service", "--env", "dev", "--service", "api")

    assert code == 1, doc
    api = doc["environments"]["dev"]["services"]["api"]
    assert api["status"] == "rolled_back_by_ecs"
    assert api["error"].startswith("ECS rolled the deployment back")
    assert api["events"]


def test_ctrl_c_while_waiting_records_the_rollback_it_wrote(world: World) -> None:
    first = world.tag_digest("api", "dev")
    new_commit(world, "one")
    ship(world, "dev")
    # the digest it goes back to never gets stable: the wait would last its whole timeout
    mark_image(world, "api", str(first), "sandbox-hang")
    clients = Clients(config=world.config, repo_path=world.root, poll_interval=0.2)
    interrupt.STOP.clear()
    threading.Timer(1.0, interrupt.STOP.set).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            rollback(
                world.config,
                clients,
                ledger_of(world),
                env="dev",
                service="api",
                options=RunOptions(timeout=120),
            )
    finally:
        interrupt.STOP.clear()
    event = ledger_of(world).events(env="dev", limit=1)[0]
    assert event["command"] == "rollback service" and event["interrupted"] is True
    entry = event["environments"]["dev"]["services"]["api"]
    assert entry["status"] == "deployed"
    assert entry["digest_after"] == first


def _new_revision(world: World, env: str, base: dict[str, Any], value: str) -> str:
    ecs, _cluster = ecs_of(world, env)
    return str(
        ecs.register_task_definition(
            **{
                **content(base),
                "containerDefinitions": [
                    {
                        **base["containerDefinitions"][0],
                        "environment": [{"name": "V", "value": value}],
                    }
                ],
            }
        )["taskDefinition"]["taskDefinitionArn"]
    )


def test_without_the_ledger_ecs_history_says_what_really_ran_never_revision_minus_one(
    world: World,
) -> None:
    """A service that ran :2 and was moved to :5 outside tierup goes back to :2, not :4."""
    ecs, cluster = ecs_of(world, "prod")
    rev1 = task_definition(world, "prod", "api")
    arns = [_new_revision(world, "prod", rev1, str(n)) for n in (2, 3, 4, 5)]
    ecs.update_service(cluster=cluster, service="api", taskDefinition=arns[0])  # :2
    wait_stable(world, "prod", "api")
    ecs.update_service(cluster=cluster, service="api", taskDefinition=arns[3])  # :5, outside
    wait_stable(world, "prod", "api")

    code, doc = world.cli_json("rollback", "service", "--env", "prod", "--service", "api")

    assert code == 0, doc
    api = doc["environments"]["prod"]["services"]["api"]
    assert api["source"] == "ecs-history"
    assert api["task_definition"] == arns[0]
    assert task_definition(world, "prod", "api")["taskDefinitionArn"] == arns[0]
    # a rollback is a deployment like any other: ECS's history says :5 ran before it
    code, doc = world.cli_json("rollback", "service", "--env", "prod", "--service", "api")
    assert code == 0, doc
    assert task_definition(world, "prod", "api")["taskDefinitionArn"] == arns[3]


def test_when_neither_the_ledger_nor_ecs_knows_the_rollback_is_refused(
    world: World,
) -> None:
    """A service created on :3 has run nothing else: :2 exists, but never ran there."""
    ecs, cluster = ecs_of(world, "prod")
    rev1 = task_definition(world, "prod", "api")
    _new_revision(world, "prod", rev1, "2")
    third = _new_revision(world, "prod", rev1, "3")
    ecs.create_service(cluster=cluster, serviceName="fresh", taskDefinition=third, desiredCount=1)
    text = world.config_path.read_text()
    world.config_path.write_text(
        text.replace(
            "    cluster: prod-cluster\n    services:\n",
            "    cluster: prod-cluster\n    services:\n      fresh: {image: api}\n",
        )
    )
    writes = Writes()
    with pytest.raises(TierupError) as info:
        rollback(
            world.config,
            world.clients(writes),
            ledger_of(world, writes),
            env="prod",
            service="fresh",
        )
    assert exit_code_of(info.value) == 2
    assert "nothing to roll back to" in info.value.message
    assert "--to REVISION" in info.value.hint
    assert not [n for n in writes.names() if n != "PutObject"]
    r = world.cli("rollback", "service", "--env", "prod", "--service", "fresh")
    assert r.exit_code == 2 and "--to REVISION" in r.stderr


def test_ecs_history_in_the_sandbox_lists_every_deployment_with_its_sources(world: World) -> None:
    ecs, cluster = ecs_of(world, "prod")
    rev1 = task_definition(world, "prod", "api")
    second = _new_revision(world, "prod", rev1, "2")
    ecs.update_service(cluster=cluster, service="api", taskDefinition=second)
    wait_stable(world, "prod", "api")
    listed = ecs.list_service_deployments(cluster=cluster, service="api")["serviceDeployments"]
    assert [d["status"] for d in listed] == ["SUCCESSFUL", "SUCCESSFUL"]
    newest = ecs.describe_service_deployments(
        serviceDeploymentArns=[listed[0]["serviceDeploymentArn"]]
    )["serviceDeployments"][0]
    assert newest["targetServiceRevision"]["arn"] == listed[0]["targetServiceRevisionArn"]
    sources = [r["arn"] for r in newest["sourceServiceRevisions"]]
    assert sources == [listed[1]["targetServiceRevisionArn"]]
    revisions = ecs.describe_service_revisions(serviceRevisionArns=sources)["serviceRevisions"]
    assert revisions[0]["taskDefinition"] == rev1["taskDefinitionArn"]
    assert revisions[0]["containerImages"][0]["imageDigest"].startswith("sha256:")


# -- ECS's deployment history (a recorded response; moto does not offer the API) ------------------

CLUSTER_ARN = "arn:aws:ecs:us-east-1:555555555555:cluster/prod-cluster"
SERVICE_ARN = "arn:aws:ecs:us-east-1:555555555555:service/prod-cluster/api"
TD = "arn:aws:ecs:us-east-1:555555555555:task-definition/prod-api:{}"
REV = "arn:aws:ecs:us-east-1:555555555555:service-revision/prod-cluster/api/{}"
DEP = "arn:aws:ecs:us-east-1:555555555555:service-deployment/prod-cluster/api/{}"
D5 = "sha256:" + "5" * 64
D6 = "sha256:" + "6" * 64
D7 = "sha256:" + "7" * 64

LIST_SERVICE_DEPLOYMENTS = {
    "serviceDeployments": [
        {
            "serviceDeploymentArn": DEP.format("aaaa7"),
            "serviceArn": SERVICE_ARN,
            "clusterArn": CLUSTER_ARN,
            "startedAt": datetime(2026, 11, 26, 10, 30, tzinfo=UTC),
            "createdAt": datetime(2026, 11, 26, 10, 30, tzinfo=UTC),
            "targetServiceRevisionArn": REV.format("4000000000000000007"),
            "status": "IN_PROGRESS",
        },
        {
            "serviceDeploymentArn": DEP.format("aaaa6"),
            "serviceArn": SERVICE_ARN,
            "clusterArn": CLUSTER_ARN,
            "startedAt": datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
            "createdAt": datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
            "finishedAt": datetime(2026, 11, 26, 9, 6, tzinfo=UTC),
            "targetServiceRevisionArn": REV.format("4000000000000000006"),
            "status": "ROLLBACK_SUCCESSFUL",
            "statusReason": "ECS deployment circuit breaker: tasks failed to start.",
        },
        {
            "serviceDeploymentArn": DEP.format("aaaa5"),
            "serviceArn": SERVICE_ARN,
            "clusterArn": CLUSTER_ARN,
            "startedAt": datetime(2026, 11, 25, 16, 0, tzinfo=UTC),
            "createdAt": datetime(2026, 11, 25, 16, 0, tzinfo=UTC),
            "finishedAt": datetime(2026, 11, 25, 16, 5, tzinfo=UTC),
            "targetServiceRevisionArn": REV.format("4000000000000000005"),
            "status": "SUCCESSFUL",
        },
    ]
}


def _revision(n: int, digest: str) -> dict[str, Any]:
    return {
        "serviceRevisionArn": REV.format(f"400000000000000000{n}"),
        "serviceArn": SERVICE_ARN,
        "clusterArn": CLUSTER_ARN,
        "taskDefinition": TD.format(n),
        "launchType": "EC2",
        "containerImages": [
            {"containerName": "api", "imageDigest": digest, "image": f"{HOST}/api:prod-x{n}"}
        ],
        "createdAt": datetime(2026, 11, 25, 16, 0, tzinfo=UTC),
    }


def _state(task_definition: str) -> ServiceState:
    return ServiceState(
        name="api",
        arn=SERVICE_ARN,
        cluster="prod-cluster",
        status="ACTIVE",
        task_definition=task_definition,
        desired=2,
        running=2,
        deployments=(
            Deployment(
                id="ecs-svc/7",
                status="PRIMARY",
                task_definition=task_definition,
                rollout_state="IN_PROGRESS",
                desired=2,
                running=1,
            ),
        ),
    )


def test_ecs_history_gives_the_last_successful_deployment_before_the_current_one() -> None:
    client = boto3.client(
        "ecs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        stub.add_response(
            "list_service_deployments",
            LIST_SERVICE_DEPLOYMENTS,
            {"cluster": "prod-cluster", "service": "api"},
        )
        stub.add_response(
            "describe_service_revisions",
            {"serviceRevisions": [_revision(5, D5)], "failures": []},
            {"serviceRevisionArns": [REV.format("4000000000000000005")]},
        )
        running = [TaskImage("t1", "api", f"{HOST}/api:prod-x7", D7, started_by="ecs-svc/7")]
        target = rb.from_ecs_history(Ecs(client), "prod-cluster", _state(TD.format(7)), running)
        stub.assert_no_pending_responses()
    assert target is not None
    # revision 6 was rolled back by the circuit breaker: it never ran; revision - 1 is wrong
    assert target.task_definition == TD.format(5)
    assert target.digests == (("api", D5),)
    assert target.source == "ecs-history"


def test_ecs_history_that_fails_is_not_offered_and_asked_once() -> None:
    client = boto3.client(
        "ecs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    ecs = Ecs(client)
    with Stubber(client) as stub:
        stub.add_client_error(
            "list_service_deployments", "AccessDeniedException", http_status_code=400
        )
        assert ecs.service_deployments("prod-cluster", "api") is None
        # remembered: the second service does not ask again (no response is queued)
        assert ecs.service_deployments("prod-cluster", "worker") is None
        stub.assert_no_pending_responses()


# -- INACTIVE targets and missing images --------------------------------------------------------


def test_inactive_target_is_re_registered_with_every_field_equal(world: World) -> None:
    ecs, _cluster = ecs_of(world, "prod")
    seeded = task_definition(world, "prod", "api")
    image = seeded["containerDefinitions"][0]["image"]
    rich = ecs.register_task_definition(
        family=seeded["family"],
        taskRoleArn="arn:aws:iam::555555555555:role/api-task",
        executionRoleArn="arn:aws:iam::555555555555:role/api-exec",
        networkMode="bridge",
        cpu="256",
        memory="512",
        requiresCompatibilities=["EC2"],
        pidMode="task",
        ipcMode="task",
        volumes=[{"name": "data", "host": {"sourcePath": "/data"}}],
        placementConstraints=[{"type": "memberOf", "expression": "attribute:zone == a"}],
        runtimePlatform={"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
        containerDefinitions=[
            {
                "name": "api",
                "image": image,
                "cpu": 128,
                "memory": 256,
                "essential": True,
                "command": ["serve", "--port", "8080"],
                "environment": [{"name": "MODE", "value": "prod"}],
                "secrets": [
                    {"name": "DB", "valueFrom": "arn:aws:ssm:us-east-1:555555555555:parameter/db"}
                ],
                "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"}],
                "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}],
                "healthCheck": {"command": ["CMD", "true"], "interval": 30},
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "api"}},
                "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}],
                "dockerLabels": {"team": "core"},
            }
        ],
        tags=[{"key": "team", "value": "core"}, {"key": "cost-center", "value": "42"}],
    )["taskDefinition"]
    code, doc = world.cli_json(
        "rollback", "service", "--env", "prod", "--service", "api", "--to", str(rich["revision"])
    )
    assert code == 0, doc
    assert doc["environments"]["prod"]["services"]["api"]["source"] == "explicit"
    new_commit(world, "one")
    ship(world, "dev", "staging", "prod", minute=1)
    stamped = task_definition(world, "prod", "api")
    assert stamped["revision"] > rich["revision"]
    # a cleanup (or CloudFormation) deregisters what ran before
    ecs.deregister_task_definition(taskDefinition=rich["taskDefinitionArn"])

    code, doc = world.cli_json("rollback", "service", "--env", "prod", "--service", "api")

    assert code == 0, doc
    api = doc["environments"]["prod"]["services"]["api"]
    assert api["source"] == "ledger"
    assert api["reregistered"] is True
    assert "pinned" not in api  # an immutable tag still on its digest needs no pin
    inactive = ecs.describe_task_definition(
        taskDefinition=rich["taskDefinitionArn"], include=["TAGS"]
    )
    original = {**inactive["taskDefinition"], "tags": inactive["tags"]}
    assert original["status"] == "INACTIVE"
    copy = task_definition(world, "prod", "api")
    assert copy["status"] == "ACTIVE"
    assert copy["taskDefinitionArn"] == api["task_definition"]
    assert copy["revision"] > stamped["revision"]
    assert set(content(copy)) == set(content(original))
    for key in content(original):
        assert copy[key] == original[key], key
    assert container_digests(world, "prod", "api") == {"api": {world.seeded.digests["api"]}}


def test_target_whose_image_expired_is_refused_before_any_write(world: World) -> None:
    one = new_commit(world, "one")
    ship(world, "dev", "staging", "prod", minute=1)
    before = task_definition(world, "prod", "api")
    new_commit(world, "two")
    ship(world, "dev", "staging", "prod", minute=2)
    current = task_definition(world, "prod", "api")
    # the registry's lifecycle policy expires the image that ran before
    world.ecr().batch_delete_image(
        registryId=REGISTRY, repositoryName="api", imageIds=[{"imageDigest": one["api"]}]
    )
    ecs, _cluster = ecs_of(world, "prod")
    revisions = ecs.list_task_definitions(familyPrefix="prod-api")["taskDefinitionArns"]

    r = world.cli("rollback", "service", "--env", "prod", "--service", "api")

    assert r.exit_code == 2, r.output
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: rollback refused")
    assert before["containerDefinitions"][0]["image"] in line
    assert one["api"] in line
    assert "(hint: " in line
    writes = Writes()
    with pytest.raises(rb.ImagesMissing):
        rollback(world.config, world.clients(writes), ledger_of(world), env="prod", service="api")
    assert writes.calls == []
    assert (
        task_definition(world, "prod", "api")["taskDefinitionArn"] == current["taskDefinitionArn"]
    )
    assert ecs.list_task_definitions(familyPrefix="prod-api")["taskDefinitionArns"] == revisions


# -- a cluster ----------------------------------------------------------------------------------


@pytest.fixture
def ten(tmp_path: Path, aws_env: str) -> World:
    services = {f"svc{n:02d}": "{image: api}" for n in range(1, 11)}
    return make_world(tmp_path, aws_env, env_block("dev", "dev", "111111111111", services))


@pytest.fixture
def in_flight(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The most UpdateService requests moto's server handled at once (each held 50 ms)."""
    peak = [0]
    now = [0]
    lock = threading.Lock()
    original = EC2ContainerServiceResponse.update_service

    @functools.wraps(original)
    def update_service(self: EC2ContainerServiceResponse, *args: Any, **kwargs: Any) -> Any:
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        try:
            time.sleep(0.05)
            return original(self, *args, **kwargs)
        finally:
            with lock:
                now[0] -= 1

    monkeypatch.setattr(EC2ContainerServiceResponse, "update_service", update_service)
    yield peak


@pytest.fixture
def image_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many BatchGetImage requests moto's server handled."""
    count = [0]
    original = ECRResponse.batch_get_image

    @functools.wraps(original)
    def batch_get_image(self: ECRResponse, *args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ECRResponse, "batch_get_image", batch_get_image)
    return count


def test_cluster_rollback_of_ten_services_runs_in_parallel(
    ten: World, in_flight: list[int], image_reads: list[int]
) -> None:
    first = ten.tag_digest("api", "dev")
    new_commit(ten, "one")
    ship(ten, "dev")
    services = [f"svc{n:02d}" for n in range(1, 11)]
    assert all(
        container_digests(ten, "dev", s) == {s: {ten.tag_digest("api", "dev")}} for s in services
    )
    in_flight[0] = 0
    image_reads[0] = 0

    code, doc = ten.cli_json("rollback", "cluster", "--env", "dev")

    assert code == 0, doc
    assert in_flight[0] >= 3, in_flight
    # ten services planned at once, one image that ran before: the registry is asked once
    assert image_reads[0] == 1, image_reads
    outcomes = doc["environments"]["dev"]["services"]
    assert sorted(outcomes) == services
    for s in services:
        assert outcomes[s]["status"] == "rolled_back"
        assert outcomes[s]["source"] == "ledger"
        assert outcomes[s]["pinned"] == {s: f"{HOST}/api@{first}"}
        assert container_digests(ten, "dev", s) == {s: {first}}
        assert stable(ten, "dev", s)
    event = ledger_of(ten).events(env="dev", limit=1)[0]
    assert event["command"] == "rollback cluster"
    assert sorted(event["environments"]["dev"]["services"]) == services


def test_cluster_rollback_dry_run_writes_nothing_and_plans_the_real_writes(
    world: World,
) -> None:
    new_commit(world, "one")
    ship(world, "dev", "staging")
    ids = {s: d["deployments"][0]["id"] for s, d in world.services("staging").items()}
    events = len(ledger_of(world).events())
    writes = Writes()

    dry = rollback(
        world.config,
        world.clients(writes),
        ledger_of(world),
        env="staging",
        options=RunOptions(dry_run=True),
    )

    assert writes.calls == []
    assert dry.exit_code == 0
    assert {s.status for e in dry.environments for s in e.services} == {"planned"}
    assert {s: d["deployments"][0]["id"] for s, d in world.services("staging").items()} == ids
    assert len(ledger_of(world).events()) == events
    r = world.cli("rollback", "cluster", "--env", "staging", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "dry run" in r.stdout and "staging/api" in r.stdout
    assert len(ledger_of(world).events()) == events

    real = rollback(
        world.config,
        world.clients(writes),
        ledger_of(world),
        env="staging",
        options=RunOptions(wait=False),
    )
    assert real.exit_code == 0
    planned = sorted(
        (w, s["service"]) for s in dry.plan for w in s["write"].removeprefix("ecs:").split("+")
    )
    made = sorted(
        (n, p.get("service") or p["family"].removeprefix("staging-")) for n, p in writes.calls
    )
    assert planned == made
    assert len(made) == 4


STRATEGIES = "\n".join(
    [
        env_block("dev", "dev", "111111111111", {"api": "{image: api}"}),
        env_block(
            "stack",
            "staging",
            "666666666666",
            {"api": "{image: api}", "api-admin": "{image: api}"},
            strategy="cloudformation",
            cloudformation="{stack: api-stack, image_parameter: ImageUrl}",
        ),
        env_block(
            "bluegreen",
            "staging",
            "777777777777",
            {"api": "{image: api}"},
            strategy="codedeploy",
            codedeploy="{application: api, deployment_group: api-bg, container_port: 8080}",
        ),
    ]
)


def test_cloudformation_and_codedeploy_services_roll_back_through_their_strategy(
    tmp_path: Path, aws_env: str
) -> None:
    """update_service would drift a stack and CodeDeploy rejects it: a change set, a deployment."""
    world = make_world(tmp_path, aws_env, STRATEGIES)
    before = world.tag_digest("api", "staging")
    new_commit(world, "one")
    ship(world, "dev", "staging")
    after = world.tag_digest("api", "staging")
    assert after != before
    for env in ("stack", "bluegreen"):
        for svc in world.config.environment(env).services:
            assert container_digests(world, env, svc) == {svc: {after}}
    writes = Writes()

    dry = rollback(
        world.config,
        world.clients(writes),
        ledger_of(world),
        env="stack",
        options=RunOptions(dry_run=True),
    )
    assert writes.calls == []
    assert [s["write"] for s in dry.plan] == ["cloudformation:CreateChangeSet+ExecuteChangeSet"]
    assert dry.plan[0]["stack"] == "api-stack"
    assert dry.plan[0]["images"] == [f"{HOST}/api@{before}"]

    code, doc = world.cli_json("rollback", "cluster", "--env", "stack")

    assert code == 0, doc
    for svc in ("api", "api-admin"):
        outcome = doc["environments"]["stack"]["services"][svc]
        assert outcome["status"] == "rolled_back", outcome
        assert outcome["source"] == "ledger"
        assert container_digests(world, "stack", svc) == {svc: {before}}

    code, doc = world.cli_json("rollback", "service", "--env", "bluegreen", "--service", "api")

    assert code == 0, doc
    outcome = doc["environments"]["bluegreen"]["services"]["api"]
    assert outcome["status"] == "rolled_back", outcome
    assert doc["plan"][0]["write"].endswith("codedeploy:CreateDeployment")
    assert container_digests(world, "bluegreen", "api") == {"api": {before}}
    assert [e["command"] for e in ledger_of(world).events(env="bluegreen", limit=1)] == [
        "rollback service"
    ]
    # the ledger holds the revisions the services landed on: a stack registers its own
    landed = task_definition(world, "stack", "api")["taskDefinitionArn"]
    event = ledger_of(world).events(env="stack", command="rollback", limit=1)[0]
    assert event["environments"]["stack"]["services"]["api"]["task_definition_after"] == landed

    code, doc = world.cli_json("snapshot", "--tier", "staging", "--name", "strategies")
    assert code == 0, doc
    new_commit(world, "two")
    ship(world, "dev", "staging", minute=2)
    assert container_digests(world, "bluegreen", "api") != {"api": {before}}
    for env in ("stack", "bluegreen"):
        code, doc = world.cli_json("restore", "--env", env)
        assert code == 0, doc
        for svc in world.config.environment(env).services:
            assert doc["environments"][env]["services"][svc]["status"] == "restored"
            assert container_digests(world, env, svc) == {svc: {before}}


def test_an_unknown_service_is_bad_input(world: World) -> None:
    r = world.cli("rollback", "service", "--env", "prod", "--service", "nope")
    assert r.exit_code == 2, r.output
    assert "service 'nope' not found in cluster 'prod-cluster'" in r.stderr
    r = world.cli("rollback", "cluster", "--env", "nowhere")
    assert r.exit_code == 2
    assert "unknown environment 'nowhere'" in r.stderr


def test_all_services_includes_services_envs_yaml_does_not_name(world: World) -> None:
    ecs, cluster = ecs_of(world, "prod")
    api = task_definition(world, "prod", "api")
    family = "prod-cron"
    rev1 = ecs.register_task_definition(**{**content(api), "family": family})["taskDefinition"]
    ecs.create_service(
        cluster=cluster,
        serviceName="cron",
        taskDefinition=rev1["taskDefinitionArn"],
        desiredCount=1,
        launchType="EC2",
    )
    rev2 = ecs.register_task_definition(
        **{
            **content(rev1),
            "containerDefinitions": [
                {**rev1["containerDefinitions"][0], "environment": [{"name": "V", "value": "2"}]}
            ],
        }
    )["taskDefinition"]
    ecs.update_service(cluster=cluster, service="cron", taskDefinition=rev2["taskDefinitionArn"])
    wait_stable(world, "prod", "cron")
    new_commit(world, "one")
    ship(world, "dev", "staging", "prod", minute=1)

    code, doc = world.cli_json("rollback", "cluster", "--env", "prod", "--dry-run")
    assert code == 0, doc
    assert set(doc["environments"]["prod"]["services"]) == {"api"}

    code, doc = world.cli_json("rollback", "cluster", "--env", "prod", "--all-services")

    assert code == 0, doc
    outcomes = doc["environments"]["prod"]["services"]
    assert set(outcomes) == {"api", "cron"}
    assert outcomes["api"]["source"] == "ledger"
    assert outcomes["cron"]["source"] == "ecs-history"  # ECS knows it ran rev1 before
    assert task_definition(world, "prod", "cron")["taskDefinitionArn"] == rev1["taskDefinitionArn"]
    assert task_definition(world, "prod", "api")["taskDefinitionArn"] == api["taskDefinitionArn"]


def test_the_ledger_is_read_further_back_for_a_service_not_in_its_newest_events(
    world: World,
) -> None:
    first = world.tag_digest("api", "dev")
    new_commit(world, "one")
    ship(world, "dev")
    ledger = ledger_of(world)
    for n in range(60):  # newer events of the environment that do not touch api
        ledger.record(
            {
                "command": "deploy",
                "tier": "dev",
                "status": "ok",
                "environments": {
                    "dev": {"status": "ok", "services": {"worker": {"status": "skipped"}}}
                },
                "message": f"filler {n}",
            }
        )

    code, doc = world.cli_json("rollback", "service", "--env", "dev", "--service", "api")

    assert code == 0, doc
    api = doc["environments"]["dev"]["services"]["api"]
    assert api["source"] == "ledger"
    assert container_digests(world, "dev", "api") == {"api": {first}}


def test_a_service_with_the_code_deploy_controller_is_refused(world: World) -> None:
    ecs, cluster = ecs_of(world, "prod")
    api = task_definition(world, "prod", "api")
    ecs.create_service(
        cluster=cluster,
        serviceName="bluegreen",
        taskDefinition=api["taskDefinitionArn"],
        desiredCount=1,
        launchType="EC2",
        deploymentController={"type": "CODE_DEPLOY"},
    )
    new_commit(world, "one")
    ship(world, "dev", "staging", "prod", minute=1)
    stamped = task_definition(world, "prod", "api")

    r = world.cli("rollback", "cluster", "--env", "prod", "--all-services")

    assert r.exit_code == 2, r.output
    assert "prod/bluegreen" in r.stderr and "CODE_DEPLOY" in r.stderr
    assert (
        task_definition(world, "prod", "api")["taskDefinitionArn"] == stamped["taskDefinitionArn"]
    )
