"""The ledger: an append-only record of every writing command, and a small document store.

Two backends. The default is a JSON-lines file (``.tierup/ledger.jsonl``) on the machine that
runs tierup. A team sets ``ledger: {s3: s3://bucket/prefix}``: CI runners are ephemeral, so
the record lives in S3, one object per event under a time-sortable key, written with
``IfNoneMatch: "*"`` so that no writer ever replaces another's event.

The same backend keeps documents (snapshots) and the per-tier locks (``pipeline.lock``),
through the ``Store`` each ledger exposes.

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
import dataclasses
import fcntl
import getpass
import json
import os
import re
import secrets
import subprocess
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, overload

from tierup.pipeline.config import Config, EcrRegistry
from tierup.pipeline.events import _KEYS as EVENT_KEY_ORDER
from tierup.pipeline.events import Event, EventStatus, amends, fold
from tierup.pipeline.events import read as read_event
from tierup.pipeline.redaction import redact_all
from tierup.pipeline.sessions import AwsSessions
from tierup.stages.adapters.aws import error_code, raise_translated
from tierup.stages.errors import AwsError, ConflictError, InputError

DEFAULT_DIR = ".tierup"
DEFAULT_FILE = "ledger.jsonl"
EVENTS = "events/"
DOCUMENTS = "documents/"
ORDER = "documents-order/"
LOCKS = "locks/"
INDEX = "index/"
BY_TIER = "by-tier/"
# events each index keeps (an interrupted-or-closed pair is two): reads of the last 200 runs
INDEX_WINDOW = 400
INDEX_VERSION = 1
# an index update lost to a concurrent one is healed by the next read: it lists what was
# written since this long before the index's head
CATCH_UP = timedelta(minutes=10)
MAX_KEY_ATTEMPTS = 8
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# S3 answers a lost conditional write with 412; a concurrent one still in flight gives 409
_KEY_TAKEN = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})

# every event carries these keys, present even when empty (``pipeline.events`` writes them)
EVENT_KEYS = EVENT_KEY_ORDER

Clock = Callable[[], datetime]
IdMaker = Callable[[datetime], str]


def new_event_id(now: datetime) -> str:
    """Time-sortable and unique enough: ``20261126T103000.123456Z-1a2b3c4d``."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(4)}"


def iso(now: datetime) -> str:
    return now.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_seconds(now: datetime) -> str:
    """For messages: to the second."""
    return iso(now.replace(microsecond=0))


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class DocumentExists(ConflictError):
    """A document of that kind and name exists; documents are never overwritten."""


# -- who and where -----------------------------------------------------------------


def ci_url(environ: Mapping[str, str]) -> str | None:
    """The URL of the CI run, when tierup runs inside one."""
    if environ.get("GITHUB_RUN_ID") and environ.get("GITHUB_REPOSITORY"):
        server = environ.get("GITHUB_SERVER_URL") or "https://github.com"
        return f"{server}/{environ['GITHUB_REPOSITORY']}/actions/runs/{environ['GITHUB_RUN_ID']}"
    for var in ("CI_JOB_URL", "CI_PIPELINE_URL", "BUILD_URL", "CODEBUILD_BUILD_URL"):
        if environ.get(var):
            return environ[var]
    return None


