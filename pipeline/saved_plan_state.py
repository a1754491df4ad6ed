"""What planning read (tags, services, errors), and what changed since a plan was made."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tierup.pipeline import undo
from tierup.pipeline.plan import PromotionPlan


def state_of(plan: object) -> dict[str, Any]:
    """The world a plan was made against, as plain JSON (compared by ``differences``)."""
    images: dict[str, Any] = {}
    services: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if isinstance(plan, PromotionPlan):
        by_image = {r.image: r for r in plan.resolved}
        for r in plan.retags:
            res = by_image.get(r.image)
            images[r.image] = {
                "repository": r.repository,
                "digest": r.manifest.digest,
                "source": res.source if res is not None else None,
                "source_tag": res.tag if res is not None else None,
                "tag": r.tag,
                "tag_digest": r.current_digest,
            }
        for e in plan.envs:
            if e.error is not None:
                errors[e.name] = e.error.message
            for name, err in e.service_errors.items():
                errors[f"{e.name}/{name}"] = err.message
            for name, state in e.states.items():
                services[f"{e.name}/{name}"] = _service(state.task_definition, state.primary)
    elif isinstance(plan, undo.UndoPlan):
        for name, err in plan.errors.items():
            errors[f"{plan.env_name}/{name}"] = err.message
        for p in plan.services:
            primary = p.state.primary if p.state is not None else None
            services[f"{plan.env_name}/{p.service}"] = _service(p.current_task_definition, primary)
    return {"images": images, "services": services, "errors": errors}


def _service(task_definition: str, primary: Any) -> dict[str, Any]:
    return {"task_definition": task_definition, "deployment": primary.id if primary else None}


def _short(value: Any) -> str:
    text = "nothing" if value in (None, "") else str(value)
    return text[:19] if text.startswith("sha256:") else text.rsplit("/", 1)[-1]


def differences(
    saved: Mapping[str, Any],
    now: Mapping[str, Any],
    saved_steps: list[dict[str, Any]],
    steps: list[dict[str, Any]],
) -> list[str]:
    """What changed since the plan was made, causes first (tags, services, errors), then the
    writes themselves."""
    out: list[str] = []
    before_images, now_images = saved.get("images") or {}, now.get("images") or {}
    for name, was in before_images.items():
        cur = now_images.get(name)
        if cur is None:
            out.append(f"image {name} is no longer planned")
            continue
        if cur.get("digest") != was.get("digest"):
            out.append(
                f"image {name}: {was.get('source') or 'its source'} now resolves to "
                f"{_short(cur.get('digest'))}, the plan promotes {_short(was.get('digest'))}"
            )
        if cur.get("tag_digest") != was.get("tag_digest") or cur.get("tag") != was.get("tag"):
            out.append(
                f"tag {was.get('repository')}:{was.get('tag')} moved: it was on "
                f"{_short(was.get('tag_digest'))} when planned, it is on "
                f"{_short(cur.get('tag_digest'))} now"
            )
    before_services, now_services = saved.get("services") or {}, now.get("services") or {}
    for name in sorted(set(before_services) | set(now_services)):
        was, cur = before_services.get(name), now_services.get(name)
        if was is None or cur is None:
            out.append(f"{name}: {'new since the plan' if was is None else 'no longer found'}")
            continue
        if cur.get("task_definition") != was.get("task_definition"):
            out.append(
                f"{name}: its task definition changed: "
                f"{_short(was.get('task_definition'))} when planned, "
                f"{_short(cur.get('task_definition'))} now"
            )
        elif cur.get("deployment") != was.get("deployment"):
            out.append(
                f"{name}: its deployment changed: {was.get('deployment') or 'none'} when "
                f"planned, {cur.get('deployment') or 'none'} now"
            )
    before_errors = saved.get("errors") or {}
    for name, message in (now.get("errors") or {}).items():
        if before_errors.get(name) != message:
            out.append(f"{name}: {message}")
    if _plain(saved_steps) != _plain(steps):
        out.append(_first_step_difference(_plain(saved_steps), _plain(steps)))
    return out


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _first_step_difference(saved: list[Any], now: list[Any]) -> str:
    from tierup.pipeline.output import step_line

    for n, (a, b) in enumerate(zip(saved, now, strict=False), 1):
        if a != b:
            return f"write {n} changed: planned `{step_line(a)}`, now `{step_line(b)}`"
    if len(now) > len(saved):
        extra = step_line(now[len(saved)])
        return f"{len(now) - len(saved)} write(s) more than planned: `{extra}`"
    gone = step_line(saved[len(now)])
    return f"{len(saved) - len(now)} planned write(s) no longer needed: `{gone}`"
