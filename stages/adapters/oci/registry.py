"""The Registry interface over a registry's HTTP API: manifests move byte for byte."""

from __future__ import annotations

import email.utils
import hashlib
from datetime import UTC, datetime
from urllib.parse import urljoin

import requests

from tierup.stages.adapters.oci.transport import OciTransport, error_codes, error_text
from tierup.stages.adapters.registry import UNREAD, Current, TagWrite
from tierup.stages.errors import ConflictError, RegistryError
from tierup.stages.parallel import each
from tierup.stages.types import (
    MANIFEST_MEDIA_TYPES,
    ImageInfo,
    Manifest,
    RepositoryInfo,
    manifest_media_type,
)

ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
# tags read at once when listing a repository's images
HEAD_AT_ONCE = 8
TAGS_PAGE_SIZE = 1000


def _media_type(resp: requests.Response, body: bytes) -> str:
    content_type = resp.headers.get("Content-Type", "").split(";", 1)[0].strip()
    if content_type in MANIFEST_MEDIA_TYPES:
        return content_type
    return manifest_media_type(body)


def _pushed_at(resp: requests.Response) -> datetime | None:
    stamp = resp.headers.get("Last-Modified")
    if not stamp:
        return None
    try:
        return email.utils.parsedate_to_datetime(stamp).astimezone(UTC)
    except (TypeError, ValueError):
        return None


class OciRegistry(OciTransport):
    """One OCI distribution registry (``/v2/`` API), through an optional requests session."""

    tags_page_size: int | None = TAGS_PAGE_SIZE

    # -- Registry -----------------------------------------------------------------

    def describe_repository(self, repository: str) -> RepositoryInfo:
        resp = self._request("GET", f"/v2/{repository}/tags/list", repository, params={"n": "1"})
        if resp.status_code != 200:
            raise self._failure(resp, repository, f"reading repository {repository}")
        return RepositoryInfo(
            name=repository, immutable_tags=False, uri=f"{self.host}/{repository}"
        )

    def get_manifest(self, repository: str, reference: str) -> Manifest | None:
        resp = self._request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            headers={"Accept": ACCEPT},
        )
        if resp.status_code == 404 and "NAME_UNKNOWN" not in error_codes(resp):
            return None
        if resp.status_code != 200:
            raise self._failure(resp, repository, f"reading {repository}:{reference}")
        body = resp.content
        return Manifest(
            repository=repository,
            digest=self._digest(resp, body),
            media_type=_media_type(resp, body),
            body=body,
        )

    def put_tag(
        self, repository: str, tag: str, manifest: Manifest, *, current: Current = UNREAD
    ) -> TagWrite:
        if tag.startswith("sha256:"):
            raise RegistryError(f"cannot put a tag named like a digest: {tag}")
        if current is UNREAD:
            head = self._head_digest(repository, tag)
            current = head[0] if head is not None else None
        if current == manifest.digest:
            return TagWrite.UNCHANGED
        resp = self._request(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            repository,
            headers={"Content-Type": manifest.media_type},
            data=manifest.body,
            push=True,
        )
        if resp.status_code not in (200, 201):
            if resp.status_code == 409 or error_codes(resp) & {"TAG_INVALID", "TAG_IMMUTABLE"}:
                raise ConflictError(
                    f"registry {self.host} refused to move {repository}:{tag}: {error_text(resp)}",
                    hint="the repository keeps its tags immutable; use a new tag",
                )
            raise self._failure(resp, repository, f"putting {repository}:{tag}")
        written = resp.headers.get("Docker-Content-Digest")
        if written and written != manifest.digest:
            raise RegistryError(
                f"registry {self.host} stored {repository}:{tag} as {written}, not "
                f"{manifest.digest}: it rewrote the manifest",
                hint="the registry does not keep manifests byte for byte; report it",
            )
        return TagWrite.CREATED if current is None else TagWrite.MOVED

    def list_images(self, repository: str) -> list[ImageInfo]:
        tags: dict[str, list[str]] = {}
        media_types: dict[str, str | None] = {}
        pushed: dict[str, datetime | None] = {}
        names = self.list_tags(repository)
        # one HEAD per tag (the tags list says nothing else), a few at a time; requests'
        # connection pool keeps HEAD_AT_ONCE connections to the registry
        heads = each(lambda tag: self._head_digest(repository, tag), names, HEAD_AT_ONCE)
        for tag, found in zip(names, heads, strict=True):
            if found is None:
                continue  # deleted between the listing and now
            digest, media_type, pushed_at = found
            tags.setdefault(digest, []).append(tag)
            media_types.setdefault(digest, media_type or None)
            latest = pushed.get(digest)
            if pushed_at is not None and (latest is None or pushed_at > latest):
                pushed[digest] = pushed_at
        return [
            ImageInfo(
                digest=digest,
                tags=tuple(sorted(names)),
                pushed_at=pushed.get(digest),
                media_type=media_types.get(digest),
            )
            for digest, names in tags.items()
        ]

    def image_uri(self, repository: str, reference: str) -> str:
        sep = "@" if reference.startswith("sha256:") else ":"
        return f"{self.host}/{repository}{sep}{reference}"

    # -- beyond the protocol ------------------------------------------------------

    def list_tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``, following the ``Link: <...>; rel="next"`` pages."""
        params = {"n": str(self.tags_page_size)} if self.tags_page_size else None
        url: str | None = f"/v2/{repository}/tags/list"
        tags: list[str] = []
        while url is not None:
            resp = self._request("GET", url, repository, params=params)
            if resp.status_code != 200:
                raise self._failure(resp, repository, f"listing the tags of {repository}")
            try:
                page = resp.json().get("tags") or []
            except (ValueError, AttributeError) as e:
                raise RegistryError(
                    f"registry {self.host} answered the tag list of {repository} with non-JSON"
                ) from e
            tags.extend(str(t) for t in page)
            following = resp.links.get("next", {}).get("url")
            url = urljoin(resp.url, following) if following else None
            params = None
        return tags

    # -- digests ------------------------------------------------------------------

    def _digest(self, resp: requests.Response, body: bytes) -> str:
        header = resp.headers.get("Docker-Content-Digest")
        if header:
            return header
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def _head_digest(
        self, repository: str, reference: str
    ) -> tuple[str, str, datetime | None] | None:
        """(digest, media type, push time) of a tag, or None when it does not exist."""
        resp = self._request(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            headers={"Accept": ACCEPT},
        )
        if resp.status_code == 404:
            return None
        if resp.status_code == 200 and resp.headers.get("Docker-Content-Digest"):
            content_type = resp.headers.get("Content-Type", "").split(";", 1)[0].strip()
            return resp.headers["Docker-Content-Digest"], content_type, _pushed_at(resp)
        if resp.status_code not in (200, 405):
            raise self._failure(resp, repository, f"reading {repository}:{reference}")
        manifest = self.get_manifest(repository, reference)
        if manifest is None:
            return None
        return manifest.digest, manifest.media_type, None
