"""A promotion as a list of steps, end to end in the sandbox: a migration (run-task) before
deploy, a smoke check (http) and an alarm bake after it, a notification (notify) in every case;
rollback on a failed step; the dry run lists the steps as the real run runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import world as world_mod
from tests.support.guarded import promote
from tests.support.loopback import Loopback
from tests.support.world import World, make_world

pytestmark = pytest.mark.usefixtures("aws_env")

WEBHOOK_VAR = "TIERUP_TEST_WEBHOOK"
STAGING_ENVS = ("staging", "mb-staging")


def staging_steps(port: int, *, rollback: bool = False, extra: str = "") -> str:
    lines = [
        "  - name: staging",
        "    tag: staging",
        "    from: dev",
    ]
    if rollback:
        lines.append("    rollback_on_failure: true")
    lines += [
        "    steps:",
        "      - retag",
        "      - uses: run-task",
        "        as: migrate",
        "        config: {command: [./manage.py, migrate, '{images[api][short_commit]}'],",
        "                 environment: {TIER: '{tier}'}, interval: 0}",
        "      - deploy",
        "      - wait",
        "      - uses: http",
        "        as: smoke",
        f"        config: {{url: 'http://127.0.0.1:{port}/{{environment}}/health',",
        "                 expect: {json: {path: status, equals: ok}}, deadline: 1, interval: 1}",
        "      - uses: alarm",
        "        as: bake",
        "        config: {names: ['api-5xx-{environment}'], bake: 0}",
        "      - {uses: notify, as: team, config: {url_env: " + WEBHOOK_VAR + "}}",
    ]
    return "\n".join(lines) + "\n" + extra


def with_steps(world: World, tier_block: str) -> None:
    text = world_mod.CONFIG.format(
        registry=world_mod.REGISTRY, environments=world_mod.DEFAULT_ENVS
    ).replace("  - {name: staging, tag: staging, from: dev}\n", tier_block)
    world.config_path.write_text(text)


@pytest.fixture
def world(tmp_path: Path, aws_env: str, loopback: Loopback) -> World:
    """Every tier on the first commit; a second commit promoted to dev; staging lists steps."""
    w = make_world(tmp_path, aws_env)
    w.push_images(w.commit("second"))
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    with_steps(w, staging_steps(loopback.port))
    for env, account in (("staging", "333333333333"), ("mb-staging", "444444444444")):
        cw = w.aws("cloudwatch", account)
        from tierup.pipeline.sandbox.seed_steps import ensure_alarm

        ensure_alarm(cw, f"api-5xx-{env}")
    return w


def _promote(world: World, loopback: Loopback, *args: str) -> tuple[int, dict[str, Any], str]:
    env = {WEBHOOK_VAR: loopback.url("/hook")}
    r = world.cli("promote", "--tier", "staging", *args, "--json", env=env)
    return r.exit_code, json.loads(r.stdout), r.stderr


def _primary(world: World, env: str) -> dict[str, str]:
    return {
        n: next(d["id"] for d in s["deployments"] if d["status"] == "PRIMARY")
        for n, s in world.services(env).items()
    }


def _one_off_tasks(world: World, env: str) -> list[dict[str, Any]]:
    cfg = world.config.environment(env)
    ecs = world.ecs(cfg.account_id)
    arns = ecs.list_tasks(cluster=cfg.cluster, startedBy="tierup", desiredStatus="STOPPED")[
        "taskArns"
    ]
    return ecs.describe_tasks(cluster=cfg.cluster, tasks=arns)["tasks"] if arns else []


def _ledger(world: World) -> list[dict[str, Any]]:
    """The ledger's events as read, newest first (an open event its run closed is left out,
    the outcome of notify, recorded after its event, is folded into it)."""
    code, doc = world.cli_json("history", "--limit", "1000")
    assert code == 0, doc
    events: list[dict[str, Any]] = doc["events"]
    return events


def _steps(doc: dict[str, Any], env: str) -> list[tuple[str, str]]:
    return [(s["as"], s["status"]) for s in doc["environments"][env]["steps"]]


def test_a_promotion_with_every_kind_of_step_runs_end_to_end(
    world: World, loopback: Loopback
) -> None:
    dev = world.tag_digest("api", "dev")
    before = {e: _primary(world, e) for e in STAGING_ENVS}
    code, doc, _ = _promote(world, loopback)
    assert code == 0, doc
    assert world.tag_digest("api", "staging") == dev
    for env in STAGING_ENVS:
        assert _steps(doc, env) == [
            ("retag", "ok"),  # the tier's tag: one write for every environment
            ("migrate", "ok"),
            ("deploy", "ok"),
            ("wait", "ok"),
            ("smoke", "ok"),
            ("bake", "ok"),
            ("team", "ok"),
        ]
        steps = {s["as"]: s for s in doc["environments"][env]["steps"]}
        assert "exited 0" in steps["migrate"]["output"]
        assert isinstance(steps["smoke"]["duration"], float)
        assert f"/{env}/health: 200" in steps["smoke"]["output"]
        assert f"api-5xx-{env}" in steps["bake"]["output"]
        assert steps["retag"]["output"] == "api staging: moved, worker staging: moved"
        after = _primary(world, env)
        assert all(after[s] != before[env][s] for s in after)
        # the migration ran the new image, with its overrides, before the deployment
        (task,) = _one_off_tasks(world, env)
        assert task["containers"][0]["imageDigest"] == dev
        for svc in world.services(env).values():
            primary = next(d for d in svc["deployments"] if d["status"] == "PRIMARY")
            assert task["stoppedAt"] <= primary["createdAt"]
        override = task["overrides"]["containerOverrides"][0]
        short = doc["images"]["api"]["commit"][:7]
        assert override["command"] == ["./manage.py", "migrate", short]
        assert override["environment"] == [{"name": "TIER", "value": "staging"}]
    assert sorted(loopback.gets()) == ["/mb-staging/health", "/staging/health"]
    (posted,) = loopback.posts("/hook")
    assert posted["status"] == "ok" and posted["tier"] == "staging"
    assert posted["event"] == doc["event"]
    assert posted["images"]["api"]["digest"] == dev
    assert posted["environments"]["staging"]["status"] == "ok"
    assert "tierup promote --tier staging: ok" in posted["text"]
    # the ledger records each step's outcome (the notification runs after the event)
    (event,) = [e for e in _ledger(world) if e["tier"] == "staging"]
    recorded = event["environments"]["mb-staging"]["steps"]
    assert [(s["as"], s["status"]) for s in recorded] == [
        ("retag", "ok"),
        ("migrate", "ok"),
        ("deploy", "ok"),
        ("wait", "ok"),
        ("smoke", "ok"),
        ("bake", "ok"),
    ]
    assert loopback.url("/hook") not in json.dumps(doc)
    # notify's own outcome follows the event (it names it): reading folds it in
    (team,) = event["steps"]
    assert (team["as"], team["uses"], team["status"]) == ("team", "notify", "ok")
    assert team["output"] == f"posted to the webhook in ${WEBHOOK_VAR} (200)"
    assert isinstance(team["duration"], float)
    code, history = world.cli_json("history", "--tier", "staging")
    (listed,) = history["events"]
    assert listed["id"] == doc["event"] and listed["steps"] == event["steps"]
    text = world.cli("history", "--tier", "staging").stdout
    assert "  step team (notify): ok" in text
    assert loopback.url("/hook") not in (world.root / ".tierup" / "ledger.jsonl").read_text()


def test_a_failing_migration_stops_the_environment_before_deploy(
    world: World, loopback: Loopback
) -> None:
    before = {e: _primary(world, e) for e in STAGING_ENVS}
    manifest = world.ecr().batch_get_image(
        registryId=world_mod.REGISTRY, repositoryName="api", imageIds=[{"imageTag": "dev"}]
    )["images"][0]["imageManifest"]
    world.ecr().put_image(
        registryId=world_mod.REGISTRY,
        repositoryName="api",
        imageManifest=manifest,
        imageTag="sandbox-task-fail",
    )
    code, doc, _ = _promote(world, loopback)
    assert code == 1, doc
    for env in STAGING_ENVS:
        assert _primary(world, env) == before[env]  # nothing deployed
        steps = dict(_steps(doc, env))
        assert steps["migrate"] == "failed"
        assert steps["deploy"] == steps["wait"] == steps["smoke"] == steps["bake"] == "skipped"
        e = doc["environments"][env]
        assert e["status"] == "failed"
        assert "step 'migrate' (run-task) failed" in e["error"]
        assert "exited 1" in e["error"]
        assert {s["status"] for s in e["services"].values()} == {"not_deployed"}
    assert loopback.gets() == []
    (posted,) = loopback.posts("/hook")
    assert posted["status"] == "failed" and posted["event"] == doc["event"]
    assert "failed: migrate" in posted["text"]


def test_a_failing_smoke_check_rolls_the_tier_back_with_rollback_on_failure(
    world: World, loopback: Loopback
) -> None:
    with_steps(world, staging_steps(loopback.port, rollback=True))
    previous = world.tag_digest("api", "staging")
    loopback.answers["/mb-staging/health"] = (503, '{"status": "down"}')
    code, doc, _ = _promote(world, loopback)
    assert code != 0, doc
    mb = doc["environments"]["mb-staging"]
    assert dict(_steps(doc, "mb-staging"))["smoke"] == "failed"
    assert dict(_steps(doc, "mb-staging"))["bake"] == "skipped"
    api = mb["services"]["api"]
    assert api["status"] == "failed"
    assert "step 'smoke' (http) failed" in api["error"] and "status 503" in api["error"]
    # as for a failed rollout: the shared tag goes back, every service on it redeploys
    assert "mb-staging/api" in doc["rollback"]["trigger"]
    assert world.tag_digest("api", "staging") == previous
    assert api["rollback"]["status"] == "completed"
    assert doc["environments"]["staging"]["services"]["api"]["rollback"]["status"] == "completed"
    (posted,) = loopback.posts("/hook")
    assert posted["status"] == doc["status"] and posted["status"] != "ok"


def test_an_alarm_in_alarm_rolls_the_tier_back_with_rollback_on_failure(
    world: World, loopback: Loopback
) -> None:
    with_steps(world, staging_steps(loopback.port, rollback=True))
    previous = world.tag_digest("api", "staging")
    r = world.cli(
        "sandbox", "alarm", "--env", "staging", "--name", "api-5xx-staging", "--reason", "5xx"
    )
    assert r.exit_code == 0, r.output
    code, doc, _ = _promote(world, loopback)
    assert code != 0, doc
    steps = {s["as"]: s for s in doc["environments"]["staging"]["steps"]}
    assert steps["bake"]["status"] == "failed"
    assert "alarm api-5xx-staging is ALARM: 5xx" in steps["bake"]["error"]
    assert steps["smoke"]["status"] == "ok"
    assert "staging/api" in doc["rollback"]["trigger"]
    assert world.tag_digest("api", "staging") == previous
    (posted,) = loopback.posts("/hook")
    assert posted["status"] != "ok"
    assert posted["environments"]["staging"]["status"] == "failed"


def test_without_rollback_a_failed_check_fails_the_environment_and_leaves_it(
    world: World, loopback: Loopback
) -> None:
    dev = world.tag_digest("api", "dev")
    loopback.answers["/staging/health"] = (200, '{"status": "degraded"}')
    code, doc, _ = _promote(world, loopback)
    assert code == 3, doc  # partial: mb-staging passed
    assert doc["environments"]["staging"]["status"] == "failed"
    assert doc["environments"]["mb-staging"]["status"] == "ok"
    smoke = {s["as"]: s for s in doc["environments"]["staging"]["steps"]}["smoke"]
    assert "status is 'degraded', expected 'ok'" in smoke["error"]
    assert "rollback" not in doc
    assert world.tag_digest("api", "staging") == dev
    assert any("step 'smoke' (http) failed" in n for n in doc["notes"])


def test_a_failing_webhook_never_fails_the_promotion(world: World, loopback: Loopback) -> None:
    loopback.answers["/hook"] = (500, "{}")
    code, doc, _ = _promote(world, loopback)
    assert code == 0, doc
    assert dict(_steps(doc, "staging"))["team"] == "failed"
    assert any("webhook in $" + WEBHOOK_VAR + " answered 500" in n for n in doc["notes"])
    r = world.cli("promote", "--tier", "staging", "--json")  # no webhook variable at all
    doc = json.loads(r.stdout)
    assert r.exit_code == 0
    team = {s["as"]: s for s in doc["environments"]["staging"]["steps"]}["team"]
    assert team["status"] == "failed" and f"{WEBHOOK_VAR} is not set" in team["error"]
    first, second = (e for e in reversed(_ledger(world)) if e["tier"] == "staging")
    (team,) = first["steps"]
    assert team["status"] == "failed" and team["error"] == f"webhook in ${WEBHOOK_VAR} answered 500"
    (team,) = second["steps"]
    assert team["status"] == "failed" and f"{WEBHOOK_VAR} is not set" in team["error"]


def test_the_dry_run_lists_every_step_item_for_item_as_the_real_run_runs_them(
    world: World, loopback: Loopback
) -> None:
    before = {e: _primary(world, e) for e in STAGING_ENVS}
    code, dry, _ = _promote(world, loopback, "--dry-run")
    assert code == 0, dry
    assert loopback.requests == [] and _one_off_tasks(world, "staging") == []
    assert {e: _primary(world, e) for e in STAGING_ENVS} == before
    code, real, _ = _promote(world, loopback)
    assert code == 0, real

    def items(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [
            (p.get("environment"), p.get("as"), p.get("write"), p.get("service"))
            for p in doc["plan"]
        ]

    assert items(dry) == items(real)
    for env in STAGING_ENVS:
        listed = [s["as"] for s in dry["environments"][env]["steps"]]
        assert listed == [s["as"] for s in real["environments"][env]["steps"]]
        assert {s["status"] for s in dry["environments"][env]["steps"]} == {"planned"}
        # the plan, for this environment: its steps and its deploy writes, in run order
        mine = [
            p.get("as") or f"write:{p['service']}"
            for p in dry["plan"]
            if p.get("environment") == env
        ]
        assert mine == ["migrate", "write:api", "write:worker", "wait", "smoke", "bake"]
        summaries = [p["summary"] for p in dry["plan"] if p.get("as") == "smoke"]
        assert f"GET {loopback.url('/' + env + '/health')}" in " ".join(summaries)
    # the tag moves once, before any environment's steps after retag; notify once, last
    kinds = [p.get("write") or p.get("step") for p in dry["plan"]]
    assert kinds[:2] == ["registry:PutImage", "registry:PutImage"]
    assert dry["plan"][-1]["step"] == "notify" and "environment" not in dry["plan"][-1]
    assert [p.get("as") for p in dry["plan"]].count("team") == 1


def test_without_steps_the_json_has_none(tmp_path: Path, aws_env: str) -> None:
    w = make_world(tmp_path, aws_env)
    w.push_images(w.commit("second"))
    code, doc = w.cli_json("promote", "--tier", "dev")
    assert code == 0
    assert all("steps" not in e for e in doc["environments"].values())
    assert all("step" not in p for p in doc["plan"])


def test_a_failing_step_before_retag_writes_nothing(world: World, loopback: Loopback) -> None:
    block = staging_steps(loopback.port).replace(
        "      - retag\n",
        "      - {uses: http, as: precheck, config: {url: '"
        + loopback.url("/gate")
        + "', deadline: 0}}\n      - retag\n",
    )
    with_steps(world, block)
    loopback.answers["/gate"] = (409, "{}")
    before_tag = world.tag_digest("api", "staging")
    before = {e: _primary(world, e) for e in STAGING_ENVS}
    code, doc, _ = _promote(world, loopback)
    assert code == 1, doc
    assert world.tag_digest("api", "staging") == before_tag
    assert {e: _primary(world, e) for e in STAGING_ENVS} == before
    assert _one_off_tasks(world, "staging") == []
    assert {i["status"] for i in doc["images"].values()} == {"not_moved"}
    for env in STAGING_ENVS:
        steps = dict(_steps(doc, env))
        assert steps["precheck"] == "failed"
        assert steps["retag"] == steps["migrate"] == steps["deploy"] == "skipped"
        assert doc["environments"][env]["status"] == "failed"
    (posted,) = loopback.posts("/hook")
    assert posted["status"] == "failed"
    (event,) = [e for e in _ledger(world) if e["tier"] == "staging"]
    assert event["status"] == "failed"


def test_conditions_and_retries(world: World, loopback: Loopback) -> None:
    extra = (
        "      - {uses: http, as: on-failure, if: failure, config: {url: '"
        + loopback.url("/failed")
        + "', deadline: 0}}\n"
        "      - {uses: http, as: always, if: always, config: {url: '"
        + loopback.url("/always")
        + "', deadline: 0}}\n"
    )
    block = staging_steps(loopback.port) + extra
    block = block.replace("deadline: 1, interval: 1}", "deadline: 0}\n        retry: {attempts: 3}")
    with_steps(world, block)
    loopback.answers["/staging/health"] = (500, "{}")
    code, doc, _ = _promote(world, loopback)
    assert code == 3, doc
    smoke = {s["as"]: s for s in doc["environments"]["staging"]["steps"]}["smoke"]
    assert smoke["status"] == "failed" and smoke["attempts"] == 3
    assert loopback.gets().count("/staging/health") == 3
    assert loopback.gets().count("/mb-staging/health") == 1
    assert dict(_steps(doc, "staging"))["on-failure"] == "ok"
    assert dict(_steps(doc, "mb-staging"))["on-failure"] == "skipped"
    assert loopback.gets().count("/failed") == 1
    assert loopback.gets().count("/always") == 2


def test_no_wait_skips_the_checks_after_wait_but_still_notifies(
    world: World, loopback: Loopback
) -> None:
    code, doc, _ = _promote(world, loopback, "--no-wait")
    assert code == 0, doc
    steps = dict(_steps(doc, "staging"))
    assert steps["migrate"] == steps["deploy"] == "ok"
    assert steps["wait"] == steps["smoke"] == steps["bake"] == "skipped"
    assert loopback.gets() == []
    assert len(loopback.posts("/hook")) == 1


PLUGIN = """
from pathlib import Path

