"""The ledger's events: frozen, typed and versioned; the one module that writes and reads them.

Schema version 2 (``schema_version: 2``) keeps every key version 1 had, under the same name:
``id``, ``time``, ``actor``, ``command``, ``tier``, ``status``, ``message``, ``reason``,
``ci_url``, ``images`` and ``environments`` (per service: ``task_definition_before``,
``task_definition_after``, ``digest_before``, ``digest_after``, ``status``). It adds, per
service, every container's digest before and after (``images_before``, ``images_after``:
container -> digest); per event, the command as given (``invocation``), the events it undid
(``undid``: ids), and a final ``status`` that says ``interrupted`` for a run stopped by Ctrl-C.
Write-ahead: before its first write a command records an ``open`` event with its planned writes
(``intent``); the event it records at the end ``closes`` that one (its id). An open event no
later event closes is a run that died: the tier's next writing command reconciles it.
A version 1 event (no ``schema_version``) reads as version 2: an interrupted one gets that
status, and its services have no per-container digests (their ``digest_*`` stand for the
service's first container).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 2


class EventStatus(StrEnum):
    """An event's final status."""

    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"
    # written before the first write (with the planned writes); a later event closes it
    OPEN = "open"


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _digests(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(c): str(d) for c, d in value.items() if d}


@dataclass(frozen=True)
class ServiceRecord:
    """One service: its revision and digests before and after, and how it ended."""

    status: str
    task_definition_before: str | None = None
    task_definition_after: str | None = None
    # the service's first container (what version 1 recorded); every container below
    digest_before: str | None = None
    digest_after: str | None = None
    images_before: Mapping[str, str] = field(default_factory=dict)
    images_after: Mapping[str, str] = field(default_factory=dict)
    # what a command adds: the target's source, pinned references, a rollback's status
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def moved(self) -> bool:
        """Did anything move: its revision, or a container's digest?"""
        if (self.task_definition_before or self.task_definition_after) != (
            self.task_definition_after
        ):
            return True
        if (self.digest_before or self.digest_after) != self.digest_after:
            return True
        return bool(self.images_before) and self.images_before != self.images_after

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "task_definition_before": self.task_definition_before,
            "task_definition_after": self.task_definition_after,
            "digest_before": self.digest_before,
            "digest_after": self.digest_after,
            "images_before": dict(self.images_before),
            "images_after": dict(self.images_after),
            "status": self.status,
        }
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ServiceRecord:
        known = (
            "task_definition_before",
            "task_definition_after",
            "digest_before",
            "digest_after",
            "images_before",
            "images_after",
            "status",
        )
        return cls(
            status=str(doc.get("status") or ""),
            task_definition_before=_str(doc.get("task_definition_before")),
            task_definition_after=_str(doc.get("task_definition_after")),
            digest_before=_str(doc.get("digest_before")),
            digest_after=_str(doc.get("digest_after")),
            images_before=_digests(doc.get("images_before")),
            images_after=_digests(doc.get("images_after")),
            extra={k: v for k, v in doc.items() if k not in known},
        )


@dataclass(frozen=True)
class EnvironmentRecord:
    status: str
    services: Mapping[str, ServiceRecord] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "services": {n: s.to_json() for n, s in self.services.items()},
        }
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> EnvironmentRecord:
        services = doc.get("services")
        return cls(
            status=str(doc.get("status") or ""),
            services={
                str(n): ServiceRecord.from_json(s)
                for n, s in (services.items() if isinstance(services, Mapping) else [])
                if isinstance(s, Mapping)
            },
            extra={k: v for k, v in doc.items() if k not in ("status", "services")},
        )


@dataclass(frozen=True)
class ImageRecord:
    """One image's tag write: where the tier's tag was and where it went."""

    image: str
    status: str
    repository: str | None = None
    tag: str | None = None
    from_digest: str | None = None
    to_digest: str | None = None
    commit: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "repository": self.repository,
            "tag": self.tag,
            "from_digest": self.from_digest,
            "to_digest": self.to_digest,
            "commit": self.commit,
            "status": self.status,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ImageRecord:
        return cls(
            image=str(doc.get("image") or ""),
            status=str(doc.get("status") or ""),
            repository=_str(doc.get("repository")),
            tag=_str(doc.get("tag")),
            from_digest=_str(doc.get("from_digest")),
            to_digest=_str(doc.get("to_digest")),
            commit=_str(doc.get("commit")),
        )


# the keys every event has, in the order they are written
_KEYS = (
    "id",
    "time",
    "actor",
    "command",
    "tier",
    "status",
    "message",
    "reason",
    "ci_url",
    "images",
    "environments",
    "invocation",
    "undid",
    "interrupted",
    "snapshot",
    "closes",
    "intent",
    "schema_version",
)


