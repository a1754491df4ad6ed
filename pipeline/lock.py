"""One writer per tier: a lock object created exclusively beside the ledger.

On S3 the lock is ``<prefix>/locks/<tier>.json`` written with ``IfNoneMatch: "*"``; locally it
is a file created with O_EXCL in the ledger's folder. It holds who took it, when, and for
which command; it is released at the end of the command, on failure and on Ctrl-C. A lock
whose holder died stays until ``tierup unlock`` breaks it, once it is older than ``lock.ttl``.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.ledger.store import LOCKS
from tierup.pipeline.ledger.times import iso, iso_seconds, parse_time
from tierup.stages.errors import TierupError
from tierup.stages.wait import transient

Say = Callable[[str], None]


class LockHeld(TierupError):
    """Another run holds the tier's lock; nothing was written."""


class LockNotReleased(TierupError):
    """The run's own lock could not be deleted, even after a few tries."""


class _Held(Exception):
    """One attempt found the lock held by another run (what the wait retries on)."""

    def __init__(self, info: LockInfo) -> None:
        super().__init__(info.tier)
        self.info = info


# a lock write or release that fails for a passing reason is tried this many times
RELEASE_ATTEMPTS = 5
RELEASE_PAUSE_MAX = 2.0


@dataclass(frozen=True)
class LockInfo:
    tier: str
    command: str
    holder: dict[str, Any]
    since: datetime
    host: str
    pid: int
    token: str
    ci_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "command": self.command,
            "holder": self.holder,
            "since": iso(self.since),
            "host": self.host,
            "pid": self.pid,
            "token": self.token,
            "ci_url": self.ci_url,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LockInfo:
        return cls(
            tier=str(doc.get("tier", "")),
            command=str(doc.get("command", "")),
            holder=dict(doc.get("holder") or {}),
            since=parse_time(str(doc["since"])),
            host=str(doc.get("host", "")),
            pid=int(doc.get("pid", 0)),
            token=str(doc.get("token", "")),
            ci_url=doc.get("ci_url"),
        )

    def age(self, now: datetime) -> timedelta:
        return now - self.since

    def describe(self, now: datetime) -> str:
        who = self.holder.get("name") or "someone"
        arn = self.holder.get("arn")
        where = f"pid {self.pid} on {self.host}" + (f", {self.ci_url}" if self.ci_url else "")
        return (
            f"{who}" + (f" ({arn})" if arn else "") + f" since {iso_seconds(self.since)} "
            f"({human(self.age(now))} ago), running `{self.command}` ({where})"
        )


