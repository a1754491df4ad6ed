"""Strategy ecs: ECS's own blue/green, canary and linear deployments, on moto's server with the
sandbox's ECS-native emulation (lifecycle stages, traffic shares, bake times on its clock, PAUSE
and Lambda hooks, ContinueServiceDeployment, StopServiceDeployment)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.guarded import promote
from tests.support.native_world import deployments, ecs, make, running
from tests.support.release_world import ledger_of
from tests.support.world import World, Writes
from tierup.pipeline.clients import Clients
from tierup.pipeline.rollback_tier import rollback_tier
from tierup.pipeline.sandbox import emulation
from tierup.pipeline.sessions import AwsSessions
from tierup.pipeline.undo_run import rollback

pytestmark = pytest.mark.usefixtures("aws_env")

CANARY = (
    "{mode: canary, bake_time: 10m, canary: {percent: 10, bake_time: 5m}, "
    "hooks: [{stage: post-test-traffic-shift, pause: true}]}"
)
BLUE_GREEN_FAILING = (
    "{mode: blue-green, hooks: [{stage: POST_TEST_TRAFFIC_SHIFT, lambda: smoke-fail}]}"
)


class FakeClock:
    """The emulation's clock: every sleep of the waiting promotion moves it a minute."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def clients(w: World, writes: Writes, on_sleep: Callable[[], None] | None = None) -> Clients:
    clock = FakeClock()
    emulation.install().native.clock = clock

    def sleep(_s: float) -> None:
        clock.now += 60
        if on_sleep is not None:
            on_sleep()

    return Clients(
        config=w.config,
        sessions=AwsSessions(on_client=writes.hook),
        sleep=sleep,
        repo_path=w.root,
        poll_interval=0,
    )


def test_a_canary_pauses_at_its_hook_says_so_once_and_finishes_when_continued(
    tmp_path: Path, aws_env: str
) -> None:
    w = make(tmp_path, aws_env, CANARY)
    before = w.services("native")["api"]["taskDefinition"]
    seen: list[tuple[str, float]] = []
    continued: list[str] = []

    def operator() -> None:
        # another release manager watching the deployment, continuing it at the pause
        for d in deployments(w):
            if d["status"] != "IN_PROGRESS":
                continue
            seen.append(
                (
                    d["lifecycleStage"],
                    d["targetServiceRevision"].get("requestedProductionTrafficWeight", 0.0),
                )
            )
            hooks = [
                h for h in d.get("lifecycleHookDetails", []) if h["status"] == "AWAITING_ACTION"
            ]
            if hooks and len(seen) > 5 and not continued:
                ecs(w).continue_service_deployment(
                    serviceDeploymentArn=d["serviceDeploymentArn"], hookId=hooks[0]["hookId"]
                )
                continued.append(d["serviceDeploymentArn"])

    writes = Writes()
    lines: list[str] = []
    result = promote(w.config, clients(w, writes, operator), tier="staging", progress=lines.append)
    assert result.exit_code == 0, result.to_json()
    update = next(p for n, p in writes.calls if n == "UpdateService")
    config = update["deploymentConfiguration"]
    assert config["strategy"] == "CANARY"
    assert config["canaryConfiguration"] == {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 5}
    assert config["bakeTimeInMinutes"] == 10
    assert config["lifecycleHooks"] == [
        {"lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"], "targetType": "PAUSE"}
    ]
    assert continued
    paused = [line for line in lines if "paused at a PAUSE hook" in line]
    assert len(paused) == 1, lines
    assert "tierup continue --env native --service api" in paused[0]
    # the pause held the deployment before production traffic moved; then 10%, then all of it
    assert ("POST_TEST_TRAFFIC_SHIFT", 0.0) in seen
    assert ("PRODUCTION_TRAFFIC_SHIFT", 10.0) in seen, seen
    assert ("BAKE_TIME", 100.0) in seen
    (d,) = [x for x in deployments(w) if x["serviceDeploymentArn"] == continued[0]]
    assert d["status"] == "SUCCESSFUL"
    after = w.services("native")["api"]["taskDefinition"]
    assert after != before
    assert running(w) == {w.tag_digest("api", "staging")}
    outcome = result.environments[0].services[0]
    assert outcome.status == "completed"


def test_a_blue_green_whose_hook_fails_is_rolled_back_by_ecs(tmp_path: Path, aws_env: str) -> None:
    w = make(tmp_path, aws_env, BLUE_GREEN_FAILING)
    before = w.services("native")["api"]["taskDefinition"]
    old = running(w)
    code, doc = w.cli_json("promote", "--tier", "staging")
    # the only environment of the tier failed: exit 1 (README, "Exit codes")
    assert code == 1, doc
    api = doc["environments"]["native"]["services"]["api"]
    assert api["status"] == "rolled_back_by_ecs"
    assert "smoke-fail" in api["error"]
    (d, *_rest) = deployments(w)
    assert d["status"] == "ROLLBACK_SUCCESSFUL"
    assert w.services("native")["api"]["taskDefinition"] == before
    assert running(w) == old


