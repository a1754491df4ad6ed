"""Small frozen types the stages exchange; raw boto3 dicts never leave the adapters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

MANIFEST_MEDIA_TYPES: tuple[str, ...] = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)


def manifest_media_type(body: str | bytes) -> str:
    """A manifest's media type from its body, when the registry does not say it.

    The body's own ``mediaType`` first; without it (optional in OCI), an index lists
    ``manifests`` and an image manifest does not.
    """
    try:
        doc = json.loads(body)
    except ValueError:
        return MANIFEST_MEDIA_TYPES[0]
    if not isinstance(doc, dict):
        return MANIFEST_MEDIA_TYPES[0]
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    return MANIFEST_MEDIA_TYPES[3] if "manifests" in doc else MANIFEST_MEDIA_TYPES[2]


COMMIT_SHA_LENGTH = 40

# the lifecycle events of an ECS blue/green deployment that run hook functions, in run order
ECS_LIFECYCLE_HOOKS: tuple[str, ...] = (
    "BeforeInstall",
    "AfterInstall",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
)


def is_commit_sha(tag: str) -> bool:
    return len(tag) == COMMIT_SHA_LENGTH and all(c in "0123456789abcdef" for c in tag)


DIRTY_SUFFIX = "-dirty"


def is_dirty_tag(tag: str) -> bool:
    """A tag built from a dirty working tree (``<sha>-dirty``): never promotable."""
    return tag.endswith(DIRTY_SUFFIX)


@dataclass(frozen=True)
class Manifest:
    """A manifest exactly as the registry returned it: never re-serialise the body."""

    repository: str
    digest: str
    media_type: str
    body: bytes


@dataclass(frozen=True)
class ImageInfo:
    """One digest of a repository and the tags on it."""

    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime | None = None
    media_type: str | None = None


@dataclass(frozen=True)
class RepositoryInfo:
    name: str
    immutable_tags: bool
    uri: str


@dataclass(frozen=True)
class Deployment:
    id: str
    status: str  # PRIMARY | ACTIVE | INACTIVE
    task_definition: str
    rollout_state: str | None  # IN_PROGRESS | COMPLETED | FAILED | None (other controllers)
    desired: int = 0
    running: int = 0
    pending: int = 0
    failed_tasks: int = 0
    reason: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class ServiceEvent:
    created_at: datetime | None
    message: str


@dataclass(frozen=True)
class ServiceState:
    name: str
    arn: str
    cluster: str
    status: str
    task_definition: str
    desired: int
    running: int
    deployments: tuple[Deployment, ...]
    deployment_controller: str = "ECS"
    events: tuple[ServiceEvent, ...] = ()

    @property
    def primary(self) -> Deployment | None:
        for d in self.deployments:
            if d.status == "PRIMARY":
                return d
        return None


@dataclass(frozen=True)
class ContainerImage:
    """A container of a task definition and the image reference it names."""

    name: str
    image: str


@dataclass(frozen=True)
class TaskDefinition:
    arn: str
    family: str
    revision: int
    status: str  # ACTIVE | INACTIVE | DELETE_IN_PROGRESS
    containers: tuple[ContainerImage, ...]
    raw: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def image_of(self, container: str) -> str | None:
        for c in self.containers:
            if c.name == container:
                return c.image
        return None


@dataclass(frozen=True)
class TaskImage:
    """What one running task reports for one container."""

    task_arn: str
    container: str
    image: str
    digest: str | None
    started_by: str | None = None
    last_status: str | None = None


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference: ``host/repo:tag`` or ``host/repo@sha256:...``."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, ref: str) -> ImageRef:
        rest = ref
        digest = None
        if "@" in rest:
            rest, digest = rest.split("@", 1)
        tag = None
        last = rest.rsplit("/", 1)[-1]
        if ":" in last:
            rest, tag = rest.rsplit(":", 1)
        host = ""
        repo = rest
        first, _, remainder = rest.partition("/")
        if remainder and ("." in first or ":" in first or first == "localhost"):
            host, repo = first, remainder
        return cls(registry=host, repository=repo, tag=tag, digest=digest)

    def __str__(self) -> str:
        base = f"{self.registry}/{self.repository}" if self.registry else self.repository
        if self.digest:
            return f"{base}@{self.digest}"
        if self.tag:
            return f"{base}:{self.tag}"
        return base


@dataclass(frozen=True)
class ServiceRevision:
    """One revision of a service in ECS's deployment history: what a deployment ran."""

    arn: str
    task_definition: str
    images: tuple[TaskImage, ...] = ()  # container, image and the digest ECS resolved


@dataclass(frozen=True)
class ServiceDeploymentRecord:
    """One entry of ListServiceDeployments: a deployment and the revision it deployed."""

    arn: str
    status: str  # SUCCESSFUL | IN_PROGRESS | ROLLBACK_SUCCESSFUL | STOPPED | ...
    target_revision: str
    created_at: datetime | None = None
