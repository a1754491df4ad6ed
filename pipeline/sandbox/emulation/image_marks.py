"""The sandbox's marks on images, and what they make of a deployment's tasks.

Images are marked bad with `Emulation.mark_bad(digest)` or by giving the digest, in ECR, a tag
that starts with `sandbox-fail` (`aws ecr put-image ... --image-tag sandbox-fail`); a tag
`sandbox-fail.<cluster>` marks it bad in that cluster only (one environment of a tier fails, the
others run it). Images hang with `Emulation.mark_hang(digest)`, a `sandbox-hang*` tag, or
`sandbox-hang.<cluster>` for one cluster. An image that could not be pulled fails first.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from tierup.pipeline.sandbox.emulation.ecr import Image, tags_of

__all__ = ["FAIL_TAG_PREFIX", "HANG_TAG_PREFIX", "Verdict", "verdict_for"]

FAIL_TAG_PREFIX = "sandbox-fail"
HANG_TAG_PREFIX = "sandbox-hang"

VerdictKind = Literal["ok", "fail", "hang"]


@dataclass(frozen=True)
class Verdict:
    """What a deployment's images make of its tasks: start, fail (with the reason), or hang."""

    kind: VerdictKind
    reason: str = ""
    stop_code: str = ""


_OK = Verdict("ok")


def verdict_for(
    images: tuple[Image, ...],
    *,
    bad_digests: Collection[str],
    hang_digests: Collection[str],
    cluster: str | None = None,
) -> Verdict:
    """Fail if an image could not be pulled or is marked bad; hang if one is marked so.

    A mark tag `<prefix>.<cluster>` applies in that cluster only.
    """
    for image in images:
        if image.pull_error:
            return Verdict("fail", image.pull_error, "TaskFailedToStart")
    tagged = [(image, tags_of(image)) for image in images]
    for image, tags in tagged:
        if image.digest is None:
            continue
        if image.digest in bad_digests or any(_marked(t, FAIL_TAG_PREFIX, cluster) for t in tags):
            return Verdict(
                "fail",
                f"Essential container in task exited (container {image.container}, "
                f"image {image.image}, {image.digest} is marked bad)",
                "EssentialContainerExited",
            )
    for image, tags in tagged:
        if image.digest is None:
            continue
        if image.digest in hang_digests or any(_marked(t, HANG_TAG_PREFIX, cluster) for t in tags):
            return Verdict("hang", f"image {image.image} ({image.digest}) is marked to hang")
    return _OK


def _marked(tag: str, prefix: str, cluster: str | None) -> bool:
    if not tag.startswith(prefix):
        return False
    rest = tag[len(prefix) :]
    if rest.startswith("."):
        return cluster is not None and rest[1:] == cluster
    return True
