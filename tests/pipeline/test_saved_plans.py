"""Saved plans: `--out` freezes a writing command's plan and writes nothing else; `apply` runs
exactly that plan, or refuses (exit 1, nothing written) when its world changed since."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.support.guarded import promote
from tests.support.release_world import (
    T0,
    ledger_of,
    new_commit,
    new_digests,
    ship,
    tags_of,
    task_definition,
)
from tests.support.strategy_worlds import HOST, STACK, STACK_ACCOUNT, STACK_ENVS, create_stack
from tests.support.world import World, Writes, assumed_client, make_world
from tierup.pipeline import saved_plan, saved_plan_commands
from tierup.pipeline.cli import app
from tierup.pipeline.exit_codes import exit_code_of
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.saved_plan import Arguments, StalePlan

pytestmark = pytest.mark.usefixtures("aws_env")

AWS_WRITES = (
    "PutImage",
    "UpdateService",
    "RegisterTaskDefinition",
    "DeregisterTaskDefinition",
    "CreateChangeSet",
    "ExecuteChangeSet",
    "CreateDeployment",
)


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    """Every tier on a first commit, recorded; a second commit's images promoted to dev."""
    w = make_world(tmp_path, aws_env)
    new_commit(w, "one")
    ship(w, "dev", "staging", "prod", minute=1)
    new_digests(w, "two")
    return w


def aws_writes(writes: Writes) -> list[tuple[str, dict[str, Any]]]:
    return [(n, p) for n, p in writes.calls if n in AWS_WRITES]


