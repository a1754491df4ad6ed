"""`tierup sandbox fail|hang|heal` mark an image in the sandbox (never anywhere else), replacing
the aws CLI call the README once showed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.ecs_checks import circuit_breaker
from tests.support.world import World, make_world

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    w = make_world(tmp_path, aws_env)
    w.push_images(w.commit())
    for env in ("staging", "mb-staging"):
        for svc in ("api", "worker"):
            circuit_breaker(w, env, svc, enable=True, rollback=True)
    code, doc = w.cli_json("promote", "--tier", "dev")
    assert code == 0, doc
    return w


def _tags_of(world: World, repository: str, digest: str) -> set[str]:
    details = world.ecr().describe_images(
        registryId="012345678922", repositoryName=repository, imageIds=[{"imageDigest": digest}]
    )["imageDetails"][0]
    return set(details.get("imageTags") or ())


def test_fail_then_heal_an_image_through_the_cli(world: World) -> None:
    dev = world.tag_digest("api", "dev")
    assert dev is not None
    code, doc = world.cli_json(
        "sandbox", "fail", "--image", "api", "--tier", "dev", "--cluster", "mb-staging-cluster"
    )
    assert code == 0, doc
    assert doc["tag"] == "sandbox-fail.mb-staging-cluster"
    assert doc["digest"] == dev
    assert "sandbox-fail.mb-staging-cluster" in _tags_of(world, "api", dev)

    code, doc = world.cli_json("promote", "--tier", "staging")
    assert code == 3, doc  # one environment of the tier fails, the other runs it
    assert doc["environments"]["staging"]["status"] == "ok"
    assert doc["environments"]["mb-staging"]["services"]["api"]["status"] == "rolled_back_by_ecs"

    code, doc = world.cli_json("sandbox", "heal", "--image", "api", "--tier", "dev")
    assert code == 0, doc
    assert not {t for t in _tags_of(world, "api", dev) if t.startswith("sandbox-")}
    code, doc = world.cli_json("promote", "--tier", "staging")
    assert code == 0, doc


def test_hang_marks_a_digest_given_by_hand(world: World) -> None:
    dev = world.tag_digest("worker", "dev")
    assert dev is not None
    code, doc = world.cli_json("sandbox", "hang", "--image", "worker", "--digest", dev)
    assert code == 0, doc
    assert "sandbox-hang" in _tags_of(world, "worker", dev)


def test_marks_never_reach_anything_but_a_loopback_sandbox(world: World) -> None:
    r = world.cli(
        "sandbox",
        "fail",
        "--image",
        "api",
        "--tier",
        "dev",
        env={"AWS_ENDPOINT_URL": "https://ecr.us-east-1.amazonaws.com"},
    )
    assert r.exit_code == 2, r.output
    assert "refusing to mark images anywhere else" in r.stderr
