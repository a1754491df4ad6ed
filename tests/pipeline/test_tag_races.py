"""A tag moved by someone else while tierup promotes is a conflict, never a silent overwrite.

A proxy on loopback in front of moto lets the test act at the exact moment: when tierup reads
the tag right before writing it, or right after its PutImage lands.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.aws_proxy import AwsProxy, Seen, aws_proxy
from tests.support.world import World, make_world

pytestmark = pytest.mark.usefixtures("aws_env")

OTHER = "b" * 40  # a commit someone else promotes by hand


def _reads_of(seen: Seen, repository: str, tag: str) -> bool:
    if seen.operation != "BatchGetImage":
        return False
    body = json.loads(seen.body or b"{}")
    return body.get("repositoryName") == repository and {"imageTag": tag} in body.get(
        "imageIds", []
    )


def _puts_of(seen: Seen, repository: str, tag: str) -> bool:
    if seen.operation != "PutImage":
        return False
    body = json.loads(seen.body or b"{}")
    return body.get("repositoryName") == repository and body.get("imageTag") == tag


def _world(tmp_path: Path, endpoint: str) -> tuple[World, dict[str, str], dict[str, str]]:
    world = make_world(tmp_path, endpoint)
    new = world.push_images(world.commit())
    other = world.push_images(OTHER)
    code, doc = world.cli_json("promote", "--tier", "dev")
    assert code == 0, doc
    return world, new, other


def _through(proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)


def test_a_tag_moved_after_planning_is_not_written(
    tmp_path: Path, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, new, other = _world(tmp_path, aws_env)
    with aws_proxy(aws_env) as proxy:
        _through(proxy, monkeypatch)
        # how often planning reads staging's tag: the same planning as a dry run's
        code, _doc = world.cli_json("promote", "--tier", "staging", "--dry-run")
        assert code == 0
        planned_reads = sum(1 for s in proxy.seen if _reads_of(s, "api", "staging"))
        proxy.seen.clear()
        reads = 0

        def move_it(seen: Seen) -> None:
            nonlocal reads
            if _reads_of(seen, "api", "staging"):
                reads += 1
                if reads == planned_reads + 1:  # the read right before the write
                    world.push_images(OTHER, tags=("staging",))

        proxy.rules.append(lambda s: move_it(s))  # acts, then lets the request through
        code, doc = world.cli_json("promote", "--tier", "staging")
    assert world.tag_digest("api", "staging") == other["api"], "someone's move was overwritten"
    assert code == 1, doc
    assert doc["images"]["api"]["status"] == "conflict"
    assert "re-run" in doc["images"]["api"]["hint"]
    assert not [s for s in proxy.seen if _puts_of(s, "api", "staging")]
    assert not proxy.calls("UpdateService")  # nothing was deployed
    code, hist = world.cli_json("history", "--tier", "staging")
    api = next(i for i in hist["events"][0]["images"] if i["image"] == "api")
    assert api["status"] == "conflict"
    assert api["from_digest"] == other["api"]  # what was really there
    assert api["to_digest"] == new["api"]


def test_a_tag_moved_right_after_the_write_is_a_conflict(
    tmp_path: Path, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, _new, other = _world(tmp_path, aws_env)
    with aws_proxy(aws_env) as proxy:
        _through(proxy, monkeypatch)

        def then_move(seen: Seen, status: int, _body: bytes) -> None:
            # tierup's PutImage landed; before its answer comes back, another writer's does
            if _puts_of(seen, "api", "staging") and status == 200:
                world.push_images(OTHER, tags=("staging",))

        proxy.after.append(then_move)
        code, doc = world.cli_json("promote", "--tier", "staging")
    assert world.tag_digest("api", "staging") == other["api"]
    assert code == 1, doc
    assert doc["status"] == "failed"
    api = doc["images"]["api"]
    assert api["status"] == "conflict"
    assert other["api"] in api["error"]
    assert not proxy.calls("UpdateService")


def test_a_promotion_nobody_races_is_unchanged(tmp_path: Path, aws_env: str) -> None:
    world, new, _other = _world(tmp_path, aws_env)
    code, doc = world.cli_json("promote", "--tier", "staging")
    assert code == 0, doc
    assert doc["images"]["api"]["status"] == "moved"
    assert world.tag_digest("api", "staging") == new["api"]
