"""Record what a writing command did, through a recorder the caller passes."""

from __future__ import annotations

from typing import Any, Protocol


class Recorder(Protocol):
    def record(self, event: dict[str, Any]) -> dict[str, Any]:
        """Store one event; return it as stored (with its id and time when the store adds them)."""
        ...


class NullRecorder:
    """Records nothing: the default until a ledger is configured."""

    def record(self, event: dict[str, Any]) -> dict[str, Any]:
        return event
