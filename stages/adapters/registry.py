"""The registry interface that retag, resolve and `where` use.

Two backends implement it: ECR (``stages.adapters.ecr``) and any OCI distribution
registry (``stages.adapters.oci``). A backend never re-serialises a manifest: the
bytes it returns are the bytes it puts.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Protocol, runtime_checkable

from tierup.stages.types import ImageInfo, Manifest, RepositoryInfo


class Unread(Enum):
    UNREAD = "unread"


UNREAD = Unread.UNREAD
Current = str | None | Unread  # a digest, None for "no such tag", or UNREAD


class TagWrite(StrEnum):
    CREATED = "created"  # the tag did not exist
    MOVED = "moved"  # the tag pointed at another digest
    UNCHANGED = "unchanged"  # the tag already pointed at this digest


@runtime_checkable
class Registry(Protocol):
    """What a promotion needs from a registry."""

    def describe_repository(self, repository: str) -> RepositoryInfo:
        """Raise RegistryError if the repository does not exist."""
        ...

    def get_manifest(self, repository: str, reference: str) -> Manifest | None:
        """Resolve a tag or ``sha256:`` digest to its manifest; None when absent."""
        ...

    def put_tag(
        self, repository: str, tag: str, manifest: Manifest, *, current: Current = UNREAD
    ) -> TagWrite:
        """Point ``tag`` at ``manifest`` (bytes and media type unchanged).

        ``current`` is the digest the tag points at now (None: absent) when the caller has
        already read it, as a planned retag has; otherwise the backend reads it.
        Idempotent: a tag already on this digest is UNCHANGED, not an error.
        Raises ConflictError when the repository forbids moving the tag.
        """
        ...

    def list_images(self, repository: str) -> list[ImageInfo]:
        """Every digest with its tags (and push time where the registry gives it)."""
        ...

    def image_uri(self, repository: str, reference: str) -> str:
        """The reference a task definition names: ``host/repo:tag`` or ``host/repo@sha256:...``."""
        ...
