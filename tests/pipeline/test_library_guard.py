"""The library's writing surface, ``pipeline.api.Tierup``, runs under the guard: the tier's lock,
the gates, one ledger event. The executors beneath it refuse to write around it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.release_world import aws_writes, ledger_of, new_digests, release_world
from tests.support.world import World, Writes
from tierup.pipeline import deploy, plan_promotion, retention, undo, undo_run
from tierup.pipeline import promote as promote_mod
from tierup.pipeline.api import Tierup
from tierup.pipeline.gates import GateError
from tierup.pipeline.ledger.local import LocalLedger
from tierup.pipeline.lock import LockHeld, TierLock, Unguarded
from tierup.pipeline.promote import RunOptions, Source
from tierup.pipeline.results import CommandResult

ALICE = {"GITHUB_ACTOR": "alice"}


@pytest.fixture
def world(tmp_path: Path, aws_env: str, monkeypatch: pytest.MonkeyPatch) -> World:
    # the ledger is the local file under the world's root, where Tierup.load(root=...) finds it
    w = release_world(tmp_path, aws_env, s3_ledger=False, tier_extra="gates: {soak: 2h}")
    new_digests(w)  # dev has a new image: staging has a promotion to make
    monkeypatch.setenv("TIERUP_POLL_INTERVAL", "0")
    return w


def library(world: World) -> Tierup:
    return Tierup.load(world.config_path, root=world.root)


def test_every_writing_method_refuses_while_another_run_holds_the_tier(world: World) -> None:
    holders = [
        TierLock(ledger_of(world, environ=ALICE), tier, command="stamp", ttl=1800)
        for tier in ("staging", "prod")
    ]
    for h in holders:
        h.acquire()
    tierup = library(world)
    before = {t: world.tag_digest("api", t) for t in ("dev", "staging")}
    calls = {
        "promote": lambda: tierup.promote("staging"),
        "stamp": lambda: tierup.stamp("prod"),
        "deploy": lambda: tierup.deploy("staging"),
        "rollback": lambda: tierup.rollback("staging"),
        "rollback_tier": lambda: tierup.rollback_tier("staging"),
        "restore": lambda: tierup.restore("staging"),
    }
    for name, call in calls.items():
        with pytest.raises(LockHeld) as info:
            call()
        assert "locked by alice" in info.value.message, name
    assert {t: world.tag_digest("api", t) for t in ("dev", "staging")} == before
    assert tierup.ledger.events() == []
    for h in holders:
        h.release()


def test_a_library_promotion_is_one_ledger_event_and_leaves_no_lock(world: World) -> None:
    tierup = library(world)
    result = tierup.promote("staging")
    assert result.exit_code == 0, result.to_json()
    assert isinstance(tierup.ledger, LocalLedger)
    # as stored: the write-ahead event opened before the first write, then the one closing it
    opened, closing = [json.loads(line) for line in tierup.ledger.path.read_text().splitlines()]
    assert closing["closes"] == opened["id"] and closing["id"] == result.data["event"]
    assert closing["status"] == "ok" and closing["tier"] == "staging"
    assert [e["id"] for e in tierup.ledger.events()] == [closing["id"]]
    locks = world.root / ".tierup" / "locks"
    assert locks.is_dir() and not list(locks.glob("*"))  # taken, then released


def test_a_library_stamp_meets_the_gates_of_its_tier(world: World) -> None:
    tierup = library(world)
    assert tierup.promote("staging").exit_code == 0
    prod = world.tag_digest("api", "prod")
    with pytest.raises(GateError) as info:
        tierup.stamp("prod")  # staging's digest has not soaked for 2h
    assert "soak" in info.value.message
    assert world.tag_digest("api", "prod") == prod
    assert [e["command"] for e in tierup.ledger.events()] == ["promote"]


def test_the_executors_refuse_to_write_outside_a_guarded_command(world: World) -> None:
    tierup = library(world)
    assert tierup.promote("staging").exit_code == 0  # something for a rollback to undo
    writes = Writes()
    clients = world.clients(writes)
    config = world.config
    plan = plan_promotion.plan_promotion(
        config,
        clients,
        tier_name="staging",
        source=Source(kind="tier", value="dev"),
        images=None,
        deploy=True,
        now=datetime.now(UTC),
    )
    undo_plan = undo.plan_rollback(
        config, clients, tierup.ledger, env_name="staging", all_services=True
    )
    unguarded = {
        "promote": lambda: promote_mod.execute(config, clients, plan, options=RunOptions()),
        "rollback": lambda: undo_run.execute(config, clients, undo_plan, options=RunOptions()),
        "deploy": lambda: deploy.deploy_environment(
            config, clients, env="staging", options=RunOptions()
        ),
        "retention": lambda: retention.run(
            clients, plan.envs, {}, CommandResult(command="promote"), print
        ),
    }
    for name, call in unguarded.items():
        with pytest.raises(Unguarded) as info:
            call()
        assert "tierup.pipeline.api.Tierup" in info.value.hint, name
    assert aws_writes(writes) == []
