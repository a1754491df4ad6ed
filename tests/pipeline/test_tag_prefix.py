"""Images sharing one repository: each has its tag_prefix and reads only its own tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.world import REGISTRY, World, make_world

pytestmark = pytest.mark.usefixtures("aws_env")

SHARED = (
    "  api: {repository: shared, tag_prefix: api-}\n"
    "  worker: {repository: shared, tag_prefix: worker-}\n"
)


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    w = make_world(tmp_path, aws_env, images=SHARED)
    return w


def _tags(world: World) -> dict[str, set[str]]:
    """digest -> tags, in the shared repository."""
    details = world.ecr().describe_images(registryId=REGISTRY, repositoryName="shared")
    return {d["imageDigest"]: set(d.get("imageTags") or ()) for d in details["imageDetails"]}


def test_two_images_on_one_repository_keep_their_own_tags(world: World) -> None:
    new = world.commit()
    pushed = world.push_images(new)
    assert pushed["api"] != pushed["worker"]
    tags = _tags(world)
    assert f"api-{new}" in tags[pushed["api"]] and f"worker-{new}" in tags[pushed["worker"]]

    code, doc = world.cli_json("promote", "--tier", "dev")
    assert code == 0, doc
    assert doc["images"]["api"]["tag"] == "api-dev"
    assert world.tag_digest("shared", "api-dev") == pushed["api"]
    assert world.tag_digest("shared", "worker-dev") == pushed["worker"]
    assert world.tag_digest("shared", "dev") is None  # no unprefixed tag is ever written

    code, doc = world.cli_json("where")
    assert code == 0, doc
    for image in ("api", "worker"):
        dev = doc["images"][image]["tiers"]["dev"]
        assert dev["tag"] == f"{image}-dev"
        assert dev["digest"] == pushed[image]
        assert dev["commits"] == [new]
    assert doc["environments"]["dev"]["services"]["api"]["drift"] is False

    code, doc = world.cli_json("promote", "--tier", "staging")
    assert code == 0, doc
    assert world.tag_digest("shared", "worker-staging") == pushed["worker"]
    code, doc = world.cli_json("stamp", "--tier", "prod")
    assert code == 0, doc
    stamp = doc["images"]["api"]["tag"]
    assert stamp.startswith("api-prod-")
    assert doc["images"]["api"]["commit"] == new
    assert world.tag_digest("shared", stamp) == pushed["api"]
    prod = world.services("prod")["api"]
    td = world.ecs("555555555555").describe_task_definition(taskDefinition=prod["taskDefinition"])
    assert td["taskDefinition"]["containerDefinitions"][0]["image"].endswith(f"/shared:{stamp}")

    # a re-run touches nothing; a rollback of staging moves only staging's prefixed tags back
    code, doc = world.cli_json("stamp", "--tier", "prod")
    assert code == 0 and doc["images"]["api"]["status"] == "unchanged", doc
    code, doc = world.cli_json("rollback", "tier", "--tier", "staging")
    assert code == 0, doc
    assert world.tag_digest("shared", "api-staging") != pushed["api"]
    assert world.tag_digest("shared", "worker-staging") != pushed["worker"]
    assert world.tag_digest("shared", "api-dev") == pushed["api"]


@pytest.mark.parametrize(
    ("images", "line"),
    [
        ("  api: {repository: shared}\n  worker: {repository: shared}\n", 5),
        (
            "  api: {repository: shared, tag_prefix: app-}\n"
            "  worker: {repository: shared, tag_prefix: app-}\n",
            5,
        ),
    ],
)
def test_validate_refuses_images_sharing_a_repository_without_distinct_prefixes(
    tmp_path: Path, images: str, line: int
) -> None:
    from typer.testing import CliRunner

    from tests.support.world import CONFIG, DEFAULT_ENVS
    from tierup.pipeline.cli import app

    text = CONFIG.format(registry=REGISTRY, environments=DEFAULT_ENVS).replace(
        "  api: {repository: api}\n  worker: {repository: worker}\n", images
    )
    path = tmp_path / "envs.yaml"
    path.write_text(text)
    r = CliRunner().invoke(app, ["validate", "-f", str(path), "--json"])
    assert r.exit_code == 2, r.output
    doc = json.loads(r.stdout)
    assert f"{path}:{line}: images.worker" in doc["error"]
    assert "share repository 'shared' without distinct tag prefixes" in doc["error"]


def test_build_tags_each_image_with_its_prefix(world: World) -> None:
    from tierup.pipeline.build import plan_build
    from tierup.stages.build import read_revision

    revision = read_revision(world.repo)
    registry = world.clients().registry
    plans = plan_build(
        world.config, revision=revision, tag=revision.commit, registry=registry, root=world.root
    )
    by_image = {p.image: p for p in plans}
    assert by_image["api"].tag == f"api-{revision.commit}"
    assert by_image["api"].reference.endswith(f"/shared:api-{revision.commit}")
    # seeding pushed this commit's images already: each finds its own, not the other's
    assert by_image["api"].existing == world.tag_digest("shared", f"api-{revision.commit}")
    assert by_image["worker"].existing == world.tag_digest("shared", f"worker-{revision.commit}")
    assert by_image["api"].existing != by_image["worker"].existing
