"""`tierup history`: the ledger's events, newest first, and how a terminal shows them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tierup.pipeline.events import EventStatus
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.results import CommandResult


def history(
    ledger: Ledger,
    *,
    tier: str | None = None,
    image: str | None = None,
    env: str | None = None,
    limit: int | None = 20,
) -> CommandResult:
    """Ledger events, newest first."""
    events = ledger.events(tier=tier, image=image, env=env, limit=limit)
    result = CommandResult(command="history", tier=tier)
    result.data["ledger"] = ledger.where
    result.data["events"] = events
    return result


def render_history(result: CommandResult) -> None:
    """One block per event: what, who, the images' digests, each service before and after."""
    import sys

    from rich.console import Console

    console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    events = result.data.get("events") or []
    console.print(f"[bold]tierup history[/bold] ({result.data.get('ledger')})", markup=True)
    if not events:
        console.print("no events")
    for e in events:
        actor = e.get("actor") or {}
        who = str(actor.get("name") or "?") + (f" ({actor['arn']})" if actor.get("arn") else "")
        tier = f" --tier {e['tier']}" if e.get("tier") else ""
        command = e.get("invocation") or f"{e.get('command')}{tier}"
        console.print(
            f"{e.get('time')}  {command}  {e.get('status')}  by {who}  [{e.get('id')}]",
            markup=False,
        )
        if e.get("status") == EventStatus.OPEN:
            intent = e.get("intent") or {}
            writes = intent.get("writes") or []
            console.print(
                f"  open: {len(writes)} planned write(s) and no event closes it (the run "
                "stopped before recording its end); the tier's next writing command "
                "reconciles it",
                markup=False,
            )
            for step in writes[:10]:
                console.print(f"    {_planned(step)}", markup=False)
        for i in e.get("images") or []:
            commit = f" commit {str(i['commit'])[:12]}" if i.get("commit") else ""
            console.print(
                f"  {i.get('image')} {i.get('tag') or '-'}: {_short(i.get('from_digest'))} -> "
                f"{_short(i.get('to_digest'))}{commit} ({i.get('status')})",
                markup=False,
            )
        for env, doc in (e.get("environments") or {}).items():
            for svc, s in (doc.get("services") or {}).items():
                console.print(f"  {env}/{svc}: {_service_line(s)}", markup=False)
            if not doc.get("services"):
                console.print(f"  {env}: {doc.get('status')}", markup=False)
        for step in e.get("steps") or []:  # run after the event was written (notify)
            if isinstance(step, Mapping):
                error = f": {step['error']}" if step.get("error") else ""
                console.print(
                    f"  step {step.get('as')} ({step.get('uses')}): {step.get('status')}{error}",
                    markup=False,
                )
        for key in ("message", "reason", "ci_url"):
            if e.get(key):
                console.print(f"  {key}: {e[key]}", markup=False)
        plan = e.get("saved_plan")
        if isinstance(plan, Mapping) and plan.get("id"):
            console.print(
                f"  from saved plan {plan['id']} ({plan.get('file')}, made "
                f"{plan.get('created_at')} by {plan.get('created_by') or '?'})",
                markup=False,
            )


def _planned(step: Mapping[str, Any]) -> str:
    if step.get("write") == "registry:PutImage":
        return f"tag {step.get('repository')}:{step.get('tag')} -> {_short(step.get('digest'))}"
    if step.get("summary"):
        return str(step["summary"])
    return f"{step.get('environment')}/{step.get('service')}: {step.get('action')}"


def _service_line(s: Mapping[str, Any]) -> str:
    """``td -> td, digest -> digest (status)``; one side alone when nothing moved."""
    td_before, td_after = s.get("task_definition_before"), s.get("task_definition_after")
    d_before, d_after = s.get("digest_before"), s.get("digest_after")
    before = s.get("images_before")
    after = s.get("images_after")
    moved = (td_before or td_after) != td_after or (d_before or d_after) != d_after
    if isinstance(before, dict) and isinstance(after, dict) and before and before != after:
        moved = True
    status = f"({s.get('status')})"
    if not moved:
        return f"{_family_rev(td_after)}, {_short(d_after)} {status}"
    return (
        f"{_family_rev(td_before)} -> {_family_rev(td_after)}, {_short(d_before)} -> "
        f"{_short(d_after)} {status}"
    )


def _short(digest: Any) -> str:
    if not digest:
        return "-"
    text = str(digest)
    return text[:19] if text.startswith("sha256:") else text


def _family_rev(arn: Any) -> str:
    if not arn:
        return "-"
    return str(arn).rsplit("/", 1)[-1]
