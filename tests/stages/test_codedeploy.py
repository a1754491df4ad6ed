"""Strategy codedeploy: blue/green deployments with AppSpec content, on moto's server with the
sandbox's CodeDeploy emulation (the seeded service has the CODE_DEPLOY controller)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.guarded import promote
from tests.support.strategy_worlds import (
    BLUEGREEN_ACCOUNT,
    BLUEGREEN_CLUSTER,
    BLUEGREEN_ENVS,
)
from tests.support.world import World, Writes, assumed_client, make_world
from tierup.pipeline import strategies
from tierup.pipeline.clients import Clients
from tierup.pipeline.promote import RunOptions, Source
from tierup.pipeline.sandbox import emulation
from tierup.pipeline.sandbox.emulation.codedeploy_runs import traffic_steps
from tierup.pipeline.sessions import AwsSessions
from tierup.stages import wait as wait_stage
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.codedeploy import CodeDeployStrategy
from tierup.stages.codedeploy_deployment import appspec
from tierup.stages.deploy import Applied
from tierup.stages.strategy import RestoreTarget

pytestmark = pytest.mark.usefixtures("aws_env")

ACCOUNT = BLUEGREEN_ACCOUNT
CLUSTER = BLUEGREEN_CLUSTER
ENVS = BLUEGREEN_ENVS


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    """A CODE_DEPLOY service and its deployment group; a second commit promoted to dev."""
    w = make_world(tmp_path, aws_env, ENVS)
    w.push_images(w.commit("second"))
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    return w


def service(world: World) -> dict[str, Any]:
    return world.services("bluegreen")["api"]


def running(world: World) -> set[str | None]:
    images = Ecs(world.ecs(ACCOUNT)).running_images(CLUSTER, "api")
    return {t.digest for t in images.get("api", [])}


def codedeploy(world: World) -> Any:
    return assumed_client(world.endpoint, "codedeploy", ACCOUNT)


def applied_from(result: Any, world: World) -> Applied:
    """What the promotion applied, rebuilt from its result (deployment, revisions, route)."""
    outcome = result.environments[0].services[0]
    step = next(s for s in result.plan if s.get("codedeploy"))
    route = step["codedeploy"]
    return Applied(
        "api",
        outcome.deployment_id,
        str(outcome.task_definition),
        str(outcome.previous_task_definition),
        extra={
            **{
                k: route[k]
                for k in (
                    "application",
                    "deployment_group",
                    "deployment_config",
                    "container",
                    "container_port",
                    "hooks",
                )
            },
            "previous_digests": {"api": outcome.previous_digest},
        },
    )


# -- promotion ---------------------------------------------------------------------------------


def test_promotion_deploys_blue_green_with_appspec_content(world: World) -> None:
    before = service(world)["taskDefinition"]
    writes = Writes()
    lines: list[str] = []
    result = promote(world.config, world.clients(writes), tier="staging", progress=lines.append)
    assert result.exit_code == 0, result.to_json()
    digest = world.tag_digest("api", "staging")

    assert "UpdateService" not in writes.names()
    register = [p for n, p in writes.calls if n == "RegisterTaskDefinition"]
    assert [c["image"] for c in register[0]["containerDefinitions"]] == [
        "012345678922.dkr.ecr.us-east-1.amazonaws.com/api:staging"
    ]
    requests = [p for n, p in writes.calls if n == "CreateDeployment"]
    assert len(requests) == 1
    request = requests[0]
    assert request["applicationName"] == "api"
    assert request["deploymentGroupName"] == "api-bg"
    assert request["deploymentConfigName"] == "CodeDeployDefault.ECSLinear10PercentEvery1Minutes"
    revision = request["revision"]
    assert revision["revisionType"] == "AppSpecContent"
    assert set(revision) == {"revisionType", "appSpecContent"}  # no S3 file
    content = revision["appSpecContent"]["content"]
    assert revision["appSpecContent"]["sha256"] == hashlib.sha256(content.encode()).hexdigest()
    spec = json.loads(content)
    assert spec["version"] == 0.0
    assert len(spec["Resources"]) == 1
    target = spec["Resources"][0]["TargetService"]
    assert target["Type"] == "AWS::ECS::Service"
    now = service(world)["taskDefinition"]
    assert now != before
    assert target["Properties"]["TaskDefinition"] == now
    assert target["Properties"]["LoadBalancerInfo"] == {
        "ContainerName": "api",
        "ContainerPort": 8080,
    }
    assert spec["Hooks"] == [{"BeforeInstall": "prepare"}, {"AfterAllowTestTraffic": "smoke-test"}]
    assert set(spec) == {"version", "Resources", "Hooks"}

    assert running(world) == {digest}
    outcome = result.environments[0].services[0]
    assert outcome.status == "completed"
    assert outcome.deployment_id is not None and outcome.deployment_id.startswith("d-")
    assert outcome.task_definition == now
    assert outcome.previous_task_definition == before
    info = codedeploy(world).get_deployment(deploymentId=outcome.deployment_id)["deploymentInfo"]
    assert info["status"] == "Succeeded"
    shifts = [line for line in lines if "% of traffic on the replacement tasks" in line]
    assert any("AllowTraffic, 50%" in line for line in shifts), lines
    assert any("100%" in line for line in shifts), lines


def test_retention_deregisters_old_revisions_a_blue_green_promotion_leaves(world: World) -> None:
    world.config_path.write_text(
        world.config_path.read_text().replace(
            "    strategy: codedeploy\n", "    strategy: codedeploy\n    retention: 1\n"
        )
    )
    assert world.config.retention_for("bluegreen") == 1
    ecs = world.ecs(ACCOUNT)
    before = service(world)["taskDefinition"]
    family = before.rsplit("/", 1)[-1].split(":")[0]
    first = ecs.describe_task_definition(taskDefinition=before)["taskDefinition"]
    old = [
        ecs.register_task_definition(
            family=family, containerDefinitions=first["containerDefinitions"]
        )["taskDefinition"]["taskDefinitionArn"]
        for _ in range(3)
    ]  # never deployed

    result = promote(world.config, world.clients(), tier="staging")

    assert result.exit_code == 0, result.to_json()
    now = service(world)["taskDefinition"]
    active = set(
        ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]
    )
    # the new revision and the one that ran before it stay; revisions nothing runs go
    assert {now, before} <= active
    assert not active & set(old)
    (report,) = result.data["retention"]
    assert report["environment"] == "bluegreen" and set(report["deregistered"]) == set(old)


def test_dry_run_shows_the_route_and_writes_nothing(world: World) -> None:
    before = service(world)["taskDefinition"]
    writes = Writes()
    dry = promote(
        world.config, world.clients(writes), tier="staging", options=RunOptions(dry_run=True)
    )
    assert dry.exit_code == 0
    assert writes.calls == []
    step = next(s for s in dry.plan if s.get("codedeploy"))
    assert step["write"] == "ecs:RegisterTaskDefinition+codedeploy:CreateDeployment"
    route = step["codedeploy"]
    assert route["container"] == "api" and route["container_port"] == 8080
    assert route["appspec"]["Resources"][0]["TargetService"]["Properties"]["LoadBalancerInfo"] == {
        "ContainerName": "api",
        "ContainerPort": 8080,
    }
    r = world.cli("promote", "--tier", "staging", "--dry-run")
    assert "AppSpec routes to api:8080, hooks: BeforeInstall -> prepare" in r.stdout, r.stdout
    assert service(world)["taskDefinition"] == before


def test_rerun_is_skipped(world: World) -> None:
    assert promote(world.config, world.clients(), tier="staging").exit_code == 0
    writes = Writes()
    again = promote(world.config, world.clients(writes), tier="staging")
    assert again.exit_code == 0
    assert writes.calls == []
    assert again.environments[0].services[0].status == "skipped"


# -- failures ----------------------------------------------------------------------------------


def test_failed_deployment_is_reported_with_codedeploys_error(world: World) -> None:
    before = service(world)["taskDefinition"]
    before_digests = running(world)
    emulation.install().fail_next_codedeploy("api-bg", "smoke-test answered HTTP 500")
    code, doc = world.cli_json("promote", "--tier", "staging")
    assert code == 1, doc
    outcome = doc["environments"]["bluegreen"]["services"]["api"]
    assert outcome["status"] == "failed"
    assert "Failed in AfterAllowTestTraffic" in outcome["error"]
    assert "HOOK_EXECUTION_FAILURE: smoke-test answered HTTP 500" in outcome["error"]
    assert "rolled back by deployment d-" in outcome["error"]
    # CodeDeploy's own rollback puts the original task set back
    info = codedeploy(world).get_deployment(deploymentId=outcome["deployment_id"])["deploymentInfo"]
    rollback_id = info["rollbackInfo"]["rollbackDeploymentId"]
    for _ in range(10):
        rb = codedeploy(world).get_deployment(deploymentId=rollback_id)["deploymentInfo"]
        if rb["status"] == "Succeeded":
            break
    assert rb["creator"] == "codeDeployRollback" and rb["status"] == "Succeeded"
    assert service(world)["taskDefinition"] == before
    assert running(world) == before_digests


def test_image_that_fails_is_an_ecs_update_error(world: World) -> None:
    bad = world.commit("bad")
    world.push_images(bad, tags=("sandbox-fail",))
    result = promote(
        world.config, world.clients(), tier="staging", source=Source(kind="commit", value=bad)
    )
    assert result.exit_code == 1
    error = result.environments[0].services[0].error
    assert error is not None
    assert "ECS_UPDATE_ERROR" in error and "marked bad" in error


def test_an_unmapped_port_fails_the_revision(world: World) -> None:
    text = world.config_path.read_text().replace("container_port: 8080", "container_port: 9090")
    world.config_path.write_text(text)
    code, doc = world.cli_json("promote", "--tier", "staging")
    assert code == 1, doc
    error = doc["environments"]["bluegreen"]["services"]["api"]["error"]
    assert "INVALID_REVISION" in error and "does not map port 9090" in error


def test_a_busy_deployment_group_is_refused_before_any_write(world: World) -> None:
    assert (
        promote(
            world.config, world.clients(), tier="staging", options=RunOptions(wait=False)
        ).exit_code
        == 0
    )
    world.push_images(world.commit("third"))
    assert promote(world.config, world.clients(), tier="dev").exit_code == 0
    writes = Writes()
    result = promote(world.config, world.clients(writes), tier="staging")
    assert result.exit_code == 1
    assert "RegisterTaskDefinition" not in writes.names()
    assert "CreateDeployment" not in writes.names()
    outcome = result.environments[0].services[0]
    assert outcome.error is not None and "has an active deployment (d-" in outcome.error
    assert outcome.hint is not None and "stop-deployment" in outcome.hint


@dataclass
class FakeClock:
    now: float = 0.0
    step: float = 60.0

    def sleep(self, _seconds: float) -> None:
        self.now += self.step

    def clock(self) -> float:
        return self.now


@pytest.mark.parametrize(("timeout", "code"), [("2h", 0), ("20m", 4)])
def test_waits_as_long_as_the_timeout_says_past_thirty_minutes(
    world: World, timeout: str, code: int
) -> None:
    # forty polls a minute apart before the replacement tasks run: forty minutes
    emulation.install().polls_to_complete = 40
    fake = FakeClock()
    clients = Clients(
        config=world.config,
        sessions=AwsSessions(),
        sleep=fake.sleep,
        clock=fake.clock,
        repo_path=world.root,
        poll_interval=60,
    )
    seconds = 7200 if timeout == "2h" else 1200
    result = promote(world.config, clients, tier="staging", options=RunOptions(timeout=seconds))
    assert int(result.exit_code) == code, result.to_json()
    outcome = result.environments[0].services[0]
    if code == 0:
        assert outcome.status == "completed"
        assert fake.now > 30 * 60
    else:
        assert outcome.status == "timed_out"
        assert outcome.error is not None and "after 1200s" in outcome.error


# -- rollback ----------------------------------------------------------------------------------


def test_rollback_of_a_running_deployment_stops_it_and_follows_codedeploys_rollback(
    world: World,
) -> None:
    before = service(world)["taskDefinition"]
    started = promote(world.config, world.clients(), tier="staging", options=RunOptions(wait=False))
    assert started.exit_code == 0
    applied = applied_from(started, world)
    assert applied.deployment_id is not None
    clients = world.clients(writes := Writes())
    ctx = strategies.context(clients, "bluegreen", world.config.environment("bluegreen"))
    strategy = CodeDeployStrategy()
    back = strategy.rollback(ctx, {"api": applied})
    assert back["api"].deployment_id not in (None, applied.deployment_id)
    assert writes.names() == []  # CodeDeploy's own rollback: nothing to create
    info = codedeploy(world).get_deployment(deploymentId=applied.deployment_id)["deploymentInfo"]
    assert info["status"] == "Stopped"
    assert info["errorInformation"]["code"] == "MANUAL_STOP"
    states = strategy.wait(ctx, back, timeout=60)
    assert states["api"].state == wait_stage.COMPLETED, states
    assert service(world)["taskDefinition"] == before


def test_rollback_of_a_finished_deployment_deploys_the_previous_revision(world: World) -> None:
    before_digests = running(world)
    done = promote(world.config, world.clients(), tier="staging")
    assert done.exit_code == 0
    applied = applied_from(done, world)
    clients = world.clients(writes := Writes())
    ctx = strategies.context(clients, "bluegreen", world.config.environment("bluegreen"))
    strategy = CodeDeployStrategy()
    back = strategy.rollback(ctx, {"api": applied})
    # the previous revision names the tier's tag, which has moved on: a copy names the digest
    assert writes.names() == ["RegisterTaskDefinition", "CreateDeployment"]
    (digest,) = before_digests
    images = [c["image"] for c in writes.calls[0][1]["containerDefinitions"]]
    assert images == [f"012345678922.dkr.ecr.us-east-1.amazonaws.com/api@{digest}"]
    spec = json.loads(writes.calls[1][1]["revision"]["appSpecContent"]["content"])
    assert spec == appspec(
        back["api"].task_definition,
        "api",
        8080,
        [("BeforeInstall", "prepare"), ("AfterAllowTestTraffic", "smoke-test")],
    )
    states = strategy.wait(ctx, back, timeout=60)
    assert states["api"].state == wait_stage.COMPLETED, states
    assert service(world)["taskDefinition"] == back["api"].task_definition
    assert running(world) == before_digests


# -- the emulation, seen through boto3 ----------------------------------------------------------


def test_traffic_shifts_by_the_deployment_configuration() -> None:
    assert traffic_steps("CodeDeployDefault.ECSAllAtOnce") == [100]
    assert traffic_steps("CodeDeployDefault.ECSCanary10Percent5Minutes") == [10, 100]
    assert traffic_steps("CodeDeployDefault.ECSLinear10PercentEvery1Minutes") == list(
        range(10, 101, 10)
    )


def test_emulated_deployment_target_reports_lifecycle_and_weights(world: World) -> None:
    started = promote(world.config, world.clients(), tier="staging", options=RunOptions(wait=False))
    deployment_id = started.environments[0].services[0].deployment_id
    cd = codedeploy(world)
    with pytest.raises(cd.exceptions.DeploymentLimitExceededException):
        cd.create_deployment(
            applicationName="api",
            deploymentGroupName="api-bg",
            revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": "{}"}},
        )
    weights: list[float] = []
    for _ in range(30):
        status = cd.get_deployment(deploymentId=deployment_id)["deploymentInfo"]["status"]
        target = cd.get_deployment_target(deploymentId=deployment_id, targetId=f"{CLUSTER}:api")
        sets = target["deploymentTarget"]["ecsTarget"]["taskSetsInfo"]
        green = next(s for s in sets if s["taskSetLabel"] == "Green")
        weights.append(green["trafficWeight"])
        if status == "Succeeded":
            break
    assert status == "Succeeded"
    shifted = sorted(set(weights))
    assert shifted[0] == 0.0 and shifted[-1] == 100.0 and 50.0 in shifted
    events = target["deploymentTarget"]["ecsTarget"]["lifecycleEvents"]
    assert [(e["lifecycleEventName"], e["status"]) for e in events] == [
        ("BeforeInstall", "Succeeded"),
        ("Install", "Succeeded"),
        ("AfterInstall", "Skipped"),
        ("AllowTestTraffic", "Succeeded"),
        ("AfterAllowTestTraffic", "Succeeded"),
        ("BeforeAllowTraffic", "Skipped"),
        ("AllowTraffic", "Succeeded"),
        ("AfterAllowTraffic", "Skipped"),
    ]
    with pytest.raises(cd.exceptions.DeploymentAlreadyCompletedException):
        cd.stop_deployment(deploymentId=deployment_id)


def test_emulated_service_refuses_a_task_definition_outside_codedeploy(world: World) -> None:
    ecs = world.ecs(ACCOUNT)
    current = service(world)["taskDefinition"]
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.update_service(cluster=CLUSTER, service="api", taskDefinition=current)


def test_restore_deploys_a_revision_pinned_to_the_digest_it_ran(world: World) -> None:
    seeded = service(world)["taskDefinition"]
    (old_digest,) = running(world)
    assert promote(world.config, world.clients(), tier="staging").exit_code == 0
    assert running(world) != {old_digest}
    clients = world.clients(writes := Writes())
    ctx = strategies.context(clients, "bluegreen", world.config.environment("bluegreen"))
    strategy = CodeDeployStrategy()
    pinned = f"012345678922.dkr.ecr.us-east-1.amazonaws.com/api@{old_digest}"
    back = strategy.restore(ctx, {"api": RestoreTarget(seeded, {"api": pinned})})
    assert writes.names() == ["RegisterTaskDefinition", "CreateDeployment"]
    assert [c["image"] for c in writes.calls[0][1]["containerDefinitions"]] == [pinned]
    states = strategy.wait(ctx, back, timeout=60)
    assert states["api"].state == wait_stage.COMPLETED, states
    assert service(world)["taskDefinition"] == back["api"].task_definition
    assert running(world) == {old_digest}