def expected_writes(steps: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """The AWS calls each planned write makes, by what they name."""
    out: Counter[tuple[str, str]] = Counter()
    for s in steps:
        write = s["write"]
        if write == "registry:PutImage":
            out[("PutImage", f"{s['repository']}:{s['tag']}")] += 1
        elif write == "ecs:UpdateService":
            out[("UpdateService", s["service"])] += 1
        elif write == "ecs:RegisterTaskDefinition+UpdateService":
            family = s["task_definition"].rsplit("/", 1)[-1].split(":")[0]
            out[("RegisterTaskDefinition", family)] += 1
            out[("UpdateService", s["service"])] += 1
        elif write == "cloudformation:ExecuteChangeSet":
            out[("ExecuteChangeSet", s["change_set"]["id"])] += 1
        elif write == "ecs:DeregisterTaskDefinition":
            out[("DeregisterTaskDefinition", s["family"])] += len(s["task_definitions"])
        else:
            raise AssertionError(f"unexpected planned write {write}")
    return out


def seen_writes(writes: Writes) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for name, p in aws_writes(writes):
        if name == "PutImage":
            out[(name, f"{p['repositoryName']}:{p['imageTag']}")] += 1
        elif name == "UpdateService":
            out[(name, p["service"])] += 1
        elif name == "RegisterTaskDefinition":
            out[(name, p["family"])] += 1
        elif name == "ExecuteChangeSet":
            out[(name, p["ChangeSetName"])] += 1
        elif name == "DeregisterTaskDefinition":
            out[(name, p["taskDefinition"].rsplit("/", 1)[-1].split(":")[0])] += 1
        else:
            out[(name, "")] += 1
    return out


def show(world: World, *args: str) -> Any:
    """`tierup show` (which reads no envs.yaml: no -f)."""
    return CliRunner().invoke(app, ["show", *args])


def events(ledger: Ledger) -> list[dict[str, Any]]:
    return ledger.events(limit=None)


def save(
    world: World, path: Path, command: saved_plan.Command, writes: Writes | None = None, **kw: Any
) -> saved_plan.SavedPlan:
    result = saved_plan_commands.save(
        world.config,
        world.clients(writes),
        ledger_of(world, writes),
        command,
        Arguments(**kw),
        out=path,
        config_file=str(world.config_path),
    )
    assert result.exit_code == 0, result.to_json()
    return saved_plan.load(path)


def apply(world: World, path: Path, writes: Writes | None = None) -> Any:
    return saved_plan_commands.apply(
        world.config,
        world.clients(writes),
        ledger_of(world, writes),
        saved_plan.load(path),
        path=path,
    )


# -- --out then apply --------------------------------------------------------------------------


def test_out_writes_nothing_and_apply_writes_exactly_the_saved_steps(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "plan.json"
    staging_before = tags_of(world, "api")["staging"]
    history = events(ledger_of(world))
    writes = Writes()
    doc = save(world, path, "promote", writes, tier="staging")

    assert aws_writes(writes) == []
    assert events(ledger_of(world)) == history  # no ledger event, open or closed
    assert not (world.root / ".tierup" / "locks" / "staging.json").exists()
    assert tags_of(world, "api")["staging"] == staging_before
    assert doc.command == "promote" and doc.arguments.tier == "staging"
    assert {s["write"] for s in doc.steps} == {"registry:PutImage", "ecs:UpdateService"}
    assert doc.state["images"]["api"]["tag_digest"] == staging_before

    writes = Writes()
    result = apply(world, path, writes)

    assert result.exit_code == 0, result.to_json()
    assert result.plan == doc.steps
    assert seen_writes(writes) == expected_writes(doc.steps)
    assert tags_of(world, "api")["staging"] == doc.state["images"]["api"]["digest"]
    newest = events(ledger_of(world))[0]
    assert newest["command"] == "promote"
    assert newest["saved_plan"]["id"] == doc.id
    assert newest["saved_plan"]["file"] == "plan.json"


def test_a_stamp_applied_later_writes_the_stamp_that_was_reviewed(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "plan.json"
    ship(world, "staging", minute=2)
    result = saved_plan_commands.save(
        world.config,
        world.clients(),
        ledger_of(world),
        "stamp",
        Arguments(tier="prod"),
        out=path,
        config_file="envs.yaml",
        now=lambda: T0.replace(hour=11),
    )
    assert result.exit_code == 0, result.to_json()
    doc = saved_plan.load(path)
    (put,) = [s for s in doc.steps if s["write"] == "registry:PutImage" and s["image"] == "api"]
    assert put["tag"] == "prod-20261126T110000Z"

    writes = Writes()
    applied = apply(world, path, writes)

    assert applied.exit_code == 0, applied.to_json()
    assert seen_writes(writes) == expected_writes(doc.steps)
    assert tags_of(world, "api")["prod-20261126T110000Z"] == put["digest"]


# -- stale plans ---------------------------------------------------------------------------------


def test_a_plan_whose_source_tag_moved_is_refused_without_a_write(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "plan.json"
    doc = save(world, path, "promote", tier="staging")
    new_digests(world, "three")  # dev's tag moves on: the reviewed digest is no longer dev's
    writes = Writes()
    history = events(ledger_of(world))

    with pytest.raises(StalePlan) as e:
        apply(world, path, writes)

    assert aws_writes(writes) == []
    assert events(ledger_of(world)) == history
    assert "image api: tier dev (dev) now resolves to" in e.value.message
    assert doc.state["images"]["api"]["digest"][:19] in e.value.message
    assert exit_code_of(e.value) == 1
    assert not (world.root / ".tierup" / "locks" / "staging.json").exists()


def test_a_plan_whose_target_tag_moved_is_refused_naming_the_tag(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "plan.json"
    save(world, path, "promote", tier="staging")
    # someone else promotes staging first
    assert promote(world.config, world.clients(), tier="staging").exit_code == 0
    writes = Writes()

    with pytest.raises(StalePlan) as e:
        apply(world, path, writes)

    assert aws_writes(writes) == []
    assert "tag api:staging moved: it was on sha256:" in e.value.message


def test_a_plan_whose_service_was_redeployed_is_refused_naming_the_service(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "plan.json"
    save(world, path, "promote", tier="staging")
    env = world.config.environment("mb-staging")
    world.ecs(env.account_id).update_service(
        cluster=env.cluster, service="worker", forceNewDeployment=True
    )
    writes = Writes()

    with pytest.raises(StalePlan) as e:
        apply(world, path, writes)

    assert aws_writes(writes) == []
    assert "mb-staging/worker: its deployment changed" in e.value.message


def test_the_cli_refuses_a_stale_plan_with_exit_1_and_one_line(
    world: World, tmp_path: Path
) -> None:
    path = tmp_path / "plan.json"
    r = world.cli("promote", "--tier", "staging", "--out", str(path))
    assert r.exit_code == 0, r.output
    new_digests(world, "three")

    r = world.cli("apply", str(path))

    assert r.exit_code == 1, r.output
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert "is stale, nothing was written: image api: tier dev (dev) now resolves to" in lines[0]
    assert "(hint: make a new plan (tierup promote --tier staging --out FILE)" in lines[0]


# -- show ----------------------------------------------------------------------------------------


def test_show_prints_what_the_dry_run_prints(world: World, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    dry = world.cli("promote", "--tier", "staging", "--dry-run")
    out = world.cli("promote", "--tier", "staging", "--out", str(path))
    shown = show(world, str(path))
    assert dry.exit_code == out.exit_code == shown.exit_code == 0, shown.output

    def without_saved(text: str) -> str:
        return "\n".join(
            line
            for line in text.splitlines()
            if not line.startswith(("note: plan ", "saved_plan: "))
        )

    assert out.stdout == shown.stdout
    assert without_saved(shown.stdout) == dry.stdout.rstrip("\n")
    assert "plan (the writes a real run makes):" in shown.stdout
    assert f"`tierup apply {path}`" in shown.stdout

    code, doc = world.cli_json("promote", "--tier", "staging", "--dry-run")
    assert code == 0, doc
    r = show(world, str(path), "--json")
    assert r.exit_code == 0, r.output
    saved = json.loads(r.stdout)
    assert saved["plan"] == doc["plan"]
    assert saved["environments"] == doc["environments"]
    assert saved["images"] == doc["images"]
    assert saved["saved_plan"]["command"] == "promote"
    assert saved["saved_plan"]["arguments"]["tier"] == "staging"


# -- the plan file -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("{not json", "is not a saved plan: not JSON"),
        ('{"kind": "something"}', "is not a saved plan (no `kind: tierup-plan`)"),
        ('{"kind": "tierup-plan", "version": 99}', "is a version 99 plan"),
        ('{"kind": "tierup-plan", "version": 1, "id": "x"}', "is not a valid saved plan: "),
    ],
)
def test_a_malformed_or_unknown_plan_file_is_exit_2_with_one_line(
    world: World, tmp_path: Path, text: str, said: str
) -> None:
    path = tmp_path / "plan.json"
    path.write_text(text)
    for r in (world.cli("apply", str(path)), show(world, str(path))):
        assert r.exit_code == 2, r.output
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith("error: ") and said in line and "(hint: " in line


def test_the_plan_file_holds_nothing_secret(world: World, tmp_path: Path) -> None:
    import os

    path = tmp_path / "plan.json"
    save(world, path, "promote", tier="staging")
    text = path.read_text()
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in text
    assert os.environ["AWS_ACCESS_KEY_ID"] not in text
    assert "Credential=" not in text and "ASIA" not in text


def test_a_changed_envs_yaml_makes_the_plan_stale(world: World, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    save(world, path, "promote", tier="staging")
    world.config_path.write_text(
        world.config_path.read_text().replace(
            "{name: dev, tag: dev}", "{name: dev, tag: dev, wait_timeout: 5m}"
        )
    )
    with pytest.raises(StalePlan, match=r"envs\.yaml .* changed since the plan was made"):
        apply(world, path)


# -- rollback and restore ------------------------------------------------------------------------


def test_a_rollback_saved_then_applied_goes_back_as_planned(world: World, tmp_path: Path) -> None:
    before = task_definition(world, "staging", "api")["taskDefinitionArn"]
    ship(world, "staging", minute=2)
    assert task_definition(world, "staging", "api")["taskDefinitionArn"] == before  # same tag
    path = tmp_path / "rollback.json"
    r = world.cli("rollback", "service", "--env", "staging", "--service", "api", "--out", str(path))
    assert r.exit_code == 0, r.output
    doc = saved_plan.load(path)
    assert doc.command == "rollback service"
    (step,) = doc.steps

    writes = Writes()
    result = apply(world, path, writes)

    assert result.exit_code == 0, result.to_json()
    assert seen_writes(writes) == expected_writes(doc.steps)
    after = task_definition(world, "staging", "api")
    assert after["containerDefinitions"][0]["image"] == step["images"]["api"]
    newest = events(ledger_of(world))[0]
    assert newest["command"] == "rollback service"
    assert newest["saved_plan"]["id"] == doc.id


def test_a_restore_saved_then_applied_and_a_stale_one_refused(world: World, tmp_path: Path) -> None:
    code, doc = world.cli_json("snapshot", "--env", "prod", "--name", "before")
    assert code == 0, doc
    ship(world, "staging", minute=2)
    ship(world, "prod", minute=3)
    path = tmp_path / "restore.json"
    r = world.cli("restore", "--env", "prod", "--out", str(path))
    assert r.exit_code == 0, r.output
    saved = saved_plan.load(path)
    assert saved.arguments.snapshot == "before"  # `latest`, fixed when planned

    writes = Writes()
    result = apply(world, path, writes)
    assert result.exit_code == 0, result.to_json()
    assert seen_writes(writes) == expected_writes(saved.steps)
    assert result.to_json()["environments"]["prod"]["services"]["api"]["status"] == "restored"

    # applied once: the services moved, so the same plan is stale now
    with pytest.raises(StalePlan, match="prod/api: its"):
        apply(world, path, Writes())


# -- CloudFormation: the reviewed change set is the one executed ------------------------------


@pytest.fixture
def stack_world(tmp_path: Path, aws_env: str) -> World:
    create_stack(aws_env, f"{HOST}/api:staging")
    w = make_world(tmp_path, aws_env, STACK_ENVS)
    w.push_images(w.commit("second"))
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    return w


def change_sets(world: World) -> list[dict[str, Any]]:
    cfn = assumed_client(world.endpoint, "cloudformation", STACK_ACCOUNT)
    found: list[dict[str, Any]] = cfn.list_change_sets(StackName=STACK)["Summaries"]
    return found


def test_the_saved_change_set_is_the_one_executed(stack_world: World, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    writes = Writes()
    doc = save(stack_world, path, "promote", writes, tier="staging")
    assert [n for n, _ in aws_writes(writes)] == ["CreateChangeSet"]  # the preview, kept
    (step,) = [s for s in doc.steps if s["write"] == "cloudformation:ExecuteChangeSet"]
    kept = step["change_set"]["id"]
    assert [c["ChangeSetId"] for c in change_sets(stack_world)] == [kept]

    writes = Writes()
    result = apply(stack_world, path, writes)

    assert result.exit_code == 0, result.to_json()
    assert [
        (n, p.get("ChangeSetName")) for n, p in aws_writes(writes) if n.endswith("ChangeSet")
    ] == [("ExecuteChangeSet", kept)]
    assert seen_writes(writes) == expected_writes(doc.steps)
    cfn = assumed_client(stack_world.endpoint, "cloudformation", STACK_ACCOUNT)
    params = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Parameters"]
    }
    assert params["ImageUrl"] == step["change_set"]["parameter"]["to"]


def test_a_deleted_change_set_is_refused_without_a_write(
    stack_world: World, tmp_path: Path
) -> None:
    path = tmp_path / "plan.json"
    doc = save(stack_world, path, "promote", tier="staging")
    (step,) = [s for s in doc.steps if s["write"] == "cloudformation:ExecuteChangeSet"]
    cfn = assumed_client(stack_world.endpoint, "cloudformation", STACK_ACCOUNT)
    cfn.delete_change_set(ChangeSetName=step["change_set"]["id"])
    writes = Writes()

    r = stack_world.cli("apply", str(path))

    assert r.exit_code == 1, r.output
    assert f"change set {step['change_set']['id']} of the saved plan is gone" in r.stderr
    with pytest.raises(StalePlan):
        apply(stack_world, path, writes)
    assert aws_writes(writes) == []
    assert change_sets(stack_world) == []


@pytest.mark.parametrize(
    ("command", "arguments"),
    [
        ("deploy", {"env": "mb-staging"}),
        ("rollback tier", {"tier": "staging"}),
        ("rollback cluster", {"env": "staging"}),
    ],
)
def test_every_writing_command_saves_without_writing_and_applies_its_steps(
    world: World, tmp_path: Path, command: saved_plan.Command, arguments: dict[str, Any]
) -> None:
    if command == "deploy":  # the tag moves, the environment has not picked it up
        assert promote(world.config, world.clients(), tier="staging", deploy=False).exit_code == 0
    else:
        ship(world, "staging", minute=2)
    path = tmp_path / "plan.json"
    history = events(ledger_of(world))
    writes = Writes()
    doc = save(world, path, command, writes, **arguments)
    assert aws_writes(writes) == []
    assert events(ledger_of(world)) == history
    assert doc.steps, doc.result

    writes = Writes()
    result = apply(world, path, writes)

    assert result.exit_code == 0, result.to_json()
    assert seen_writes(writes) == expected_writes(doc.steps)
    newest = events(ledger_of(world))[0]
    assert newest["command"] == command and newest["saved_plan"]["id"] == doc.id


def test_the_cli_saves_applies_and_history_names_the_plan(world: World, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    code, planned = world.cli_json("promote", "--tier", "staging", "--out", str(path))
    assert code == 0, planned
    assert planned["dry_run"] is True and planned["saved_plan"] == str(path)
    doc = saved_plan.load(path)

    code, applied = world.cli_json("apply", str(path))

    assert code == 0, applied
    assert applied["saved_plan"] == doc.id
    assert applied["plan"] == planned["plan"]
    assert {i["status"] for i in applied["images"].values()} == {"moved"}
    r = world.cli("history", "--tier", "staging", "--limit", "1")
    assert f"from saved plan {doc.id} (plan.json, made " in r.stdout


def test_out_to_a_missing_folder_is_exit_2_before_planning(world: World, tmp_path: Path) -> None:
    r = world.cli("promote", "--tier", "staging", "--out", str(tmp_path / "nowhere" / "p.json"))
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.strip().splitlines()
    assert "cannot write the plan to" in line and "(hint: " in line
