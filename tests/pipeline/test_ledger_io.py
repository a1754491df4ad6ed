"""The S3 ledger's requests: bounded reads whatever the history, and writes whose answer is lost.

Counted and faulted by a proxy on loopback in front of moto's server.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.faults import FaultProxy, drop_answer
from tests.support.release_world import (
    BUCKET,
    PREFIX,
    T0,
    ledger_of,
    new_digests,
    release_world,
    s3,
)
from tests.support.world import World
from tierup.pipeline.ledger.base import Ledger


@pytest.fixture
def world(tmp_path: Path, aws_env: str, fault_proxy: FaultProxy) -> World:
    w = release_world(tmp_path, aws_env)
    new_digests(w)
    return w


def _old_clock(start: datetime) -> Callable[[], datetime]:
    ticks = itertools.count()
    return lambda: start + timedelta(minutes=next(ticks))


def _history(ledger: Ledger, count: int) -> None:
    """``count`` past events of the tiers, written through the ledger, as runs leave them."""
    tiers = itertools.cycle(["staging", "staging", "dev", "prod"])
    for n in range(count):
        ledger.record(
            {
                "command": "deploy",
                "tier": next(tiers),
                "status": "ok",
                "message": f"event {n}",
                "images": [],
                "environments": {},
            }
        )


def _s3_calls(proxy: FaultProxy, since: int) -> list[str]:
    return [f"{c.operation} {c.path}" for c in proxy.calls[since:] if c.service == "s3"]


def _event_objects() -> list[dict[str, Any]]:
    listed = s3().list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/events/")
    return [
        json.loads(s3().get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read())
        for o in listed.get("Contents", [])
    ]


def test_a_promotion_reads_as_many_s3_objects_after_200_events_as_after_10(
    world: World, fault_proxy: FaultProxy
) -> None:
    past = ledger_of(world, now=_old_clock(T0 - timedelta(days=30)))
    _history(past, 10)
    past.read(tier="staging")  # the first read of a ledger builds its index
    counts = []
    for total, more in ((10, 0), (200, 190)):
        _history(past, more)
        assert len(_event_objects()) >= total
        new_digests(world, f"at {total}")
        since = len(fault_proxy.calls)
        r = world.cli("promote", "--tier", "staging")
        assert r.exit_code == 0, r.output
        counts.append(_s3_calls(fault_proxy, since))
    assert len(counts[0]) == len(counts[1]), "\n".join(counts[0] + ["--"] + counts[1])
    reads = [c for c in counts[1] if c.startswith("GetObject") and "/events/" in c]
    assert reads == [], counts[1]  # the events themselves come from the index


def test_an_s3_ledger_without_an_index_still_reads_and_gains_one_on_its_next_write(
    world: World, fault_proxy: FaultProxy
) -> None:
    ledger = ledger_of(world, now=_old_clock(T0))
    _history(ledger, 12)
    # as a ledger written before the index: the events alone
    for prefix in ("index/", "by-tier/"):
        listed = s3().list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/{prefix}")
        for o in listed.get("Contents", []):
            s3().delete_object(Bucket=BUCKET, Key=o["Key"])
    fresh = ledger_of(world)
    since = len(fault_proxy.calls)
    found = fresh.read(tier="staging")
    assert [e.message for e in found] == [f"event {n}" for n in (9, 8, 5, 4, 1, 0)]
    calls = _s3_calls(fault_proxy, since)
    assert len([c for c in calls if "/events/" in c]) >= 12
    assert [c for c in calls if not c.startswith(("GetObject", "ListObjects"))] == []
    # the next write builds it; then reads come from it, not event by event
    new_digests(world, "after the index")
    r = world.cli("promote", "--tier", "staging")
    assert r.exit_code == 0, r.output
    since = len(fault_proxy.calls)
    staging = fresh.read(tier="staging")
    assert staging[0].command == "promote" and staging[1:] == found
    assert [e.message for e in fresh.read(tier="prod")] == ["event 11", "event 7", "event 3"]
    assert len(fresh.read()) == 13
    events_read = [c for c in _s3_calls(fault_proxy, since) if "/events/" in c]
    assert [c for c in events_read if c.startswith("GetObject")] == []


@pytest.mark.parametrize("lost", [1, 8], ids=["one-answer-lost", "every-answer-lost"])
def test_a_lost_answer_on_the_event_write_stores_the_event_once(
    world: World, fault_proxy: FaultProxy, lost: int
) -> None:
    ledger = ledger_of(world)
    fault_proxy.rules.append(drop_answer("s3", "PutObject", path="/events/", times=lost))
    stored = ledger.record(
        {"command": "deploy", "tier": "staging", "status": "ok", "images": [], "environments": {}}
    )
    assert fault_proxy.stats.faults.get("drop", 0) >= 1
    objects = _event_objects()
    assert [o["id"] for o in objects] == [stored["id"]]
    assert [e["id"] for e in ledger.events(tier="staging")] == [stored["id"]]


def test_a_lost_answer_to_put_image_is_recorded_as_moved(
    world: World, fault_proxy: FaultProxy
) -> None:
    # the tag moves, its answer is lost; the SDK's retry then meets "already exists"
    fault_proxy.rules.append(drop_answer("ecr", "PutImage"))
    code, doc = world.cli_json("promote", "--tier", "staging")
    assert fault_proxy.stats.faults == {"drop": 1}
    assert code == 0, doc
    assert doc["images"]["api"]["status"] == "moved", doc["images"]
    assert world.tag_digest("api", "staging") == world.tag_digest("api", "dev")
    (event,) = ledger_of(world).read(command="promote", tier="staging", limit=1)
    assert {i.image: i.status for i in event.images}["api"] == "moved"


def _index_ids(tier: str | None) -> list[str]:
    key = f"{PREFIX}/index/all.json" if tier is None else f"{PREFIX}/index/tiers/{tier}.json"
    doc = json.loads(s3().get_object(Bucket=BUCKET, Key=key)["Body"].read())
    return [e["id"] for e in doc["events"]]


def test_an_open_event_left_out_of_the_index_is_read_and_indexed_by_the_next_write(
    world: World, fault_proxy: FaultProxy
) -> None:
    ledger = ledger_of(world, now=_old_clock(T0))
    _history(ledger, 3)
    ledger.read(tier="staging")  # an index to leave the open event out of
    since = len(fault_proxy.calls)
    opened = ledger.record(
        {
            "command": "promote",
            "tier": "staging",
            "status": "open",
            "images": [],
            "environments": {},
        }
    )
    # written before the run's first write: its marker and itself, no index update
    assert [c.split()[0] for c in _s3_calls(fault_proxy, since)] == ["PutObject", "PutObject"]
    assert opened["id"] not in _index_ids("staging") + _index_ids(None)
    # another process (the run died): the open event is found all the same, as open
    later = ledger_of(world, now=_old_clock(T0 + timedelta(hours=1)))
    assert [e.id for e in later.read(tier="staging") if e.is_open] == [opened["id"]]
    later.record({"command": "deploy", "tier": "dev", "status": "ok", "environments": {}})
    later.record({"command": "deploy", "tier": "staging", "status": "ok", "environments": {}})
    assert opened["id"] in _index_ids("staging") and opened["id"] in _index_ids(None)
