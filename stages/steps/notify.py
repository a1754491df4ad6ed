"""``notify``: POST a JSON summary of the promotion to a webhook (Slack-compatible ``text``).

The URL comes from the environment variable named by ``url_env`` (never from envs.yaml, never
printed). It runs once per promotion, after every environment has finished and the ledger
event is written, so the summary is final and names the event; by default whatever happened
(``if: always``), and its failure never fails the promotion.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from tierup.stages.step import ALWAYS, PROMOTION, Duration, StepConfig, StepContext, StepResult


class NotifyConfig(StepConfig):
    url_env: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="name of the environment variable that holds the webhook URL",
    )
    text: str | None = Field(
        default=None, description="the message's first line (templated); default: a summary"
    )
    request_timeout: Duration = Field(default=10, description="seconds the POST may take")


def summary_text(summary: Mapping[str, Any]) -> str:
    """One Slack-friendly block: what moved where, and how each environment ended."""
    images = summary.get("images") or {}
    envs = summary.get("environments") or {}
    lines = [
        f"tierup {summary.get('command', 'promote')} --tier {summary.get('tier')}: "
        f"{summary.get('status')}"
    ]
    for name, i in images.items():
        digest = str(i.get("digest") or "")[:19]
        commit = str(i.get("commit") or "")[:12]
        lines.append(f"• {name} {i.get('tag')} -> {digest}" + (f" ({commit})" if commit else ""))
    for name, e in envs.items():
        failed = [s["as"] for s in e.get("steps", []) if s.get("status") == "failed"]
        lines.append(
            f"• {name}: {e.get('status')}" + (f" (failed: {', '.join(failed)})" if failed else "")
        )
    if summary.get("event"):
        lines.append(f"ledger event {summary['event']}")
    return "\n".join(lines)


class Notify:
    name = "notify"
    config = NotifyConfig
    default_if = ALWAYS
    soft = True
    scope = PROMOTION

    def describe(self, config: Any, ctx: StepContext) -> str:
        c: NotifyConfig = config
        return f"POST the promotion's summary to the webhook in ${c.url_env}"

    def run(self, config: Any, ctx: StepContext) -> StepResult:
        from tierup.stages.adapters import web  # urllib: imported when a notification is sent

        c: NotifyConfig = config
        url = ctx.environ.get(c.url_env, "").strip()
        if not url:
            return StepResult.failed(
                f"environment variable {c.url_env} is not set: no webhook to notify",
                f"set {c.url_env} to the webhook URL (a CI secret)",
            )
        if not re.match(r"^https?://", url):
            return StepResult.failed(
                f"environment variable {c.url_env} does not hold an http(s) URL",
                f"set {c.url_env} to the webhook URL",
            )
        summary = dict(ctx.summary())
        text = summary_text(summary)
        if c.text:
            text = ctx.render(c.text) + "\n" + text
        try:
            response = web.request(
                url,
                method="POST",
                json_body={"text": text, **summary},
                timeout=float(c.request_timeout),
            )
        except web.HttpError as e:
            return StepResult.failed(f"webhook in ${c.url_env}: {e}", "check the webhook URL")
        if not 200 <= response.status < 300:
            return StepResult.failed(
                f"webhook in ${c.url_env} answered {response.status}", "check the webhook URL"
            )
        return StepResult(True, output=f"posted to the webhook in ${c.url_env} ({response.status})")


STEP = Notify()
