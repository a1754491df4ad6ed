"""One AWS account and region as the stages see it: its clients, the sleep and the clock.

A library user composes the stages from these alone:

    from tierup.stages import account, all_strategies, resolve, retag
    from tierup.stages.strategy import groups

    acct = account.Account(boto3.Session(region_name="us-east-1").client)
    registry = acct.ecr(account_id="012345678922", region="us-east-1")
    source = resolve.resolve_tag(registry, "api", "api", "dev")
    retag.retag(registry, retag.plan_retag(registry, "api", "api", "staging", source.manifest))
    target = account.image_target(registry, source, tag="staging")
    env = acct.environment("staging", cluster="api")
    strategy = all_strategies.get("force-new-deployment")
    planned = strategy.plan(env, account.read_target(env, strategy.name, {"api": target}))
    applied = {s: a for g in groups(planned.services) for s, a in strategy.apply(env, g).items()}
    states = strategy.wait(env, applied, timeout=900)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tierup.stages.adapters.ecr import EcrRegistry
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.adapters.registry import Registry
from tierup.stages.deploy import ImageTarget
from tierup.stages.resolve import Resolved
from tierup.stages.strategy import (
    CodeDeploySettings,
    Context,
    ServiceTarget,
    StackSettings,
    Target,
)

ClientFactory = Callable[[str], Any]  # a service name ("ecs", "ecr", ...) -> a boto3 client


@dataclass
class Account:
    """The clients of one account and region (made by ``client``), and the time source."""

    client: ClientFactory
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    interval: float = 5.0  # seconds between polls of a rollout
    _ecs: Ecs | None = field(default=None, repr=False)

    def ecs(self) -> Ecs:
        if self._ecs is None:
            self._ecs = Ecs(self.client("ecs"))
        return self._ecs

    def ecr(self, *, account_id: str, region: str) -> EcrRegistry:
        """The ECR registry of this account (``account_id`` and ``region`` name its host)."""
        return EcrRegistry(self.client("ecr"), account_id=account_id, region=region)

    def environment(
        self,
        name: str,
        cluster: str,
        *,
        stack: StackSettings | None = None,
        codedeploy: CodeDeploySettings | None = None,
    ) -> Context:
        """What a strategy plans, applies and waits with, for one cluster of this account."""
        return Context(
            environment=name,
            cluster=cluster,
            ecs=self.ecs(),
            client=self.client,
            sleep=self.sleep,
            clock=self.clock,
            interval=self.interval,
            stack=stack,
            route=codedeploy,
        )


def image_target(
    registry: Registry,
    source: Resolved,
    *,
    tag: str,
    repository: str | None = None,
    immutable_tag: bool = False,
) -> ImageTarget:
    """What a service should run once ``tag`` points at ``source``'s digest."""
    return ImageTarget.at(
        registry,
        source.image,
        repository or source.image,
        tag,
        source.manifest.digest,
        commit=source.commit,
        immutable_tag=immutable_tag,
    )


def read_target(
    ctx: Context,
    strategy: str,
    wanted: Mapping[str, ImageTarget | Mapping[str | None, ImageTarget]],
    *,
    pin: str = "tag",
    tag_moved: bool = True,
) -> Target:
    """Read what ``wanted``'s services run now: what a strategy's ``plan`` takes.

    ``wanted`` maps a service to its image (its only container, or the one named like it), or to
    one image per container name.
    """
    states = ctx.ecs.describe_services(ctx.cluster, list(wanted))
    running = ctx.ecs.running_images(ctx.cluster)
    services = []
    for name, images in wanted.items():
        state = states[name]
        per_container: dict[str | None, ImageTarget] = (
            {None: images} if isinstance(images, ImageTarget) else dict(images)
        )
        services.append(
            ServiceTarget(
                service=name,
                wanted=per_container,
                state=state,
                task_def=ctx.task_definition(state.task_definition),
                running=tuple(running.get(name, [])),
                tag_moved=tag_moved,
            )
        )
    return Target(
        environment=ctx.environment,
        cluster=ctx.cluster,
        strategy=strategy,
        pin=pin,
        services=tuple(services),
        cloudformation=ctx.stack,
        codedeploy=ctx.route,
    )