def actor_name(environ: Mapping[str, str], root: Path) -> str:
    """The CI user in CI, else git's user.name, else the OS user."""
    for var in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN"):
        if environ.get(var):
            return environ[var]
    try:
        # git itself reads the repository's, the user's and the system's config (includes and
        # worktrees too); importing GitPython for this one value would cost more than the call
        found = subprocess.run(
            ["git", "config", "--get", "user.name"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    except (OSError, subprocess.SubprocessError):  # no git: fall through to the OS user
        pass
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


@dataclass
class Identity:
    """Who acts: resolved once per process.

    The STS caller lookup starts in the background (``prefetch``) so that it overlaps the
    command's own reads instead of delaying them.
    """

    environ: Mapping[str, str]
    root: Path
    caller_arn: Callable[[], str | None] = lambda: None
    _name: str | None = None
    _arn: list[str | None] | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prefetch(self) -> None:
        with self._lock:
            if self._thread is not None or self._arn is not None:
                return
            self._thread = threading.Thread(target=self._resolve_arn, daemon=True)
            self._thread.start()

    def _resolve_arn(self) -> None:
        arn = self.caller_arn()
        self._arn = [arn]

    def name(self) -> str:
        with self._lock:
            if self._name is None:
                self._name = actor_name(self.environ, self.root)
            return self._name

    def arn(self) -> str | None:
        self.prefetch()
        thread = self._thread
        if thread is not None:
            thread.join()
        return self._arn[0] if self._arn else None

    def actor(self) -> dict[str, str | None]:
        return {"name": self.name(), "arn": self.arn()}

    def holder(self) -> dict[str, str | None]:
        """Who holds a lock: the name now, the ARN if it is already known (never waits)."""
        return {"name": self.name(), "arn": self._arn[0] if self._arn else None}

    def ci_url(self) -> str | None:
        return ci_url(self.environ)


# -- stores ------------------------------------------------------------------------


class Store(Protocol):
    """Keyed blobs with exclusive create: what documents and locks need from a backend."""

    @property
    def where(self) -> str:
        """Where the store lives, for messages (``s3://bucket/prefix``, a folder)."""
        ...

    def create(self, key: str, body: bytes) -> bool:
        """Write ``key`` only if it does not exist; False when it does."""
        ...

    def read(self, key: str) -> bytes | None: ...

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str) -> list[tuple[str, datetime]]:
        """Keys under ``prefix`` (relative to the store) with their last-modified times."""
        ...


class LocalStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def where(self) -> str:
        return str(self.folder)

    def _path(self, key: str) -> Path:
        return self.folder / key

    def create(self, key: str, body: bytes) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        return True

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def keys(self, prefix: str) -> list[tuple[str, datetime]]:
        base = self._path(prefix)
        folder = base if prefix.endswith("/") else base.parent
        if not folder.is_dir():
            return []
        out = []
        for p in folder.iterdir():
            key = str(p.relative_to(self.folder))
            if p.is_file() and key.startswith(prefix):
                out.append((key, datetime.fromtimestamp(p.stat().st_mtime, UTC)))
        return out


class S3Store:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _fail(self, e: Exception, action: str) -> None:
        if error_code(e) == "NoSuchBucket":
            raise AwsError(
                f"{action}: bucket {self.bucket!r} does not exist",
                hint="create it, or fix ledger.s3 in envs.yaml",
            ) from e
        raise_translated(e, action, hint="check ledger.s3 in envs.yaml and the caller's S3 access")

    def create(self, key: str, body: bytes) -> bool:
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=body,
                IfNoneMatch="*",
                ContentType="application/json",
            )
        except Exception as e:
            if error_code(e) in _KEY_TAKEN:
                return False
            self._fail(e, f"writing {self.where}{key}")
        return True

    def read(self, key: str) -> bytes | None:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return bytes(resp["Body"].read())
        except Exception as e:
            if error_code(e) in ("NoSuchKey", "404", "NotFound"):
                return None
            self._fail(e, f"reading {self.where}{key}")
        return None

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as e:
            self._fail(e, f"deleting {self.where}{key}")

    def put(self, key: str, body: bytes) -> None:
        """Write ``key``, replacing it (the ledger's index, which is rebuilt from the events)."""
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=body, ContentType="application/json"
            )
        except Exception as e:
            self._fail(e, f"writing {self.where}{key}")

    def keys(self, prefix: str, *, after: str | None = None) -> list[tuple[str, datetime]]:
        """As ``Store.keys``; ``after``: only the keys that sort after ``prefix + after``."""
        out: list[tuple[str, datetime]] = []
        extra = {"StartAfter": self._key(prefix + after)} if after is not None else {}
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix), **extra
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    modified = obj["LastModified"]
                    if modified.tzinfo is None:
                        modified = modified.replace(tzinfo=UTC)
                    out.append((obj["Key"][len(self.prefix) :], modified))
        except Exception as e:
            self._fail(e, f"listing {self.where}{prefix}")
        return out


# -- the ledger --------------------------------------------------------------------


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


class LocalLedger(Ledger):
    """Events as JSON lines in one file; documents and locks in the folder beside it."""

    def __init__(self, path: Path, **kw: Any) -> None:
        super().__init__(**kw)
        self.path = path
        self._store = LocalStore(path.parent)

    @property
    def store(self) -> Store:
        return self._store

    @property
    def where(self) -> str:
        return str(self.path)

    def _append(self, event: dict[str, Any]) -> dict[str, Any]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(event, sort_keys=False, default=str) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            # one write under an exclusive lock: concurrent writers never interleave a line
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return event

    def _newest_first(self, tier: str | None = None) -> Iterator[dict[str, Any]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        for line in reversed(lines):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: the others stand
            if isinstance(event, dict):
                yield event


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


# -- wiring ------------------------------------------------------------------------


def split_s3_url(url: str) -> tuple[str, str]:
    rest = url[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix


def _region(config: Config) -> str:
    if config.ledger is not None and config.ledger.region:
        return config.ledger.region
    if isinstance(config.registry, EcrRegistry):
        return config.registry.region
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def open_ledger(
    config: Config,
    sessions: AwsSessions,
    *,
    root: Path,
    environ: Mapping[str, str] | None = None,
    now: Clock | None = None,
    ids: IdMaker = new_event_id,
) -> Ledger:
    """The configured ledger: S3 when ``ledger.s3`` is set, else a file under ``root/.tierup``."""
    env = os.environ if environ is None else environ
    region = _region(config)
    identity = Identity(
        environ=dict(env),
        root=root,
        caller_arn=lambda: sessions.caller_arn(region=region),
    )
    identity.prefetch()
    lc = config.ledger
    if lc is not None and lc.s3:
        bucket, prefix = split_s3_url(lc.s3)
        client = sessions.client("s3", region=region, role_arn=lc.role_arn)
        return S3Ledger(S3Store(client, bucket, prefix), identity=identity, now=now, ids=ids)
    path = Path(lc.path) if lc is not None and lc.path else Path(DEFAULT_DIR) / DEFAULT_FILE
    if not path.is_absolute():
        path = root / path
    return LocalLedger(path, identity=identity, now=now, ids=ids)


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
