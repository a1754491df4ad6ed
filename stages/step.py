"""A step of a promotion: one reusable unit, run per environment, with a config of its own.

A tier (or one environment) lists its promotion as steps in envs.yaml:

    steps:
      - retag
      - {uses: run-task, as: migrate, config: {command: [./manage.py, migrate]}}
      - deploy
      - wait
      - {uses: http, as: smoke, config: {url: "https://{environment}.example.com/health"}}
      - {uses: alarm, as: bake, config: {prefix: "api-5xx-", bake: 10m}}
      - {uses: notify, config: {url_env: SLACK_WEBHOOK}}

This module is the protocol and the types every step shares. The implementations (one module
per step under ``stages.steps``, and plug-ins from the ``tierup.steps`` entry point group)
import only it; ``stages.all_steps`` imports them all and is the registry.

A step declares ``name``, ``config`` (a pydantic model: the schema of its ``config`` mapping,
checked by ``tierup validate``), ``describe`` (what the dry run shows) and ``run`` (one try;
the pipeline retries, times out and orders). Optional attributes: ``default_if`` (``success``,
``failure`` or ``always``: when the step runs after an earlier failure), ``soft`` (its failure
never fails the promotion) and ``scope`` (``environment``, or ``promotion``: once per run,
after the ledger event is written, with the whole run's summary).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict

from tierup.stages.errors import TierupError

SUCCESS = "success"
FAILURE = "failure"
ALWAYS = "always"
CONDITIONS = (SUCCESS, FAILURE, ALWAYS)

ENVIRONMENT = "environment"
PROMOTION = "promotion"

# the built-in steps that are the promotion itself (moving the tag, deploying, waiting): the
# pipeline runs them through its executor; the list orders everything else around them
RETAG = "retag"
DEPLOY = "deploy"
WAIT = "wait"
PHASES = (RETAG, DEPLOY, WAIT)

_DURATION_RE = re.compile(r"^(\d+)([smh]?)$")
# `${NAME}` / `${NAME:-default}`: an environment variable (upper case, so that `${environment}`
# stays a dollar and a template variable); the default may hold `{...}` template variables
_ENV_RE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-((?:[^{}]|\{[^{}]*\})*))?\}")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(value: object) -> int:
    """Integer seconds or ``<n>s|m|h`` -> seconds (as everywhere in envs.yaml and in flags)."""
    if isinstance(value, bool):
        raise ValueError("a duration is integer seconds or <n>s|m|h, e.g. 90, 30s, 15m, 2h")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value
    if isinstance(value, str):
        m = _DURATION_RE.match(value.strip())
        if m:
            return int(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError(
        f"bad duration {value!r}: use integer seconds or <n>s|m|h, e.g. 90, 30s, 15m, 2h"
    )


Duration = Annotated[int, BeforeValidator(parse_duration, json_schema_input_type=int | str)]


class StepConfig(BaseModel):
    """Base of a step's config schema: unknown keys are errors, values are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoConfig(StepConfig):
    """A step that takes no config."""


class StepError(TierupError):
    """A step could not run as configured (a template naming an unknown value, ...)."""


@dataclass(frozen=True)
class ImageInfo:
    """One image of the promotion, as a step may use it (``{images[api][digest]}``)."""

    image: str
    repository: str
    tag: str
    digest: str
    commit: str | None = None
    uri: str = ""  # the reference a task definition names for the digest: host/repo@sha256:...

    def variables(self) -> dict[str, str]:
        return {
            "image": self.image,
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
            "commit": self.commit or "",
            "short_commit": (self.commit or "")[:7],
        }


def _no_summary() -> Mapping[str, Any]:
    return {}


@dataclass
class StepContext:
    """What a step sees of one environment of the promotion (every side effect injected)."""

    environment: str
    tier: str
    account_id: str
    region: str
    cluster: str
    services: tuple[str, ...]
    images: Mapping[str, ImageInfo]
    client: Callable[[str], Any]  # a boto3 client of the environment's account and region
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    environ: Mapping[str, str] = field(default_factory=dict)
    interval: float = 5.0  # seconds between polls (TIERUP_POLL_INTERVAL), unless a step says
    deadline: float | None = None  # a clock() value: the step's timeout
    # the promotion's summary (what notify posts): final once the run is recorded
    summary: Callable[[], Mapping[str, Any]] = _no_summary

    def variables(self) -> dict[str, Any]:
        """What ``{...}`` in a step's config may name."""
        return {
            "environment": self.environment,
            "tier": self.tier,
            "account_id": self.account_id,
            "region": self.region,
            "cluster": self.cluster,
            "images": {n: i.variables() for n, i in self.images.items()},
        }

    def render(self, template: str) -> str:
        """``template`` with ``{environment}``, ``{tier}``, ``{images[api][digest]}``, ...,
        after ``${NAME}`` / ``${NAME:-default}`` took the environment variable's value (itself
        a template), or the default when it is unset or empty."""

        def variable(m: re.Match[str]) -> str:
            value = self.environ.get(m[1], "")
            if value:
                return value
            if m[2] is None:
                raise StepError(
                    f"template {template!r} names the environment variable {m[1]}, "
                    "which is not set",
                    hint=f"set {m[1]}, or give a default: ${{{m[1]}:-...}}",
                )
            return m[2]

        try:
            return _ENV_RE.sub(variable, template).format_map(self.variables())
        except (KeyError, IndexError, ValueError, AttributeError) as e:
            raise StepError(
                f"template {template!r} names an unknown value ({e})",
                hint="use {environment}, {tier}, {cluster}, {region}, {account_id} or "
                "{images[NAME][digest|tag|commit|short_commit|repository]}",
            ) from e

    def remaining(self, default: float) -> float:
        """Seconds left before the step's deadline (``default`` when it has none)."""
        if self.deadline is None:
            return default
        return max(0.0, self.deadline - self.clock())


@dataclass(frozen=True)
class StepResult:
    """One try of a step: ok or not, what it shows (``output``) and, on failure, why."""

    ok: bool
    output: str = ""
    error: str | None = None
    hint: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, error: str, hint: str | None = None, *, output: str = "") -> StepResult:
        return cls(False, output=output, error=error, hint=hint)


class Step(Protocol):
    @property
    def name(self) -> str:
        """What envs.yaml's ``uses`` names."""
        ...

    @property
    def config(self) -> type[StepConfig]:
        """The schema of the step's ``config`` mapping."""
        ...

    def describe(self, config: Any, ctx: StepContext) -> str:
        """One line for the dry run: what ``run`` will do (reads nothing)."""
        ...

    def run(self, config: Any, ctx: StepContext) -> StepResult:
        """One try; a failure is a result (errors raised are turned into one)."""
        ...


def default_if(step: Step) -> str:
    return str(getattr(step, "default_if", SUCCESS))


def is_soft(step: Step) -> bool:
    return bool(getattr(step, "soft", False))


def scope(step: Step) -> str:
    return str(getattr(step, "scope", ENVIRONMENT))
