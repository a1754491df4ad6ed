"""What a result says, for either CI: its status, event, images and annotations."""

from __future__ import annotations

from dataclasses import dataclass, field

from tierup.pipeline.results import CommandResult

FAILED_SERVICE = frozenset({"failed", "rolled_back_by_ecs"})
WARNED_SERVICE = frozenset({"timed_out", "reverted", "interrupted"})


@dataclass(frozen=True)
class ImageValues:
    tag: str | None
    digest: str | None
    commit: str | None
    status: str | None = None


@dataclass(frozen=True)
class Annotation:
    level: str  # error | warning
    title: str
    message: str


@dataclass
class Facts:
    """The values a CI job wants from one run: for outputs, dotenv and annotations."""

    status: str
    exit_code: int
    event: str | None = None
    images: dict[str, ImageValues] = field(default_factory=dict)
    annotations: list[Annotation] = field(default_factory=list)


def facts_of(result: CommandResult) -> Facts:
    facts = Facts(
        status=str(result.status),
        exit_code=int(result.exit_code),
        event=event_of(result),
    )
    for image in result.images:
        if image.status == "moved_back":  # the tag is back on the digest it had
            values = ImageValues(image.tag, image.previous_digest, None, image.status)
        else:
            values = ImageValues(image.tag, image.digest, image.commit, image.status)
        facts.images[image.image] = values
    if not result.images and result.command == "where" and result.tier:
        for name, doc in (result.data.get("images") or {}).items():
            tier_doc = (doc.get("tiers") or {}).get(result.tier) or {}
            commits = tier_doc.get("commits") or []
            facts.images[name] = ImageValues(
                tier_doc.get("tag"), tier_doc.get("digest"), commits[0] if commits else None
            )
    title = f"tierup {result.command}" + (f" --tier {result.tier}" if result.tier else "")
    facts.annotations = _annotations(result, title)
    return facts


def event_of(result: CommandResult) -> str | None:
    event = result.data.get("event")
    return str(event) if isinstance(event, str) and event else None


def _annotations(result: CommandResult, title: str) -> list[Annotation]:
    out: list[Annotation] = []
    for image in result.images:
        if image.status == "failed" or image.error:
            out.append(
                Annotation("error", f"{title}: {image.image}", said(image.error, image.hint))
            )
    for env in result.environments:
        if env.error:
            out.append(Annotation("error", f"{title}: {env.name}", said(env.error, env.hint)))
        for s in env.services:
            target = f"{title}: {env.name}/{s.service}"
            if s.status in FAILED_SERVICE:
                text = said(s.error or s.status, s.hint)
                if s.status == "rolled_back_by_ecs":
                    text = "rolled back by ECS's circuit breaker: " + text
                out.append(Annotation("error", target, text))
            elif s.status in WARNED_SERVICE:
                out.append(Annotation("warning", target, said(s.error or s.reason or s.status)))
            if s.rollback is not None:
                rb = s.rollback
                detail = rb.error or rb.reason or ""
                out.append(
                    Annotation(
                        "warning",
                        target,
                        f"rolled back ({rb.action}): {rb.status}"
                        + (f", {rb.task_definition}" if rb.task_definition else "")
                        + (f": {detail}" if detail else ""),
                    )
                )
    for env_name, doc in (result.data.get("environments") or {}).items():
        if isinstance(doc, dict) and doc.get("error"):
            out.append(
                Annotation("error", f"{title}: {env_name}", said(doc["error"], doc.get("hint")))
            )
    if result.error:
        out.append(Annotation("error", title, said(result.error, result.hint)))
    return out


def said(message: str | None, hint: str | None = None) -> str:
    return (message or "") + (f" (hint: {hint})" if hint else "")
