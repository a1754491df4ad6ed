"""`tierup rollback tier`: back to the digest a tier had before, from the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.release_world import (
    aws_writes,
    ledger_of,
    new_digests,
    release_world,
    running_digests,
    tags_of,
    task_definition,
)
from tests.support.world import World, Writes
from tierup.pipeline.exit_codes import exit_code_of
from tierup.pipeline.promote import RunOptions
from tierup.pipeline.release import run_promotion, stamp
from tierup.pipeline.rollback_tier import RollbackTargetMissing, rollback_tier

pytestmark = pytest.mark.usefixtures("aws_env")

T = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
STAGING = ("staging", "mb-staging")


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    """Two promotions of staging through the CLI: D1 (second commit), then D2 (third)."""
    w = release_world(tmp_path, aws_env)
    w.d1 = new_digests(w, "second")  # type: ignore[attr-defined]
    code, doc = w.cli_json("promote", "--tier", "staging")
    assert code == 0, doc
    w.d2 = new_digests(w, "third")  # type: ignore[attr-defined]
    code, doc = w.cli_json("promote", "--tier", "staging")
    assert code == 0, doc
    assert w.tag_digest("api", "staging") == w.d2["api"]  # type: ignore[attr-defined]
    return w


def _runs(world: World, digests: dict[str, str]) -> None:
    for env in STAGING:
        running = running_digests(world, env)
        assert running == {"api": [digests["api"]], "worker": [digests["worker"]]}, env


def test_rollback_tier_after_two_promotions_restores_the_first_digest_everywhere(
    world: World,
) -> None:
    d1, d2 = world.d1, world.d2  # type: ignore[attr-defined]
    _runs(world, d2)
    code, doc = world.cli_json("rollback", "tier", "--tier", "staging")
    assert code == 0, doc
    assert doc["command"] == "rollback tier"
    assert world.tag_digest("api", "staging") == d1["api"]
    assert world.tag_digest("worker", "staging") == d1["worker"]
    assert doc["images"]["api"]["previous_digest"] == d2["api"]
    assert doc["images"]["api"]["status"] == "moved"
    for env in STAGING:
        for svc in ("api", "worker"):
            assert doc["environments"][env]["services"][svc]["status"] == "completed"
    _runs(world, d1)
    events = ledger_of(world).events(tier="staging")
    assert [e["command"] for e in events] == ["rollback tier", "promote", "promote"]
    api = next(i for i in events[0]["images"] if i["image"] == "api")
    assert (api["from_digest"], api["to_digest"]) == (d2["api"], d1["api"])
    svc = events[0]["environments"]["mb-staging"]["services"]["worker"]
    assert (svc["digest_before"], svc["digest_after"]) == (d2["worker"], d1["worker"])
    # rolling back again undoes the rollback
    code, doc = world.cli_json("rollback", "tier", "--tier", "staging")
    assert code == 0, doc
    assert world.tag_digest("api", "staging") == d2["api"]


def test_steps_and_to_pick_older_digests(world: World) -> None:
    first = world.seeded.digests
    d2 = world.d2  # type: ignore[attr-defined]
    # the ledger knows d2, d1 and, as what the first promotion moved the tag from, the seed's
    r = world.cli("rollback", "tier", "--tier", "staging", "--steps", "3")
    assert r.exit_code == 2 and "no earlier digest" in r.output
    code, doc = world.cli_json("rollback", "tier", "--tier", "staging", "--steps", "2")
    assert code == 0, doc
    assert world.tag_digest("api", "staging") == first["api"]
    assert world.tag_digest("worker", "staging") == first["worker"]
    _runs(world, first)
    # --to names one repository's digest: the other image stays where it is
    code, doc = world.cli_json("rollback", "tier", "--tier", "staging", "--to", d2["api"])
    assert code == 0, doc
    assert world.tag_digest("api", "staging") == d2["api"]
    assert world.tag_digest("worker", "staging") == first["worker"]
    assert "worker" not in doc["images"]
    r = world.cli("rollback", "tier", "--tier", "staging", "--to", "sha256:" + "0" * 64)
    assert r.exit_code == 2 and "in none of the repositories" in r.output


def test_the_first_recorded_promotion_goes_back_to_what_the_tag_had(
    tmp_path: Path, aws_env: str
) -> None:
    w = release_world(tmp_path, aws_env)
    new_digests(w)
    assert w.cli("promote", "--tier", "staging").exit_code == 0
    code, doc = w.cli_json("rollback", "tier", "--tier", "staging")
    assert code == 0, doc
    assert w.tag_digest("api", "staging") == w.seeded.digests["api"]
    _runs(w, w.seeded.digests)


def test_rollback_to_an_expired_image_is_refused_before_any_write(world: World) -> None:
    d1 = world.d1  # type: ignore[attr-defined]
    ecr = world.ecr()
    ecr.batch_delete_image(
        registryId="012345678922", repositoryName="api", imageIds=[{"imageDigest": d1["api"]}]
    )
    writes = Writes()
    with pytest.raises(RollbackTargetMissing) as info:
        rollback_tier(world.config, world.clients(writes), ledger_of(world, writes), tier="staging")
    assert exit_code_of(info.value) == 1
    assert (
        f"api@{d1['api']}" in info.value.message
        and "no longer in the registry" in info.value.message
    )
    assert "lifecycle policy" in info.value.hint
    assert aws_writes(writes) == []
    assert world.tag_digest("worker", "staging") == world.d2["worker"]  # type: ignore[attr-defined]
    r = world.cli("rollback", "tier", "--tier", "staging")
    assert r.exit_code == 1 and "no longer in the registry" in r.output
    assert [e["command"] for e in ledger_of(world).events(tier="staging")] == ["promote"] * 2


def test_dry_run_plans_the_writes_a_real_rollback_makes(world: World) -> None:
    writes = Writes()
    dry = rollback_tier(
        world.config,
        world.clients(writes),
        ledger_of(world, writes),
        tier="staging",
        options=RunOptions(dry_run=True),
    )
    assert writes.calls == []
    real = rollback_tier(
        world.config, world.clients(writes), ledger_of(world, writes), tier="staging"
    )
    assert real.exit_code == 0, real.to_json()
    planned = sorted(
        ("PutImage", s["repository"])
        if s["write"] == "registry:PutImage"
        else ("UpdateService", s["service"])
        for s in dry.plan
    )
    made = sorted(
        ("PutImage", p["repositoryName"]) if n == "PutImage" else ("UpdateService", p["service"])
        for n, p in writes.calls
        if n in ("PutImage", "UpdateService")
    )
    assert planned == made and len(made) == 2 + 4


def test_immutable_tier_rollback_redeploys_the_earlier_stamp_without_a_new_tag(
    world: World,
) -> None:
    ledger = ledger_of(world)
    clients = world.clients()
    # prod: stamp d2 (staging now), then staging -> d3 and a second stamp
    first = stamp(world.config, clients, ledger, tier="prod", now=lambda: T)
    assert first.exit_code == 0, first.to_json()
    d3 = new_digests(world, "fourth")
    assert run_promotion(world.config, world.clients(), ledger, tier="staging").exit_code == 0
    second = stamp(
        world.config, world.clients(), ledger, tier="prod", now=lambda: T + timedelta(hours=1)
    )
    assert second.exit_code == 0, second.to_json()
    for env in ("prod", "mb-prod"):
        image = task_definition(world, env, "api")["containerDefinitions"][0]["image"]
        assert image.endswith("/api:prod-20261126T110000Z")
    tags_before = tags_of(world, "api")
    writes = Writes()
    result = rollback_tier(
        world.config, world.clients(writes), ledger_of(world, writes), tier="prod"
    )
    assert result.exit_code == 0, result.to_json()
    assert "PutImage" not in writes.names()
    assert tags_of(world, "api") == tags_before
    for env in ("prod", "mb-prod"):
        image = task_definition(world, env, "api")["containerDefinitions"][0]["image"]
        assert image.endswith("/api:prod-20261126T100000Z")
        assert running_digests(world, env)["api"] == [world.d2["api"]]  # type: ignore[attr-defined]
    event = ledger.events(tier="prod", limit=1)[0]
    api = next(i for i in event["images"] if i["image"] == "api")
    assert event["command"] == "rollback tier"
    assert (api["from_digest"], api["to_digest"]) == (d3["api"], world.d2["api"])  # type: ignore[attr-defined]
    assert api["tag"] == "prod-20261126T100000Z"


def test_to_takes_a_stamp_tag(world: World) -> None:
    ledger = ledger_of(world)
    first = stamp(world.config, world.clients(), ledger, tier="prod", now=lambda: T)
    assert first.exit_code == 0, first.to_json()
    new_digests(world, "fourth")
    assert run_promotion(world.config, world.clients(), ledger, tier="staging").exit_code == 0
    later = T + timedelta(hours=1)
    second = stamp(world.config, world.clients(), ledger, tier="prod", now=lambda: later)
    assert second.exit_code == 0, second.to_json()
    code, doc = world.cli_json(
        "rollback", "tier", "--tier", "prod", "--to", "prod-20261126T100000Z"
    )
    assert code == 0, doc
    assert doc["images"]["api"]["tag"] == "prod-20261126T100000Z"
    for env in ("prod", "mb-prod"):
        image = task_definition(world, env, "api")["containerDefinitions"][0]["image"]
        assert image.endswith("/api:prod-20261126T100000Z")
        assert running_digests(world, env)["api"] == [world.d2["api"]]  # type: ignore[attr-defined]
    code, doc = world.cli_json(
        "rollback", "tier", "--tier", "prod", "--to", "prod-19990101T000000Z"
    )
    assert code == 2
    assert "tag prod-19990101T000000Z is in none" in doc["error"]
