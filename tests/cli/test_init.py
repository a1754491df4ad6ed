"""`tierup init` against the moto world: an envs.yaml from what runs, that passes
`validate --remote`; tiers guessed from the tags, or asked for; .gitignore on request."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.support.world import REGISTRY, World, assumed_client, make_world
from tierup.pipeline import config_load
from tierup.pipeline.cli import app

pytestmark = pytest.mark.usefixtures("aws_env")

ACCOUNTS = ("111111111111", "333333333333", "444444444444", "555555555555")
ROLES = [f"arn:aws:iam::{a}:role/deployer" for a in ACCOUNTS]


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    return make_world(tmp_path, aws_env)


@contextmanager
def _in(folder: Path) -> Iterator[None]:
    old = os.getcwd()
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def _init(folder: Path, *args: str) -> Any:
    with _in(folder):
        return CliRunner().invoke(app, ["init", *args], env={"TIERUP_POLL_INTERVAL": "0"})


def _role_args(roles: list[str] = ROLES) -> list[str]:
    return [word for arn in roles for word in ("--role-arn", arn)]


def test_init_writes_an_envs_yaml_that_passes_validate_remote(world: World, tmp_path: Path) -> None:
    user = tmp_path / "user"
    result = _init(user, *_role_args(), "--no-gitignore")
    assert result.exit_code == 0, result.output
    written = user / "envs.yaml"
    text = written.read_text()
    assert text.startswith("# envs.yaml written by `tierup init`")
    assert "# guessed: its task definitions name the tag staging" in text
    assert "# guessed from the cluster's name (its task definitions name commits" in text

    cfg = config_load.load(written)
    assert cfg.registry.account_id == REGISTRY  # type: ignore[union-attr]
    assert {n: i.repository for n, i in cfg.images.items()} == {"api": "api", "worker": "worker"}
    assert [(t.name, t.tag) for t in cfg.tiers] == [
        ("dev", "dev"),
        ("staging", "staging"),
        ("prod", "prod-{timestamp}"),
    ]
    assert cfg.tier("prod").immutable and not cfg.tier("staging").immutable
    envs = {n: (e.tier, e.account_id, e.cluster, e.role_arn) for n, e in cfg.environments.items()}
    assert envs == {
        "dev-cluster": ("dev", "111111111111", "dev-cluster", ROLES[0]),
        "staging-cluster": ("staging", "333333333333", "staging-cluster", ROLES[1]),
        "mb-staging-cluster": ("staging", "444444444444", "mb-staging-cluster", ROLES[2]),
        "prod-cluster": ("prod", "555555555555", "prod-cluster", ROLES[3]),
    }
    assert sorted(cfg.environment("staging-cluster").services) == ["api", "worker"]
    assert cfg.environment("staging-cluster").services["api"].images() == {None: "api"}
    assert "tierup keeps its local state in .tierup/" in result.output
    assert not (user / ".gitignore").exists()

    with _in(user):
        validated = CliRunner().invoke(app, ["validate", "--remote", "--json"])
    assert validated.exit_code == 0, validated.output
    assert json.loads(validated.stdout)["status"] == "ok"


def _cluster_naming_a_commit(world: World, account: str, name: str) -> None:
    ecs = assumed_client(world.endpoint, "ecs", account)
    ecs.create_cluster(clusterName=name)
    image = f"{REGISTRY}.dkr.ecr.us-east-1.amazonaws.com/api:{world.head}"
    td = ecs.register_task_definition(
        family=f"{name}-api",
        containerDefinitions=[{"name": "api", "image": image, "memory": 128}],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=name, serviceName="api", taskDefinition=td, desiredCount=1)


def test_a_tier_that_cannot_be_guessed_is_asked_for(world: World, tmp_path: Path) -> None:
    _cluster_naming_a_commit(world, ACCOUNTS[0], "apps")
    user = tmp_path / "user"
    args = [*_role_args(ROLES[:1]), "--cluster", "apps", "--no-gitignore"]
    refused = _init(user, *args)
    assert refused.exit_code == 2
    assert "cannot guess the tier of cluster(s) apps (names " in refused.stderr
    assert "(hint: say it with --tier-for CLUSTER=TIER" in refused.stderr
    assert not (user / "envs.yaml").exists()

    result = _init(user, *args, "--tier-for", "apps=qa")
    assert result.exit_code == 0, result.output
    cfg = config_load.load(user / "envs.yaml")
    assert [(t.name, t.tag) for t in cfg.tiers] == [("qa", "qa-{timestamp}")]
    assert cfg.environment("apps").tier == "qa"
    assert "# given with --tier-for" in (user / "envs.yaml").read_text()


def test_an_existing_file_is_kept_unless_forced(world: World, tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "envs.yaml").write_text("mine\n")
    refused = _init(user, *_role_args(ROLES[:1]), "--no-gitignore")
    assert refused.exit_code == 2
    assert "envs.yaml exists" in refused.stderr
    assert (user / "envs.yaml").read_text() == "mine\n"
    forced = _init(user, *_role_args(ROLES[:1]), "--no-gitignore", "--force", "--json")
    assert forced.exit_code == 0, forced.output
    doc = json.loads(forced.stdout)
    assert doc["environments"] == {
        "dev-cluster": {"tier": "dev", "account_id": ACCOUNTS[0], "cluster": "dev-cluster"}
    }
    assert yaml.safe_load((user / "envs.yaml").read_text())["version"] == 1


def test_gitignore_gets_tierup_state_once(world: World, tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / ".gitignore").write_text("node_modules")
    for run in range(2):
        result = _init(user, *_role_args(ROLES[:1]), "--gitignore", "--force")
        assert result.exit_code == 0, result.output
        if run == 0:
            assert "added .tierup/ to" in result.output
    assert (user / ".gitignore").read_text() == "node_modules\n.tierup/\n"


def test_no_role_reads_the_callers_account(world: World, tmp_path: Path) -> None:
    """The caller lives in the registry account, which runs no service."""
    result = _init(tmp_path / "user", "--no-gitignore")
    assert result.exit_code == 2
    assert f"no ECS service found in account(s) {REGISTRY} (us-east-1)" in result.stderr
