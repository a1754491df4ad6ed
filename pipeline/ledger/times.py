"""The ledger's clock, its event ids and its time format."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime

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
