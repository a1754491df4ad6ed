"""`tierup validate`: the configuration, and with ``--remote`` the preflight against AWS."""

from __future__ import annotations

import json
from typing import Any

from tierup.pipeline import strategies
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config, EcrRegistry, Environment
from tierup.pipeline.results import (
    CommandResult,
    EnvironmentOutcome,
    ImageOutcome,
    ServiceOutcome,
    Status,
)
from tierup.stages import all_strategies
from tierup.stages.deploy import DeployError, names_reference, pick_container
from tierup.stages.errors import TierupError
from tierup.stages.parallel import each
from tierup.stages.strategy import capabilities

PULL_ACTIONS = (
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
)


def _steps(config: Config, env: str) -> dict[str, Any]:
    """An environment's `steps` (as: uses), when its tier or itself lists them."""
    steps = config.steps_for(env)
    return {} if steps is None else {"steps": {s.alias: s.uses for s in steps}}


def summary(config: Config) -> dict[str, Any]:
    tiers: dict[str, Any] = {}
    for t in config.tiers:
        src = config.source_tier(t.name)
        tiers[t.name] = {
            "tag": t.tag,
            "mutable": not t.immutable,
            "from": src.name if src else None,
            "environments": {
                n: {
                    "account_id": e.account_id,
                    "region": e.region,
                    "cluster": e.cluster,
                    "strategy": config.strategy_for(n),
                    "services": {
                        s: {str(k or "(default)"): v for k, v in svc.images().items()}
                        for s, svc in e.services.items()
                    },
                    **_steps(config, n),
                }
                for n, e in config.environments_of(t.name).items()
            },
        }
    return {"tiers": tiers, "images": {n: i.repository for n, i in config.images.items()}}


def validate(
    config: Config, clients: Clients | None = None, *, remote: bool = False
) -> CommandResult:
    result = CommandResult(command="validate")
    result.data = {"config": summary(config)}
    if not remote or clients is None:
        return result
    _check_images(config, clients, result)
    envs = list(config.environments)
    result.environments = each(lambda n: _check_env(config, clients, n), envs, 16)
    result.settle()
    problems = [i for i in result.images if i.status != "ok"] + [
        e for e in result.environments if e.status != "ok"
    ]
    # a preflight either passes or fails: any problem found is a failure to fix first
    result.status = Status.FAILED if problems else Status.OK
    return result


def _check_images(config: Config, clients: Clients, result: CommandResult) -> None:
    accounts = sorted({e.account_id for e in config.environments.values()})
    for name, image in config.images.items():
        out = ImageOutcome(image=name, repository=image.repository, status="ok")
        try:
            clients.registry.describe_repository(image.repository)
            if isinstance(config.registry, EcrRegistry):
                missing = _accounts_without_pull(
                    clients, image.repository, accounts, config.registry.account_id
                )
                if missing:
                    out.status = "failed"
                    out.error = (
                        f"repository {image.repository!r} does not let account(s) "
                        f"{', '.join(missing)} pull"
                    )
                    out.hint = (
                        "add them to the repository policy with "
                        + ", ".join(PULL_ACTIONS)
                        + "; tasks would fail with CannotPullContainerError"
                    )
        except TierupError as e:
            out.status, out.error, out.hint = "failed", e.message, e.hint
        result.images.append(out)


def _accounts_without_pull(
    clients: Clients, repository: str, accounts: list[str], registry_account: str
) -> list[str]:
    from tierup.stages.adapters.ecr import EcrRegistry as Ecr

    reg = clients.registry
    assert isinstance(reg, Ecr)
    text = reg.repository_policy(repository)
    others = [a for a in accounts if a != registry_account]
    if not others:
        return []
    if text is None:
        return others
    allowed: set[str] = set()
    wildcard = False
    for st in json.loads(text).get("Statement", []):
        if st.get("Effect") != "Allow":
            continue
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not all(any(_matches(a, want) for a in actions) for want in PULL_ACTIONS):
            continue
        principal = st.get("Principal", {})
        if principal == "*":
            wildcard = True
            continue
        aws = principal.get("AWS", []) if isinstance(principal, dict) else []
        for p in [aws] if isinstance(aws, str) else aws:
            if p == "*":
                wildcard = True
            for a in others:
                if a in p:
                    allowed.add(a)
    return [] if wildcard else [a for a in others if a not in allowed]


