"""`tierup deploy --env E`: deploy one environment to what its tier's tag points at now."""

from __future__ import annotations

from typing import Any

from tierup.pipeline import releases
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.events import Event
from tierup.pipeline.lock import require_guard
from tierup.pipeline.plan import PromotionPlan
from tierup.pipeline.plan_environments import plan_environments
from tierup.pipeline.promote import Progress, RunOptions, execute
from tierup.pipeline.results import CommandResult
from tierup.stages import resolve
from tierup.stages.deploy import ImageTarget
from tierup.stages.errors import InputError
from tierup.stages.parallel import each
from tierup.stages.record import Recorder


def deploy_environment(
    config: Config,
    clients: Clients,
    *,
    env: str,
    options: RunOptions,
    recorder: Recorder[Event] | None = None,
    progress: Progress | None = None,
    events: list[dict[str, Any]] | None = None,
) -> CommandResult:
    """Deploy ``env`` to its tier's current release (``events``: the tier's ledger events).

    Only inside a guarded command (``release.run_deploy``).
    """
    require_guard("a deployment")
    environment = config.environment(env)
    tier = config.tier(environment.tier)
    registry = clients.registry
    names = sorted({img for svc in environment.services.values() for img in svc.images().values()})

    def target(name: str) -> tuple[str, ImageTarget]:
        image = config.image(name)
        repo, template = image.repository, image.tag(tier.tag)
        if tier.immutable:
            # the tier's release: its newest stamp that was not failed or reverted
            found = releases.current_release(
                tier,
                name,
                events=events or [],
                registry=registry,
                repository=repo,
                template=template,
            )
            if found is None:
                raise InputError(
                    f"image {name!r}: tier {tier.name!r} has no release in repository "
                    f"{repo!r} (no stamp, or every stamp was failed or reverted)",
                    hint=f"stamp {tier.name!r} first (tierup stamp --tier {tier.name})",
                )
            r = resolve.resolve_tag(
                registry, name, repo, found.tag, tier=tier.name, prefix=image.tag_prefix
            )
        else:
            r = resolve.resolve_tier(
                registry, name, repo, tier=tier.name, template=template, prefix=image.tag_prefix
            )
        tag = r.tag or template
        return name, ImageTarget.at(
            registry,
            name,
            repo,
            tag,
            r.manifest.digest,
            commit=r.commit,
            immutable_tag=tier.immutable,
        )

    targets = dict(each(target, names))
    envs = plan_environments(
        config,
        clients,
        tier=tier,
        targets=targets,
        moved={},
        env_names=[env],
        protected=options.protected,
    )
    plan = PromotionPlan(
        command="deploy",
        tier=tier,
        tag=tier.tag,
        resolved=[],
        retags=[],
        targets=targets,
        envs=envs,
        deploy=True,
        invocation=f"deploy --env {env}",
    )
    return execute(config, clients, plan, options=options, recorder=recorder, progress=progress)
