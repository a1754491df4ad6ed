"""Seeding the registry (ECR only): one repository per image, a policy that lets every
environment's account pull, and one image per repository for a commit.

moto computes an image's digest from its manifest's layer digests; `image_manifest` derives
them from the repository and the commit, so each gets its own digest, always the same one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from tierup.pipeline.config import Config, EcrRegistry, OciRegistry
from tierup.pipeline.sandbox.seed_clients import Clients, role_arn_for
from tierup.stages.adapters.aws import is_client_error
from tierup.stages.errors import ConfigError

__all__ = [
    "MANIFEST_MEDIA_TYPE",
    "PULL_ACTIONS",
    "ecr_client",
    "ensure_repository",
    "image_manifest",
    "pull_policy",
    "push_images",
    "registry_host",
    "require_ecr",
]

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
PULL_ACTIONS = (
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
)
POLICY_SID = "TierupSandboxPull"


def registry_host(config: Config) -> str:
    registry = config.registry
    if isinstance(registry, EcrRegistry):
        return f"{registry.account_id}.dkr.ecr.{registry.region}.amazonaws.com"
    return re.sub(r"^https?://", "", registry.url)


def image_manifest(repository: str, commit: str) -> str:
    """A Docker v2 manifest whose config and layer digests derive from repository and commit.

    moto computes an image's digest from its layer digests, so each repository and commit gets
    its own digest, and the same inputs always give the same manifest bytes.
    """

    def digest(kind: str) -> str:
        return "sha256:" + hashlib.sha256(f"{kind}:{repository}:{commit}".encode()).hexdigest()

    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1469,
            "digest": digest("config"),
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 2479,
                "digest": digest("layer"),
            }
        ],
    }
    return json.dumps(manifest, indent=3)


def ecr_client(clients: Clients, registry: EcrRegistry) -> Any:
    return clients.client(
        "ecr",
        role_arn=role_arn_for(registry.account_id, registry.role_arn),
        external_id=registry.external_id,
        region=registry.region,
    )


def pull_policy(accounts: Iterable[str]) -> str:
    principals = [f"arn:aws:iam::{a}:root" for a in sorted(set(accounts))]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": POLICY_SID,
                    "Effect": "Allow",
                    "Principal": {"AWS": principals},
                    "Action": list(PULL_ACTIONS),
                }
            ],
        },
        indent=2,
    )


def ensure_repository(ecr: Any, repository: str, policy: str | None) -> None:
    try:
        ecr.create_repository(repositoryName=repository)
    except ClientError as e:
        if not is_client_error(e, "RepositoryAlreadyExistsException"):
            raise
    if policy is None:
        return
    try:
        current = ecr.get_repository_policy(repositoryName=repository)["policyText"]
    except ClientError as e:
        if not is_client_error(e, "RepositoryPolicyNotFoundException"):
            raise
        current = None
    if current is None or json.loads(current) != json.loads(policy):
        ecr.set_repository_policy(repositoryName=repository, policyText=policy)


def _put_image(ecr: Any, repository: str, manifest: str, tag: str) -> str:
    """Tag `manifest` in `repository`; return its digest (unchanged when already so)."""
    try:
        resp = ecr.put_image(
            repositoryName=repository,
            imageManifest=manifest,
            imageManifestMediaType=MANIFEST_MEDIA_TYPE,
            imageTag=tag,
        )
        return str(resp["image"]["imageId"]["imageDigest"])
    except ClientError as e:
        if not is_client_error(e, "ImageAlreadyExistsException"):
            raise
    found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    return str(found["imageDetails"][0]["imageDigest"])


def _tag_exists(ecr: Any, repository: str, tag: str) -> bool:
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ClientError as e:
        if is_client_error(e, "ImageNotFoundException"):
            return False
        raise
    return True


def push_images(
    ecr: Any, config: Config, commit: str, tags: Iterable[str], *, move_tags: bool
) -> dict[str, str]:
    digests: dict[str, str] = {}
    extra = [t for t in tags if t != commit]
    for name, image in config.images.items():
        # images sharing a repository are different images: their prefix tells them apart
        manifest = image_manifest(image.repository + image.tag_prefix, commit)
        digests[name] = _put_image(ecr, image.repository, manifest, image.tag(commit))
        for tag in extra:
            if move_tags or not _tag_exists(ecr, image.repository, image.tag(tag)):
                _put_image(ecr, image.repository, manifest, image.tag(tag))
    return digests


def require_ecr(config: Config) -> EcrRegistry:
    if isinstance(config.registry, OciRegistry):
        raise ConfigError(
            "the sandbox can only push images to an ECR registry",
            hint="use `registry: {account_id, region}` in envs.yaml for the sandbox",
        )
    return config.registry
