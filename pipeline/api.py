"""tierup as a library: the writing commands as the CLI runs them, never around the guard.

Every method takes the tier's lock, plans (reads only), checks the tier's gates, runs and
records one ledger event, exactly as ``tierup promote`` and the other commands do (the
executors underneath refuse to write outside that guard):

    from tierup.pipeline.api import Tierup
    from tierup.pipeline.promote import Source

    tierup = Tierup.load("envs.yaml")
    result = tierup.promote("staging", source=Source("commit", sha))
    print(result.status, result.exit_code)

The stages themselves (``stages``: resolve, retag, the strategies) compose without envs.yaml;
see ``stages.account``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tierup.pipeline import (
    config_load,
    guard,
    release,
    rollback_tier,
    saved_plan,
    saved_plan_commands,
    snapshot,
    undo_run,
)
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.ledger.configured import open_ledger
from tierup.pipeline.promote import Progress, RunOptions, Source
from tierup.pipeline.results import CommandResult


@dataclass
class Tierup:
    """One envs.yaml's world: its clients (made from it) and its ledger."""

    config: Config
    clients: Clients
    ledger: Ledger
    guard: guard.Guard = field(default_factory=guard.Guard)

    @classmethod
    def load(cls, path: str | Path = "envs.yaml", *, root: Path | None = None) -> Tierup:
        """Read envs.yaml; the local ledger, if configured so, lives under ``root`` (cwd)."""
        cfg = config_load.load(path)
        clients = Clients.from_environment(cfg, os.environ)
        ledger = open_ledger(cfg, clients.sessions, root=root or Path.cwd())
        return cls(config=cfg, clients=clients, ledger=ledger)

    def promote(
        self,
        tier: str,
        *,
        source: Source = Source(),
        images: list[str] | None = None,
        deploy: bool = True,
        options: RunOptions | None = None,
        progress: Progress | None = None,
    ) -> CommandResult:
        """`tierup promote --tier TIER`."""
        return release.run_promotion(
            self.config,
            self.clients,
            self.ledger,
            tier=tier,
            source=source,
            images=images,
            deploy=deploy,
            options=options,
            guard=self.guard,
            progress=progress,
        )

    def stamp(
        self,
        tier: str,
        *,
        source: Source | None = None,
        images: list[str] | None = None,
        options: RunOptions | None = None,
        progress: Progress | None = None,
    ) -> CommandResult:
        """`tierup stamp --tier TIER`."""
        return release.stamp(
            self.config,
            self.clients,
            self.ledger,
            tier=tier,
            source=source,
            images=images,
            options=options,
            guard=self.guard,
            progress=progress,
        )

    def deploy(
        self, env: str, *, options: RunOptions | None = None, progress: Progress | None = None
    ) -> CommandResult:
        """`tierup deploy --env ENV`."""
        return release.run_deploy(
            self.config,
            self.clients,
            self.ledger,
            env=env,
            options=options,
            guard=self.guard,
            progress=progress,
        )

    def rollback(
        self,
        env: str,
        *,
        service: str | None = None,
        to: str | None = None,
        options: RunOptions | None = None,
        progress: Progress | None = None,
    ) -> CommandResult:
        """`tierup rollback service` (with ``service``) or `tierup rollback cluster`."""
        return undo_run.rollback(
            self.config,
            self.clients,
            self.ledger,
            env=env,
            service=service,
            all_services=service is None,
            to=to,
            options=options,
            lock_timeout=self.guard.lock_timeout,
            progress=progress,
        )

    def apply(self, plan: str | Path, *, progress: Progress | None = None) -> CommandResult:
        """`tierup apply PLAN`: a plan saved with `--out`, exactly as reviewed; a plan whose
        world changed since raises ``saved_plan.StalePlan`` before any write."""
        path = Path(plan)
        return saved_plan_commands.apply(
            self.config,
            self.clients,
            self.ledger,
            saved_plan.load(path),
            path=path,
            lock_timeout=self.guard.lock_timeout,
            progress=progress,
        )

    def rollback_tier(
        self,
        tier: str,
        *,
        to: str | None = None,
        steps: int | None = None,
        images: list[str] | None = None,
        options: RunOptions | None = None,
        progress: Progress | None = None,
    ) -> CommandResult:
        """`tierup rollback tier --tier TIER [--to DIGEST|TAG | --steps N]`."""
        return rollback_tier.rollback_tier(
            self.config,
            self.clients,
            self.ledger,
            tier=tier,
            to=to,
            steps=steps,
            images=images,
            options=options,
            guard=self.guard,
            progress=progress,
        )

    def restore(
        self,
        env: str,
        *,
        name: str = snapshot.LATEST,
        options: RunOptions | None = None,
        progress: Progress | None = None,
    ) -> CommandResult:
        """`tierup restore --env ENV --snapshot NAME` (default: the newest snapshot)."""
        return snapshot.restore(
            self.config,
            self.clients,
            self.ledger,
            env=env,
            snapshot=name,
            options=options,
            lock_timeout=self.guard.lock_timeout,
            progress=progress,
        )
