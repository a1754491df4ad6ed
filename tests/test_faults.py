"""Faults between tierup and AWS, made by a proxy on loopback in front of moto's server.

Throttling, 500s and answers lost after the write happened: every run either converges or
exits non-zero with a report per target, and its re-run converges.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.lock import key_for
from tests.faults import FaultProxy, drop_answer
from tests.release_world import BUCKET, PREFIX, new_digests, release_world, s3
from tests.world import World


@pytest.fixture
def world(tmp_path: Path, aws_env: str, fault_proxy: FaultProxy) -> World:
    w = release_world(tmp_path, aws_env)
    new_digests(w)
    return w


def _lock_exists(tier: str) -> bool:
    resp = s3().list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/{key_for(tier)}")
    return bool(resp.get("KeyCount"))


@pytest.mark.parametrize("lost", [1, 6], ids=["one-answer-lost", "every-answer-lost"])
def test_a_lost_answer_to_the_lock_write_is_recognised_as_our_own_lock(
    world: World, fault_proxy: FaultProxy, lost: int
) -> None:
    # the lock object is written, its answer lost; botocore's retry then meets 412 (and with
    # every answer lost, botocore gives up: the lock is there all the same, and it is ours)
    lock = f"/{PREFIX}/{key_for('staging')}"
    fault_proxy.rules.append(drop_answer("s3", "PutObject", path=lock, times=lost))
    fault_proxy.rules.append(drop_answer("s3", "DeleteObject", path=lock))
    r = world.cli("promote", "--tier", "staging")
    assert fault_proxy.stats.faults == {"drop": lost + 1}
    assert r.exit_code == 0, r.output
    assert "locked by" not in r.output
    assert not _lock_exists("staging")
    assert world.tag_digest("api", "staging") == world.tag_digest("api", "dev")
