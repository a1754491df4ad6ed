"""A promotion from a test goes the library's way: through the guard (the tier's lock, the
gates, one ledger event), never around it. There is no unguarded promotion to call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.guard import Guard
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.ledger.identity import Identity
from tierup.pipeline.ledger.local import LocalLedger
from tierup.pipeline.promote import Progress, RunOptions, Source
from tierup.pipeline.release import run_promotion
from tierup.pipeline.results import CommandResult


def promote(
    config: Config,
    clients: Clients,
    *,
    tier: str,
    source: Source = Source(),
    images: list[str] | None = None,
    deploy: bool = True,
    options: RunOptions | None = None,
    progress: Progress | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    command: str = "promote",
    ledger: Ledger | None = None,
    guard: Guard | None = None,
) -> CommandResult:
    """`Tierup.promote` with the test's own clients (writes hooks, sleep, clock).

    ``ledger``: where the event goes; by default a ledger of the test's setup (``setup_ledger``),
    so that the world's own ledger, the one its command line reads, shows only what the test
    records there itself (pass ``ledger=`` for that).
    """
    return run_promotion(
        config,
        clients,
        ledger or setup_ledger(clients),
        tier=tier,
        source=source,
        images=images,
        deploy=deploy,
        options=options,
        guard=guard or Guard(),
        now=now,
        progress=progress,
        command=command,
    )


def setup_ledger(clients: Clients) -> Ledger:
    """The ledger of a test's setup promotions, apart from the world's (under its root)."""
    root = clients.repo_path
    return LocalLedger(root / ".tierup-setup" / "ledger.jsonl", identity=Identity({}, root))
