"""The one guard every writing command runs under: the tier's lock, the open events a dead run
left reconciled first, the revisions the ledger names kept from retention, the recorder that
adds the run's message, reason and fixes to its event, and the result's last words.

    lock -> reconcile -> plan -> gates -> run -> record
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.events import Event, amends
from tierup.pipeline.ledger.base import Ledger, task_definitions_in_use
from tierup.pipeline.lock import TierLock
from tierup.pipeline.promote import RunOptions
from tierup.pipeline.reconcile import reconcile
from tierup.pipeline.results import CommandResult
from tierup.stages.errors import InputError

Now = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Guard:
    """What a writing command runs under, from its flags."""

    force: bool = False
    reason: str | None = None
    message: str | None = None
    lock_timeout: float = 0

    def check(self) -> None:
        if self.force and not (self.reason or "").strip():
            raise InputError(
                "--force needs --reason TEXT",
                hint="say why the gates are passed; the ledger keeps it",
            )


class Annotating:
    """A Recorder that adds the run's message and reason (and image fixes) to the event."""

    def __init__(
        self,
        ledger: Ledger,
        guard: Guard,
        images: Mapping[str, Mapping[str, Any]] | None = None,
        undid: tuple[str, ...] = (),
    ) -> None:
        self.ledger = ledger
        self.guard = guard
        self.images = dict(images or {})
        self.undid = undid
        self.last: Event | None = None

    def record(self, event: Event, /) -> Event:
        if amends(event) is not None:
            # what ran after the run's event (notify): the run's event stays the last
            return self.ledger.record(event)
        out = dataclasses.replace(
            event,
            message=self.guard.message or event.message,
            reason=self.guard.reason or event.reason,
            undid=tuple(sorted({*event.undid, *self.undid})),
            images=tuple(
                dataclasses.replace(i, **self.images.get(i.image, {})) for i in event.images
            ),
        )
        self.last = self.ledger.record(out)
        return self.last


def tier_lock(
    config: Config, clients: Clients, ledger: Ledger, tier: str, *, command: str, dry_run: bool
) -> TierLock | None:
    if dry_run:
        return None
    return TierLock(
        ledger,
        tier,
        command=command,
        ttl=config.lock.ttl,
        sleep=clients.sleep,
        clock=clients.clock,
        interval=min(max(clients.poll_interval, 0.1), 2.0),
    )


def protect_revisions(options: RunOptions, ledger: Ledger) -> RunOptions:
    """Options whose retention keeps the task definitions the ledger still names.

    Read under the tier's lock, so that what the lock's previous holder recorded counts too.
    """
    return dataclasses.replace(
        options, protected=options.protected | task_definitions_in_use(ledger)
    )


def reconcile_first(
    config: Config, clients: Clients, ledger: Ledger, tier: str, *, dry_run: bool
) -> list[Event]:
    """Under the tier's lock, before planning: close the open events a dead run left."""
    return [] if dry_run else reconcile(config, clients, ledger, tier)


def finish(
    result: CommandResult,
    recorder: Annotating,
    ledger: Ledger,
    reconciled: list[Event] | None = None,
) -> CommandResult:
    for e in reconciled or []:
        result.notes.append(
            f"reconciled {e.closes} (`{e.invocation or e.command}`, which stopped before "
            f"recording its end): recorded what it left as {e.id}"
        )
    if reconciled:
        result.data["reconciled"] = [e.closes for e in reconciled]
    if recorder.last is not None:
        result.data["event"] = recorder.last.id
        result.data["ledger"] = ledger.where
    return result
