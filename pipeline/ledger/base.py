"""The ledger: record events, read them newest first (amendments folded in), and documents."""

from __future__ import annotations

import dataclasses
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, overload

from tierup.pipeline.events import _KEYS as EVENT_KEY_ORDER
from tierup.pipeline.events import Event, amends, fold
from tierup.pipeline.events import read as read_event
from tierup.pipeline.ledger.identity import Identity
from tierup.pipeline.ledger.store import Store
from tierup.pipeline.ledger.times import Clock, IdMaker, iso, new_event_id
from tierup.pipeline.redaction import redact_all
from tierup.stages.errors import ConflictError, InputError

DOCUMENTS = "documents/"
ORDER = "documents-order/"
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

# every event carries these keys, present even when empty (``pipeline.events`` writes them)
EVENT_KEYS = EVENT_KEY_ORDER


class DocumentExists(ConflictError):
    """A document of that kind and name exists; documents are never overwritten."""


def _check_name(what: str, value: str) -> None:
    if not _NAME_RE.match(value):
        raise InputError(
            f"{what} {value!r} is not a valid name",
            hint="use letters, digits, '_', '.' and '-' (at most 128)",
        )


def matches(
    event: Event,
    *,
    command: str | None = None,
    tier: str | None = None,
    image: str | None = None,
    env: str | None = None,
) -> bool:
    """``command`` matches exactly, or as the first word (``rollback`` -> ``rollback tier``)."""
    cmd = event.command
    if command is not None and cmd != command and not cmd.startswith(command + " "):
        return False
    if tier is not None and event.tier != tier:
        return False
    if image is not None and event.image(image) is None:
        return False
    return env is None or env in event.environments


class Ledger(ABC):
    """A Recorder (``stages.record``) that keeps every event, plus a document store."""

    def __init__(
        self,
        *,
        identity: Identity,
        now: Clock | None = None,
        ids: IdMaker = new_event_id,
    ) -> None:
        self.identity = identity
        self.now: Clock = now or (lambda: datetime.now(UTC))
        self.ids = ids

    @property
    @abstractmethod
    def store(self) -> Store:
        """Where documents and locks live, beside the events."""

    @property
    def where(self) -> str:
        return self.store.where

    def stamp(self, event: Event) -> Event:
        """The event as it will be stored: id, time, actor and CI URL added."""
        when = self.now()
        return dataclasses.replace(
            event,
            id=self.ids(when),
            time=iso(when),
            actor=self.identity.actor(),
            ci_url=event.ci_url or self.identity.ci_url(),
        )

    @overload
    def record(self, event: Event, /) -> Event: ...

    @overload
    def record(self, event: Mapping[str, Any], /) -> dict[str, Any]: ...

    def record(self, event: Event | Mapping[str, Any], /) -> Event | dict[str, Any]:
        """Append one event; return it as stored (a document given as JSON, as JSON)."""
        typed = event if isinstance(event, Event) else Event.from_json(event)
        stored = self.stamp(typed)
        doc = self._append(redact_all(stored.to_json()))
        if isinstance(event, Event):
            return dataclasses.replace(stored, id=str(doc["id"]))
        return doc

    @abstractmethod
    def _append(self, event: dict[str, Any]) -> dict[str, Any]: ...

    @abstractmethod
    def _newest_first(self, tier: str | None = None) -> Iterator[dict[str, Any]]:
        """Events newest first: every event, or at least every event of ``tier``."""

    def read(
        self,
        *,
        command: str | None = None,
        tier: str | None = None,
        image: str | None = None,
        env: str | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events newest first, filtered, of any schema version, as typed events."""
        out: list[Event] = []
        if limit is not None and limit <= 0:
            return out
        closed: set[str] = set()
        amended: dict[str, list[Event]] = {}  # id -> its amendments, newest first
        listed: dict[str, int] = {}  # id -> its place in ``out``
        for doc in self._newest_first(tier):
            event = read_event(doc)
            if event is None:
                continue
            target = amends(event)
            if target is not None:  # folded into the event it amends, never listed
                if target in listed:  # read after it (ids of one instant)
                    out[listed[target]] = fold(out[listed[target]], [event])
                else:
                    amended.setdefault(target, []).append(event)
                continue
            if event.closes:
                closed.add(event.closes)
            if event.is_open and event.id in closed:
                continue  # its run closed it: the closing event says what happened
            if event.id in amended:
                event = fold(event, amended.pop(event.id)[::-1])
            if matches(event, command=command, tier=tier, image=image, env=env):
                listed[event.id] = len(out)
                out.append(event)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def events(
        self,
        *,
        command: str | None = None,
        tier: str | None = None,
        image: str | None = None,
        env: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Events newest first, filtered, as JSON documents of the current schema."""
        found = self.read(command=command, tier=tier, image=image, env=env, limit=limit)
        return [e.to_json() for e in found]

    # -- documents (snapshots) -----------------------------------------------------

    def put_document(self, kind: str, name: str, doc: dict[str, Any]) -> None:
        _check_name("document kind", kind)
        _check_name("document name", name)
        body = json.dumps(redact_all(doc), indent=2, sort_keys=True, default=str).encode()
        if not self.store.create(f"{DOCUMENTS}{kind}/{name}.json", body):
            raise DocumentExists(
                f"{kind} {name!r} already exists in {self.where}",
                hint="documents are never overwritten: pick another name",
            )
        # S3's LastModified has one-second steps: a time-sortable marker keeps the order exact
        self.store.create(f"{ORDER}{kind}/{self.ids(self.now())}--{name}", b"")

    def get_document(self, kind: str, name: str) -> dict[str, Any] | None:
        _check_name("document kind", kind)
        _check_name("document name", name)
        body = self.store.read(f"{DOCUMENTS}{kind}/{name}.json")
        if body is None:
            return None
        doc = json.loads(body)
        return doc if isinstance(doc, dict) else None

    def list_documents(self, kind: str) -> list[str]:
        """Names of the documents of ``kind``, oldest first."""
        _check_name("document kind", kind)
        prefix = f"{DOCUMENTS}{kind}/"
        found = sorted(
            (modified, key[len(prefix) : -len(".json")])
            for key, modified in self.store.keys(prefix)
            if key.endswith(".json") and "/" not in key[len(prefix) :]
        )
        order = f"{ORDER}{kind}/"
        ordered = [
            key[len(order) :].split("--", 1)[1]
            for key, _ in sorted(self.store.keys(order))
            if "--" in key[len(order) :]
        ]
        names = {name for _, name in found}
        out = [n for n in dict.fromkeys(ordered) if n in names]
        # a document whose marker was never written (a crash between the two writes)
        listed = set(out)
        return out + [n for _, n in found if n not in listed]


def task_definitions_in_use(
    ledger: Ledger, *, env: str | None = None, limit: int = 200
) -> set[str]:
    """Task definitions the recent events name (before and after): retention must keep them."""
    out: set[str] = set()
    for event in ledger.read(env=env, limit=limit):
        for env_name, e in event.environments.items():
            if env is not None and env_name != env:
                continue
            for svc in e.services.values():
                out.update(
                    td for td in (svc.task_definition_before, svc.task_definition_after) if td
                )
    return out
