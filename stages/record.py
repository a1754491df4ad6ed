"""Record what a writing command did, through a recorder the caller passes.

The event type is the recorder's own (the ``pipeline`` ledger records typed, versioned events);
a recorder returns the event as stored (with its id and time when the store adds them).
"""

from __future__ import annotations

from typing import Protocol, TypeVar

E = TypeVar("E")


class Recorder(Protocol[E]):
    def record(self, event: E, /) -> E:
        """Store one event; return it as stored."""
        ...


class NullRecorder(Recorder[E]):
    """Records nothing: the default until a ledger is configured."""

    def record(self, event: E, /) -> E:
        return event
