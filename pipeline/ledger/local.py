"""The ledger in a file: events as JSON lines, documents and locks in the folder beside it."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.ledger.store import LocalStore, Store


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