from pydantic import Field

from tierup.stages.step import StepConfig, StepResult


class RecordConfig(StepConfig):
    path: str = Field(description="file to append to")


class RecordEnv:
    name = "record-env"
    config = RecordConfig

    def describe(self, config, ctx):
        return "append the environment and digest to " + config.path

    def run(self, config, ctx):
        line = ctx.render("{environment} {tier} {images[api][digest]}")
        with Path(config.path).open("a") as f:
            f.write(line + "\\n")
        return StepResult(True, output="recorded " + line)
"""


def test_a_plugin_step_from_an_entry_point_runs_from_envs_yaml(
    world: World, loopback: Loopback, tmp_path: Path
) -> None:
    import sys

    from tierup.stages import all_steps

    site = tmp_path / "site"
    (site / "tierup_test_plugin").mkdir(parents=True)
    (site / "tierup_test_plugin" / "__init__.py").write_text(PLUGIN)
    dist = site / "tierup_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tierup-test-plugin\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        "[tierup.steps]\nrecord-env = tierup_test_plugin:RecordEnv\n"
    )
    out = tmp_path / "recorded.txt"
    block = staging_steps(loopback.port).replace(
        "      - deploy\n",
        f"      - {{uses: record-env, as: record, config: {{path: '{out}'}}}}\n      - deploy\n",
    )
    with_steps(world, block)
    r = world.cli("validate")
    assert r.exit_code == 2 and "unknown step 'record-env'" in r.stderr
    sys.path.insert(0, str(site))
    try:
        assert world.cli("validate").exit_code == 0
        from typer.testing import CliRunner

        from tierup.pipeline.cli import app

        schema = json.loads(CliRunner().invoke(app, ["schema"]).stdout)
        assert "path" in schema["$defs"]["StepConfig_record-env"]["properties"]
        bad = block.replace(f"path: '{out}'", f"path: '{out}', paht: x")
        with_steps(world, bad)
        r = world.cli("validate")
        assert r.exit_code == 2 and "config.paht: unknown key for step 'record-env'" in r.stderr
        with_steps(world, block)
        code, doc, _ = _promote(world, loopback)
        assert code == 0, doc
        dev = world.tag_digest("api", "dev")
        assert sorted(out.read_text().splitlines()) == [
            f"mb-staging staging {dev}",
            f"staging staging {dev}",
        ]
        record = {s["as"]: s for s in doc["environments"]["staging"]["steps"]}["record"]
        assert record["status"] == "ok" and record["output"] == f"recorded staging staging {dev}"
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("tierup_test_plugin", None)
        all_steps.load_plugins()
    assert all_steps.find("record-env") is None


def test_text_output_shows_the_steps_and_deploy_runs_the_environments_list(
    world: World, loopback: Loopback
) -> None:
    env = {WEBHOOK_VAR: loopback.url("/hook")}
    r = world.cli("promote", "--tier", "staging", "--dry-run", env=env)
    assert r.exit_code == 0, r.output
    assert "staging: step migrate (run-task): run a task of the revision service api runs" in (
        r.stdout
    )
    assert "step team (notify): POST the promotion's summary to the webhook in $" in r.stdout
    r = world.cli("promote", "--tier", "staging", env=env)
    assert r.exit_code == 0, r.output
    assert "steps" in r.stdout and "migrate" in r.stdout and "exited 0" in r.stdout
    # notify's one outcome is listed under both environments, and said once
    assert r.stdout.count("posted to the webhook") == 1
    assert "as above (once for the promotion)" in r.stdout
    assert loopback.url("/hook") not in r.stdout + r.stderr
    # `tierup deploy --env` runs that environment's list (no tag moves)
    loopback.requests.clear()
    code, doc = world.cli_json("deploy", "--env", "mb-staging")
    assert code == 0, doc
    assert list(doc["environments"]) == ["mb-staging"]
    steps = {s["as"]: s for s in doc["environments"]["mb-staging"]["steps"]}
    assert steps["retag"]["output"] == "no tag moves"
    assert steps["migrate"]["status"] == steps["smoke"]["status"] == "ok"
    assert loopback.gets() == ["/mb-staging/health"]


PROD_STEPS = """\
  - name: prod
    tag: "prod-{timestamp}"
    from: staging
    steps:
      - retag
      - {uses: run-task, as: migrate, config: {image: api, command: [migrate], interval: 0}}
      - deploy
      - wait