def test_rollback_service_of_an_ecs_environment_deploys_the_earlier_revision(
    tmp_path: Path, aws_env: str
) -> None:
    w = make(tmp_path, aws_env, "{mode: blue-green}")
    before = w.services("native")["api"]["taskDefinition"]
    old = running(w)
    assert w.cli_json("promote", "--tier", "staging")[0] == 0
    promoted = w.services("native")["api"]["taskDefinition"]
    assert promoted != before
    code, dry = w.cli_json(
        "rollback", "service", "--env", "native", "--service", "api", "--dry-run"
    )
    assert code == 0, dry
    # the deployment has ended: a new deployment of the earlier revision, nothing to stop
    assert [s["write"] for s in dry["plan"]] == ["ecs:RegisterTaskDefinition+UpdateService"]
    code, doc = w.cli_json("rollback", "service", "--env", "native", "--service", "api")
    assert code == 0, doc
    assert "stopped_deployment" not in doc["environments"]["native"]["services"]["api"]
    # the digest that ran before (a copy of the revision pinning it: its tag has moved since)
    assert w.services("native")["api"]["taskDefinition"] != promoted
    assert running(w) == old
    # ECS ran the rollback with the environment's strategy: a blue/green deployment of its own
    assert deployments(w)[0]["status"] == "SUCCESSFUL"
    assert deployments(w)[0]["lifecycleStage"] == "CLEAN_UP"


def test_a_paused_canary_rolled_back_with_rollback_service_is_stopped_with_its_rollback(
    tmp_path: Path, aws_env: str
) -> None:
    w = make(tmp_path, aws_env, CANARY)
    before = w.services("native")["api"]["taskDefinition"]
    old = running(w)
    code, doc = w.cli_json("promote", "--tier", "staging", "--no-wait")
    assert code == 0, doc
    (canary, *_rest) = deployments(w)
    arn = canary["serviceDeploymentArn"]
    assert canary["status"] == "IN_PROGRESS"
    assert [h["status"] for h in canary.get("lifecycleHookDetails", [])] == ["AWAITING_ACTION"]

    # the dry run says it: the running deployment is stopped, nothing is deployed
    code, dry = w.cli_json(
        "rollback", "service", "--env", "native", "--service", "api", "--dry-run"
    )
    assert code == 0, dry
    assert [(s["write"], s["action"], s.get("deployment")) for s in dry["plan"]] == [
        ("ecs:StopServiceDeployment", "stop-deployment", arn)
    ]
    assert "paused at a PAUSE hook" in dry["plan"][0]["reason"]

    writes = Writes()
    writes.WRITE_OPS = (*Writes.WRITE_OPS, "StopServiceDeployment")
    result = rollback(w.config, clients(w, writes), ledger_of(w), env="native", service="api")

    assert result.exit_code == 0, result.to_json()
    assert writes.calls == [
        ("StopServiceDeployment", {"serviceDeploymentArn": arn, "stopType": "ROLLBACK"})
    ]
    (d,) = [x for x in deployments(w) if x["serviceDeploymentArn"] == arn]
    assert d["status"] == "ROLLBACK_SUCCESSFUL"
    # the old revision serves again
    assert w.services("native")["api"]["taskDefinition"] == before
    assert running(w) == old
    api = result.to_json()["environments"]["native"]["services"]["api"]
    assert api["status"] == "rolled_back", api
    assert api["stopped_deployment"] == arn
    assert api["task_definition"] == before
    event = ledger_of(w).events(env="native", command="rollback", limit=1)[0]
    recorded = event["environments"]["native"]["services"]["api"]
    assert recorded["stopped_deployment"] == arn
    assert recorded["task_definition_after"] == before


def test_rollback_tier_stops_a_paused_canary_that_runs_from_the_earlier_digest(
    tmp_path: Path, aws_env: str
) -> None:
    w = make(tmp_path, aws_env, CANARY)
    before = w.services("native")["api"]["taskDefinition"]
    old = running(w)
    earlier = w.tag_digest("api", "staging")
    assert w.cli_json("promote", "--tier", "staging", "--no-wait")[0] == 0
    (canary, *_rest) = deployments(w)
    arn = canary["serviceDeploymentArn"]
    assert canary["status"] == "IN_PROGRESS"

    code, dry = w.cli_json("rollback", "tier", "--tier", "staging", "--dry-run")
    assert code == 0, dry
    native = [s for s in dry["plan"] if s.get("environment") == "native"]
    assert [(s["write"], s["action"], s["deployment"]) for s in native] == [
        ("ecs:StopServiceDeployment", "stop-deployment", arn)
    ]

    writes = Writes()
    writes.WRITE_OPS = (*Writes.WRITE_OPS, "StopServiceDeployment")
    result = rollback_tier(
        w.config, clients(w, writes), ledger_of(w), tier="staging", progress=lambda _m: None
    )

    assert result.exit_code == 0, result.to_json()
    ecs_writes = [(n, p) for n, p in writes.calls if n not in ("PutImage", "PutObject")]
    assert ecs_writes == [
        ("StopServiceDeployment", {"serviceDeploymentArn": arn, "stopType": "ROLLBACK"})
    ]
    assert w.tag_digest("api", "staging") == earlier
    (d,) = [x for x in deployments(w) if x["serviceDeploymentArn"] == arn]
    assert d["status"] == "ROLLBACK_SUCCESSFUL"
    assert w.services("native")["api"]["taskDefinition"] == before
    assert running(w) == old
    api = result.environments[0].services[0]
    assert api.status == "completed" and api.task_definition == before
