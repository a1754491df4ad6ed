"""The step lists of a promotion as planned: each environment's list (an environment's own wins
over its tier's), each step bound to its configuration and context, the items the dry run
lists and the outcomes a run records, and the clients a step runs with.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tierup.pipeline import redaction
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Environment
from tierup.pipeline.config_tiers import Tier
from tierup.pipeline.steps_config import StepSpec
from tierup.stages.deploy import ImageTarget, ServicePlan
from tierup.stages.errors import TierupError
from tierup.stages.parallel import each
from tierup.stages.plan import Deploy
from tierup.stages.resolve import Resolved, commits_on
from tierup.stages.step import (
    PHASES,
    PROMOTION,
    RETAG,
    SUCCESS,
    ImageInfo,
    Step,
    StepConfig,
    StepContext,
    scope,
)


class EnvPlanLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def env(self) -> Environment: ...
    @property
    def services(self) -> list[ServicePlan]: ...
    @property
    def error(self) -> TierupError | None: ...
    def deploy_steps(self) -> list[Deploy]: ...


class PromotionLike(Protocol):
    @property
    def command(self) -> str: ...
    @property
    def tier(self) -> Tier: ...
    @property
    def resolved(self) -> list[Resolved]: ...
    @property
    def targets(self) -> dict[str, ImageTarget]: ...
    @property
    def envs(self) -> Sequence[EnvPlanLike]: ...


@dataclass(frozen=True)
class PlannedStep:
    spec: StepSpec
    step: Step
    config: StepConfig
    summary: str

    @property
    def alias(self) -> str:
        return self.spec.alias

    @property
    def uses(self) -> str:
        return self.spec.uses

    @property
    def phase(self) -> bool:
        return self.uses in PHASES

    @property
    def promotion_wide(self) -> bool:
        return scope(self.step) == PROMOTION

    def key(self) -> tuple[str, str, str]:
        return (self.alias, self.uses, repr(sorted(self.spec.config.items())))


@dataclass
class EnvSteps:
    """One environment's list and, as it runs, each step's outcome (in list order)."""

    name: str
    context: StepContext
    items: list[PlannedStep]
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: str | None = None  # the first failure: "step 'smoke' (http) failed: ..."
    deployed: bool = False

    def before_retag(self) -> list[PlannedStep]:
        i = next(n for n, p in enumerate(self.items) if p.uses == RETAG)
        return [p for p in self.items[:i] if not p.promotion_wide]

    def after_retag(self) -> list[PlannedStep]:
        i = next(n for n, p in enumerate(self.items) if p.uses == RETAG)
        return [p for p in self.items[i + 1 :] if not p.promotion_wide]

    def listed(self) -> list[dict[str, Any]]:
        """Every step of the list, with its outcome so far (``planned`` until it runs)."""
        return [
            self.outcomes.get(p.alias) or {"as": p.alias, "uses": p.uses, "status": "planned"}
            for p in self.items
        ]


def no_client(service: str) -> Any:
    raise TierupError(f"a promotion-wide step has no {service} client of one environment")


def listed_after(es: EnvSteps, p: PlannedStep, phase: str) -> bool:
    names = [q.uses for q in es.items]
    return phase in names and es.items.index(p) > names.index(phase)


def promotion_wide(es: EnvSteps, alias: str) -> bool:
    return any(p.alias == alias and p.promotion_wide for p in es.items)


def plan_item(env: str | None, p: PlannedStep) -> dict[str, Any]:
    where = f"{env}: " if env else ""
    out: dict[str, Any] = {"step": p.uses, "as": p.alias}
    if env is not None:
        out["environment"] = env
    out["summary"] = f"{where}step {p.alias} ({p.uses}): {p.summary}"
    cond = p.spec.condition(p.step)
    if cond != SUCCESS:
        out["if"] = cond
    return out


def step_outcome(p: PlannedStep, status: str, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"as": p.alias, "uses": p.uses, "status": status}
    if p.promotion_wide:  # one outcome, listed under every environment
        out["scope"] = PROMOTION
    if "duration" in kw:
        out["duration"] = round(float(kw["duration"]), 3)
    if kw.get("reason"):
        out["reason"] = kw["reason"]
    return out


def images_of(clients: Clients, plan: PromotionLike) -> dict[str, ImageInfo]:
    """The promotion's images; a digest's commit from its commit tag when the source had none
    (a tier's tag), as the ledger records it."""
    commits = {r.image: r.commit for r in plan.resolved}

    def one(item: tuple[str, ImageTarget]) -> ImageInfo:
        name, t = item
        commit = commits.get(name)
        if commit is None and t.commit_uri:
            commit = t.commit_uri.rpartition(":")[2]
        if commit is None:
            with contextlib.suppress(TierupError):  # a step naming it fails when it renders
                found = [
                    c
                    for info in clients.registry.list_images(t.repository)
                    if info.digest == t.digest
                    for c in commits_on(info)
                ]
                commit = found[0] if found else None
        return ImageInfo(name, t.repository, t.tag, t.digest, commit, t.digest_uri)

    return {i.image: i for i in each(one, list(plan.targets.items()))}


def planned_step(spec: StepSpec, ctx: StepContext) -> PlannedStep:
    # the registry loads every step module: only for a tier that lists steps
    from tierup.stages import all_steps

    step = all_steps.get(spec.uses)
    config = step.config.model_validate(spec.config)
    try:
        summary = step.describe(config, ctx)
    except TierupError as e:
        summary = f"cannot run as configured: {e.message}"
    return PlannedStep(spec, step, config, summary)


def remember_secrets(config: StepConfig, environ: Mapping[str, str]) -> None:
    """The values of the environment variables a step reads secrets from (a webhook URL, a
    header's token) are redacted from everything tierup prints or stores."""
    names: list[str] = []
    url_env = getattr(config, "url_env", None)
    if isinstance(url_env, str):
        names.append(url_env)
    headers = getattr(config, "headers_from_env", None)
    if isinstance(headers, Mapping):
        names += [str(v) for v in headers.values()]
    values = [environ.get(n, "") for n in names]
    redaction.remember(*values, *(v.strip() for v in values))


def environment_context(
    name: str,
    env: Environment,
    client: Callable[[str], Any],
    *,
    images: Mapping[str, ImageInfo] | None = None,
    **extra: Any,
) -> StepContext:
    """What a step sees of environment ``name`` of envs.yaml (``extra``: time, environ, ...)."""
    return StepContext(
        environment=name,
        tier=env.tier,
        account_id=env.account_id,
        region=env.region,
        cluster=env.cluster,
        services=tuple(env.services),
        images=images or {},
        client=client,
        **extra,
    )


def client_of(clients: Clients, env: Environment) -> Callable[[str], Any]:
    return lambda service: clients.aws(service, env)