"""


def test_a_migration_runs_the_promoted_image_where_the_service_still_names_the_old_one(
    world: World, loopback: Loopback
) -> None:
    assert world.cli("promote", "--tier", "staging").exit_code == 0
    text = world.config_path.read_text().replace(
        '  - {name: prod, tag: "prod-{timestamp}", from: staging}\n', PROD_STEPS
    )
    world.config_path.write_text(text)
    staging = world.tag_digest("api", "staging")
    ecs = world.ecs("555555555555")
    family = world.services("prod")["api"]["taskDefinition"].rsplit("/", 1)[-1].split(":")[0]

    def revisions(name: str) -> list[str]:
        arns = ecs.list_task_definitions(familyPrefix=name)["taskDefinitionArns"]
        return [a for a in arns if a.rsplit("/", 1)[-1].split(":")[0] == name]

    before = revisions(family)
    code, doc = world.cli_json("stamp", "--tier", "prod", "--force", "--reason", "test")
    assert code == 0, doc
    (task,) = _one_off_tasks(world, "prod")
    assert task["containers"][0]["imageDigest"] == staging
    # the service's family gets the deployment's revision only; the task's copy lives apart
    assert len(revisions(family)) == len(before) + 1
    assert revisions(family + "-run-task") == [task["taskDefinitionArn"]]
    migration = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])
    image = migration["taskDefinition"]["containerDefinitions"][0]["image"]
    assert image.endswith(f"/api@{staging}")
    # a re-run migrates again (migrations are safe to repeat) and registers nothing new
    code, again = world.cli_json("stamp", "--tier", "prod", "--force", "--reason", "test")
    assert code == 0, again
    assert len(_one_off_tasks(world, "prod")) == 2
    assert revisions(family + "-run-task") == [task["taskDefinitionArn"]]
    steps = {s["as"]: s for s in doc["environments"]["prod"]["steps"]}
    assert steps["migrate"]["status"] == "ok"


def test_atomic_puts_the_tier_back_when_one_environments_migration_fails(
    world: World, loopback: Loopback
) -> None:
    previous = world.tag_digest("api", "staging")
    manifest = world.ecr().batch_get_image(
        registryId=world_mod.REGISTRY, repositoryName="api", imageIds=[{"imageTag": "dev"}]
    )["images"][0]["imageManifest"]
    world.ecr().put_image(
        registryId=world_mod.REGISTRY,
        repositoryName="api",
        imageManifest=manifest,
        imageTag="sandbox-task-fail.mb-staging-cluster",
    )
    before = _primary(world, "mb-staging")
    code, doc, _ = _promote(world, loopback, "--atomic")
    assert code == 1, doc
    assert dict(_steps(doc, "mb-staging"))["migrate"] == "failed"
    assert _primary(world, "mb-staging") == before
    assert dict(_steps(doc, "staging"))["smoke"] == "ok"
    assert doc["rollback"]["mode"] == "atomic" and "mb-staging" in doc["rollback"]["trigger"]
    assert world.tag_digest("api", "staging") == previous
    staging = doc["environments"]["staging"]["services"]
    assert {s["status"] for s in staging.values()} == {"reverted"}
    (posted,) = loopback.posts("/hook")
    assert posted["status"] == "failed"


def test_a_failed_rollout_skips_the_checks_after_it_and_still_notifies(
    world: World, loopback: Loopback
) -> None:
    with_steps(world, staging_steps(loopback.port, rollback=True))
    previous = world.tag_digest("api", "staging")
    manifest = world.ecr().batch_get_image(
        registryId=world_mod.REGISTRY, repositoryName="api", imageIds=[{"imageTag": "dev"}]
    )["images"][0]["imageManifest"]
    world.ecr().put_image(
        registryId=world_mod.REGISTRY,
        repositoryName="api",
        imageManifest=manifest,
        imageTag="sandbox-fail.mb-staging-cluster",
    )
    code, doc, _ = _promote(world, loopback)
    assert code != 0, doc
    steps = dict(_steps(doc, "mb-staging"))
    assert steps["migrate"] == steps["deploy"] == "ok"
    assert steps["wait"] == "failed"
    assert steps["smoke"] == steps["bake"] == "skipped"
    assert dict(_steps(doc, "staging"))["smoke"] == "ok"
    assert loopback.gets() == ["/staging/health"]
    assert "mb-staging/api" in doc["rollback"]["trigger"]
    assert world.tag_digest("api", "staging") == previous
    (posted,) = loopback.posts("/hook")
    assert (
        posted["environments"]["mb-staging"]["status"]
        == doc["environments"]["mb-staging"]["status"]
        != "ok"
    )


def test_a_migration_before_retag_on_the_new_image_stops_everything_when_it_fails(
    world: World, loopback: Loopback
) -> None:
    block = (
        staging_steps(loopback.port)
        .replace(
            "      - retag\n      - uses: run-task\n        as: migrate\n        config: {command:",
            "      - uses: run-task\n        as: migrate\n        config: {image: api, command:",
        )
        .replace("      - deploy\n", "      - retag\n      - deploy\n", 1)
    )
    with_steps(world, block)
    steps = world.config.steps_for("staging") or []
    assert [s.alias for s in steps][:3] == ["migrate", "retag", "deploy"]
    dev = world.tag_digest("api", "dev")
    manifest = world.ecr().batch_get_image(
        registryId=world_mod.REGISTRY, repositoryName="api", imageIds=[{"imageTag": "dev"}]
    )["images"][0]["imageManifest"]
    world.ecr().put_image(
        registryId=world_mod.REGISTRY,
        repositoryName="api",
        imageManifest=manifest,
        imageTag="sandbox-task-fail.mb-staging-cluster",
    )
    before_tag = world.tag_digest("api", "staging")
    before = {e: _primary(world, e) for e in STAGING_ENVS}
    code, doc, _ = _promote(world, loopback)
    assert code == 1, doc
    assert world.tag_digest("api", "staging") == before_tag != dev
    assert {e: _primary(world, e) for e in STAGING_ENVS} == before
    # the new image ran the migration in both environments; it failed in one
    for env in STAGING_ENVS:
        (task,) = _one_off_tasks(world, env)
        assert task["containers"][0]["imageDigest"] == dev
    assert dict(_steps(doc, "staging"))["migrate"] == "ok"
    assert dict(_steps(doc, "mb-staging"))["migrate"] == "failed"
    assert {dict(_steps(doc, e))["retag"] for e in STAGING_ENVS} == {"skipped"}
    (posted,) = loopback.posts("/hook")
    assert posted["status"] == "failed"


def _mark_task_fail(world: World, tag: str) -> None:
    manifest = world.ecr().batch_get_image(
        registryId=world_mod.REGISTRY, repositoryName="api", imageIds=[{"imageTag": "dev"}]
    )["images"][0]["imageManifest"]
    world.ecr().put_image(
        registryId=world_mod.REGISTRY, repositoryName="api", imageManifest=manifest, imageTag=tag
    )


@pytest.mark.parametrize("flag", ["--rollback-on-failure", "--atomic"])
def test_a_migration_failing_between_retag_and_deploy_moves_the_tag_back(
    world: World, loopback: Loopback, flag: str
) -> None:
    previous = {i: world.tag_digest(i, "staging") for i in ("api", "worker")}
    dev = world.tag_digest("api", "dev")
    assert previous["api"] != dev
    _mark_task_fail(world, "sandbox-task-fail")
    before = {e: _primary(world, e) for e in STAGING_ENVS}
    code, doc, _ = _promote(world, loopback, flag)
    assert code == 1, doc
    # the only write, the tier's tag, is taken back; nothing was deployed
    assert {i: world.tag_digest(i, "staging") for i in previous} == previous
    assert {e: _primary(world, e) for e in STAGING_ENVS} == before
    assert {i["status"] for i in doc["images"].values()} == {"moved_back"}
    assert set(doc["rollback"]["tags"]) == {"api", "worker"}
    assert doc["rollback"]["tags"]["api"]["to_digest"] == previous["api"]
    assert doc["rollback"]["tags"]["api"]["status"] == "moved_back"
    for env in STAGING_ENVS:
        e = doc["environments"][env]
        assert e["status"] == "failed"
        assert {s["status"] for s in e["services"].values()} == {"not_deployed"}
        assert "moved back" in e["hint"]
    # the ledger says what was undone
    (event,) = [e for e in _ledger(world) if e["tier"] == "staging"]
    assert event["status"] == "failed"
    assert {i["image"]: i["status"] for i in event["images"]} == {
        "api": "moved_back",
        "worker": "moved_back",
    }
    assert event["rollback"]["tags"]["api"]["from_digest"] == dev
    assert event["rollback"]["tags"]["api"]["to_digest"] == previous["api"]
    (posted,) = loopback.posts("/hook")
    assert posted["status"] == "failed"
    assert posted["images"]["api"]["status"] == "moved_back"


def test_a_migration_failing_between_retag_and_deploy_in_one_environment_puts_the_tier_back(
    world: World, loopback: Loopback
) -> None:
    """With rollback_on_failure: the tag goes back, so the environment that deployed it
    follows, as it does when a rollout of a service on a shared tag fails."""
    with_steps(world, staging_steps(loopback.port, rollback=True))
    previous = world.tag_digest("api", "staging")
    _mark_task_fail(world, "sandbox-task-fail.mb-staging-cluster")
    before = _primary(world, "mb-staging")
    code, doc, _ = _promote(world, loopback)
    assert code == 1, doc
    assert world.tag_digest("api", "staging") == previous
    assert _primary(world, "mb-staging") == before
    assert "mb-staging/api" in doc["rollback"]["trigger"]
    staging = doc["environments"]["staging"]["services"]
    assert {s["status"] for s in staging.values()} == {"reverted"}
    assert {s["rollback"]["status"] for s in staging.values()} == {"completed"}
    (event,) = [e for e in _ledger(world) if e["tier"] == "staging"]
    assert event["rollback"]["mode"] == "rollback-on-failure"
    assert sorted(event["rollback"]["services"]) == ["staging/api", "staging/worker"]


def test_a_step_failing_after_deploy_rolls_back_and_the_ledger_says_so(
    world: World, loopback: Loopback
) -> None:
    """A check between deploy and wait: the rollouts are followed, then put back."""
    block = staging_steps(loopback.port, rollback=True).replace(
        "      - wait\n",
        "      - {uses: http, as: early, config: {url: '"
        + loopback.url("/{environment}/early")
        + "', deadline: 0}}\n      - wait\n",
    )
    with_steps(world, block)
    previous = world.tag_digest("api", "staging")
    loopback.answers["/staging/early"] = (500, "{}")
    code, doc, _ = _promote(world, loopback)
    assert code == 1, doc
    assert dict(_steps(doc, "staging"))["early"] == "failed"
    assert dict(_steps(doc, "staging"))["smoke"] == "skipped"
    assert world.tag_digest("api", "staging") == previous
    assert "staging/api" in doc["rollback"]["trigger"]
    for env in STAGING_ENVS:
        for svc in doc["environments"][env]["services"].values():
            assert svc["rollback"]["status"] == "completed"
    (event,) = [e for e in _ledger(world) if e["tier"] == "staging"]
    assert event["rollback"]["tags"]["api"]["status"] == "moved_back"
    assert event["environments"]["staging"]["services"]["api"]["rollback"] == "completed"


def test_a_secret_a_step_reads_from_the_environment_is_never_printed_or_stored(
    world: World, loopback: Loopback
) -> None:
    """A smoke check whose answer quotes its token (as a debugging endpoint may): the token,
    read from the variable ``headers_from_env`` names, is redacted wherever it would show."""
    token = "tok-" + "7" * 24
    block = staging_steps(loopback.port).replace(
        "expect: {json:", "headers_from_env: {X-Token: TIERUP_TEST_TOKEN}, expect: {json:"
    )
    with_steps(world, block)
    loopback.answers["/staging/health"] = (200, json.dumps({"status": token}))
    env = {WEBHOOK_VAR: loopback.url("/hook"), "TIERUP_TEST_TOKEN": token}
    r = world.cli("promote", "--tier", "staging", "--json", env=env)
    assert r.exit_code == 3, r.output
    smoke = {s["as"]: s for s in json.loads(r.stdout)["environments"]["staging"]["steps"]}
    assert "status is '***'" in smoke["smoke"]["error"]
    ledger = (world.root / ".tierup" / "ledger.jsonl").read_text()
    assert token not in r.stdout + r.stderr + ledger
    assert loopback.url("/hook") not in r.stdout + r.stderr + ledger
    (posted,) = loopback.posts("/hook")
    assert token not in json.dumps(posted)
