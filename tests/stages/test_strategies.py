"""Four environments of one tier, one per strategy, promoted at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.guarded import promote
from tests.support.world import CONFIG, REGISTRY, World, Writes, env_block, make_world
from tierup.pipeline import config_load
from tierup.pipeline.promote import RunOptions
from tierup.pipeline.sandbox import emulation
from tierup.stages import all_strategies
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.deploy import DeployError
from tierup.stages.errors import ConfigError

pytestmark = pytest.mark.usefixtures("aws_env")

ONE = env_block("dev", "dev", "111111111111", {"api": "{image: api}"})
FOUR = "\n".join(
    [
        env_block("dev", "dev", "111111111111", {"api": "{image: api}"}),
        env_block("rolling", "staging", "333333333333", {"api": "{image: api}"}),
        env_block(
            "revision",
            "staging",
            "444444444444",
            {"api": "{image: api}"},
            strategy="task-definition",
        ),
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
            codedeploy="{application: api, deployment_group: api-bg, container_port: 8080, "
            "hooks: {AfterAllowTestTraffic: smoke-test}}",
        ),
    ]
)


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    w = make_world(tmp_path, aws_env, FOUR)
    w.push_images(w.commit("second"))
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    return w


def test_four_strategies_promote_and_where_shows_the_new_digest(world: World) -> None:
    code, doc = world.cli_json("promote", "--tier", "staging")
    assert code == 0, doc
    digest = world.tag_digest("api", "dev")
    for env in ("rolling", "revision", "stack", "bluegreen"):
        assert doc["environments"][env]["status"] == "ok", doc["environments"][env]
    code, where = world.cli_json("where", "--tier", "staging")
    assert code == 0, where
    for env in ("rolling", "revision", "stack", "bluegreen"):
        for name, svc in where["environments"][env]["services"].items():
            assert svc["running_digests"] == [digest], (env, name, svc)
            assert not svc["drift"], (env, name, svc)


def _running(world: World, env: str) -> dict[str, set[str | None]]:
    e = world.config.environment(env)
    images = Ecs(world.ecs(e.account_id)).running_images(e.cluster)
    return {svc: {t.digest for t in images.get(svc, [])} for svc in e.services}


def _where_digests(world: World) -> dict[str, set[str]]:
    code, where = world.cli_json("where", "--tier", "staging")
    assert code == 0, where
    return {
        env: {d for svc in doc["services"].values() for d in svc["running_digests"]}
        for env, doc in where["environments"].items()
    }


@pytest.mark.parametrize("failing", ["bluegreen", "stack"])
def test_a_failure_is_reported_with_its_reason_and_atomic_rolls_the_others_back(
    world: World, failing: str
) -> None:
    old = world.tag_digest("api", "staging")
    new = world.tag_digest("api", "dev")
    assert old != new
    if failing == "bluegreen":
        emulation.install().fail_next_codedeploy("api-bg", "smoke-test answered HTTP 500")
    else:
        emulation.install().fail_next_stack_update(
            "api-stack", 'Resource handler returned message: "Service api did not stabilize"'
        )
    code, doc = world.cli_json("promote", "--tier", "staging", "--atomic")
    assert code == 1, doc
    assert doc["status"] == "failed"
    failed = doc["environments"][failing]
    assert failed["status"] == "failed"
    error = next(iter(failed["services"].values()))["error"]
    if failing == "bluegreen":
        assert "HOOK_EXECUTION_FAILURE: smoke-test answered HTTP 500" in error
    else:
        assert "UPDATE_ROLLBACK_COMPLETE" in error and "did not stabilize" in error
    assert any("--atomic" in n for n in doc["notes"])
    for env in ("rolling", "revision", "stack", "bluegreen"):
        for name, svc in doc["environments"][env]["services"].items():
            assert svc["rollback"]["status"] == "completed", (env, name, svc)
            if env != failing:
                assert svc["status"] == "reverted", (env, name, svc)
    assert world.tag_digest("api", "staging") == old
    assert _where_digests(world) == {
        env: {old} for env in ("rolling", "revision", "stack", "bluegreen")
    }


def test_dry_run_lists_exactly_the_writes_of_the_real_run(world: World) -> None:
    writes = Writes()
    dry = promote(
        world.config, world.clients(writes), tier="staging", options=RunOptions(dry_run=True)
    )
    assert writes.names() == ["CreateChangeSet"]  # the stack's preview, deleted again
    writes.calls.clear()
    real = promote(world.config, world.clients(writes), tier="staging")
    assert real.exit_code == 0, real.to_json()
    planned = sorted(s["write"] for s in dry.plan)
    assert planned == [
        "cloudformation:ExecuteChangeSet",
        "ecs:RegisterTaskDefinition+UpdateService",
        "ecs:RegisterTaskDefinition+codedeploy:CreateDeployment",
        "ecs:UpdateService",
        "registry:PutImage",
        "registry:PutImage",
    ]
    made = sorted(n for n in writes.names() if n != "CreateChangeSet")
    assert made == [
        "CreateDeployment",
        "ExecuteChangeSet",
        "PutImage",
        "PutImage",
        "RegisterTaskDefinition",
        "RegisterTaskDefinition",
        "UpdateService",
        "UpdateService",
    ]


def test_every_strategy_is_available_by_name() -> None:
    assert all_strategies.names() == [
        "cloudformation",
        "codedeploy",
        "ecs",
        "force-new-deployment",
        "task-definition",
    ]
    with pytest.raises(DeployError, match="unknown deploy strategy 'blue-green'"):
        all_strategies.get("blue-green")


def test_a_strategy_module_is_loaded_only_when_its_name_is_asked_for() -> None:
    """A configuration that names no strategy loads none of cloudformation, codedeploy, ecs."""
    code = (
        "import sys\n"
        "from tierup.pipeline import config_load\n"
        "from tierup.stages import all_strategies\n"
        f"cfg = config_load.loads({CONFIG.format(registry=REGISTRY, environments=ONE)!r})\n"
        "all_strategies.get(cfg.strategy_for('dev'))\n"
        "names = ['tierup.stages.' + m for m in ('cloudformation', 'codedeploy', 'ecs_native')]\n"
        "print([n in sys.modules for n in names])\n"
        "all_strategies.get('cloudformation')\n"
        "print([n in sys.modules for n in names])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[False, False, False]", "[True, False, False]"]


def test_an_unknown_lifecycle_hook_is_a_config_error(tmp_path: Path) -> None:
    text = CONFIG.format(registry=REGISTRY, environments=FOUR).replace(
        "hooks: {AfterAllowTestTraffic: smoke-test}", "hooks: {AfterTraffic: smoke-test}"
    )
    with pytest.raises(ConfigError, match="AfterTraffic: not an ECS lifecycle hook") as e:
        config_load.loads(text, "envs.yaml")
    assert "environments.bluegreen.codedeploy.hooks" in e.value.message


def test_validate_remote_checks_the_stack_and_the_deployment_group(world: World) -> None:
    code, doc = world.cli_json("validate", "--remote")
    assert code == 0, doc
    assert doc["environments"]["stack"]["status"] == "ok"
    assert doc["environments"]["bluegreen"]["status"] == "ok"

    text = world.config_path.read_text()
    world.config_path.write_text(
        text.replace("image_parameter: ImageUrl", "image_parameter: Image").replace(
            "deployment_group: api-bg", "deployment_group: api-other"
        )
    )
    code, doc = world.cli_json("validate", "--remote")
    assert code == 1, doc
    stack = doc["environments"]["stack"]
    assert stack["status"] == "failed"
    assert "'api-stack' has no parameter 'Image'" in stack["error"]
    bluegreen = doc["environments"]["bluegreen"]
    assert bluegreen["status"] == "failed"
    assert "api-other" in bluegreen["error"] and "does not exist" in bluegreen["error"]
    assert doc["environments"]["rolling"]["status"] == "ok"

    # a group that exists but deploys another service
    codedeploy = world.aws("codedeploy", "777777777777")
    codedeploy.create_deployment_group(
        applicationName="api",
        deploymentGroupName="api-other",
        serviceRoleArn="arn:aws:iam::777777777777:role/codedeploy",
        ecsServices=[{"serviceName": "web", "clusterName": "bluegreen-cluster"}],
    )
    code, doc = world.cli_json("validate", "--remote")
    assert code == 1, doc
    error = doc["environments"]["bluegreen"]["error"]
    assert "api/api-other does not deploy api of cluster 'bluegreen-cluster'" in error
