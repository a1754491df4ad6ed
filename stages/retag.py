"""Point a tag at a manifest: only the manifest moves, never a layer."""

from __future__ import annotations

from dataclasses import dataclass

from stages.adapters.registry import Registry, TagWrite
from stages.errors import ConflictError, StampConflictError
from stages.types import Manifest


@dataclass(frozen=True)
class RetagPlan:
    """One tag write, decided before anything is written."""

    image: str
    repository: str
    tag: str
    manifest: Manifest
    current_digest: str | None

    @property
    def action(self) -> TagWrite:
        if self.current_digest is None:
            return TagWrite.CREATED
        if self.current_digest == self.manifest.digest:
            return TagWrite.UNCHANGED
        return TagWrite.MOVED


def plan_retag(
    registry: Registry,
    image: str,
    repository: str,
    tag: str,
    manifest: Manifest,
    *,
    immutable_tag: bool = False,
) -> RetagPlan:
    """Read where ``tag`` points now; refuse a move the repository or the tier forbids."""
    info = registry.describe_repository(repository)
    current = registry.get_manifest(repository, tag)
    plan = RetagPlan(
        image=image,
        repository=repository,
        tag=tag,
        manifest=manifest,
        current_digest=current.digest if current else None,
    )
    if plan.action is TagWrite.MOVED and (info.immutable_tags or immutable_tag):
        why = (
            "the repository's tags are immutable"
            if info.immutable_tags
            else "stamped tags never move"
        )
        error = StampConflictError if immutable_tag else ConflictError
        raise error(
            f"{repository}:{tag} points at {plan.current_digest}, not {manifest.digest}: {why}",
            hint="nothing was written; promote to a new tag or pick the digest the tag has",
        )
    return plan


def retag(registry: Registry, plan: RetagPlan) -> TagWrite:
    """Apply one planned tag write; repeating it is harmless (UNCHANGED)."""
    # the plan has just read where the tag points: no second read before the write
    return registry.put_tag(plan.repository, plan.tag, plan.manifest, current=plan.current_digest)
