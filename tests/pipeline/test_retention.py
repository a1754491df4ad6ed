"""Task definition retention: a bounded number of revisions, never one that a rollback needs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.ecs_checks import mark_image, stable_on
from tests.support.guarded import promote
from tests.support.world import World, Writes, env_block, make_world
from tierup.pipeline.promote import RunOptions
from tierup.stages.retention import plan_retention

FAMILY = "fam"


def arn(rev: int, family: str = FAMILY) -> str:
    return f"arn:aws:ecs:us-east-1:555555555555:task-definition/{family}:{rev}"


def revs(arns: tuple[str, ...] | list[str]) -> list[int]:
    return [int(a.rsplit(":", 1)[-1]) for a in arns]


def test_keeps_the_newest_and_spares_in_use_previous_and_protected() -> None:
    active = [arn(r) for r in range(1, 9)]
    plan = plan_retention(
        FAMILY, active, keep=3, in_use=[arn(5)], protected=[f"{FAMILY}:2"], registering=1
    )
    # room for 2 of the existing 8 beside the new one: 7, 8; 5 is in use, 4 ran before it,
    # 2 is protected
    assert revs(plan.deregister) == [1, 3, 6]
    assert revs(plan.kept_for_safety) == [2, 4, 5]


def test_nothing_goes_while_the_family_is_within_its_bound() -> None:
    plan = plan_retention(FAMILY, [arn(1), arn(2)], keep=10, in_use=[arn(2)], registering=1)
    assert plan.deregister == ()


def test_keep_one_still_spares_what_runs_and_what_ran_before() -> None:
    active = [arn(r) for r in range(1, 6)]
    plan = plan_retention(FAMILY, active, keep=1, in_use=[arn(5), arn(2)], registering=1)
    assert revs(plan.deregister) == [3]
    assert set(revs(plan.kept_for_safety)) == {1, 2, 4, 5}


def test_other_families_and_unversioned_names_are_left_alone() -> None:
    active = [arn(1), arn(2), arn(3), arn(1, "other")]
    plan = plan_retention(
        FAMILY, active, keep=1, in_use=[arn(9, "other"), FAMILY], protected=["other:1"]
    )
    assert revs(plan.deregister) == [1, 2]
    assert all("/fam:" in a for a in plan.deregister)
    with pytest.raises(ValueError):
        plan_retention(FAMILY, active, keep=0, in_use=[])


# -- end to end --------------------------------------------------------------------------------

PROD = "555555555555"


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    envs = "\n".join(
        [
            env_block("dev", "dev", "111111111111", {"api": "{image: api}"}),
            env_block("staging", "staging", "333333333333", {"api": "{image: api}"}),
            env_block("prod", "prod", PROD, {"api": "{image: api}"}, retention="3"),
        ]
    )
    w = make_world(tmp_path, aws_env, envs)
    w.push_images(w.commit("second"))
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    assert promote(w.config, w.clients(), tier="staging").exit_code == 0
    return w


def _family(w: World) -> list[dict[str, Any]]:
    ecs = w.ecs(PROD)
    out = []
    for status in ("ACTIVE", "INACTIVE"):
        for a in ecs.list_task_definitions(familyPrefix="prod-api", status=status)[
            "taskDefinitionArns"
        ]:
            out.append({"arn": a, "rev": int(a.rsplit(":", 1)[-1]), "status": status})
    return sorted(out, key=lambda d: d["rev"])


def _next_second() -> None:
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.05)


def _grow_family(w: World) -> None:
    """Revisions 2..6 beside the seeded 1; the service runs 4 (so 3 ran before it)."""
    ecs = w.ecs(PROD)
    first = ecs.describe_task_definition(taskDefinition="prod-api:1")["taskDefinition"]
    for _ in range(5):
        ecs.register_task_definition(
            family="prod-api", containerDefinitions=first["containerDefinitions"]
        )
    ecs.update_service(cluster="prod-cluster", service="api", taskDefinition="prod-api:4")
    stable_on(w, "prod", "api")


def test_a_promotion_deregisters_old_revisions_but_not_in_use_previous_or_protected(
    world: World,
) -> None:
    _grow_family(world)
    protected = frozenset({"arn:aws:ecs:us-east-1:555555555555:task-definition/prod-api:1"})
    writes = Writes()
    dry = promote(
        world.config,
        world.clients(writes),
        tier="prod",
        options=RunOptions(dry_run=True, protected=protected),
    )
    assert writes.calls == []
    steps = [s for s in dry.plan if s["write"] == "ecs:DeregisterTaskDefinition"]
    assert len(steps) == 1 and revs(steps[0]["task_definitions"]) == [2]

    result = promote(
        world.config, world.clients(writes), tier="prod", options=RunOptions(protected=protected)
    )
    assert result.exit_code == 0, result.to_json()
    deregistered = [p["taskDefinition"] for n, p in writes.calls if n == "DeregisterTaskDefinition"]
    assert deregistered == steps[0]["task_definitions"]
    assert result.data["retention"][0]["deregistered"] == deregistered
    family = {d["rev"]: d["status"] for d in _family(world)}
    # 7 is new and in use, 5 and 6 are the newest, 4 ran before 7, 3 before 4, 1 protected
    assert family == {
        1: "ACTIVE",
        2: "INACTIVE",
        3: "ACTIVE",
        4: "ACTIVE",
        5: "ACTIVE",
        6: "ACTIVE",
        7: "ACTIVE",
    }
    assert world.services("prod")["api"]["taskDefinition"].endswith("prod-api:7")


def test_after_a_failed_rollout_and_its_rollback_both_revisions_stay(world: World) -> None:
    text = world.config_path.read_text().replace("retention: 3", "retention: 1")
    world.config_path.write_text(text)
    _grow_family(world)
    mark_image(world, "api", str(world.tag_digest("api", "staging")), "sandbox-fail")
    code, doc = world.cli_json("promote", "--tier", "prod", "--rollback-on-failure")
    assert code == 1, doc
    api = doc["environments"]["prod"]["services"]["api"]
    assert api["rollback"]["status"] == "completed"
    assert api["rollback"]["task_definition"].endswith("prod-api:4")
    family = {d["rev"]: d["status"] for d in _family(world)}
    # in use again (4), the one before it (3), and the failed new one (7, the newest)
    assert {r for r, s in family.items() if s == "ACTIVE"} == {3, 4, 7}
    s = stable_on(world, "prod", "api")
    assert s["taskDefinition"].endswith("prod-api:4")


def test_revisions_the_ledger_still_names_are_kept(world: World) -> None:
    text = world.config_path.read_text().replace("retention: 3", "retention: 1")
    world.config_path.write_text(text)
    _grow_family(world)
    code, doc = world.cli_json("promote", "--tier", "prod")
    assert code == 0, doc
    # the ledger now names 4 (before) and 7 (after); then revisions change outside tierup
    ecs = world.ecs(PROD)
    first = ecs.describe_task_definition(taskDefinition="prod-api:7")["taskDefinition"]
    for _ in range(2):
        ecs.register_task_definition(
            family="prod-api", containerDefinitions=first["containerDefinitions"]
        )
    ecs.update_service(cluster="prod-cluster", service="api", taskDefinition="prod-api:9")
    stable_on(world, "prod", "api")
    world.push_images(world.commit("third"))
    for tier in ("dev", "staging"):
        assert promote(world.config, world.clients(), tier=tier).exit_code == 0

    # a stamp names its second: the next one must not render the tag this test already stamped
    _next_second()
    code, dry = world.cli_json("promote", "--tier", "prod", "--dry-run")
    assert code == 0, dry
    steps = [s for s in dry["plan"] if s["write"] == "ecs:DeregisterTaskDefinition"]
    assert [revs(s["task_definitions"]) for s in steps] == [[3]]
    code, doc = world.cli_json("promote", "--tier", "prod")
    assert code == 0, doc
    active = {d["rev"] for d in _family(world) if d["status"] == "ACTIVE"}
    # 9 ran until now, 8 before it, 4 and 7 are in the ledger; 10 is new
    assert active == {4, 7, 8, 9, 10}
