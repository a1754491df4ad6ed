"""A strategy a library user registers is treated by what it declares, never by its name: one
that declares CloudFormation's capabilities (it owns its rollback, one write per environment,
immutable references, the `cloudformation:` settings) gets CloudFormation's config check,
`where`, `validate --remote` and `rollback`, on moto's server with the sandbox's emulation."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.support.ecs_checks import container_digests
from tests.support.release_world import ledger_of, new_commit, ship
from tests.support.world import Writes, env_block, make_world
from tierup.pipeline import config_load
from tierup.pipeline.cli import app
from tierup.pipeline.promote import RunOptions
from tierup.pipeline.undo_run import rollback
from tierup.stages import all_strategies
from tierup.stages import rollback as rb
from tierup.stages import wait as wait_stage
from tierup.stages.cloudformation import CloudFormationStrategy
from tierup.stages.deploy import Applied, ServicePlan
from tierup.stages.errors import ConfigError
from tierup.stages.strategy import (
    SERVICE_DEPLOYMENTS,
    Capabilities,
    Context,
    OnChange,
    Planned,
    RestoreTarget,
    Settings,
    Target,
    capabilities,
)

pytestmark = pytest.mark.usefixtures("aws_env")

NAME = "own-stack"
STACK = "{stack: api-stack, image_parameter: ImageUrl}"


class OwnStack:
    """A library user's strategy: a stack's change set under a name of its own, declaring
    what the stack's writes need."""

    name = NAME
    capabilities = Capabilities(
        owns_rollback=True, one_write=True, immutable_refs=True, settings="cloudformation"
    )

    def __init__(self) -> None:
        self.inner = CloudFormationStrategy()
        self.calls: list[str] = []

    def plan(self, ctx: Context, target: Target) -> Planned:
        return self.inner.plan(ctx, target)

    def apply(self, ctx: Context, plans: Sequence[ServicePlan]) -> dict[str, Applied]:
        return self.inner.apply(ctx, plans)

    def wait(
        self,
        ctx: Context,
        applied: Mapping[str, Applied],
        *,
        timeout: float,
        on_change: OnChange | None = None,
    ) -> dict[str, wait_stage.RolloutState]:
        return self.inner.wait(ctx, applied, timeout=timeout, on_change=on_change)

    def rollback(self, ctx: Context, applied: Mapping[str, Applied]) -> dict[str, Applied]:
        return self.inner.rollback(ctx, applied)

    def restore(self, ctx: Context, targets: Mapping[str, RestoreTarget]) -> dict[str, Applied]:
        self.calls.append("restore")
        return self.inner.restore(ctx, targets)

    def discard(self, ctx: Context, plans: Sequence[ServicePlan]) -> None:
        self.inner.discard(ctx, plans)

    def plan_undo(
        self, plans: Sequence[rb.RollbackPlan], *, environment: str, configured: Sequence[str]
    ) -> tuple[list[rb.RollbackPlan], list[str]]:
        return self.inner.plan_undo(plans, environment=environment, configured=configured)

    def undo_steps(
        self,
        plans: Sequence[rb.RollbackPlan],
        *,
        environment: str,
        cluster: str,
        settings: Settings,
    ) -> list[dict[str, Any]]:
        return self.inner.undo_steps(
            plans, environment=environment, cluster=cluster, settings=settings
        )

    def validate_remote(self, ctx: Context, services: Sequence[str]) -> tuple[str, str] | None:
        self.calls.append("validate_remote")
        return self.inner.validate_remote(ctx, services)


@pytest.fixture
def own_stack() -> Iterator[OwnStack]:
    strategy = OwnStack()
    all_strategies.register(strategy)
    try:
        yield strategy
    finally:
        all_strategies.unregister(strategy.name)


def envs(**stack: str) -> str:
    return "\n".join(
        [
            env_block("dev", "dev", "111111111111", {"api": "{image: api}"}),
            env_block(
                "own",
                "staging",
                "666666666666",
                {"api": "{image: api}", "api-admin": "{image: api}"},
                strategy=NAME,
                **stack,
            ),
        ]
    )


