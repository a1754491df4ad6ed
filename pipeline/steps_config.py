"""envs.yaml's ``steps`` (a tier's, or one environment's): the model and its checks.

    steps:
      - retag                                   # a plain name is {uses: NAME}
      - {uses: run-task, as: migrate, config: {command: [./manage.py, migrate]}, timeout: 10m}
      - deploy
      - wait
      - {uses: http, as: smoke, config: {url: "https://{environment}.example.com/health"},
         retry: {attempts: 3, interval: 10s}}
      - {uses: notify, config: {url_env: SLACK_WEBHOOK}}

Names are checked against ``stages.all_steps`` (built-ins and plug-ins), each step's ``config``
against the step's own schema. ``retag``, ``deploy`` and ``wait`` appear once each, in that
order, and take no config, condition, retry or timeout.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tierup.stages.step import CONDITIONS, PHASES, Duration, Step, default_if

Loc = tuple[str | int, ...]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StepRetry(_Model):
    attempts: int = Field(default=1, ge=1, le=100, description="tries in all")
    interval: Duration = Field(default=0, description="pause between tries")


class StepSpec(_Model):
    """One item of a ``steps`` list."""

    uses: str = Field(
        description="a built-in step (retag, deploy, wait, run-task, http, alarm, notify) or "
        "a plug-in's name (entry point group tierup.steps)",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
    )
    as_: str | None = Field(
        default=None,
        alias="as",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="the step's name in results and the ledger (default: uses)",
    )
    config: dict[str, Any] = Field(default_factory=dict, description="the step's own settings")
    if_: str | None = Field(
        default=None,
        alias="if",
        description="success (default; notify: always), failure, always",
        json_schema_extra={"enum": list(CONDITIONS)},
    )
    retry: StepRetry | None = None
    timeout: Duration | None = None

    @model_validator(mode="before")
    @classmethod
    def _plain_name(cls, v: Any) -> Any:
        return {"uses": v} if isinstance(v, str) else v

    @property
    def alias(self) -> str:
        return self.as_ or self.uses

    def condition(self, step: Step) -> str:
        return self.if_ or default_if(step)


def step_errors(steps: list[StepSpec] | None) -> tuple[Loc, str] | None:
    """The first mistake in a ``steps`` list (a key path below it, and what is wrong)."""
    if steps is None:
        return None
    # the registry loads every step module and plug-in: only for a file that lists steps
    from tierup.stages import all_steps

    seen: dict[str, int] = {}
    phases: list[tuple[str, int]] = []
    for i, spec in enumerate(steps):
        step = all_steps.find(spec.uses)
        if step is None:
            try:
                all_steps.get(spec.uses)
            except Exception as e:
                return (i, "uses"), str(e)
        assert step is not None
        if spec.if_ is not None and spec.if_ not in CONDITIONS:
            return (i, "if"), f"{spec.if_!r}: a step runs if success, failure or always"
        if spec.alias in seen:
            return (i, "as"), (
                f"two steps are called {spec.alias!r} (items {seen[spec.alias]} and {i}): "
                "name one with `as`"
            )
        seen[spec.alias] = i
        if spec.uses in PHASES:
            phases.append((spec.uses, i))
            for key, value in (("if", spec.if_), ("retry", spec.retry), ("timeout", spec.timeout)):
                if value is not None:
                    return (i, key), (
                        f"step {spec.uses!r} is the promotion itself: it takes no `{key}` "
                        "(use wait_timeout and the tier's rollback settings)"
                    )
        try:
            step.config.model_validate(spec.config)
        except ValidationError as e:
            first = e.errors()[0]
            msg = str(first["msg"]).removeprefix("Value error, ")
            if first["type"] == "extra_forbidden":
                msg = f"unknown key for step {spec.uses!r}"
            elif first["type"] == "missing":
                msg = f"required key for step {spec.uses!r} is missing"
            return (i, "config", *tuple(first["loc"])), msg
    order = [name for name, _i in phases]
    if order != list(PHASES):
        wrong = [i for (name, i), want in zip(phases, PHASES, strict=False) if name != want]
        where: Loc = (wrong[0],) if wrong else ()
        return where, (
            "a steps list names retag, deploy and wait once each, in that order "
            f"(found: {', '.join(order) or 'none of them'}); the other steps go around them"
        )
    return None


def extend_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``tierup schema``: each step's config schema, chosen by its ``uses``."""
    defs = schema.setdefault("$defs", {})
    spec = defs.get("StepSpec")
    if spec is None:
        return schema
    from tierup.stages import all_steps

    branches = []
    for name in all_steps.names():
        step_schema = all_steps.get(name).config.model_json_schema(by_alias=True)
        for key, value in step_schema.pop("$defs", {}).items():
            defs.setdefault(key, value)
        ref = f"StepConfig_{name}"
        defs[ref] = step_schema
        branches.append(
            {
                "if": {"properties": {"uses": {"const": name}}, "required": ["uses"]},
                "then": {"properties": {"config": {"$ref": f"#/$defs/{ref}"}}},
            }
        )
    spec["allOf"] = branches
    # a plain name is a step too
    plain = {"type": "string", "pattern": spec["properties"]["uses"].get("pattern", ".*")}
    defs["StepItem"] = {"anyOf": [plain, {"$ref": "#/$defs/StepSpec"}]}
    _point_at_items(schema)
    return schema


def _point_at_items(node: Any) -> None:
    """Lists of StepSpec accept plain names: point their items at StepItem."""
    if isinstance(node, dict):
        items = node.get("items")
        if isinstance(items, dict) and items.get("$ref") == "#/$defs/StepSpec":
            node["items"] = {"$ref": "#/$defs/StepItem"}
        for v in node.values():
            _point_at_items(v)
    elif isinstance(node, list):
        for v in node:
            _point_at_items(v)
