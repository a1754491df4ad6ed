"""Build one image at a commit and get it into the registry under the commit's tag.

The tag is the full SHA of HEAD. A dirty working tree is refused, or with ``allow_dirty``
tagged ``<sha>-dirty``: such a tag is never promoted. The OCI labels ``revision``,
``source`` and ``created`` come from the commit (``created`` is the commit time, so that
the same commit always carries the same labels).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from tierup.stages.errors import InputError
from tierup.stages.types import DIRTY_SUFFIX

if TYPE_CHECKING:
    import git

__all__ = [
    "Revision",
    "commit_tag",
    "context_path",
    "image_labels",
    "oci_labels",
    "public_url",
    "read_revision",
]

LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_CREATED = "org.opencontainers.image.created"
LISTED_CHANGES = 20


@dataclass(frozen=True)
class Revision:
    """What a build is made from: HEAD's commit and the state of the working tree."""

    commit: str
    committed_at: datetime
    source: str | None = None
    changes: tuple[str, ...] = field(default=())

    @property
    def dirty(self) -> bool:
        return bool(self.changes)

    @property
    def created(self) -> str:
        """The commit time, ISO 8601 in UTC: ``2026-11-26T10:30:00Z``."""
        return self.committed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def public_url(url: str) -> str:
    """A remote URL without credentials (``https://user:token@host/x`` -> ``https://host/x``)."""
    if "://" not in url:
        return url  # scp-like `git@host:path` or a local path: no secret in it
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _remote_url(repo: git.Repo) -> str | None:
    remotes = list(repo.remotes)
    if not remotes:
        return None
    remote = next((r for r in remotes if r.name == "origin"), remotes[0])
    try:
        urls = list(remote.urls)
    except Exception:
        return None
    return public_url(str(urls[0])) if urls else None


def _changes(repo: git.Repo) -> tuple[str, ...]:
    """Paths that differ from HEAD (staged, unstaged or untracked), as ``git status`` shows."""
    out = str(repo.git.status("--porcelain=v1", "-z", "--untracked-files=all"))
    entries = out.split("\0")
    paths: list[str] = []
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        paths.append(path)
        if "R" in code or "C" in code:
            i += 1  # the source path of a rename or copy follows
    return tuple(paths)


def read_revision(repo: git.Repo) -> Revision:
    """HEAD's commit, its time, the remote URL and the working tree's changes (GitPython repo)."""
    if repo.bare or repo.working_tree_dir is None:
        raise InputError("cannot build from a bare repository", hint="run in a checkout")
    try:
        commit = repo.head.commit
    except ValueError as e:
        raise InputError(
            "the repository has no commit yet",
            hint="commit first: images are tagged with the commit SHA",
        ) from e
    return Revision(
        commit=str(commit.hexsha),
        committed_at=commit.committed_datetime.astimezone(UTC),
        source=_remote_url(repo),
        changes=_changes(repo),
    )


def commit_tag(revision: Revision, *, allow_dirty: bool = False) -> str:
    """The commit SHA, or ``<sha>-dirty``; a dirty tree without ``allow_dirty`` is refused."""
    if not revision.dirty:
        return revision.commit
    if not allow_dirty:
        shown = ", ".join(revision.changes[:LISTED_CHANGES])
        more = len(revision.changes) - LISTED_CHANGES
        if more > 0:
            shown += f" and {more} more"
        raise InputError(
            f"the working tree has uncommitted changes: {shown}",
            hint="commit or stash them; or pass --allow-dirty to build a "
            f"{revision.commit[:7]}{DIRTY_SUFFIX} image that is never promoted",
        )
    return revision.commit + DIRTY_SUFFIX


def oci_labels(revision: Revision) -> dict[str, str]:
    labels = {LABEL_REVISION: revision.commit, LABEL_CREATED: revision.created}
    if revision.source:
        labels[LABEL_SOURCE] = revision.source
    return labels


def image_labels(revision: Revision, labels: Mapping[str, str] | None = None) -> dict[str, str]:
    """``labels`` from envs.yaml plus the OCI labels of the revision (those win)."""
    return {**(labels or {}), **oci_labels(revision)}


def context_path(root: Path, context: str) -> Path:
    path = Path(context)
    return path if path.is_absolute() else (root / path)
