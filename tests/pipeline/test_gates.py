"""Promotion gates on moto: soak from the ledger, a healthy source tier, allowed branches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.release_world import aws_writes, ledger_of, new_digests, release_world, tags_of
from tests.support.world import World, Writes
from tierup.pipeline.exit_codes import exit_code_of
from tierup.pipeline.gates import GateError
from tierup.pipeline.guard import Guard
from tierup.pipeline.promote import Source
from tierup.pipeline.release import run_promotion, stamp

pytestmark = pytest.mark.usefixtures("aws_env")

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
ALL_GATES = "gates: {soak: 2h, require_source_healthy: true, allowed_branches: [main]}"


def _world(tmp_path: Path, endpoint: str, gates: str, at: datetime | None = T0) -> World:
    w = release_world(tmp_path, endpoint, tier_extra=gates)
    new_digests(w)
    # staging gets dev's digest at T0 (or now), through tierup: the ledger knows since when
    clock = None if at is None else (lambda: at)
    result = run_promotion(w.config, w.clients(), ledger_of(w, now=clock), tier="staging")
    assert result.exit_code == 0, result.to_json()
    return w


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    return _world(tmp_path, aws_env, ALL_GATES)


def _stamp(world: World, at: datetime, writes: Writes | None = None, **kw: object):  # type: ignore[no-untyped-def]
    return stamp(
        world.config,
        world.clients(writes),
        ledger_of(world, writes),
        tier="prod",
        now=lambda: at,
        environ={},
        **kw,  # type: ignore[arg-type]
    )


def _prod_events(world: World) -> list[dict[str, object]]:
    return ledger_of(world).events(tier="prod")


def test_soak_fails_before_its_time_naming_the_gate_and_when_it_is_met(world: World) -> None:
    writes = Writes()
    with pytest.raises(GateError) as info:
        _stamp(world, T0 + timedelta(hours=1), writes)
    err = info.value
    assert exit_code_of(err) == 1
    assert [g.gate for g in err.failed] == ["soak"]
    assert "gate soak:" in err.message
    assert "has been in 'staging' for 1h00m" in err.message and "soak needs 2h00m" in err.message
    assert "wait until 2026-11-26T12:00:00Z" in err.hint and "--force --reason" in err.hint
    assert aws_writes(writes) == []
    assert _prod_events(world) == []
    assert not any(t.startswith("prod-") for t in tags_of(world, "api"))

    result = _stamp(world, T0 + timedelta(hours=2, minutes=1))
    assert result.exit_code == 0, result.to_json()
    gates = {g["gate"]: g for g in result.data["gates"]}
    assert set(gates) == {"soak", "require_source_healthy", "allowed_branches"}
    assert all(g["passed"] for g in gates.values())


def test_force_with_a_reason_passes_the_gates_and_the_ledger_keeps_the_reason(
    world: World,
) -> None:
    result = _stamp(
        world, T0 + timedelta(minutes=5), guard=Guard(force=True, reason="hotfix INC-7")
    )
    assert result.exit_code == 0, result.to_json()
    assert any("--force" in n and "soak" in n and "hotfix INC-7" in n for n in result.notes)
    (event,) = _prod_events(world)
    assert event["reason"] == "hotfix INC-7"
    assert event["command"] == "stamp"
    r = world.cli("stamp", "--tier", "prod", "--force")
    assert r.exit_code == 2 and "--force needs --reason" in r.output


def test_gate_refusal_through_the_cli_is_one_line_exit_1_and_writes_nothing(
    tmp_path: Path, aws_env: str
) -> None:
    # the CLI runs on the real clock: staging got its digest just now
    world = _world(tmp_path, aws_env, ALL_GATES, at=None)
    before = tags_of(world, "api")
    r = world.cli("stamp", "--tier", "prod")
    assert r.exit_code == 1, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "gate soak:" in errors[0] and "(hint: " in errors[0]
    assert "Traceback" not in r.output
    assert tags_of(world, "api") == before
    assert _prod_events(world) == []
    code, doc = world.cli_json(
        "promote", "--tier", "prod", "--force", "--reason", "release train", "--no-wait"
    )
    assert code == 0, doc
    assert doc["gates"][0]["gate"] == "soak" and doc["gates"][0]["passed"] is False
    assert _prod_events(world)[0]["reason"] == "release train"


def test_soak_without_a_ledger_record_fails(tmp_path: Path, aws_env: str) -> None:
    w = release_world(tmp_path, aws_env, tier_extra="gates: {soak: 10m}")
    with pytest.raises(GateError) as info:
        _stamp(w, T0)
    assert "no record in tier 'staging'" in info.value.message
    assert "promote to 'staging' with tierup first" in info.value.hint


def test_healthy_source_fails_while_staging_runs_another_digest(
    tmp_path: Path, aws_env: str
) -> None:
    w = _world(tmp_path, aws_env, "gates: {require_source_healthy: true}")
    assert _stamp(w, T0).exit_code == 0
    # staging's tag moves, but nothing is deployed: staging does not run what would be stamped
    new_digests(w, "third")
    moved = run_promotion(w.config, w.clients(), ledger_of(w), tier="staging", deploy=False)
    assert moved.exit_code == 0
    writes = Writes()
    with pytest.raises(GateError) as info:
        _stamp(w, T0 + timedelta(minutes=1), writes)
    msg = info.value.message
    assert [g.gate for g in info.value.failed] == ["require_source_healthy"]
    assert "staging/api: runs sha256:" in msg and "mb-staging/worker" in msg
    assert "tierup deploy --env" in info.value.hint
    assert aws_writes(writes) == []
    # deployed and stable again: the gate passes
    for env in ("staging", "mb-staging"):
        assert w.cli("deploy", "--env", env).exit_code == 0
    assert _stamp(w, T0 + timedelta(minutes=2)).exit_code == 0


def test_allowed_branches_from_git_and_from_ci(tmp_path: Path, aws_env: str) -> None:
    w = _world(tmp_path, aws_env, 'gates: {allowed_branches: [main, "release/*"]}')
    w.repo.git.checkout("-b", "feature")
    with pytest.raises(GateError) as info:
        _stamp(w, T0)
    assert "branch 'feature' is not in allowed_branches (main, release/*)" in info.value.message
    result = stamp(
        w.config,
        w.clients(),
        ledger_of(w),
        tier="prod",
        now=lambda: T0,
        environ={"GITHUB_REF": "refs/heads/release/2026.11"},
    )
    assert result.exit_code == 0, result.to_json()
    w.repo.git.checkout("main")
    code, doc = w.cli_json("promote", "--tier", "staging", "--from", "dev")
    assert code == 0, doc  # staging has no gates


def test_gates_judge_a_commit_source_by_the_source_tier(world: World) -> None:
    # the first commit is no longer what staging has: it neither soaked there nor runs there
    with pytest.raises(GateError) as info:
        run_promotion(
            world.config,
            world.clients(),
            ledger_of(world),
            tier="prod",
            source=Source(kind="commit", value=world.seeded.commit),
            now=lambda: T0 + timedelta(hours=5),
            environ={},
        )
    assert [g.gate for g in info.value.failed] == ["soak", "require_source_healthy"]
    # the commit staging has soaked and runs passes
    result = run_promotion(
        world.config,
        world.clients(),
        ledger_of(world),
        tier="prod",
        source=Source(kind="commit", value=world.head),
        now=lambda: T0 + timedelta(hours=5),
        environ={},
    )
    assert result.exit_code == 0, result.to_json()
