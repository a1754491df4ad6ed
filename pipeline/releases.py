"""A tier's current release: what `where`, `deploy --env` and `rollback tier` agree a tier runs.

A mutable tier's release is where its tag points. A stamped tier's release is its newest stamp
whose rollout was not failed or reverted: a stamp that ``--atomic`` (or a failed rollout) took
back, or that a later event undid (``rollback tier``), stays in the registry, since stamps never
move, but it is no longer the tier's release. A stamp the ledger does not know (made outside
tierup, or before the ledger) counts as good.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tierup.pipeline.config_tiers import Tier
from tierup.pipeline.ledger.base import Ledger
from tierup.stages import resolve
from tierup.stages.adapters.registry import Registry
from tierup.stages.types import ImageInfo

# the commands that put a digest on a tier (and record it per image)
RELEASE_COMMANDS = ("promote", "stamp", "rollback tier")
# how far back the ledger is read for a tier's releases
RELEASE_WINDOW = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Release:
    """The tag and digest a tier's release of one image is, and the event that made it."""

    image: str
    tag: str
    digest: str
    event: str | None = None  # the newest ledger event that put it there and stood
    info: ImageInfo | None = None


def tier_events(ledger: Ledger | None, tier: str) -> list[dict[str, Any]]:
    """The events of ``tier`` a release decision reads, newest first."""
    if ledger is None:
        return []
    return ledger.events(tier=tier, limit=RELEASE_WINDOW)


def undone(events: Iterable[Mapping[str, Any]]) -> set[str]:
    """Ids of the events that a later event undid (a rollback names what it reverted)."""
    out: set[str] = set()
    for event in events:
        undid = event.get("undid")
        if isinstance(undid, str):
            out.add(undid)
        elif isinstance(undid, list):
            out.update(str(u) for u in undid if u)
    return out


def stood(event: Mapping[str, Any], entry: Mapping[str, Any], gone: set[str]) -> bool:
    """Did ``event``'s release of the image in ``entry`` stand: not failed, not reverted?"""
    if event.get("status") == "failed":
        return False
    if entry.get("status") in ("moved_back", "failed"):
        return False
    return str(event.get("id")) not in gone


def release_entries(
    events: Iterable[Mapping[str, Any]], image: str
) -> Iterator[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """The events (newest first) that put a digest of ``image`` on their tier, with its entry."""
    for event in events:
        if event.get("command") not in RELEASE_COMMANDS:
            continue
        for entry in event.get("images") or []:
            if isinstance(entry, Mapping) and entry.get("image") == image:
                if entry.get("to_digest"):
                    yield event, entry
                break


def _verdicts(
    events: list[dict[str, Any]], image: str
) -> dict[tuple[str | None, str], tuple[bool, str | None]]:
    """(tag, digest) -> did the newest event that released it stand, and that event's id."""
    gone = undone(events)
    out: dict[tuple[str | None, str], tuple[bool, str | None]] = {}
    for event, entry in release_entries(events, image):
        key = (entry.get("tag"), str(entry["to_digest"]))
        out.setdefault(key, (stood(event, entry, gone), str(event.get("id") or "") or None))
    return out


def _stamps(listing: Iterable[ImageInfo], template: str) -> list[tuple[str, ImageInfo]]:
    """Every stamp of ``template`` in a repository, newest first (as ``newest_tag`` orders)."""
    pattern = resolve.tag_pattern(template)
    found: list[tuple[datetime, str, ImageInfo]] = []
    for info in listing:
        pushed = info.pushed_at or _EPOCH
        if pushed.tzinfo is None:
            pushed = pushed.replace(tzinfo=UTC)
        found.extend((pushed, tag, info) for tag in info.tags if pattern.match(tag))
    found.sort(key=lambda f: (f[0], f[1]), reverse=True)
    return [(tag, info) for _, tag, info in found]


def current_release(
    tier: Tier,
    image: str,
    *,
    events: list[dict[str, Any]],
    listing: list[ImageInfo] | None = None,
    registry: Registry | None = None,
    repository: str | None = None,
    template: str | None = None,
) -> Release | None:
    """The tier's current release of ``image`` (None: the tier has none yet).

    ``listing`` is the repository's images when the caller has read them; otherwise the
    ``registry`` is read (``repository`` names it). ``template`` is the image's own tier tag
    (its ``tag_prefix`` included); the tier's tag by default.
    """
    tag_template = template or tier.tag
    verdicts = _verdicts(events, image)
    if not tier.immutable:
        # a mutable tier is where its tag points (a revert moves the tag back)
        info: ImageInfo | None = None
        if listing is not None:
            found = resolve.newest_tag(listing, tag_template)
            if found is None:
                return None
            info = found[1]
            digest = info.digest
        else:
            assert registry is not None and repository is not None
            manifest = registry.get_manifest(repository, tag_template)
            if manifest is None:
                return None
            digest = manifest.digest
        ok, event = verdicts.get((tag_template, digest), (True, None))
        return Release(image, tag_template, digest, event if ok else None, info)
    if listing is None:
        assert registry is not None and repository is not None
        listing = registry.list_images(repository)
    for tag, info in _stamps(listing, tag_template):
        ok, event = verdicts.get((tag, info.digest), (True, None))
        if ok:
            return Release(image, tag, info.digest, event, info)
    return None
