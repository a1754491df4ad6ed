"""Resolve a source (commit SHA, a tier's tag, a digest) to the manifest it points at."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from tierup.stages.adapters.registry import Registry
from tierup.stages.errors import InputError
from tierup.stages.types import ImageInfo, Manifest, is_commit_sha, is_dirty_tag

_PLACEHOLDER_RE = {
    "timestamp": r"\d{8}T\d{6}Z",
    "commit": r"[0-9a-f]{40}",
    "short_commit": r"[0-9a-f]{7}",
}


@dataclass(frozen=True)
class Resolved:
    """Where an image's source points: the manifest, and how it was found."""

    image: str
    manifest: Manifest
    source: str  # "commit <sha>", "tier staging (staging)", "digest sha256:..."
    commit: str | None = None
    note: str | None = None
    tag: str | None = None  # the tag it was resolved through, if any


def tag_pattern(template: str) -> re.Pattern[str]:
    """A regex matching every tag a template can render (``prod-{timestamp}``)."""
    out = []
    for literal, field, _, _ in string.Formatter().parse(template):
        out.append(re.escape(literal))
        if field is not None:
            out.append(_PLACEHOLDER_RE[field])
    return re.compile("^" + "".join(out) + "$")


def is_template(tag: str) -> bool:
    return any(f is not None for _, f, _, _ in string.Formatter().parse(tag))


def newest_tag(images: Iterable[ImageInfo], template: str) -> tuple[str, ImageInfo] | None:
    """The newest tag matching ``template`` (a plain tag matches itself)."""
    if not is_template(template):
        for info in images:
            if template in info.tags:
                return template, info
        return None
    pattern = tag_pattern(template)
    best: tuple[datetime, str, ImageInfo] | None = None
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for info in images:
        for tag in info.tags:
            if pattern.match(tag):
                pushed = info.pushed_at or epoch
                if pushed.tzinfo is None:
                    pushed = pushed.replace(tzinfo=UTC)
                key = (pushed, tag, info)
                if best is None or (key[0], key[1]) > (best[0], best[1]):
                    best = key
    return None if best is None else (best[1], best[2])


def commits_on(info: ImageInfo, prefix: str = "") -> list[str]:
    """The commits a digest was built from: its commit tags (``<prefix><sha>``), as SHAs."""
    return sorted(
        t[len(prefix) :]
        for t in info.tags
        if t.startswith(prefix) and is_commit_sha(t[len(prefix) :])
    )


def commit_in(tag: str, prefix: str = "") -> str | None:
    """The commit SHA a tag names (``<prefix><sha>``), or None."""
    if tag.startswith(prefix) and is_commit_sha(tag[len(prefix) :]):
        return tag[len(prefix) :]
    return None


def _missing(image: str, repository: str, what: str, hint: str) -> InputError:
    return InputError(f"image {image!r}: {what} not found in repository {repository!r}", hint=hint)


def resolve_digest(registry: Registry, image: str, repository: str, digest: str) -> Resolved:
    if not re.match(r"^sha256:[0-9a-f]{64}$", digest):
        raise InputError(f"{digest!r} is not a digest", hint="a digest looks like sha256:<64 hex>")
    manifest = registry.get_manifest(repository, digest)
    if manifest is None:
        raise _missing(
            image, repository, f"digest {digest}", "check the digest with `tierup where`"
        )
    return Resolved(image=image, manifest=manifest, source=f"digest {digest}")


def resolve_tag(
    registry: Registry,
    image: str,
    repository: str,
    tag: str,
    *,
    tier: str | None = None,
    prefix: str = "",
) -> Resolved:
    if is_dirty_tag(tag):
        raise InputError(
            f"image {image!r}: {tag} was built from a dirty working tree and is never promoted",
            hint="commit the changes, build again, and promote that commit",
        )
    manifest = registry.get_manifest(repository, tag)
    if manifest is None:
        what = f"tier {tier!r} tag {tag!r}" if tier else f"tag {tag!r}"
        hint = (
            f"promote {tier!r} first (tierup promote --tier {tier})"
            if tier
            else "check the tag with `tierup where`"
        )
        raise _missing(image, repository, what, hint)
    source = f"tier {tier} ({tag})" if tier else f"tag {tag}"
    return Resolved(
        image=image,
        manifest=manifest,
        source=source,
        commit=commit_in(tag, prefix),
        tag=tag,
    )


def resolve_tier(
    registry: Registry,
    image: str,
    repository: str,
    *,
    tier: str,
    template: str,
    images: list[ImageInfo] | None = None,
    prefix: str = "",
) -> Resolved:
    """The digest a tier's tag points at; for a stamped tier, its newest stamp.

    ``template`` is the image's own (``prefix`` included, when images share a repository).
    """
    if not is_template(template):
        return resolve_tag(registry, image, repository, template, tier=tier, prefix=prefix)
    listing = images if images is not None else registry.list_images(repository)
    found = newest_tag(listing, template)
    if found is None:
        raise _missing(
            image,
            repository,
            f"no stamp of tier {tier!r} ({template})",
            f"stamp {tier!r} first (tierup stamp --tier {tier})",
        )
    return resolve_tag(registry, image, repository, found[0], tier=tier, prefix=prefix)


def resolve_commit(
    registry: Registry,
    image: str,
    repository: str,
    commit: str,
    *,
    ancestors: Iterable[str] = (),
    images: list[ImageInfo] | None = None,
    prefix: str = "",
) -> Resolved:
    """The image tagged with ``commit``; else the newest of ``ancestors`` that has one.

    ``ancestors`` (newest first, without ``commit`` itself) serves the monorepo case where
    an image was not rebuilt at every commit.
    """
    if not is_commit_sha(commit):
        raise InputError(
            f"{commit!r} is not a full 40-character commit SHA",
            hint="pass the full SHA (git rev-parse <ref>)",
        )
    manifest = registry.get_manifest(repository, prefix + commit)
    if manifest is not None:
        return Resolved(image=image, manifest=manifest, source=f"commit {commit}", commit=commit)
    listing = images if images is not None else registry.list_images(repository)
    tagged = {c for info in listing for c in commits_on(info, prefix)}
    for sha in ancestors:
        if sha in tagged:
            found = registry.get_manifest(repository, prefix + sha)
            if found is not None:
                return Resolved(
                    image=image,
                    manifest=found,
                    source=f"commit {sha}",
                    commit=sha,
                    note=f"no image for {commit[:12]}; using ancestor {sha[:12]}, the newest "
                    "commit that has one",
                )
    raise _missing(
        image,
        repository,
        f"commit tag {prefix}{commit}",
        "build and push it first (tierup build), or pass --commit/--digest",
    )
