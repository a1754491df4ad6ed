"""The library: stages composed by hand with only the public API, and a strategy of one's own
named in envs.yaml, on moto's server with the sandbox's emulation."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.support.guarded import promote
from tests.support.world import REGION, REGISTRY, assumed_client, env_block, make_world
from tierup.stages import account, all_strategies, resolve, retag, wait
from tierup.stages.codedeploy import CodeDeployStrategy
from tierup.stages.deploy import FORCE_NEW_DEPLOYMENT, Applied, DeployError, ServicePlan
from tierup.stages.rolling import Rolling
from tierup.stages.strategy import (
    Context,
    OnChange,
    Planned,
    RestoreTarget,
    StackSettings,
    Target,
    groups,
)

pytestmark = pytest.mark.usefixtures("aws_env")

ACCOUNT = "666666666666"
STACK = "pair-stack"


def compose(endpoint: str) -> dict[str, wait.RolloutState]:
    """resolve -> retag -> deploy -> wait of two services owned by one CloudFormation stack."""
    acct = account.Account(lambda svc: assumed_client(endpoint, svc, ACCOUNT), sleep=lambda _: None)
    hub = account.Account(lambda svc: assumed_client(endpoint, svc, REGISTRY))
    registry = hub.ecr(account_id=REGISTRY, region=REGION)
    source = resolve.resolve_tag(registry, "api", "api", "dev")
    retag.retag(registry, retag.plan_retag(registry, "api", "api", "staging", source.manifest))
    image = account.image_target(registry, source, tag="staging")
    env = acct.environment("pair", "pair-cluster", stack=StackSettings(STACK, "ImageUrl"))
    strategy = all_strategies.get("cloudformation")
    target = account.read_target(env, strategy.name, {"api": image, "worker": image})
    planned = strategy.plan(env, target)
    applied = {s: a for g in groups(planned.services) for s, a in strategy.apply(env, g).items()}
    return strategy.wait(env, applied, timeout=60)


def test_two_services_of_a_stack_compose_from_the_public_api(tmp_path: Path, aws_env: str) -> None:
    stack = "{stack: " + STACK + ", image_parameter: ImageUrl}"
    services = {"api": "{image: api}", "worker": "{image: api}"}
    envs = "\n".join(
        [
            env_block("dev", "dev", "111111111111", {"api": "{image: api}"}),
            env_block("pair", "staging", ACCOUNT, services, strategy="cloudformation",
                      cloudformation=stack),
        ]
    )  # fmt: skip
    world = make_world(tmp_path, aws_env, envs)
    world.push_images(world.commit("second"))
    assert promote(world.config, world.clients(), tier="dev").exit_code == 0
    dev = world.tag_digest("api", "dev")
    assert world.tag_digest("api", "staging") != dev

    states = compose(aws_env)

    assert {s: r.state for s, r in states.items()} == {"api": "completed", "worker": "completed"}
    assert world.tag_digest("api", "staging") == dev
    cfn = assumed_client(aws_env, "cloudformation", ACCOUNT)
    params = cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Parameters"]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in params}["ImageUrl"].endswith(dev)
    for svc in world.services("pair").values():
        ecs = world.ecs(ACCOUNT)
        arns = ecs.list_tasks(cluster="pair-cluster", serviceName=svc["serviceName"])["taskArns"]
        running = ecs.describe_tasks(cluster="pair-cluster", tasks=arns)["tasks"]
        assert running and {c["imageDigest"] for t in running for c in t["containers"]} == {dev}
    body = inspect.getsource(compose).splitlines()[2:]  # the lines under the docstring
    assert len(body) < 20


class Recorded:
    """A library user's strategy: ECS's forced deployment, recording what the pipeline asks."""

    name = "recorded"

    def __init__(self) -> None:
        self.inner = Rolling(FORCE_NEW_DEPLOYMENT)
        self.calls: list[str] = []

    def plan(self, ctx: Context, target: Target) -> Planned:
        self.calls.append("plan")
        return self.inner.plan(ctx, target)

    def apply(self, ctx: Context, plans: Sequence[ServicePlan]) -> dict[str, Applied]:
        self.calls.append("apply")
        return self.inner.apply(ctx, plans)

    def wait(
        self,
        ctx: Context,
        applied: Mapping[str, Applied],
        *,
        timeout: float,
        on_change: OnChange | None = None,
    ) -> dict[str, wait.RolloutState]:
        self.calls.append("wait")
        return self.inner.wait(ctx, applied, timeout=timeout, on_change=on_change)

    def rollback(self, ctx: Context, applied: Mapping[str, Applied]) -> dict[str, Applied]:
        return self.inner.rollback(ctx, applied)

    def restore(self, ctx: Context, targets: Mapping[str, RestoreTarget]) -> dict[str, Applied]:
        return self.inner.restore(ctx, targets)

    def discard(self, ctx: Context, plans: Sequence[ServicePlan]) -> None:
        self.inner.discard(ctx, plans)


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    strategy = Recorded()
    all_strategies.register(strategy)
    try:
        yield strategy
    finally:
        all_strategies.unregister(strategy.name)


def test_a_registered_strategy_deploys_an_environment_named_in_envs_yaml(
    tmp_path: Path, aws_env: str, recorded: Recorded
) -> None:
    envs = env_block("dev", "dev", "111111111111", {"api": "{image: api}"}, strategy="recorded")
    world = make_world(tmp_path, aws_env, envs)
    world.push_images(world.commit("second"))

    result = promote(world.config, world.clients(), tier="dev")

    assert result.exit_code == 0, result.to_json()
    assert recorded.calls == ["plan", "apply", "wait"]
    digest = world.tag_digest("api", "dev")
    api = world.services("dev")["api"]
    assert [d["status"] for d in api["deployments"]] == ["PRIMARY"]
    outcome = result.environments[0].services[0]
    assert outcome.status == "completed" and outcome.digest == digest


def test_an_unregistered_strategy_is_a_config_error(tmp_path: Path) -> None:
    from tierup.pipeline import config_load
    from tierup.stages.errors import ConfigError

    text = (Path(__file__).resolve().parents[2] / "envs.yaml").read_text()
    path = tmp_path / "envs.yaml"
    path.write_text(text.replace("strategy: task-definition", "strategy: blue-grene", 1))
    assert "blue-grene" in path.read_text()
    with pytest.raises(ConfigError, match="unknown strategy 'blue-grene'") as e:
        config_load.load(path)
    assert "recorded" not in str(e.value)


def test_a_builtin_strategy_cannot_be_replaced() -> None:
    with pytest.raises(DeployError, match="built in"):
        all_strategies.register(Rolling("codedeploy"))
    assert isinstance(all_strategies.get("codedeploy"), CodeDeployStrategy)
