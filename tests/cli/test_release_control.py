"""`tierup continue` and `tierup stop` on ECS-native deployments, and `where` of a paused one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.guarded import promote
from tests.support.native_world import deployments, make, running
from tests.support.world import World, assumed_client, env_block, make_world
from tierup.pipeline.clients import Clients
from tierup.stages.adapters.ecs import Ecs

pytestmark = pytest.mark.usefixtures("aws_env")

CANARY = (
    "{mode: canary, canary: {percent: 20, bake_time: 0}, "
    "hooks: [{stage: post-test-traffic-shift, pause: true}]}"
)
# a linear shift of 10% every 10 minutes: still shifting when `stop` comes
LINEAR = "{mode: linear, linear: {step_percent: 10, bake_time: 10m}}"


def until(w: World, status: str, *, paused: bool = False, reads: int = 40) -> dict[str, Any]:
    for _ in range(reads):
        d = deployments(w)[0]
        waiting = any(h["status"] == "AWAITING_ACTION" for h in d.get("lifecycleHookDetails", []))
        if d["status"] == status and waiting == paused:
            return d
    raise AssertionError(f"never {status}: {deployments(w)[0]}")


def history(w: World) -> list[dict[str, Any]]:
    code, doc = w.cli_json("history")
    assert code == 0, doc
    return list(doc["events"])


def test_continue_lets_a_paused_canary_finish_and_is_recorded(tmp_path: Path, aws_env: str) -> None:
    w = make(tmp_path, aws_env, CANARY)
    code, doc = w.cli_json("promote", "--tier", "staging", "--no-wait")
    assert code == 0, doc
    d = until(w, "IN_PROGRESS", paused=True)
    assert d["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
    for _ in range(5):  # a pause holds: reads do not move it on
        assert deployments(w)[0]["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"

    r = w.cli("where")
    assert r.exit_code == 0, r.output
    assert "tierup continue --env native --service api" in r.output
    code, where = w.cli_json("where")
    assert where["environments"]["native"]["services"]["api"]["paused"]["stage"] == (
        "POST_TEST_TRAFFIC_SHIFT"
    )

    code, doc = w.cli_json("continue", "--env", "native")
    assert code == 0, doc
    assert doc["environments"]["native"]["services"]["api"]["status"] == "continued"
    done = until(w, "SUCCESSFUL")
    assert done["serviceDeploymentArn"] == d["serviceDeploymentArn"]
    assert running(w) == {w.tag_digest("api", "staging")}
    event = history(w)[0]
    assert event["command"] == "continue"
    assert event["actor"]["name"]
    assert event["environments"]["native"]["services"]["api"]["status"] == "continued"

    # nothing paused any more: continue says so, exit 1
    code, doc = w.cli_json("continue", "--env", "native", "--service", "api")
    assert code == 1, doc
    assert "no deployment in progress" in doc["environments"]["native"]["services"]["api"]["error"]


def test_stop_with_rollback_brings_the_old_revision_back_on_a_linear_deployment(
    tmp_path: Path, aws_env: str
) -> None:
    w = make(tmp_path, aws_env, LINEAR)
    before = w.services("native")["api"]["taskDefinition"]
    old = running(w)
    code, doc = w.cli_json("promote", "--tier", "staging", "--no-wait")
    assert code == 0, doc
    for _ in range(12):
        d = deployments(w)[0]
        if d["lifecycleStage"] == "PRODUCTION_TRAFFIC_SHIFT":
            break
    assert d["targetServiceRevision"]["requestedProductionTrafficWeight"] == 10.0
    assert w.services("native")["api"]["taskDefinition"] != before

    code, doc = w.cli_json("stop", "--env", "native", "--service", "api", "--rollback")
    assert code == 0, doc
    assert doc["environments"]["native"]["services"]["api"]["status"] == "rolled_back"
    assert deployments(w)[0]["status"] == "ROLLBACK_SUCCESSFUL"
    assert w.services("native")["api"]["taskDefinition"] == before
    assert running(w) == old
    event = history(w)[0]
    assert event["command"] == "stop"
    assert event["environments"]["native"]["services"]["api"]["rollback"] is True


def test_stop_without_rollback_leaves_the_service_and_continue_refuses_other_strategies(
    tmp_path: Path, aws_env: str
) -> None:
    w = make(tmp_path, aws_env, LINEAR)
    assert w.cli_json("promote", "--tier", "staging", "--no-wait")[0] == 0
    code, doc = w.cli_json("stop", "--env", "native")
    assert code == 0, doc
    assert doc["environments"]["native"]["services"]["api"]["status"] == "stopped"
    assert deployments(w)[0]["status"] == "STOPPED"
    r = w.cli("continue", "--env", "dev")
    assert r.exit_code == 2
    assert "error:" in r.output and "strategy force-new-deployment" in r.output


# -- CodeDeploy: a blue/green deployment waiting at Ready ----------------------------------------

CD_ACCOUNT = "777777777777"
CODEDEPLOY = (
    "{application: api, deployment_group: api-bg, "
    "deployment_config: CodeDeployDefault.ECSAllAtOnce, container_port: 8080}"
)


def codedeploy_world(tmp_path: Path, aws_env: str) -> tuple[World, Any]:
    envs = "\n".join(
        [
            env_block("dev", "dev", "111111111111", {"api": "{image: api}"}),
            env_block(
                "bluegreen",
                "staging",
                CD_ACCOUNT,
                {"api": "{image: api}"},
                strategy="codedeploy",
                codedeploy=CODEDEPLOY,
            ),
        ]
    )
    w = make_world(tmp_path, aws_env, envs)
    w.push_images(w.commit("second"))
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    cd = assumed_client(w.endpoint, "codedeploy", CD_ACCOUNT)
    # the replacement waits for someone to continue it before traffic moves
    cd.update_deployment_group(
        applicationName="api",
        currentDeploymentGroupName="api-bg",
        blueGreenDeploymentConfiguration={
            "deploymentReadyOption": {"actionOnTimeout": "STOP_DEPLOYMENT", "waitTimeInMinutes": 60}
        },
    )
    return w, cd


def cd_until(cd: Any, deployment_id: str, status: str, reads: int = 40) -> dict[str, Any]:
    for _ in range(reads):
        info: dict[str, Any] = cd.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        if info["status"] == status:
            return info
    raise AssertionError(f"{deployment_id} never {status}: {info['status']}")


def cd_running(w: World) -> set[str | None]:
    images = Ecs(w.ecs(CD_ACCOUNT)).running_images("bluegreen-cluster", "api")
    return {t.digest for t in images.get("api", [])}


def test_a_codedeploy_deployment_at_ready_is_continued(tmp_path: Path, aws_env: str) -> None:
    w, cd = codedeploy_world(tmp_path, aws_env)
    code, doc = w.cli_json("promote", "--tier", "staging", "--no-wait")
    assert code == 0, doc
    deployment = doc["environments"]["bluegreen"]["services"]["api"]["deployment_id"]
    cd_until(cd, deployment, "Ready")
    for _ in range(3):  # Ready holds until continued
        assert cd.get_deployment(deploymentId=deployment)["deploymentInfo"]["status"] == "Ready"
    code, doc = w.cli_json("continue", "--env", "bluegreen")
    assert code == 0, doc
    assert doc["environments"]["bluegreen"]["services"]["api"]["status"] == "continued"
    cd_until(cd, deployment, "Succeeded")
    assert cd_running(w) == {w.tag_digest("api", "staging")}
    assert history(w)[0]["command"] == "continue"


def test_a_codedeploy_deployment_at_ready_is_stopped_with_its_rollback(
    tmp_path: Path, aws_env: str
) -> None:
    w, cd = codedeploy_world(tmp_path, aws_env)
    old = cd_running(w)
    code, doc = w.cli_json("promote", "--tier", "staging", "--no-wait")
    assert code == 0, doc
    deployment = doc["environments"]["bluegreen"]["services"]["api"]["deployment_id"]
    cd_until(cd, deployment, "Ready")
    code, doc = w.cli_json("stop", "--env", "bluegreen", "--rollback")
    assert code == 0, doc
    assert doc["environments"]["bluegreen"]["services"]["api"]["status"] == "rolled_back"
    info = cd.get_deployment(deploymentId=deployment)["deploymentInfo"]
    assert info["status"] == "Stopped"
    assert info["errorInformation"]["code"] == "MANUAL_STOP"
    rollback = info["rollbackInfo"]["rollbackDeploymentId"]
    cd_until(cd, rollback, "Succeeded")
    assert cd_running(w) == old
    event = history(w)[0]
    assert event["command"] == "stop"
    assert event["environments"]["bluegreen"]["services"]["api"]["rollback"] is True


def test_a_waiting_promotion_at_ready_says_so_once_and_completes_when_continued(
    tmp_path: Path, aws_env: str
) -> None:
    w, cd = codedeploy_world(tmp_path, aws_env)
    continued: list[str] = []

    def operator(_seconds: float) -> None:
        for deployment in cd.list_deployments(
            applicationName="api", deploymentGroupName="api-bg", includeOnlyStatuses=["Ready"]
        )["deployments"]:
            if len(continued) < 1:
                # a few polls at Ready first: the promotion keeps waiting, and says so once
                continued.append("")
            elif len(continued) < 4:
                continued.append("")
            else:
                cd.continue_deployment(deploymentId=deployment, deploymentWaitType="READY_WAIT")
                continued.append(deployment)

    clients = Clients(config=w.config, sleep=operator, repo_path=w.root, poll_interval=0)
    lines: list[str] = []
    result = promote(w.config, clients, tier="staging", progress=lines.append)
    assert result.exit_code == 0, result.to_json()
    assert continued[-1].startswith("d-")
    ready = [line for line in lines if "waiting at Ready" in line]
    assert len(ready) == 1, lines
    assert "tierup continue --env bluegreen" in ready[0]
    assert cd_running(w) == {w.tag_digest("api", "staging")}
