"""`{commit}` and `{short_commit}` come from the commit tags on the source digest, whatever the
source: a tier, a digest or a commit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.world import REGISTRY, World, make_world

pytestmark = pytest.mark.usefixtures("aws_env")

TEMPLATE = "live-{short_commit}-{timestamp}"


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    w = make_world(tmp_path, aws_env)
    text = w.config_path.read_text().replace('"prod-{timestamp}"', f'"{TEMPLATE}"')
    w.config_path.write_text(text)
    return w


def _commit_tag_of(world: World, repository: str, digest: str) -> str:
    details = world.ecr().describe_images(
        registryId=REGISTRY, repositoryName=repository, imageIds=[{"imageDigest": digest}]
    )["imageDetails"][0]
    return next(t for t in details["imageTags"] if re.fullmatch(r"[0-9a-f]{40}", t))


@pytest.mark.parametrize("source", ["tier", "digest"])
def test_a_stamp_from_a_tier_or_a_digest_takes_the_commit_of_its_digest(
    world: World, source: str
) -> None:
    digest = world.tag_digest("api", "staging")
    assert digest is not None
    commit = _commit_tag_of(world, "api", digest)
    args = ["stamp", "--tier", "prod", "--image", "api"]
    if source == "digest":
        args += ["--digest", digest]
    code, doc = world.cli_json(*args)
    assert code == 0, doc
    api = doc["images"]["api"]
    assert re.fullmatch(rf"live-{commit[:7]}-\d{{8}}T\d{{6}}Z", api["tag"]), api
    assert api["commit"] == commit
    assert world.tag_digest("api", api["tag"]) == digest


def test_a_digest_without_a_commit_tag_is_refused_naming_the_image(world: World) -> None:
    ecr = world.ecr()
    pushed = world.push_images("c" * 40, tags=("handmade",))
    ecr.batch_delete_image(
        registryId=REGISTRY, repositoryName="api", imageIds=[{"imageTag": "c" * 40}]
    )
    before = {
        i["imageDigest"]: i.get("imageTags")
        for i in ecr.describe_images(registryId=REGISTRY, repositoryName="api")["imageDetails"]
    }
    code, doc = world.cli_json(
        "stamp", "--tier", "prod", "--digest", pushed["api"], "--image", "api"
    )
    assert code == 2, doc
    assert "image 'api'" in doc["error"] and pushed["api"] in doc["error"]
    assert "has no commit tag" in doc["error"]
    after = {
        i["imageDigest"]: i.get("imageTags")
        for i in ecr.describe_images(registryId=REGISTRY, repositoryName="api")["imageDetails"]
    }
    assert after == before  # nothing written
