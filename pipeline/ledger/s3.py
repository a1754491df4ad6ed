"""The ledger in S3: one object per event, markers per tier and an index.

On S3 a read must not grow with the history: every event of a tier also gets an empty marker
``by-tier/<tier>/<id>`` (written before the event), and ``index/tiers/<tier>.json`` (and
``index/all.json`` for every tier together) keeps the newest events themselves and the head.
A read takes the index, lists the markers (or events) written since a little before its head
(what a concurrent or failed index update missed, and open write-ahead events, which are not
indexed until the event closing them is written) and reads only those. Reads never write: a
ledger without an index is read in full until its next event is written, which builds it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from tierup.pipeline.events import EventStatus
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.ledger.s3_store import S3Store
from tierup.pipeline.ledger.store import Store
from tierup.stages.errors import AwsError

EVENTS = "events/"
INDEX = "index/"
BY_TIER = "by-tier/"
# events each index keeps (an interrupted-or-closed pair is two): reads of the last 200 runs
INDEX_WINDOW = 400
INDEX_VERSION = 1
# an index update lost to a concurrent one is healed by the next read: it lists what was
# written since this long before the index's head
CATCH_UP = timedelta(minutes=10)
MAX_KEY_ATTEMPTS = 8


class S3Ledger(Ledger):
    """One object per event under ``<prefix>/events/<id>.json``; ids sort by time.

    Indexed (see the module's docstring): a read of one tier, or of the newest events of all,
    costs a few requests whatever the history's length, as long as it stays within the index.
    """

    def __init__(self, store: S3Store, **kw: Any) -> None:
        super().__init__(**kw)
        self._store = store
        # open events this process wrote and left out of the index: their bodies, by key
        self._unindexed: dict[str, dict[str, Any]] = {}

    @property
    def store(self) -> Store:
        return self._store

    def _append(self, event: dict[str, Any]) -> dict[str, Any]:
        for _ in range(MAX_KEY_ATTEMPTS):
            body = json.dumps(event, sort_keys=False, default=str).encode()
            tier = event.get("tier")
            if isinstance(tier, str) and tier:
                # before the event: a marker without its event is skipped, never the reverse
                self._store.create(f"{BY_TIER}{tier}/{event['id']}", b"")
            key = f"{EVENTS}{event['id']}.json"
            if self._create_event(key, body):
                if event.get("status") == EventStatus.OPEN:
                    # a write-ahead event is found by the listing since the head until the
                    # write that closes it indexes both: its own index update would cost six
                    # requests before the command's first write
                    self._unindexed[key] = event
                else:
                    self._index_add(event)
                return event
            # another writer took this key: keep both events, ours under a new one
            event = {**event, "id": self.ids(self.now())}
        raise AwsError(
            f"could not write a ledger event to {self.where}: {MAX_KEY_ATTEMPTS} keys were taken",
            hint="retry; if it persists, check that nothing else writes under this prefix",
        )

    def _create_event(self, key: str, body: bytes) -> bool:
        """Write the event; a key found taken by these very bytes is our own earlier attempt
        (a write whose answer was lost, retried by the SDK into 412), not another writer's."""
        try:
            if self._store.create(key, body):
                return True
        except AwsError:
            try:
                found = self._store.read(key)
            except AwsError:
                found = None
            if found != body:
                raise
            return True
        return self._store.read(key) == body

    # -- the index -----------------------------------------------------------------

    @staticmethod
    def _index_key(tier: str | None) -> str:
        return f"{INDEX}all.json" if tier is None else f"{INDEX}tiers/{tier}.json"

    def _read_index(self, tier: str | None) -> dict[str, Any] | None:
        body = self._store.read(self._index_key(tier))
        if body is None:
            return None
        try:
            doc = json.loads(body)
        except json.JSONDecodeError:
            return None
        if not isinstance(doc, dict) or doc.get("version") != INDEX_VERSION:
            return None
        if not isinstance(doc.get("events"), list):
            return None
        return doc

    def _write_index(
        self, tier: str | None, head: str | None, events: list[dict[str, Any]]
    ) -> None:
        doc = {"version": INDEX_VERSION, "head": head, "events": events[:INDEX_WINDOW]}
        body = json.dumps(doc, sort_keys=False, default=str).encode()
        # the index only saves reads: the events stand without it, and the next read heals it
        with contextlib.suppress(AwsError):
            self._store.put(self._index_key(tier), body)

    def _read_events(self, keys: list[str]) -> Iterator[dict[str, Any]]:
        for key in keys:
            if key in self._unindexed:
                yield self._unindexed[key]  # written by this process: no need to read it back
                continue
            body = self._store.read(key)
            if body is None:
                continue  # a marker whose event was never written (a crash in between)
            try:
                event = json.loads(body)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                yield event

    def _since(self, tier: str | None, head: str | None) -> list[str]:
        """Keys of the events (of ``tier``) written since a little before ``head``, newest first."""
        after = None
        if head:
            with contextlib.suppress(ValueError):
                when = datetime.strptime(head[:23], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
                after = f"{when - CATCH_UP:%Y%m%dT%H%M%S.%fZ}"
        if tier is None:
            listed = self._store.keys(EVENTS, after=after)
            ids = [k[len(EVENTS) : -len(".json")] for k, _ in listed if k.endswith(".json")]
        else:
            prefix = f"{BY_TIER}{tier}/"
            ids = [k[len(prefix) :] for k, _ in self._store.keys(prefix, after=after)]
        return [f"{EVENTS}{i}.json" for i in sorted(ids, reverse=True)]

    def _index(
        self, tier: str | None, written: dict[str, Any] | None = None
    ) -> list[dict[str, Any]] | None:
        """The newest events (of ``tier``) from the index, brought up to date (None: no index);
        ``written``: an event just written, to add and save (reads alone never write)."""
        doc = self._read_index(tier)
        if doc is None:
            return None
        events = [e for e in doc["events"] if isinstance(e, dict) and isinstance(e.get("id"), str)]
        if written is not None and all(e["id"] != written["id"] for e in events):
            events.append(written)
        known = {e["id"] for e in events}
        new = [k for k in self._since(tier, doc.get("head")) if k[len(EVENTS) : -5] not in known]
        found = [e for e in self._read_events(new) if tier is None or e.get("tier") == tier]
        events = sorted(events + found, key=lambda e: str(e["id"]), reverse=True)
        if written is not None and events and events[0]["id"] != doc.get("head"):
            self._write_index(tier, str(events[0]["id"]), events)
        return events

    def _index_add(self, event: dict[str, Any]) -> None:
        """Add a written event to the indexes (the first write to a ledger without one makes
        them, from one full read); a failure here loses nothing, the next write heals it."""
        tier = event.get("tier")
        try:
            every = self._index(None, written=event)
            if every is None:
                self._build()
                return
            if not isinstance(tier, str) or not tier:
                return
            if self._index(tier, written=event) is None and len(every) < INDEX_WINDOW:
                # the tier's first event: the index of all holds the whole history
                found = [e for e in every if e.get("tier") == tier]
                self._write_index(tier, str(found[0]["id"]), found)
        except AwsError:
            pass

    def _build(self) -> None:
        """Read every event once and write the index of all and of each tier."""
        events = list(self._read_events(self._all_keys()))
        tiers: dict[str | None, list[dict[str, Any]]] = {None: events}
        for event in events:
            name = event.get("tier")
            if isinstance(name, str) and name:
                tiers.setdefault(name, []).append(event)
        for name, found in tiers.items():
            self._write_index(name, str(found[0]["id"]) if found else None, found)

    def _all_keys(self) -> list[str]:
        return sorted((k for k, _ in self._store.keys(EVENTS) if k.endswith(".json")), reverse=True)

    def _newest_first(self, tier: str | None = None) -> Iterator[dict[str, Any]]:
        indexed = self._index(tier)
        if indexed is None and tier is not None:
            indexed = self._index(None)  # a tier with no event yet: the index of all has them
        if indexed is None:
            # no index (a ledger written before it, or a tier's first event still to come):
            # every event, until the next write makes the index
            yield from self._read_events(self._all_keys())
            return
        yield from indexed
        if len(indexed) < INDEX_WINDOW:
            return  # the index holds the whole history (of the tier)
        # asked for more than the index keeps: the older events, one by one
        oldest = f"{EVENTS}{indexed[-1]['id']}.json"
        yield from self._read_events([k for k in self._all_keys() if k < oldest])
