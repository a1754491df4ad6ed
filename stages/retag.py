"""Point a tag at a manifest: only the manifest moves, never a layer."""

from __future__ import annotations

from dataclasses import dataclass

from tierup.stages.adapters.registry import Registry, TagWrite
from tierup.stages.errors import ConflictError, StampConflictError, TierupError
from tierup.stages.types import Manifest


class TagRaceError(TierupError):
    """Another writer moved the tag between tierup's read and its write (exit 1)."""

    def __init__(self, message: str, *, found: str | None, written: bool) -> None:
        super().__init__(
            message,
            hint="another run or person moves this tag: see `tierup where` and `tierup "
            "history`, then re-run the command",
        )
        self.found = found  # where the tag really points
        self.written = written  # whether tierup's own write was made


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
    """Apply one planned tag write; repeating it is harmless (UNCHANGED).

    Another writer may move the tag between planning and writing: the tag is read right before
    the write (a tag no longer where the plan found it is not written) and right after it (a
    tag found on a third digest is a race lost, never a success). Both are ``TagRaceError``.
    The outcome comes from those reads, not from the write's answer: a write whose answer was
    lost, retried by the SDK into "already exists", still moved the tag.
    """
    before = _digest_of(registry, plan.repository, plan.tag)
    if before == plan.manifest.digest:
        return TagWrite.UNCHANGED  # already there (a concurrent run of the same promotion)
    if before != plan.current_digest:
        raise TagRaceError(
            f"{plan.repository}:{plan.tag} moved while planning: it was on "
            f"{plan.current_digest or 'no digest'}, now on {before or 'no digest'}; "
            f"not moved to {plan.manifest.digest}",
            found=before,
            written=False,
        )
    registry.put_tag(plan.repository, plan.tag, plan.manifest, current=before)
    after = _digest_of(registry, plan.repository, plan.tag)
    if after != plan.manifest.digest:
        raise TagRaceError(
            f"{plan.repository}:{plan.tag} was moved to {plan.manifest.digest} but right after "
            f"the write points at {after or 'no digest'}: another writer moved it",
            found=after,
            written=True,
        )
    return TagWrite.CREATED if before is None else TagWrite.MOVED


def _digest_of(registry: Registry, repository: str, tag: str) -> str | None:
    found = registry.get_manifest(repository, tag)
    return found.digest if found is not None else None
