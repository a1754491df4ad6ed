"""Snapshots and restore on moto's server with the sandbox's ECS emulation."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from tests.support.ecs_checks import HOST, container_digests, content, stable
from tests.support.release_world import ledger_of, new_commit, ship, task_definition
from tests.support.world import World, Writes, make_world
from tierup.pipeline.promote import RunOptions
from tierup.pipeline.snapshot import restore

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    """A first commit shipped to every tier, so that every service runs an image of it."""
    w = make_world(tmp_path, aws_env)
    new_commit(w, "one")
    ship(w, "dev", "staging", "prod", minute=1)
    return w


def snapshot_of(world: World, env: str) -> dict[str, dict[str, object]]:
    """Service -> its task definition (described) and what its tasks run, now."""
    return {
        svc: {
            "task_definition": task_definition(world, env, svc),
            "digests": container_digests(world, env, svc),
        }
        for svc in world.config.environment(env).services
    }


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_snapshot_promote_promote_restore_returns_every_service_to_the_snapshot(
    world: World, env: str
) -> None:
    before = snapshot_of(world, env)
    code, doc = world.cli_json("snapshot", "--env", env, "--name", "before-release")
    assert code == 0, doc
    assert doc["snapshot"] == "before-release"
    assert {s["status"] for s in doc["environments"][env]["services"].values()} == {"recorded"}
    new_commit(world, "two")
    ship(world, "dev", "staging", "prod", minute=2)
    new_commit(world, "three")
    ship(world, "dev", "staging", "prod", minute=3)
    assert snapshot_of(world, env) != before

    code, doc = world.cli_json("restore", "--env", env)

    assert code == 0, doc
    assert doc["snapshot"] == "before-release"
    outcomes = doc["environments"][env]["services"]
    assert set(outcomes) == set(before)
    for svc, was in before.items():
        assert outcomes[svc]["status"] == "restored"
        assert outcomes[svc]["source"] == "snapshot"
        td = task_definition(world, env, svc)
        old = was["task_definition"]
        assert isinstance(old, dict)
        digests = was["digests"]
        assert isinstance(digests, dict)
        (digest,) = digests[svc]
        if env == "prod":
            # an immutable stamp that still points at its digest: the very same revision
            assert td["taskDefinitionArn"] == old["taskDefinitionArn"]
        else:
            # a mutable tag: the same content, pinned to the digest that ran then
            assert td["containerDefinitions"][0]["image"] == f"{HOST}/{svc}@{digest}"
            assert content({**td, "containerDefinitions": old["containerDefinitions"]}) == (
                content(old)
            )
        assert container_digests(world, env, svc) == digests
        assert stable(world, env, svc)

    history = world.cli("history", "--env", env)
    assert history.exit_code == 0, history.output
    lines = [line for line in history.stdout.splitlines() if " by " in line]
    assert " restore " in lines[0]
    assert any(" snapshot " in line for line in lines[1:])
    commands = [e["command"] for e in ledger_of(world).events(env=env)]
    assert commands[0] == "restore"
    assert "snapshot" in commands
    assert commands.index("snapshot") > commands.index("restore")


def test_mutable_tag_restore_is_pinned_and_the_next_promotion_unpins(world: World) -> None:
    snapped = {svc: container_digests(world, "staging", svc) for svc in ("api", "worker")}
    assert world.cli_json("snapshot", "--env", "staging")[0] == 0
    new_commit(world, "two")
    ship(world, "dev", "staging", minute=2)

    code, doc = world.cli_json("restore", "--env", "staging", "--snapshot", "latest")

    assert code == 0, doc
    for svc in ("api", "worker"):
        (digest,) = snapped[svc][svc]
        pinned = f"{HOST}/{svc}@{digest}"
        assert doc["environments"]["staging"]["services"][svc]["pinned"] == {svc: pinned}
        image = task_definition(world, "staging", svc)["containerDefinitions"][0]["image"]
        assert image == pinned

    new_commit(world, "three")
    ship(world, "dev", minute=3)
    code, doc = world.cli_json("promote", "--tier", "staging")

    assert code == 0, doc
    for svc in ("api", "worker"):
        outcome = doc["environments"]["staging"]["services"][svc]
        assert outcome["status"] == "completed"
        assert outcome["reason"].startswith("unpinned: ")
        step = next(s for s in doc["plan"] if s.get("service") == svc)
        assert step["action"] == "unpin"
        image = task_definition(world, "staging", svc)["containerDefinitions"][0]["image"]
        assert image == f"{HOST}/{svc}:staging"
        assert container_digests(world, "staging", svc) == {svc: {world.tag_digest(svc, "staging")}}


def test_restore_dry_run_writes_nothing_and_plans_the_real_writes(world: World) -> None:
    assert world.cli_json("snapshot", "--env", "staging", "--name", "s1")[0] == 0
    new_commit(world, "two")
    ship(world, "dev", "staging", minute=2)
    ids = {s: d["deployments"][0]["id"] for s, d in world.services("staging").items()}
    events = len(ledger_of(world).events())
    writes = Writes()

    dry = restore(
        world.config,
        world.clients(writes),
        ledger_of(world),
        env="staging",
        snapshot="s1",
        options=RunOptions(dry_run=True),
    )

    assert dry.exit_code == 0
    assert writes.calls == []
    assert {s: d["deployments"][0]["id"] for s, d in world.services("staging").items()} == ids
    assert len(ledger_of(world).events()) == events
    r = world.cli("restore", "--env", "staging", "--snapshot", "s1", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "dry run" in r.stdout
    assert {s: d["deployments"][0]["id"] for s, d in world.services("staging").items()} == ids
    assert len(ledger_of(world).events()) == events

    real = restore(
        world.config,
        world.clients(writes),
        ledger_of(world),
        env="staging",
        snapshot="s1",
        options=RunOptions(wait=False),
    )
    assert real.exit_code == 0
    planned = sorted(
        (w, s["service"]) for s in dry.plan for w in s["write"].removeprefix("ecs:").split("+")
    )
    made = sorted(
        (n, p.get("service") or p["family"].removeprefix("staging-")) for n, p in writes.calls
    )
    assert (
        planned
        == made
        == sorted(
            [
                (op, svc)
                for svc in ("api", "worker")
                for op in ("RegisterTaskDefinition", "UpdateService")
            ]
        )
    )
    # re-run while those rollouts go on: it follows them and writes nothing
    again = Writes()
    rerun = restore(
        world.config, world.clients(again), ledger_of(world), env="staging", snapshot="s1"
    )
    assert rerun.exit_code == 0
    assert again.calls == []
    assert {s.status for e in rerun.environments for s in e.services} == {"restored"}
    # and once they are done, every service is on the snapshot already: unchanged
    rerun = restore(
        world.config, world.clients(again), ledger_of(world), env="staging", snapshot="s1"
    )
    assert rerun.exit_code == 0
    assert again.calls == []
    assert {s.status for e in rerun.environments for s in e.services} == {"unchanged"}


def test_snapshots_lists_by_environment_and_tier_snapshots_record_every_environment(
    world: World,
) -> None:
    assert world.cli_json("snapshot", "--tier", "staging", "--name", "tier-one")[0] == 0
    assert world.cli_json("snapshot", "--env", "prod", "--name", "prod-one")[0] == 0
    code, doc = world.cli_json("snapshot", "--env", "staging")
    assert code == 0
    newest = doc["snapshot"]
    assert newest.startswith("staging-")

    code, doc = world.cli_json("snapshots")
    assert code == 0
    assert [s["name"] for s in doc["snapshots"]] == ["tier-one", "prod-one", newest]
    assert doc["snapshots"][0]["environments"] == {
        "staging": ["api", "worker"],
        "mb-staging": ["api", "worker"],
    }
    code, doc = world.cli_json("snapshots", "--env", "mb-staging")
    assert [s["name"] for s in doc["snapshots"]] == ["tier-one"]
    r = world.cli("snapshots", "--env", "staging")
    assert r.exit_code == 0 and "tier-one" in r.stdout and newest in r.stdout

    r = world.cli("snapshot", "--env", "prod", "--name", "prod-one")
    assert r.exit_code == 2
    assert "already exists" in r.stderr
    r = world.cli("restore", "--env", "prod", "--snapshot", "tier-one")
    assert r.exit_code == 2
    assert "did not record environment 'prod'" in r.stderr
    r = world.cli("restore", "--env", "dev")
    assert r.exit_code == 2
    assert "no snapshot records environment 'dev'" in r.stderr
    # the tier snapshot restores mb-staging, the newest one is for staging
    code, doc = world.cli_json("restore", "--env", "mb-staging", "--dry-run")
    assert code == 0 and doc["snapshot"] == "tier-one"
    code, doc = world.cli_json("restore", "--env", "staging", "--dry-run")
    assert code == 0 and doc["snapshot"] == newest


def test_a_team_keeps_snapshots_in_the_s3_ledger(tmp_path: Path, aws_env: str) -> None:
    w = make_world(tmp_path, aws_env)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="team-ledger")
    w.config_path.write_text(w.config_path.read_text() + "ledger: {s3: s3://team-ledger/tierup}\n")
    new_commit(w, "one")
    ship(w, "dev", "staging", minute=1)
    before = {svc: container_digests(w, "staging", svc) for svc in ("api", "worker")}

    code, doc = w.cli_json("snapshot", "--env", "staging", "--name", "team-snap")

    assert code == 0, doc
    assert doc["ledger"] == "s3://team-ledger/tierup/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="team-ledger")["Contents"]]
    assert "tierup/documents/snapshot/team-snap.json" in keys
    assert not (w.root / ".tierup").exists()
    new_commit(w, "two")
    ship(w, "dev", "staging", minute=2)
    code, doc = w.cli_json("restore", "--env", "staging")
    assert code == 0, doc
    assert doc["snapshot"] == "team-snap"
    assert {svc: container_digests(w, "staging", svc) for svc in ("api", "worker")} == before
    assert [e["command"] for e in ledger_of(w).events(env="staging", limit=2)] == [
        "restore",
        "promote",
    ]