def test_the_settings_block_a_registered_strategy_declares_is_required(
    tmp_path: Path, own_stack: OwnStack
) -> None:
    text = (Path(__file__).resolve().parents[2] / "envs.yaml").read_text()
    path = tmp_path / "envs.yaml"
    path.write_text(text.replace("strategy: task-definition", f"strategy: {NAME}", 1))
    with pytest.raises(ConfigError, match=f"uses strategy {NAME} but has no `cloudformation: "):
        config_load.load(path)


def test_where_validate_and_rollback_follow_what_a_registered_strategy_declares(
    tmp_path: Path, aws_env: str, own_stack: OwnStack
) -> None:
    assert capabilities(all_strategies.get(NAME)).owns_rollback
    world = make_world(tmp_path, aws_env, envs(cloudformation=STACK))
    before = world.tag_digest("api", "staging")
    new_commit(world, "one")
    ship(world, "dev")

    # the stack names the commit's tag: in sync with the tier, since its references are
    # declared immutable
    code, doc = world.cli_json("promote", "--tier", "staging", "--commit", world.head)
    assert code == 0, doc
    after = world.tag_digest("api", "staging")
    assert after != before
    code, where = world.cli_json("where", "--env", "own")
    assert code == 0, where
    api = where["environments"]["own"]["services"]["api"]
    assert api["image"].endswith(f"api:{world.head}")
    assert api["drift"] is False, api["drift_reasons"]

    # it owns its rollback: one change set for both services (one write), no update_service
    writes = Writes()
    dry = rollback(
        world.config,
        world.clients(writes),
        ledger_of(world),
        env="own",
        options=RunOptions(dry_run=True),
    )
    assert writes.calls == []
    assert [(s["write"], s["services"]) for s in dry.plan] == [
        ("cloudformation:CreateChangeSet+ExecuteChangeSet", ["api", "api-admin"])
    ]
    result = rollback(world.config, world.clients(writes), ledger_of(world), env="own")
    assert result.exit_code == 0, result.to_json()
    assert sorted(set(writes.names())) == ["CreateChangeSet", "ExecuteChangeSet"]
    assert writes.names().count("ExecuteChangeSet") == 1
    assert own_stack.calls == ["restore"]
    for svc in ("api", "api-admin"):
        assert container_digests(world, "own", svc) == {svc: {before}}

    # validate --remote asks the strategy about what it deploys through
    code, doc = world.cli_json("validate", "--remote")
    assert code == 0, doc
    world.config_path.write_text(
        world.config_path.read_text().replace("image_parameter: ImageUrl", "image_parameter: Img")
    )
    code, doc = world.cli_json("validate", "--remote")
    assert code == 1, doc
    assert "has no parameter 'Img'" in doc["environments"]["own"]["error"]
    assert own_stack.calls.count("validate_remote") == 2


def test_a_strategy_that_declares_nothing_has_the_plain_capabilities() -> None:
    class Bare:
        name = "bare"

    assert capabilities(Bare()) == Capabilities()
    assert not capabilities(all_strategies.get("task-definition")).follows_tag
    assert capabilities(all_strategies.get("force-new-deployment")).follows_tag


class Controlled(OwnStack):
    """A strategy that declares how `continue` / `stop` reach its deployments."""

    name = "controlled"
    capabilities = Capabilities(release_control=SERVICE_DEPLOYMENTS)


def test_continue_and_stop_act_on_the_strategies_that_declare_release_control(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "envs.yaml"
    path.write_text((Path(__file__).resolve().parents[2] / "envs.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["continue", "--env", "prod", "-f", str(path)])
    assert r.exit_code == 2, r.output
    assert "strategy task-definition, which has no deployment to continue" in r.output
    assert "act on strategies codedeploy and ecs" in r.output
    controlled = Controlled()
    all_strategies.register(controlled)
    try:
        r = CliRunner().invoke(app, ["stop", "--env", "prod", "-f", str(path)])
    finally:
        all_strategies.unregister(controlled.name)
    assert r.exit_code == 2, r.output
    assert "act on strategies codedeploy, controlled and ecs" in r.output