def human(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def key_for(tier: str) -> str:
    return f"{LOCKS}{tier}.json"


def read_lock(ledger: Ledger, tier: str) -> LockInfo | None:
    body = ledger.store.read(key_for(tier))
    if body is None:
        return None
    try:
        return LockInfo.from_json(json.loads(body))
    except (ValueError, KeyError, TypeError):
        # unreadable: treat it as held since the epoch, so that unlock may break it
        return LockInfo(tier, "unknown", {}, datetime(1970, 1, 1, tzinfo=UTC), "", 0, "")


def held_error(info: LockInfo, *, tier: str, now: datetime, ttl: int) -> LockHeld:
    stale = info.age(now).total_seconds() >= ttl
    hint = (
        f"its holder may be gone (older than lock.ttl {human(timedelta(seconds=ttl))}): "
        f"tierup unlock --tier {tier}"
        if stale
        else "wait for it (--lock-timeout DURATION) or retry later; if its holder died, "
        f"`tierup unlock --tier {tier}` breaks it once older than lock.ttl"
    )
    return LockHeld(f"tier {tier!r} is locked by {info.describe(now)}", hint=hint)


class TierLock:
    """Take and release one tier's lock."""

    def __init__(
        self,
        ledger: Ledger,
        tier: str,
        *,
        command: str,
        ttl: int,
        now: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 1.0,
    ) -> None:
        self.ledger = ledger
        self.tier = tier
        self.command = command
        self.ttl = ttl
        self.now = now or (lambda: datetime.now(UTC))
        self.sleep = sleep
        self.clock = clock
        self.interval = interval
        self.info: LockInfo | None = None

    def acquire(self, timeout: float = 0, say: Say | None = None) -> LockInfo:
        """Take the lock, waiting up to ``timeout`` seconds for its holder (tenacity's loop,
        on the injected clock and sleep)."""
        deadline = self.clock() + max(0.0, timeout)
        # one token for every attempt: a write of ours whose answer was lost (botocore retries
        # it and meets 412) is recognised as our own lock, not as another run's
        token = secrets.token_hex(8)
        try:
            # a free lock, the usual case, is taken without the retry loop (nor its import)
            return self._try(token)
        except _Held as held:
            if self.clock() >= deadline:
                raise held_error(held.info, tier=self.tier, now=self.now(), ttl=self.ttl) from None
            if say is not None:
                say(f"waiting for the lock on tier {self.tier!r}: {held.info.describe(self.now())}")
            self.sleep(self._pause(deadline))
        return self._wait(token, deadline)

    def _pause(self, deadline: float) -> float:
        return min(self.interval, max(0.0, deadline - self.clock()))

    def _wait(self, token: str, deadline: float) -> LockInfo:
        """Attempts after the first, until ``deadline``."""
        from tenacity import Retrying, retry_if_exception_type

        retrying = Retrying(
            retry=retry_if_exception_type(_Held),
            stop=lambda _state: self.clock() >= deadline,
            wait=lambda _state: self._pause(deadline),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            return retrying(self._try, token)
        except _Held as held:
            raise held_error(held.info, tier=self.tier, now=self.now(), ttl=self.ttl) from None

    def _try(self, token: str) -> LockInfo:
        """One attempt: the lock taken (or found ours), else ``_Held`` with its holder."""
        while True:
            info = LockInfo(
                tier=self.tier,
                command=self.command,
                holder=self.ledger.identity.holder(),
                since=self.now(),
                host=socket.gethostname(),
                pid=os.getpid(),
                token=token,
                ci_url=self.ledger.identity.ci_url(),
            )
            if self._create(info):
                self.info = info
                return info
            current = read_lock(self.ledger, self.tier)
            if current is None:
                continue  # released between our write and our read: try again at once
            if current.token == token:
                self.info = current  # an earlier attempt of ours was written
                return current
            raise _Held(current)

    def _create(self, info: LockInfo) -> bool:
        """Write the lock; a write that failed may still have happened, so look before failing
        (and try again, a few times, when the failure was a passing one)."""
        body = json.dumps(info.to_json(), indent=2).encode()
        for attempt in range(1, RELEASE_ATTEMPTS + 1):
            try:
                return self.ledger.store.create(key_for(self.tier), body)
            except TierupError as e:
                try:
                    current = read_lock(self.ledger, self.tier)
                except TierupError:
                    current = None
                if current is not None:
                    return current.token == info.token  # ours, or another run's
                if attempt == RELEASE_ATTEMPTS or not transient(e):
                    raise
                self.sleep(min(RELEASE_PAUSE_MAX, 0.25 * 2 ** (attempt - 1)))
        return False  # not reached: the last attempt returns or raises

    def release(self) -> None:
        """Delete the lock if it is still ours (``unlock`` may have broken it meanwhile).

        A read or delete that fails for a passing reason (throttled, a 5xx, a lost answer) is
        tried again: both are safe to repeat, and a lock left behind blocks the tier until
        ``lock.ttl``.
        """
        if self.info is None:
            return
        for attempt in range(1, RELEASE_ATTEMPTS + 1):
            try:
                current = read_lock(self.ledger, self.tier)
                if current is not None and current.token == self.info.token:
                    self.ledger.store.delete(key_for(self.tier))
                break
            except TierupError as e:
                if attempt == RELEASE_ATTEMPTS or not transient(e):
                    raise LockNotReleased(
                        f"the lock on tier {self.tier!r} could not be released: {e.message}",
                        hint="what the run did stands; once the lock is older than lock.ttl, "
                        f"`tierup unlock --tier {self.tier}` breaks it",
                    ) from e
                self.sleep(min(RELEASE_PAUSE_MAX, 0.25 * 2 ** (attempt - 1)))
        self.info = None


# Set while a guarded command (lock -> plan -> gates -> run -> record) runs its block: the
# executors refuse to write outside it, so no entry point skips the lock, the gates or the ledger.
_GUARDED: ContextVar[bool] = ContextVar("tierup_guarded", default=False)


class Unguarded(TierupError):
    """A writer called outside a guarded command (exit 1, before any write)."""


def require_guard(what: str) -> None:
    """Refuse ``what`` (a writer) outside ``holding``: every write runs under the tier's lock,
    after the gates, with a ledger event."""
    if not _GUARDED.get():
        raise Unguarded(
            f"{what} writes only inside a guarded command (tier lock, gates, ledger)",
            hint="as a library, use tierup.pipeline.api.Tierup (promote, stamp, deploy, rollback, "
            "restore); to compose your own steps, use the tierup.stages package",
        )


@contextmanager
def holding(lock: TierLock | None, timeout: float = 0, say: Say | None = None) -> Iterator[None]:
    """Hold ``lock`` (None: no lock, as for a dry run) for the block, released however it ends.

    The block is a guarded command's: the executors it calls may write (``require_guard``).
    """
    if lock is not None:
        lock.acquire(timeout, say)
    token = _GUARDED.set(True)
    try:
        yield
    finally:
        _GUARDED.reset(token)
        if lock is not None:
            lock.release()
