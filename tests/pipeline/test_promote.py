"""Promotion end to end on moto's server with the sandbox's ECS emulation, several accounts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.guarded import promote
from tests.support.world import World, Writes, env_block, make_world
from tierup.pipeline.exit_codes import exit_code_of
from tierup.pipeline.promote import RunOptions, Source
from tierup.stages.errors import TierupError

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    """Every tier on the first commit; then a second commit built and promoted to dev."""
    w = make_world(tmp_path, aws_env)
    w.first = w.head  # type: ignore[attr-defined]
    w.push_images(w.commit("second"))
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    return w


def _primary_ids(world: World, env: str) -> dict[str, str]:
    out = {}
    for name, s in world.services(env).items():
        prim = [d for d in s["deployments"] if d["status"] == "PRIMARY"]
        out[name] = prim[0]["id"]
    return out


def test_promote_staging_moves_tags_and_deploys_every_service_of_every_environment(
    world: World,
) -> None:
    before = {e: _primary_ids(world, e) for e in ("staging", "mb-staging", "dev")}
    code, doc = world.cli_json("promote", "--tier", "staging")
    assert code == 0, doc
    assert doc["status"] == "ok"
    dev_api = world.tag_digest("api", "dev")
    assert world.tag_digest("api", "staging") == dev_api
    assert world.tag_digest("worker", "staging") == world.tag_digest("worker", "dev")
    assert doc["images"]["api"]["digest"] == dev_api
    assert doc["images"]["api"]["status"] in ("created", "moved")
    for env in ("staging", "mb-staging"):
        after = _primary_ids(world, env)
        for svc in ("api", "worker"):
            assert after[svc] != before[env][svc]
            assert doc["environments"][env]["services"][svc]["status"] == "completed"
            assert doc["environments"][env]["services"][svc]["deployment_id"] == after[svc]
    # other tiers untouched
    assert _primary_ids(world, "dev") == before["dev"]


def test_rerun_is_unchanged_and_writes_nothing(world: World) -> None:
    code, _ = world.cli_json("promote", "--tier", "staging")
    assert code == 0
    writes = Writes()
    result = promote(world.config, world.clients(writes), tier="staging")
    assert result.exit_code == 0
    assert {i.status for i in result.images} == {"unchanged"}
    assert {s.status for e in result.environments for s in e.services} == {"skipped"}
    assert writes.calls == []
    code, doc = world.cli_json("promote", "--tier", "staging")
    assert code == 0 and doc["status"] == "ok"
    assert {i["status"] for i in doc["images"].values()} == {"unchanged"}


def test_dry_run_writes_nothing_and_its_plan_is_the_real_runs_writes(world: World) -> None:
    before_tag = world.tag_digest("api", "staging")
    before_ids = _primary_ids(world, "staging")
    writes = Writes()
    dry = promote(
        world.config, world.clients(writes), tier="staging", options=RunOptions(dry_run=True)
    )
    assert writes.calls == []
    assert world.tag_digest("api", "staging") == before_tag
    assert _primary_ids(world, "staging") == before_ids
    r = world.cli("promote", "--tier", "staging", "--dry-run")
    assert r.exit_code == 0
    assert "dry run" in r.stdout and "staging/api" in r.stdout
    assert world.tag_digest("api", "staging") == before_tag

    real = promote(
        world.config, world.clients(writes), tier="staging", options=RunOptions(wait=False)
    )
    assert real.exit_code == 0
    planned = [
        ("PutImage", s["repository"], s["tag"])
        if s["write"] == "registry:PutImage"
        else ("UpdateService", s["cluster"], s["service"])
        for s in dry.plan
    ]
    made = [
        ("PutImage", p["repositoryName"], p["imageTag"])
        if n == "PutImage"
        else ("UpdateService", p["cluster"], p["service"])
        for n, p in writes.calls
    ]
    assert sorted(planned) == sorted(made)
    assert len(made) == 2 + 4


def test_fan_out_to_three_accounts_two_services_each(tmp_path: Path, aws_env: str) -> None:
    envs = (
        "\n".join(
            env_block(name, "staging", acct, {"api": "{image: api}", "worker": "{image: worker}"})
            for name, acct in (
                ("s1", "210000000001"),
                ("s2", "210000000002"),
                ("s3", "210000000003"),
            )
        )
        + "\n"
        + env_block("dev", "dev", "111111111111", {"api": "{image: api}"})
    )
    world = make_world(tmp_path, aws_env, envs)
    world.push_images(world.commit("second"))
    assert promote(world.config, world.clients(), tier="dev").exit_code == 0
    before = {e: _primary_ids(world, e) for e in ("s1", "s2", "s3")}
    result = promote(world.config, world.clients(), tier="staging")
    assert result.exit_code == 0, result.to_json()
    for e in ("s1", "s2", "s3"):
        after = _primary_ids(world, e)
        assert set(after) == {"api", "worker"}
        for svc in after:
            assert after[svc] != before[e][svc], (e, svc)
            s = world.services(e)[svc]
            prim = next(d for d in s["deployments"] if d["status"] == "PRIMARY")
            assert prim["rolloutState"] == "COMPLETED"


def test_an_unassumable_role_stops_the_promotion_before_any_write(
    world: World, deny_assume_role: set[str]
) -> None:
    before_tag = world.tag_digest("api", "staging")
    before = {e: _primary_ids(world, e) for e in ("staging", "mb-staging")}
    deny_assume_role.add("arn:aws:iam::444444444444:role/deployer")
    code, doc = world.cli_json("promote", "--tier", "staging")
    assert code == 1, doc  # access refused: exit 1, before any write
    assert "preflight failed before any write" in doc["error"]
    assert "arn:aws:iam::444444444444:role/deployer" in doc["error"]
    assert "--skip-unreachable mb-staging" in doc["hint"]
    assert world.tag_digest("api", "staging") == before_tag  # the shared tag did not move
    assert _primary_ids(world, "staging") == before["staging"]
    r = world.cli("promote", "--tier", "staging")
    assert [line for line in r.stderr.splitlines() if line.strip()] == [
        line for line in r.stderr.splitlines() if line.startswith("error:")
    ], r.stderr  # one line, no botocore warning or traceback

    # going on without it is a choice, and the ledger says so
    code, doc = world.cli_json("promote", "--tier", "staging", "--skip-unreachable", "mb-staging")
    assert code == 0, doc
    assert doc["environments"]["mb-staging"]["status"] == "skipped"
    assert "--skip-unreachable" in doc["environments"]["mb-staging"]["hint"]
    assert doc["environments"]["staging"]["status"] == "ok"
    code, hist = world.cli_json("history", "--tier", "staging", "--limit", "1")
    recorded = hist["events"][0]["environments"]["mb-staging"]
    assert recorded["status"] == "skipped" and recorded["skipped"] == "unreachable"
    staging_ids = _primary_ids(world, "staging")

    deny_assume_role.clear()
    assert _primary_ids(world, "mb-staging") == before["mb-staging"]
    code, doc = world.cli_json("promote", "--tier", "staging")
    assert code == 0, doc
    assert {i["status"] for i in doc["images"].values()} == {"unchanged"}
    assert {s["status"] for s in doc["environments"]["mb-staging"]["services"].values()} == {
        "completed"
    }
    # what was already right is left alone
    assert {s["status"] for s in doc["environments"]["staging"]["services"].values()} == {"skipped"}
    assert _primary_ids(world, "staging") == staging_ids


def test_missing_targets_in_several_accounts_are_named_together_and_nothing_is_written(
    world: World,
) -> None:
    text = world.config_path.read_text()
    # mb-staging's cluster is gone; staging names a service that does not exist
    text = text.replace("cluster: mb-staging-cluster", "cluster: gone-cluster")
    text = text.replace(
        "    cluster: staging-cluster\n    services:\n",
        "    cluster: staging-cluster\n    services:\n      ghost: {image: api}\n",
    )
    world.config_path.write_text(text)
    before_tag = world.tag_digest("api", "staging")
    writes = Writes()
    with pytest.raises(TierupError) as info:
        promote(world.config, world.clients(writes), tier="staging")
    assert exit_code_of(info.value) == 2
    assert "cluster 'gone-cluster' does not exist" in info.value.message
    assert "staging/ghost: service 'ghost' not found" in info.value.message
    assert writes.names() == []
    assert world.tag_digest("api", "staging") == before_tag
    code, doc = world.cli_json("promote", "--tier", "staging", "--dry-run")
    assert code == 2 and "ghost" in doc["error"]


def test_skip_unreachable_names_an_environment_of_the_tier(world: World) -> None:
    code, doc = world.cli_json("promote", "--tier", "staging", "--skip-unreachable", "prod")
    assert code == 2
    assert "not an environment of tier 'staging'" in doc["error"]


def test_service_naming_another_tag_is_an_error_for_that_service(world: World) -> None:
    ecs = world.ecs("333333333333")
    td = ecs.register_task_definition(
        family="other",
        containerDefinitions=[
            {
                "name": "api",
                "image": f"012345678922.dkr.ecr.us-east-1.amazonaws.com/api:{world.first}",  # type: ignore[attr-defined]
                "memory": 128,
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster="staging-cluster", service="api", taskDefinition=td)
    for _ in range(4):
        ecs.describe_services(cluster="staging-cluster", services=["api"])
    code, doc = world.cli_json("promote", "--tier", "staging")
    assert code == 3
    api = doc["environments"]["staging"]["services"]["api"]
    assert api["status"] == "failed"
    assert f"api:{world.first}" in api["error"] and "api:staging" in api["error"]  # type: ignore[attr-defined]
    assert doc["environments"]["staging"]["services"]["worker"]["status"] == "completed"


def test_missing_source_is_exit_2_and_nothing_written(world: World) -> None:
    r = world.cli("promote", "--tier", "staging", "--commit", "f" * 40)
    assert r.exit_code == 2
    assert "not found" in r.output and "hint:" in r.output
    assert "Traceback" not in r.output
    result = world.cli("promote", "--tier", "staging", "--digest", "sha256:" + "0" * 64)
    assert result.exit_code == 2
    writes = Writes()
    for source in (Source("commit", "f" * 40), Source("digest", "sha256:" + "0" * 64)):
        with pytest.raises(TierupError) as info:
            promote(world.config, world.clients(writes), tier="staging", source=source)
        assert exit_code_of(info.value) == 2
    assert writes.calls == []


def test_first_tier_defaults_to_head_and_falls_back_to_the_newest_ancestor_with_an_image(
    world: World,
) -> None:
    first = world.head
    code, doc = world.cli_json("promote", "--tier", "dev")
    assert code == 0
    assert doc["images"]["api"]["commit"] == first
    assert doc["images"]["api"]["status"] == "unchanged"
    world.commit("docs only")  # no image built for this commit
    code, doc = world.cli_json("promote", "--tier", "dev")
    assert code == 0, doc
    assert doc["images"]["api"]["commit"] == first
    assert "ancestor" in doc["images"]["api"]["note"]
    note = doc["images"]["api"]["note"]
    assert doc["images"]["worker"]["note"] == note
    # one note for the images resolved alike, naming them, in the result and in its text
    assert [n for n in doc.get("notes", []) if "ancestor" in n] == [f"api, worker: {note}"]
    text = world.cli("promote", "--tier", "dev").output
    assert [line for line in text.splitlines() if "ancestor" in line] == [
        f"note: api, worker: {note}"
    ]
    new = world.commit("rebuild")
    digests = world.push_images(new)
    code, doc = world.cli_json("promote", "--tier", "dev")
    assert code == 0
    assert doc["images"]["api"]["commit"] == new
    assert world.tag_digest("api", "dev") == digests["api"]


def test_immutable_repository_conflict_is_exit_2_before_any_write(world: World) -> None:
    world.ecr().put_image_tag_mutability(
        registryId="012345678922", repositoryName="api", imageTagMutability="IMMUTABLE"
    )
    new = world.commit("new")
    world.push_images(new)
    result = world.cli("promote", "--tier", "dev")
    assert result.exit_code == 2, result.output
    assert "immutable" in result.output
    writes = Writes()
    with pytest.raises(TierupError) as info:
        promote(world.config, world.clients(writes), tier="dev")
    assert exit_code_of(info.value) == 2
    assert writes.calls == []


def test_where_text_and_json_show_tags_commits_and_drift(world: World) -> None:
    world.cli_json("promote", "--tier", "staging")
    code, doc = world.cli_json("where")
    assert code == 0, doc
    api = doc["images"]["api"]["tiers"]
    assert api["staging"]["digest"] == world.tag_digest("api", "staging")
    assert api["staging"]["commits"] == [world.head]
    assert api["dev"]["commits"] == [world.head]
    assert api["staging"]["pushed_at"]
    svc = doc["environments"]["staging"]["services"]["api"]
    assert svc["image"].endswith("/api:staging")
    assert svc["digest"] == api["staging"]["digest"]
    assert svc["drift"] is False
    assert svc["running_digests"] == [api["staging"]["digest"]]
    assert svc["tasks_agree"] is True

    # move dev without deploying it: dev now drifts until the next deployment
    new = world.commit("new")
    world.push_images(new)
    code, doc = world.cli_json("promote", "--tier", "dev", "--no-deploy")
    assert code == 0
    code, doc = world.cli_json("where", "--env", "dev")
    dev_api = doc["environments"]["dev"]["services"]["api"]
    assert dev_api["drift"] is True
    assert any("deploy to pick it up" in r for r in dev_api["drift_reasons"])
    text = world.cli("where")
    assert text.exit_code == 0
    assert "drift" in text.stdout and "in sync" in text.stdout
    assert "staging" in text.stdout


@pytest.mark.parametrize(
    "case",
    ["no-credentials", "assume-role-denied", "missing-repository", "missing-cluster", "throttled"],
)
def test_induced_failures_are_one_line_with_a_hint_and_never_leak_the_secret(
    world: World,
    case: str,
    deny_assume_role: set[str],
    throttle: set[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "PLANTEDsecretKEY1234567890abcdefghijklmn"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    env: dict[str, str] = {"AWS_MAX_ATTEMPTS": "2"}
    expected = 1
    args = ["promote", "--tier", "staging"]
    if case == "no-credentials":
        env.update({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        fragment = "no AWS credentials"
    elif case == "assume-role-denied":
        deny_assume_role.update(
            {"arn:aws:iam::333333333333:role/deployer", "arn:aws:iam::444444444444:role/deployer"}
        )
        fragment = "AccessDenied"
    elif case == "missing-repository":
        world.config_path.write_text(
            world.config_path.read_text().replace("{repository: worker}", "{repository: nope}")
        )
        fragment = "repository 'nope' does not exist"
        expected = 2
    elif case == "missing-cluster":
        world.config_path.write_text(
            world.config_path.read_text().replace(
                "cluster: staging-cluster", "cluster: gone-cluster"
            )
        )
        fragment = "cluster 'gone-cluster' does not exist"
        expected = 2  # found by the preflight, before any write
    else:
        throttle.add("BatchGetImage")
        fragment = "throttled"
    for verbose in (False, True):
        full = (["--verbose"] if verbose else []) + args
        r = world.cli(*full, env=env)
        out = r.output
        assert r.exit_code == expected, (case, out)
        assert fragment in out, (case, out)
        assert secret not in out
        if not verbose:
            assert "Traceback" not in out
        if case in ("no-credentials", "throttled", "missing-repository"):
            errors = [line for line in out.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and "(hint: " in errors[0], out
        r = world.cli(*full, "--json", env=env)
        assert secret not in r.output
        doc = json.loads(r.stdout)
        assert doc["status"] in ("failed", "partial")