def _matches(pattern: str, action: str) -> bool:
    import fnmatch

    return fnmatch.fnmatch(action.lower(), pattern.lower())


def _check_env(config: Config, clients: Clients, name: str) -> EnvironmentOutcome:
    env = config.environment(name)
    tier = config.tier(env.tier)
    strategy = config.strategy_for(name)
    # only a service deployed by moving the tier's own tag must name that tag
    follows_tag = capabilities(all_strategies.get(strategy)).follows_tag
    names_tier_tag = not tier.immutable and follows_tag
    out = EnvironmentOutcome.of(name, env, strategy)
    try:
        ecs = clients.ecs(env)
        states = ecs.describe_services(env.cluster, list(env.services), allow_missing=True)
    except TierupError as e:
        out.status, out.error, out.hint = "failed", e.message, e.hint
        return out
    for svc_name, svc in env.services.items():
        so = ServiceOutcome(service=svc_name, status="ok")
        state = states.get(svc_name)
        if state is None:
            so.status, so.error = "failed", f"service not found in cluster {env.cluster!r}"
            so.hint = "create it, or fix the service name in envs.yaml"
            out.services.append(so)
            continue
        so.task_definition = state.task_definition
        if not names_tier_tag:
            out.services.append(so)
            continue
        try:
            td = ecs.describe_task_definition(state.task_definition)
            for container, image_name in svc.images().items():
                cname = pick_container(svc_name, container, td)
                want = clients.registry.image_uri(
                    config.image(image_name).repository, config.tier_tag(image_name, tier)
                )
                have = td.image_of(cname) or ""
                if not names_reference(have, want):
                    so.status = "failed"
                    so.error = f"container {cname!r} names {have}, not the tier's tag {want}"
                    so.hint = "register a revision naming the tier's tag"
        except (TierupError, DeployError) as e:
            so.status, so.error, so.hint = "failed", e.message, e.hint
        out.services.append(so)
    try:
        problem = _check_strategy(clients, name, env, strategy)
    except TierupError as e:
        problem = (e.message, e.hint)
    if problem is None:
        from tierup.pipeline import steps_remote

        problem = steps_remote.problem(config, clients, name)
    if problem is not None:
        out.error, out.hint = problem
    out.settle()
    return out


def _check_strategy(
    clients: Clients, name: str, env: Environment, strategy: str
) -> tuple[str, str] | None:
    """What a strategy deploys through (a stack, a CodeDeploy deployment group) exists and
    deploys this environment's services: the strategy's own ``validate_remote``, where it has
    one. ``(error, hint)``, or None when all is well."""
    check = getattr(all_strategies.get(strategy), "validate_remote", None)
    if check is None:
        return None
    problem: tuple[str, str] | None = check(
        strategies.context(clients, name, env), list(env.services)
    )
    return problem


def render(result: CommandResult) -> None:

    from rich.tree import Tree

    from tierup.pipeline.output import console_for

    console = console_for(None)
    cfg = result.data["config"]
    root = Tree("[bold]tiers[/bold]")
    for tier, t in cfg["tiers"].items():
        kind = "mutable" if t["mutable"] else "immutable, stamped"
        src = f" from {t['from']}" if t["from"] else ""
        node = root.add(f"{tier}: tag {t['tag']} ({kind}){src}")
        for env, e in t["environments"].items():
            en = node.add(
                f"{env}: account {e['account_id']} {e['region']} cluster {e['cluster']} "
                f"({e['strategy']})"
            )
            if "steps" in e:
                en.add(
                    "steps: "
                    + ", ".join(a if a == u else f"{a} ({u})" for a, u in e["steps"].items())
                )
            for svc, containers in e["services"].items():
                en.add(
                    f"{svc}: "
                    + ", ".join(
                        f"{c} <- {i}" if c != "(default)" else i for c, i in containers.items()
                    )
                )
    console.print(root)
    for i in result.images:
        mark = "ok" if i.status == "ok" else f"[red]{i.error}[/red] (hint: {i.hint})"
        console.print(f"image {i.image} ({i.repository}): {mark}")
    for e in result.environments:
        if e.error:
            console.print(f"environment {e.name}: [red]{e.error}[/red] (hint: {e.hint})")
            continue
        for s in e.services:
            mark = "ok" if s.status == "ok" else f"[red]{s.error}[/red] (hint: {s.hint})"
            console.print(f"environment {e.name} service {s.service}: {mark}")
    console.print(f"status: {result.status}")