@dataclass(frozen=True)
class Event:
    """One writing command's record. ``id``, ``time``, ``actor`` are set by the ledger."""

    command: str
    status: str
    tier: str | None = None
    images: tuple[ImageRecord, ...] = ()
    environments: Mapping[str, EnvironmentRecord] = field(default_factory=dict)
    message: str | None = None
    reason: str | None = None
    invocation: str | None = None  # the command as given (`deploy --env mb-staging`)
    undid: tuple[str, ...] = ()  # ids of the events whose writes this one reverted
    interrupted: bool = False
    snapshot: str | None = None
    closes: str | None = None  # the id of the open event this one closes
    # an open event's plan: ``writes`` (the steps a dry run prints) and ``services`` (each
    # service's environment, name, revision and digests before, and its target)
    intent: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""
    time: str = ""
    actor: Mapping[str, str | None] | None = None
    ci_url: str | None = None
    # keys a command adds that the schema does not name, kept as written
    extra: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def is_open(self) -> bool:
        return self.status == EventStatus.OPEN

    def image(self, name: str) -> ImageRecord | None:
        return next((i for i in self.images if i.image == name), None)

    def service(self, env: str, service: str) -> ServiceRecord | None:
        e = self.environments.get(env)
        return e.services.get(service) if e is not None else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "time": self.time,
            "actor": dict(self.actor) if self.actor is not None else None,
            "command": self.command,
            "tier": self.tier,
            "status": str(self.status),
            "message": self.message,
            "reason": self.reason,
            "ci_url": self.ci_url,
            "images": [i.to_json() for i in self.images],
            "environments": {n: e.to_json() for n, e in self.environments.items()},
            "invocation": self.invocation,
            "undid": list(self.undid),
            "interrupted": self.interrupted,
            "snapshot": self.snapshot,
            "closes": self.closes,
            "intent": dict(self.intent),
            "schema_version": self.schema_version,
        }
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Event:
        """An event as stored, version 1 or 2, as a version 2 event."""
        images = doc.get("images")
        envs = doc.get("environments")
        undid = doc.get("undid")
        intent = doc.get("intent")
        interrupted = doc.get("interrupted") is True
        status = str(doc.get("status") or "")
        if interrupted and status == EventStatus.OK:
            status = EventStatus.INTERRUPTED  # version 1 recorded a Ctrl-C run as ok
        actor = doc.get("actor")
        return cls(
            command=str(doc.get("command") or ""),
            status=status,
            tier=_str(doc.get("tier")),
            images=tuple(
                ImageRecord.from_json(i)
                for i in (images if isinstance(images, list) else [])
                if isinstance(i, Mapping)
            ),
            environments={
                str(n): EnvironmentRecord.from_json(e)
                for n, e in (envs.items() if isinstance(envs, Mapping) else [])
                if isinstance(e, Mapping)
            },
            message=_str(doc.get("message")),
            reason=_str(doc.get("reason")),
            invocation=_str(doc.get("invocation")),
            undid=tuple(str(u) for u in undid if u)
            if isinstance(undid, list)
            else ((str(undid),) if isinstance(undid, str) and undid else ()),
            interrupted=interrupted,
            snapshot=_str(doc.get("snapshot")),
            closes=_str(doc.get("closes")),
            intent=dict(intent) if isinstance(intent, Mapping) else {},
            id=str(doc.get("id") or ""),
            time=str(doc.get("time") or ""),
            actor=dict(actor) if isinstance(actor, Mapping) else None,
            ci_url=_str(doc.get("ci_url")),
            extra={k: v for k, v in doc.items() if k not in _KEYS},
            schema_version=SCHEMA_VERSION,
        )


# An amendment adds to a recorded event what happened after it was written: the promotion-wide
# steps (notify) run after the event so that they can name it, and their outcomes follow it as
# an event of their own, `{command: amend, amends: <id>, steps: [...]}` (the ledger is
# append-only). Reading folds it into the event it amends.
AMEND = "amend"


def amendment(of: Event, steps: list[dict[str, Any]]) -> Event:
    """The event that adds ``steps`` (outcomes: ``as``, ``uses``, ``status``, ...) to ``of``."""
    return Event(
        command=AMEND,
        status=of.status,
        tier=of.tier,
        extra={"amends": of.id, "steps": steps},
    )


def amends(event: Event) -> str | None:
    """The id of the event ``event`` amends (None: not an amendment)."""
    target = event.extra.get("amends") if event.command == AMEND else None
    return target if isinstance(target, str) and target else None


def fold(event: Event, amendments: list[Event]) -> Event:
    """``event`` with its amendments' steps (oldest first) after its own."""
    steps = list(event.extra.get("steps") or [])
    for a in amendments:
        steps += [s for s in a.extra.get("steps") or [] if isinstance(s, Mapping)]
    return replace(event, extra={**event.extra, "steps": steps})


def read(doc: Any) -> Event | None:
    """A stored document as an event (None: not an event, e.g. a line cut short)."""
    if not isinstance(doc, Mapping) or not doc.get("command"):
        return None
    return Event.from_json(doc)
