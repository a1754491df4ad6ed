"""ECR as an ECS task pulls from it: what an image reference resolves to in moto's ECR now.

An image reference that does not resolve in ECR (no such registry, repository, tag or digest),
or that another account may not pull (the repository policy), fails with
CannotPullContainerError as on ECS. Image references outside ECR are taken as pullable, with no
digest. `tags_of` gives the tags a resolved image carries now (the sandbox's marks are tags).
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass

from moto.ecr.models import ecr_backends

__all__ = ["Image", "policy_allows_pull", "resolve_image", "tags_of"]

PULL_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")

_ECR_IMAGE_RE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repo>[a-z0-9][a-z0-9._/-]*?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z0-9_+.-]+:[A-Fa-f0-9]{32,}))?$"
)


@dataclass(frozen=True)
class Image:
    """One container's image as a deployment resolved it when it started."""

    container: str
    image: str
    digest: str | None
    ecr: tuple[str, str, str] | None  # registry account, region, repository
    pull_error: str | None


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    if isinstance(value, list):
        return list(value)
    return [value]


def _principal_matches(principal: object, account: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    for p in _as_list(principal.get("AWS")):
        if not isinstance(p, str):
            continue
        if p in ("*", account) or re.match(rf"^arn:aws[a-zA-Z-]*:iam::{account}:", p):
            return True
    return False


def _action_matches(actions: object, wanted: str) -> bool:
    return any(
        isinstance(a, str) and fnmatch.fnmatchcase(wanted.lower(), a.lower())
        for a in _as_list(actions)
    )


def policy_allows_pull(policy_text: str | None, account: str) -> bool:
    """Whether an ECR repository policy lets `account` pull (BatchGetImage and layers)."""
    if not policy_text:
        return False
    try:
        document = json.loads(policy_text)
    except ValueError:
        return False
    if not isinstance(document, dict):
        return False
    allowed = dict.fromkeys(PULL_ACTIONS, False)
    for statement in _as_list(document.get("Statement")):
        if not isinstance(statement, dict):
            continue
        if not _principal_matches(statement.get("Principal"), account):
            continue
        for action in PULL_ACTIONS:
            if not _action_matches(statement.get("Action"), action):
                continue
            if statement.get("Effect") == "Deny":
                return False
            if statement.get("Effect") == "Allow":
                allowed[action] = True
    return all(allowed.values())


def _not_found(image: str) -> str:
    return (
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
        f"failed to resolve ref {image}: {image}: not found"
    )


def _forbidden(image: str, account: str) -> str:
    host = image.split("/", 1)[0]
    return (
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
        f"failed to resolve ref {image}: pulling from host {host} failed with status code "
        f"403 Forbidden (the repository policy does not let account {account} pull)"
    )


def resolve_image(container: str, image: str, *, task_account: str) -> Image:
    """What `image` resolves to in moto's ECR now, as a task in `task_account` pulls it."""
    match = _ECR_IMAGE_RE.match(image)
    if match is None:
        return Image(container, image, None, None, None)
    account, region, repo_name = match["account"], match["region"], match["repo"]
    tag, digest = match["tag"], match["digest"]
    if tag is None and digest is None:
        tag = "latest"
    ecr = (account, region, repo_name)
    try:
        registry = ecr_backends[account][region]
    except KeyError:
        return Image(container, image, None, ecr, _not_found(image))
    repository = registry.repositories.get(repo_name)
    if repository is None:
        return Image(container, image, None, ecr, _not_found(image))
    found = None
    for candidate in list(repository.images):
        if tag is not None and tag not in candidate.image_tags:
            continue
        if digest is not None and candidate.get_image_digest() != digest:
            continue
        found = candidate
        break
    if found is None:
        return Image(container, image, None, ecr, _not_found(image))
    if account != task_account and not policy_allows_pull(repository.policy, task_account):
        return Image(container, image, None, ecr, _forbidden(image, task_account))
    return Image(container, image, found.get_image_digest(), ecr, None)


def tags_of(image: Image) -> list[str]:
    """The tags of the image `image` resolved to, in moto's ECR now."""
    if image.ecr is None or image.digest is None:
        return []
    account, region, repo_name = image.ecr
    try:
        repository = ecr_backends[account][region].repositories.get(repo_name)
    except KeyError:
        return []
    if repository is None:
        return []
    return [
        tag
        for candidate in list(repository.images)
        if candidate.get_image_digest() == image.digest
        for tag in candidate.image_tags
    ]
