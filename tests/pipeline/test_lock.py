"""One writer per tier: the lock in S3 (and beside the local ledger), across real processes."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.release_world import (
    BUCKET,
    PREFIX,
    aws_writes,
    ledger_of,
    new_digests,
    release_world,
    s3,
    tierup,
)
from tests.support.world import World, Writes
from tierup.pipeline.exit_codes import exit_code_of
from tierup.pipeline.guard import Guard
from tierup.pipeline.lock import LockHeld, TierLock, key_for, read_lock
from tierup.pipeline.release import run_promotion

pytestmark = pytest.mark.usefixtures("aws_env")

ALICE = {"GITHUB_ACTOR": "alice"}


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    w = release_world(tmp_path, aws_env)
    new_digests(w)
    return w


def _lock_key(tier: str) -> str:
    return f"{PREFIX}/{key_for(tier)}"


def _lock_exists(tier: str) -> bool:
    resp = s3().list_objects_v2(Bucket=BUCKET, Prefix=_lock_key(tier))
    return bool(resp.get("KeyCount"))


def test_a_held_lock_fails_a_promotion_at_once_naming_the_holder_and_nothing_is_written(
    world: World,
) -> None:
    holder = TierLock(ledger_of(world, environ=ALICE), "staging", command="stamp", ttl=1800)
    holder.acquire()
    before = world.tag_digest("api", "staging")
    started = time.monotonic()
    r = world.cli("promote", "--tier", "staging")
    assert time.monotonic() - started < 10
    assert r.exit_code == 1, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "tier 'staging' is locked by alice" in errors[0] and "running `stamp`" in errors[0]
    assert "(hint: " in errors[0] and "--lock-timeout" in errors[0]
    assert world.tag_digest("api", "staging") == before
    assert ledger_of(world).events() == []
    # deploy of an environment of the tier takes the same lock
    r = world.cli("deploy", "--env", "mb-staging")
    assert r.exit_code == 1 and "locked by alice" in r.output
    # the holder's lock is still there, untouched
    info = read_lock(ledger_of(world), "staging")
    assert info is not None and info.token == holder.info.token  # type: ignore[union-attr]
    holder.release()
    assert not _lock_exists("staging")
    assert world.cli("promote", "--tier", "staging").exit_code == 0
    assert not _lock_exists("staging")


def test_lock_timeout_waits_for_the_holder_then_runs(world: World) -> None:
    holder = TierLock(ledger_of(world, environ=ALICE), "staging", command="promote", ttl=1800)
    holder.acquire()
    clients = world.clients()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            holder.release()

    clients.sleep = sleep
    said: list[str] = []
    result = run_promotion(
        world.config,
        clients,
        ledger_of(world),
        tier="staging",
        guard=Guard(lock_timeout=60),
        progress=said.append,
    )
    assert result.exit_code == 0, result.to_json()
    assert len(slept) >= 3
    assert any("waiting for the lock on tier 'staging'" in m and "alice" in m for m in said)
    assert not _lock_exists("staging")


def test_lock_timeout_runs_out(world: World) -> None:
    holder = TierLock(ledger_of(world, environ=ALICE), "staging", command="promote", ttl=1800)
    holder.acquire()
    writes = Writes()
    clients = world.clients(writes)
    ticks = iter(range(0, 10_000, 5))
    clients.clock = lambda: float(next(ticks))
    with pytest.raises(LockHeld) as info:
        run_promotion(
            world.config,
            clients,
            ledger_of(world, writes),
            tier="staging",
            guard=Guard(lock_timeout=30),
        )
    assert exit_code_of(info.value) == 1 and "alice" in info.value.message
    assert aws_writes(writes) == []
    holder.release()


def test_two_processes_promoting_one_tier_never_both_write(world: World) -> None:
    # each source hangs in ECS, so the winner holds the lock for its whole wait
    first = world.push_images(world.commit("a"), tags=("sandbox-hang-a",))
    second = world.push_images(world.commit("b"), tags=("sandbox-hang-b",))
    commits = {first["api"]: "a", second["api"]: "b"}
    shas = [c.hexsha for c in list(world.repo.iter_commits(max_count=2))][::-1]
    procs = [
        tierup(world, "promote", "--tier", "staging", "--commit", sha, "--timeout", "5s")
        for sha in shas
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [1, 4], (codes, outs)
    loser = codes.index(1)
    winner = 1 - loser
    assert "is locked by" in outs[loser][1] and "running `promote`" in outs[loser][1]
    assert "Traceback" not in outs[loser][1]
    # the registry and the ledger show the winner only
    staging = world.tag_digest("api", "staging")
    assert staging == (first if winner == 0 else second)["api"]
    assert commits[staging] == ("a" if winner == 0 else "b")
    events = ledger_of(world).events(tier="staging")
    assert len(events) == 1
    assert {i["to_digest"] for i in events[0]["images"] if i["image"] == "api"} == {staging}
    assert not _lock_exists("staging")


def test_the_lock_is_released_after_sigint(world: World) -> None:
    world.push_images(world.commit("hang"), tags=("sandbox-hang",))
    proc = tierup(world, "promote", "--tier", "staging", "--commit", world.head, "--timeout", "4s")
    deadline = time.monotonic() + 60
    while not _lock_exists("staging"):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "interrupted" in err
    assert not _lock_exists("staging")
    # the next run is not blocked
    assert world.cli("promote", "--tier", "staging", "--no-wait").exit_code == 0


def test_unlock_breaks_only_a_lock_older_than_the_ttl_and_is_recorded(world: World) -> None:
    holder = TierLock(ledger_of(world, environ=ALICE), "staging", command="promote", ttl=1800)
    holder.acquire()
    r = world.cli("unlock", "--tier", "staging")
    assert r.exit_code == 1, r.output
    assert "alice" in r.output and "lock.ttl" in r.output
    assert _lock_exists("staging")
    holder.release()

    old = datetime.now(UTC) - timedelta(hours=2)
    stale = TierLock(
        ledger_of(world, environ=ALICE), "staging", command="promote", ttl=1800, now=lambda: old
    )
    stale.acquire()
    r = world.cli("promote", "--tier", "staging")
    assert r.exit_code == 1 and "tierup unlock --tier staging" in r.output
    code, doc = world.cli_json("unlock", "--tier", "staging")
    assert code == 0, doc
    assert doc["lock"]["holder"]["name"] == "alice"
    assert not _lock_exists("staging")
    (event,) = ledger_of(world).events(command="unlock")
    assert event["tier"] == "staging" and "alice" in event["message"]
    assert event["actor"]["name"] == "Test User"
    code, doc = world.cli_json("unlock", "--tier", "staging")
    assert code == 0 and doc["lock"] is None


def test_local_ledger_keeps_the_lock_file_beside_it(tmp_path: Path, aws_env: str) -> None:
    world = release_world(tmp_path, aws_env, s3_ledger=False)
    new_digests(world)
    lock_file = world.root / ".tierup" / "locks" / "staging.json"
    holder = TierLock(ledger_of(world, environ=ALICE), "staging", command="promote", ttl=1800)
    holder.acquire()
    assert json.loads(lock_file.read_text())["holder"]["name"] == "alice"
    r = world.cli("promote", "--tier", "staging")
    assert r.exit_code == 1 and "locked by alice" in r.output
    holder.release()
    assert not lock_file.exists()
    assert world.cli("promote", "--tier", "staging").exit_code == 0
    assert not lock_file.exists()
    lines = (world.root / ".tierup" / "ledger.jsonl").read_text().splitlines()
    # the run's open event (written before its first write) and the event that closes it
    events = [json.loads(line) for line in lines]
    assert [(e["command"], e["status"]) for e in events] == [("promote", "open"), ("promote", "ok")]
    assert events[1]["closes"] == events[0]["id"]
