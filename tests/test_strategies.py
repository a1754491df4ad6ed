"""Four environments of one tier, one per strategy, promoted at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.promote import promote
from tests.world import World, env_block, make_world

pytestmark = pytest.mark.usefixtures("aws_env")

FOUR = "\n".join(
    [
        env_block("dev", "dev", "111111111111", {"api": "{image: api}"}),
        env_block("rolling", "staging", "333333333333", {"api": "{image: api}"}),
        env_block(
            "revision",
            "staging",
            "444444444444",
            {"api": "{image: api}"},
            strategy="task-definition",
        ),
        env_block(
            "stack",
            "staging",
            "666666666666",
            {"api": "{image: api}", "api-admin": "{image: api}"},
            strategy="cloudformation",
            cloudformation="{stack: api-stack, image_parameter: ImageUrl}",
        ),
        env_block(
            "bluegreen",
            "staging",
            "777777777777",
            {"api": "{image: api}"},
            strategy="codedeploy",
            codedeploy="{application: api, deployment_group: api-bg, container_port: 8080, "
            "hooks: {AfterAllowTestTraffic: smoke-test}}",
        ),
    ]
)


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    w = make_world(tmp_path, aws_env, FOUR)
    w.push_images(w.commit("second"))
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    return w


def test_four_strategies_promote_and_where_shows_the_new_digest(world: World) -> None:
    code, doc = world.cli_json("promote", "--tier", "staging")
    assert code == 0, doc
    digest = world.tag_digest("api", "dev")
    for env in ("rolling", "revision", "stack", "bluegreen"):
        assert doc["environments"][env]["status"] == "ok", doc["environments"][env]
    code, where = world.cli_json("where", "--tier", "staging")
    assert code == 0, where
    for env in ("rolling", "revision", "stack", "bluegreen"):
        for name, svc in where["environments"][env]["services"].items():
            assert svc["running_digests"] == [digest], (env, name, svc)
            assert not svc["drift"], (env, name, svc)
