"""Keyed blobs with exclusive create: the store protocol, and the store in a folder."""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

LOCKS = "locks/"


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
