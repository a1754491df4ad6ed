"""ECR behind the Registry interface: batch-get-image + put-image, only the manifest moves."""

from __future__ import annotations

from typing import Any

from tierup.stages.adapters.aws import error_message, is_client_error, raise_translated
from tierup.stages.adapters.registry import UNREAD, Current, TagWrite
from tierup.stages.errors import ConflictError, RepositoryMissing
from tierup.stages.types import (
    MANIFEST_MEDIA_TYPES,
    ImageInfo,
    Manifest,
    RepositoryInfo,
    manifest_media_type,
)


class EcrRegistry:
    """One ECR registry (an account and region), through an injected boto3 ECR client."""

    def __init__(self, client: Any, *, account_id: str, region: str) -> None:
        self._ecr = client
        self.account_id = account_id
        self.region = region
        self._repos: dict[str, RepositoryInfo] = {}

    def _missing(self, repository: str) -> RepositoryMissing:
        return RepositoryMissing(
            f"repository {repository!r} does not exist in ECR account {self.account_id} "
            f"({self.region})",
            hint="create it, or fix images.<name>.repository in envs.yaml",
        )

    @property
    def client(self) -> Any:
        """The boto3 ECR client (for what the Registry interface does not cover: a login)."""
        return self._ecr

    @property
    def host(self) -> str:
        return f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com"

    def describe_repository(self, repository: str) -> RepositoryInfo:
        cached = self._repos.get(repository)
        if cached is not None:
            return cached
        try:
            repo = self._ecr.describe_repositories(
                registryId=self.account_id, repositoryNames=[repository]
            )["repositories"][0]
        except Exception as e:
            if is_client_error(e, "RepositoryNotFoundException"):
                raise self._missing(repository) from e
            raise_translated(e, f"describing ECR repository {repository}")
        info = RepositoryInfo(
            name=repository,
            immutable_tags=repo.get("imageTagMutability", "MUTABLE").startswith("IMMUTABLE"),
            uri=str(repo.get("repositoryUri") or f"{self.host}/{repository}"),
        )
        self._repos[repository] = info
        return info

    def get_manifest(self, repository: str, reference: str) -> Manifest | None:
        image_id = (
            {"imageDigest": reference}
            if reference.startswith("sha256:")
            else {"imageTag": reference}
        )
        try:
            resp = self._ecr.batch_get_image(
                registryId=self.account_id,
                repositoryName=repository,
                imageIds=[image_id],
                acceptedMediaTypes=list(MANIFEST_MEDIA_TYPES),
            )
        except Exception as e:
            if is_client_error(e, "RepositoryNotFoundException"):
                raise self._missing(repository) from e
            raise_translated(e, f"reading {repository}:{reference} from ECR")
        images = resp.get("images") or []
        if not images:
            return None
        image = images[0]
        body = image["imageManifest"]
        media_type = image.get("imageManifestMediaType") or manifest_media_type(body)
        return Manifest(
            repository=repository,
            digest=image["imageId"]["imageDigest"],
            media_type=media_type,
            body=body.encode("utf-8") if isinstance(body, str) else bytes(body),
        )

    def put_tag(
        self, repository: str, tag: str, manifest: Manifest, *, current: Current = UNREAD
    ) -> TagWrite:
        if current is UNREAD:
            found = self.get_manifest(repository, tag)
            current = found.digest if found is not None else None
        if current == manifest.digest:
            return TagWrite.UNCHANGED
        try:
            self._ecr.put_image(
                registryId=self.account_id,
                repositoryName=repository,
                imageManifest=manifest.body.decode("utf-8"),
                imageManifestMediaType=manifest.media_type,
                imageTag=tag,
                imageDigest=manifest.digest,
            )
        except Exception as e:
            if is_client_error(e, "ImageAlreadyExistsException"):
                # a concurrent writer or a retried request already put it: check what it points at
                now = self.get_manifest(repository, tag)
                if now is not None and now.digest == manifest.digest:
                    return TagWrite.UNCHANGED
                raise ConflictError(
                    f"{repository}:{tag} already exists on another digest: {error_message(e)}",
                    hint="the repository's tags are immutable; stamp a new tag instead",
                ) from e
            if is_client_error(e, "ImageTagAlreadyExistsException"):
                raise ConflictError(
                    f"{repository}:{tag} is immutable and points at another digest",
                    hint="the repository's tags are immutable: use a new tag, or set "
                    "imageTagMutability to MUTABLE for tiers whose tag moves",
                ) from e
            raise_translated(e, f"tagging {repository}:{tag}")
        return TagWrite.CREATED if current is None else TagWrite.MOVED

    def list_images(self, repository: str) -> list[ImageInfo]:
        out: list[ImageInfo] = []
        try:
            pages = self._ecr.get_paginator("describe_images").paginate(
                registryId=self.account_id,
                repositoryName=repository,
                PaginationConfig={"PageSize": 1000},
            )
            for page in pages:
                for d in page.get("imageDetails", []):
                    out.append(
                        ImageInfo(
                            digest=d["imageDigest"],
                            tags=tuple(d.get("imageTags") or ()),
                            pushed_at=d.get("imagePushedAt"),
                            media_type=d.get("imageManifestMediaType"),
                        )
                    )
        except Exception as e:
            if is_client_error(e, "RepositoryNotFoundException"):
                raise self._missing(repository) from e
            raise_translated(e, f"listing images of {repository}")
        return out

    def image_uri(self, repository: str, reference: str) -> str:
        sep = "@" if reference.startswith("sha256:") else ":"
        return f"{self.host}/{repository}{sep}{reference}"

    def repository_policy(self, repository: str) -> str | None:
        try:
            resp = self._ecr.get_repository_policy(
                registryId=self.account_id, repositoryName=repository
            )
        except Exception as e:
            if is_client_error(e, "RepositoryPolicyNotFoundException"):
                return None
            raise_translated(e, f"reading the policy of {repository}")
        text = resp.get("policyText")
        return str(text) if text is not None else None
