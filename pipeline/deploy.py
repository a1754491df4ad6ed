"""`tierup deploy --env E`: deploy one environment to what its tier's tag points at now."""

from __future__ import annotations

from pipeline.clients import Clients
from pipeline.config import Config
from pipeline.promote import Progress, PromotionPlan, RunOptions, execute, plan_environments
from pipeline.results import CommandResult
from stages import resolve
from stages.deploy import ImageTarget
from stages.parallel import each
from stages.record import Recorder


def deploy_environment(
    config: Config,
    clients: Clients,
    *,
    env: str,
    options: RunOptions,
    recorder: Recorder | None = None,
    progress: Progress | None = None,
) -> CommandResult:
    environment = config.environment(env)
    tier = config.tier(environment.tier)
    registry = clients.registry
    names = sorted({img for svc in environment.services.values() for img in svc.images().values()})

    def target(name: str) -> tuple[str, ImageTarget]:
        image = config.image(name)
        repo, template = image.repository, image.tag(tier.tag)
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
        moved=set(),
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
    )
    return execute(config, clients, plan, options=options, recorder=recorder, progress=progress)
