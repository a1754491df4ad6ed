"""`tierup stamp`: an immutable, timestamped tag on staging's digest, deployed to every prod."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.guarded import promote
from tests.support.release_world import (
    BUCKET,
    PREFIX,
    STAMP_RE,
    aws_writes,
    ledger_of,
    new_digests,
    release_world,
    running_digests,
    s3,
    tags_of,
    task_definition,
)
from tests.support.world import World, Writes
from tierup.pipeline.exit_codes import exit_code_of
from tierup.pipeline.promote import RunOptions
from tierup.pipeline.release import stamp
from tierup.stages.errors import StampConflictError

pytestmark = pytest.mark.usefixtures("aws_env")

T = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    """A second commit promoted to dev and staging; prod (two accounts) on the first."""
    w = release_world(tmp_path, aws_env)
    w.second = new_digests(w)  # type: ignore[attr-defined]
    assert promote(w.config, w.clients(), tier="staging").exit_code == 0
    return w


def _stamps(world: World, repository: str) -> dict[str, str]:
    return {t: d for t, d in tags_of(world, repository).items() if re.match(STAMP_RE, t)}


def test_stamp_cli_tags_staging_digest_deploys_every_prod_and_history_shows_it(
    world: World,
) -> None:
    staging = world.tag_digest("api", "staging")
    before = {e: world.services(e)["api"]["taskDefinition"] for e in ("prod", "mb-prod")}
    start = datetime.now(UTC).replace(microsecond=0)
    code, doc = world.cli_json("stamp", "--tier", "prod", "--message", "release 42")
    assert code == 0, doc
    assert doc["command"] == "stamp"
    api = doc["images"]["api"]
    assert re.match(STAMP_RE, api["tag"]) and api["status"] == "created"
    stamped_at = datetime.strptime(api["tag"][len("prod-") :], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert start <= stamped_at <= datetime.now(UTC)
    assert api["digest"] == staging
    assert _stamps(world, "api") == {api["tag"]: staging}
    for env in ("prod", "mb-prod"):
        svc = world.services(env)["api"]
        assert svc["taskDefinition"] != before[env]
        image = task_definition(world, env, "api")["containerDefinitions"][0]["image"]
        assert image.endswith(f"/api:{api['tag']}")
        prim = next(d for d in svc["deployments"] if d["status"] == "PRIMARY")
        assert prim["rolloutState"] == "COMPLETED"
        assert running_digests(world, env)["api"] == [staging]
        assert doc["environments"][env]["services"]["api"]["status"] == "completed"

    r = world.cli("history", "--tier", "prod")
    assert r.exit_code == 0, r.output
    assert "stamp --tier prod" in r.stdout and "Test User" in r.stdout
    assert api["tag"] in r.stdout and staging[:19] in r.stdout
    assert "message: release 42" in r.stdout
    code, hist = world.cli_json("history", "--tier", "prod", "--limit", "1")
    assert code == 0
    (event,) = hist["events"]
    assert event["id"] == doc["event"]
    assert event["command"] == "stamp" and event["message"] == "release 42"
    assert event["actor"]["name"] == "Test User"
    assert event["actor"]["arn"].startswith("arn:aws:iam::012345678922:")
    image = next(i for i in event["images"] if i["image"] == "api")
    assert image["to_digest"] == staging and image["tag"] == api["tag"]
    assert image["from_digest"] is None and image["repository"] == "api"
    svc = event["environments"]["mb-prod"]["services"]["api"]
    assert svc["task_definition_before"] == before["mb-prod"]
    assert svc["task_definition_after"] == world.services("mb-prod")["api"]["taskDefinition"]
    assert svc["digest_before"] == world.seeded.digests["api"]
    assert svc["digest_after"] == staging


def test_a_stamp_writes_exactly_one_tag_per_image_and_one_revision_per_prod_service(
    world: World,
) -> None:
    writes = Writes()
    ledger = ledger_of(world, writes)
    result = stamp(world.config, world.clients(writes), ledger, tier="prod", now=lambda: T)
    assert result.exit_code == 0, result.to_json()
    tag = "prod-20261126T103000Z"
    assert _stamps(world, "api") == {tag: world.tag_digest("api", "staging")}
    assert _stamps(world, "worker") == {tag: world.tag_digest("worker", "staging")}
    assert sorted(aws_writes(writes)) == sorted(
        ["PutImage"] * 2 + ["RegisterTaskDefinition", "UpdateService"] * 2
    )
    registered = [p for n, p in writes.calls if n == "RegisterTaskDefinition"]
    assert {p["containerDefinitions"][0]["image"].rsplit(":", 1)[1] for p in registered} == {tag}
    # the open event, the event that closes it and the lock's create (besides the ledger's
    # index and markers): nothing else in S3
    keys = [
        p["Key"].split("/")[2]
        for n, p in writes.calls
        if n == "PutObject" and "/index/" not in p["Key"] and "/by-tier/" not in p["Key"]
    ]
    assert sorted(keys) == ["events", "events", "locks"], keys


def test_same_stamp_again_is_unchanged_and_writes_nothing(world: World) -> None:
    ledger = ledger_of(world)
    assert stamp(world.config, world.clients(), ledger, tier="prod", now=lambda: T).exit_code == 0
    writes = Writes()
    again = stamp(world.config, world.clients(writes), ledger, tier="prod", now=lambda: T)
    assert again.exit_code == 0
    assert {i.status for i in again.images} == {"unchanged"}
    assert {s.status for e in again.environments for s in e.services} == {"skipped"}
    assert aws_writes(writes) == []
    # later, on the same digest, the existing stamp is reused: no second tag
    later = stamp(
        world.config, world.clients(), ledger, tier="prod", now=lambda: T + timedelta(hours=1)
    )
    assert {i.tag for i in later.images} == {"prod-20261126T103000Z"}
    assert len(_stamps(world, "api")) == 1
    # one event per run
    assert [e["command"] for e in ledger.events(tier="prod")] == ["stamp"] * 3


def test_same_stamp_on_another_digest_is_refused_with_exit_1_before_any_write(
    world: World,
) -> None:
    ledger = ledger_of(world)
    assert stamp(world.config, world.clients(), ledger, tier="prod", now=lambda: T).exit_code == 0
    new_digests(world, "third")
    assert promote(world.config, world.clients(), tier="staging").exit_code == 0
    before = _stamps(world, "api")
    writes = Writes()
    with pytest.raises(StampConflictError) as info:
        stamp(
            world.config,
            world.clients(writes),
            ledger_of(world, writes),
            tier="prod",
            now=lambda: T,
        )
    assert exit_code_of(info.value) == 1
    assert "prod-20261126T103000Z" in info.value.message and "never move" in info.value.message
    # only the lock was taken (and given back): nothing in the registry, ECS or the ledger
    assert aws_writes(writes) == []
    assert [n for n in writes.names() if n == "PutObject"] == ["PutObject"]
    assert s3().list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/locks/").get("KeyCount") == 0
    assert _stamps(world, "api") == before
    assert len(ledger.events(tier="prod")) == 1


def test_promote_on_an_immutable_tier_stamps_and_stamp_on_a_mutable_tier_is_bad_input(
    world: World,
) -> None:
    code, doc = world.cli_json("promote", "--tier", "prod")
    assert code == 0, doc
    assert re.match(STAMP_RE, doc["images"]["api"]["tag"])
    assert doc["environments"]["mb-prod"]["services"]["api"]["status"] == "completed"
    r = world.cli("stamp", "--tier", "staging")
    assert r.exit_code == 2
    assert "mutable" in r.output and "tierup promote --tier staging" in r.output


def test_stamp_dry_run_plans_the_writes_and_makes_none(world: World) -> None:
    writes = Writes()
    ledger = ledger_of(world, writes)
    dry = stamp(
        world.config,
        world.clients(writes),
        ledger,
        tier="prod",
        now=lambda: T,
        options=RunOptions(dry_run=True),
    )
    assert writes.calls == []
    assert ledger.events() == []
    kinds = sorted(s["write"] for s in dry.plan)
    assert kinds == sorted(
        ["registry:PutImage"] * 2 + ["ecs:RegisterTaskDefinition+UpdateService"] * 2
    )
    assert {s["tag"] for s in dry.plan if s["write"] == "registry:PutImage"} == {
        "prod-20261126T103000Z"
    }


def test_pin_digest_registers_revisions_naming_the_digest(tmp_path: Path, aws_env: str) -> None:
    w = release_world(tmp_path, aws_env, tier_extra="pin: digest")
    new_digests(w)
    assert promote(w.config, w.clients(), tier="staging").exit_code == 0
    result = stamp(w.config, w.clients(), ledger_of(w), tier="prod", now=lambda: T)
    assert result.exit_code == 0, result.to_json()
    image = task_definition(w, "prod", "api")["containerDefinitions"][0]["image"]
    assert image.endswith("/api@" + w.tag_digest("api", "staging"))
    assert w.tag_digest("api", "prod-20261126T103000Z") == w.tag_digest("api", "staging")
