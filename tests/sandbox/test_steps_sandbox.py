"""The sandbox's emulation for steps: RunTask tasks that start, run, stop and report an exit
code (a marker tag or `fail_next` makes one fail), CloudWatch alarms `tierup sandbox alarm`
puts in a state, and the alarms an `alarm` step names, seeded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.world import World, make_world
from tierup.pipeline.sandbox import emulation

pytestmark = pytest.mark.usefixtures("aws_env")

ALARM_STEPS = """\
  - name: staging
    tag: staging
    from: dev
    steps: [retag, deploy, wait,
            {uses: alarm, as: bake, config: {names: ["api-5xx-{environment}"], prefix: "lat-"}}]
"""


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    return make_world(tmp_path, aws_env)


def _run(world: World, env: str, **overrides: Any) -> tuple[Any, str, str]:
    cfg = world.config.environment(env)
    ecs = world.ecs(cfg.account_id)
    td = world.services(env)["api"]["taskDefinition"]
    started = ecs.run_task(cluster=cfg.cluster, taskDefinition=td, startedBy="tests", **overrides)
    assert started["failures"] == []
    return ecs, cfg.cluster, started["tasks"][0]["taskArn"]


def _until_stopped(ecs: Any, cluster: str, arn: str) -> tuple[list[str], dict[str, Any]]:
    seen = []
    for _ in range(10):
        task = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        seen.append(task["lastStatus"])
        if task["lastStatus"] == "STOPPED":
            return seen, task
    raise AssertionError(f"task never stopped: {seen}")


def test_a_task_starts_runs_stops_and_exits_0_with_its_overrides(world: World) -> None:
    ecs, cluster, arn = _run(
        world,
        "staging",
        overrides={"containerOverrides": [{"name": "api", "command": ["migrate", "--yes"]}]},
    )
    seen, task = _until_stopped(ecs, cluster, arn)
    assert seen == ["RUNNING", "STOPPED"]
    container = task["containers"][0]
    assert container["exitCode"] == 0
    assert container["imageDigest"].startswith("sha256:")
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["overrides"]["containerOverrides"][0]["command"] == ["migrate", "--yes"]
    # a one-off task is no service's task
    listed = ecs.list_tasks(cluster=cluster, serviceName="api")["taskArns"]
    assert arn not in listed


def test_a_marker_tag_on_the_digest_makes_its_tasks_exit_1(world: World) -> None:
    cfg = world.config.environment("staging")
    image = world.services("staging")["api"]["taskDefinition"]
    ecr = world.ecr()
    manifest = ecr.batch_get_image(
        registryId="012345678922", repositoryName="api", imageIds=[{"imageTag": "staging"}]
    )["images"][0]["imageManifest"]
    ecr.put_image(
        registryId="012345678922",
        repositoryName="api",
        imageManifest=manifest,
        imageTag=f"sandbox-task-fail.{cfg.cluster}",
    )
    assert image
    ecs, cluster, arn = _run(world, "staging")
    _, task = _until_stopped(ecs, cluster, arn)
    assert task["containers"][0]["exitCode"] == 1
    # another cluster runs the same image happily
    ecs2, cluster2, arn2 = _run(world, "mb-staging")
    _, task2 = _until_stopped(ecs2, cluster2, arn2)
    assert task2["containers"][0]["exitCode"] == 0


def test_fail_next_makes_the_next_task_of_a_family_exit_so(world: World) -> None:
    td = world.services("staging")["api"]["taskDefinition"]
    family = td.rsplit("/", 1)[-1].split(":")[0]
    emulation.install().tasks.fail_next(family, 3)
    ecs, cluster, arn = _run(world, "staging")
    assert _until_stopped(ecs, cluster, arn)[1]["containers"][0]["exitCode"] == 3
    ecs, cluster, arn = _run(world, "staging")
    assert _until_stopped(ecs, cluster, arn)[1]["containers"][0]["exitCode"] == 0


def test_an_image_that_cannot_be_pulled_fails_to_start_without_an_exit_code(
    world: World,
) -> None:
    cfg = world.config.environment("staging")
    ecs = world.ecs(cfg.account_id)
    td = ecs.register_task_definition(
        family="ghost",
        containerDefinitions=[
            {
                "name": "ghost",
                "image": "012345678922.dkr.ecr.us-east-1.amazonaws.com/api:no-such-tag",
                "memory": 128,
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    arn = ecs.run_task(cluster=cfg.cluster, taskDefinition=td)["tasks"][0]["taskArn"]
    _, task = _until_stopped(ecs, cfg.cluster, arn)
    assert task["stopCode"] == "TaskFailedToStart"
    assert "exitCode" not in task["containers"][0]
    assert "CannotPullContainerError" in task["containers"][0]["reason"]


def test_sandbox_alarm_sets_an_environments_alarm_state(world: World) -> None:
    r = world.cli("sandbox", "alarm", "--env", "staging", "--name", "api-5xx", "--reason", "boom")
    assert r.exit_code == 0, r.output
    cw = world.aws("cloudwatch", "333333333333")
    alarm = cw.describe_alarms(AlarmNames=["api-5xx"])["MetricAlarms"][0]
    assert alarm["StateValue"] == "ALARM" and alarm["StateReason"] == "boom"
    r = world.cli("sandbox", "alarm", "--env", "staging", "--name", "api-5xx", "--state", "OK")
    assert r.exit_code == 0
    assert cw.describe_alarms(AlarmNames=["api-5xx"])["MetricAlarms"][0]["StateValue"] == "OK"
    # another account's alarms are its own
    other = world.aws("cloudwatch", "444444444444")
    assert other.describe_alarms(AlarmNames=["api-5xx"])["MetricAlarms"] == []
    r = world.cli("sandbox", "alarm", "--env", "staging", "--name", "x", "--state", "RED")
    assert r.exit_code == 2 and "error: --state 'RED'" in r.stderr


def test_seeding_creates_the_alarms_an_alarm_step_names(tmp_path: Path, aws_env: str) -> None:
    from tests.support import world as world_mod
    from tierup.pipeline.sandbox import seed as seed_mod

    text = world_mod.CONFIG.replace(
        "  - {{name: staging, tag: staging, from: dev}}\n",
        ALARM_STEPS.replace("{", "{{").replace("}", "}}"),
    )
    w = make_world(tmp_path, aws_env)
    w.config_path.write_text(
        text.format(registry=world_mod.REGISTRY, environments=world_mod.DEFAULT_ENVS)
    )
    seed_mod.seed(w.config, endpoint_url=aws_env, commit=w.head)
    for env, account in (("staging", "333333333333"), ("mb-staging", "444444444444")):
        cw = w.aws("cloudwatch", account)
        names = {a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]}
        assert names == {f"api-5xx-{env}", "lat-sandbox"}
        states = {a["StateValue"] for a in cw.describe_alarms()["MetricAlarms"]}
        assert states == {"OK"}


def test_validate_remote_checks_what_the_steps_name(tmp_path: Path, aws_env: str) -> None:
    from tests.support import world as world_mod

    steps = (
        "  - name: staging\n    tag: staging\n    from: dev\n    steps:\n"
        "      - {uses: run-task, as: migrate, config: {service: api}}\n"
        "      - retag\n      - deploy\n      - wait\n"
        "      - {uses: alarm, as: bake, config: {names: ['api-5xx-{environment}']}}\n"
    )
    w = make_world(tmp_path, aws_env)
    text = world_mod.CONFIG.format(
        registry=world_mod.REGISTRY, environments=world_mod.DEFAULT_ENVS
    ).replace("  - {name: staging, tag: staging, from: dev}\n", steps)
    w.config_path.write_text(text)
    code, doc = w.cli_json("validate", "--remote")
    assert code == 1
    for env in ("staging", "mb-staging"):
        error = doc["environments"][env]["error"]
        assert error.startswith(f"step 'bake' (alarm): no alarm api-5xx-{env} in account ")
    assert doc["environments"]["dev"]["status"] == "ok"
    for env in ("staging", "mb-staging"):
        r = w.cli("sandbox", "alarm", "--env", env, "--name", f"api-5xx-{env}", "--state", "OK")
        assert r.exit_code == 0, r.output
    code, doc = w.cli_json("validate", "--remote")
    assert code == 0, doc
    w.config_path.write_text(text.replace("config: {service: api}", "config: {service: nope}"))
    code, doc = w.cli_json("validate", "--remote")
    assert code == 1
    assert (
        "step 'migrate' (run-task): service 'nope' not found"
        in (doc["environments"]["staging"]["error"])
    )


def test_an_alarm_bake_fails_when_an_alarm_fires_during_it(world: World) -> None:
    from tierup.pipeline.sandbox.seed_steps import ensure_alarm
    from tierup.stages.step import StepContext
    from tierup.stages.steps import alarm

    cw = world.aws("cloudwatch", "333333333333")
    ensure_alarm(cw, "api-5xx-staging")
    ensure_alarm(cw, "api-latency-staging")
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] >= 30:  # the new image starts failing half a minute in
            cw.set_alarm_state(
                AlarmName="api-latency-staging", StateValue="ALARM", StateReason="p99 > 2s"
            )

    def ctx(deadline: float | None = None) -> StepContext:
        return StepContext(
            environment="staging",
            tier="staging",
            account_id="333333333333",
            region="us-east-1",
            cluster="staging-cluster",
            services=("api",),
            images={},
            client=lambda service: world.aws(service, "333333333333"),
            sleep=sleep,
            clock=lambda: now[0],
            deadline=deadline,
        )

    config = alarm.AlarmConfig.model_validate({"prefix": "api-", "bake": "1m", "interval": 10})
    result = alarm.STEP.run(config, ctx())
    assert not result.ok and now[0] == 30
    assert result.error == "alarm api-latency-staging is ALARM: p99 > 2s"
    cw.set_alarm_state(AlarmName="api-latency-staging", StateValue="OK", StateReason="fine")
    now[0] = -1000.0
    short = alarm.AlarmConfig.model_validate({"names": ["api-5xx-staging"], "bake": 60})
    result = alarm.STEP.run(short, ctx(deadline=-980.0))
    assert not result.ok and "timeout passed after 20s of a 60s bake" in str(result.error)
    none = alarm.AlarmConfig.model_validate({"prefix": "db-", "bake": 0})
    result = alarm.STEP.run(none, ctx())
    assert not result.ok and "no alarm db-* in account 333333333333" in str(result.error)


def test_a_task_still_running_at_the_steps_timeout_is_stopped(world: World) -> None:
    from tierup.stages.step import StepContext
    from tierup.stages.steps import run_task

    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    ctx = StepContext(
        environment="staging",
        tier="staging",
        account_id="333333333333",
        region="us-east-1",
        cluster="staging-cluster",
        services=("api",),
        images={},
        client=lambda service: world.aws(service, "333333333333"),
        sleep=sleep,
        clock=lambda: now[0],
        deadline=5.0,
    )
    config = run_task.RunTaskConfig.model_validate({"command": ["sleep", "3600"], "interval": 10})
    result = run_task.STEP.run(config, ctx)
    assert not result.ok and "did not stop in time (stopped it)" in str(result.error)
    assert now[0] == 5.0
    (task,) = world.ecs("333333333333").describe_tasks(
        cluster="staging-cluster",
        tasks=world.ecs("333333333333").list_tasks(
            cluster="staging-cluster", desiredStatus="STOPPED", startedBy="tierup"
        )["taskArns"],
    )["tasks"]
    assert task["lastStatus"] == "STOPPED"
    assert task["stoppedReason"] == "tierup: the step's timeout passed"


def test_the_sandbox_answers_for_every_environments_application(moto_server: str) -> None:
    """What the example envs.yaml's smoke check asks: `sandbox up` exports the URL."""
    import urllib.request

    from tierup.pipeline.sandbox.control import sandbox_env

    url = sandbox_env(moto_server, "AKIDEXAMPLE")["TIERUP_APP_URL"]
    assert url == moto_server + "/_sandbox/app/{environment}"
    with urllib.request.urlopen(url.format(environment="mb-prod") + "/version") as answer:
        assert answer.status == 200
        assert json.loads(answer.read()) == {"status": "ok", "environment": "mb-prod"}
