"""The seams between the writing commands and the ledger, on moto's server with the emulation."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from moto.core.exceptions import JsonRESTError
from moto.ecs.responses import EC2ContainerServiceResponse

from tests.support.ecs_checks import (
    HOST,
    container_digests,
    content,
    mark_image,
    stable,
    wait_stable,
)
from tests.support.release_world import (
    T0,
    ledger_of,
    new_commit,
    release_world,
    ship,
    task_definition,
    tierup,
)
from tests.support.world import DEFAULT_ENVS, World, make_world
from tierup.pipeline import interrupt
from tierup.pipeline.clients import Clients
from tierup.pipeline.promote import RunOptions
from tierup.pipeline.release import run_promotion, stamp

pytestmark = pytest.mark.usefixtures("aws_env")

TWO_CONTAINERS = DEFAULT_ENVS.replace(
    "role_arn: arn:aws:iam::111111111111:role/deployer\n    region: us-east-1\n"
    "    cluster: dev-cluster\n    services:\n"
    "      api: {image: api}\n      worker: {image: worker}",
    "role_arn: arn:aws:iam::111111111111:role/deployer\n    region: us-east-1\n"
    "    cluster: dev-cluster\n    services:\n"
    "      api: {image: api}\n      worker: {image: worker}\n"
    "      web: {containers: {web: api, envoy: worker}}",
)


@pytest.fixture
def two(tmp_path: Path, aws_env: str) -> World:
    assert "web: {containers" in TWO_CONTAINERS
    return make_world(tmp_path, aws_env, TWO_CONTAINERS)


# -- item: every container goes back -----------------------------------------------------


def test_rolling_back_a_two_container_service_puts_back_every_container(two: World) -> None:
    first = {name: two.tag_digest(name, "dev") for name in ("api", "worker")}
    new = new_commit(two, "one")
    ship(two, "dev")
    assert container_digests(two, "dev", "web") == {"web": {new["api"]}, "envoy": {new["worker"]}}
    entry = ledger_of(two).events(env="dev", limit=1)[0]["environments"]["dev"]["services"]["web"]
    assert entry["images_before"] == {"web": first["api"], "envoy": first["worker"]}
    assert entry["images_after"] == {"web": new["api"], "envoy": new["worker"]}

    code, doc = two.cli_json("rollback", "service", "--env", "dev", "--service", "web")

    assert code == 0, doc
    web = doc["environments"]["dev"]["services"]["web"]
    assert web["status"] == "rolled_back"
    assert web["source"] == "ledger"
    assert container_digests(two, "dev", "web") == {
        "web": {first["api"]},
        "envoy": {first["worker"]},
    }
    assert stable(two, "dev", "web")
    event = ledger_of(two).events(env="dev", limit=1)[0]
    entry = event["environments"]["dev"]["services"]["web"]
    assert entry["images_after"] == {"web": first["api"], "envoy": first["worker"]}


# -- item: a tier's current release ------------------------------------------------------


@pytest.fixture
def prod(tmp_path: Path, aws_env: str) -> World:
    return release_world(tmp_path, aws_env, s3_ledger=False)


def _stamp_ok(world: World, minute: int) -> str:
    """Ship the current images to staging and stamp prod (recorded); the stamped api digest."""
    ship(world, "dev", "staging", minute=minute)
    result = stamp(
        world.config,
        world.clients(),
        ledger_of(world),
        tier="prod",
        now=lambda: T0 + timedelta(minutes=minute),
    )
    assert result.exit_code == 0, result.to_json()
    return str(world.tag_digest("api", "staging"))


def test_a_stamp_that_atomic_reverted_is_not_the_tiers_release(prod: World) -> None:
    older = _stamp_ok(prod, 1)
    new_commit(prod, "good")
    good = _stamp_ok(prod, 2)
    bad = new_commit(prod, "bad")["api"]
    ship(prod, "dev", "staging", minute=3)
    mark_image(prod, "api", bad, "sandbox-fail.mb-prod-cluster")

    code, doc = prod.cli_json("stamp", "--tier", "prod", "--atomic")
    assert code == 1, doc
    assert doc["rollback"]["mode"] == "atomic"

    # where, deploy --env and rollback tier agree: the release is the good stamp
    assert _release(prod) == good
    _nothing_to_deploy(prod)
    code, doc = prod.cli_json("rollback", "tier", "--tier", "prod", "--dry-run")
    assert code == 0, doc
    api = doc["images"]["api"]
    assert (api["digest"], api["previous_digest"]) == (older, good), doc

    # a tier rollback undoes the release it goes back from: the older stamp is the release
    code, doc = prod.cli_json("rollback", "tier", "--tier", "prod")
    assert code == 0, doc
    assert _release(prod) == older
    _nothing_to_deploy(prod)


def _release(world: World) -> str:
    code, doc = world.cli_json("where", "--tier", "prod")
    assert code == 0, doc
    return str(doc["images"]["api"]["tiers"]["prod"]["digest"])


def _nothing_to_deploy(world: World) -> None:
    for env in ("prod", "mb-prod"):
        code, doc = world.cli_json("deploy", "--env", env, "--dry-run")
        assert code == 0, doc
        assert doc.get("plan", []) == [], doc
        assert {s["status"] for s in doc["environments"][env]["services"].values()} == {
            "skipped"
        }, doc


# -- item: what the record and the tables say ----------------------------------------------


@pytest.fixture
def shipped(tmp_path: Path, aws_env: str) -> World:
    w = make_world(tmp_path, aws_env)
    new_commit(w, "one")
    ship(w, "dev", "staging", "prod", minute=1)
    return w


def test_ctrl_c_while_waiting_is_recorded_as_interrupted_not_ok(shipped: World) -> None:
    new_commit(shipped, "two")
    ship(shipped, "dev", minute=2)
    hang = str(shipped.tag_digest("api", "dev"))
    mark_image(shipped, "api", hang, "sandbox-hang")
    clients = Clients(config=shipped.config, repo_path=shipped.root, poll_interval=0.2)
    interrupt.STOP.clear()
    threading.Timer(1.0, interrupt.STOP.set).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_promotion(
                shipped.config,
                clients,
                ledger_of(shipped),
                tier="staging",
                options=RunOptions(timeout=120),
            )
    finally:
        interrupt.STOP.clear()
    event = ledger_of(shipped).events(tier="staging", limit=1)[0]
    assert event["command"] == "promote"
    assert event["status"] == "interrupted"
    assert event["interrupted"] is True
    history = shipped.cli("history", "--tier", "staging", "--limit", "1")
    assert "promote --tier staging  interrupted  by" in history.stdout, history.stdout


def test_deploy_is_shown_and_recorded_as_given(shipped: World) -> None:
    r = shipped.cli("deploy", "--env", "mb-staging")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0] == "tierup deploy --env mb-staging"
    event = ledger_of(shipped).events(limit=1)[0]
    assert event["command"] == "deploy" and event["tier"] == "staging"
    assert event["invocation"] == "deploy --env mb-staging"
    history = shipped.cli("history", "--limit", "1").stdout
    assert "  deploy --env mb-staging  ok  by " in history, history
    assert "--tier staging" not in history
    r = shipped.cli("rollback", "service", "--env", "prod", "--service", "api", "--dry-run")
    assert r.stdout.splitlines()[0].startswith(
        "tierup rollback service --env prod --service api"
    ), r.stdout


def test_history_after_a_restore_shows_only_moves_that_happened(shipped: World) -> None:
    code, doc = shipped.cli_json("snapshot", "--env", "prod", "--name", "before")
    assert code == 0, doc
    # a copy of the revision prod runs, same content under a new number: nothing to restore
    e = shipped.config.environment("prod")
    ecs = shipped.ecs(e.account_id)
    td = task_definition(shipped, "prod", "api")
    copy = ecs.register_task_definition(**content(td))["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=e.cluster, service="api", taskDefinition=copy)
    wait_stable(shipped, "prod", "api")

    code, doc = shipped.cli_json("restore", "--env", "prod")

    assert code == 0, doc
    api = doc["environments"]["prod"]["services"]["api"]
    assert api["status"] == "unchanged", api
    assert api["task_definition"] == copy
    entry = ledger_of(shipped).events(limit=1)[0]["environments"]["prod"]["services"]["api"]
    assert entry["task_definition_before"] == entry["task_definition_after"] == copy
    assert entry["images_before"] == entry["images_after"]
    history = shipped.cli("history", "--env", "prod", "--limit", "2").stdout
    lines = [line for line in history.splitlines() if line.startswith("  prod/api:")]
    assert len(lines) == 2, history
    assert all(" -> " not in line for line in lines), history  # the restore, the snapshot
    assert lines[0].endswith("(unchanged)") and lines[1].endswith("(recorded)"), history


def test_stamp_and_tier_rollback_say_what_happened_to_the_tag(shipped: World) -> None:
    new_commit(shipped, "two")
    ship(shipped, "dev", "staging", minute=2)
    code, doc = shipped.cli_json("stamp", "--tier", "prod")
    assert code == 0, doc
    stamp_tag = doc["images"]["api"]["tag"]
    reason = doc["environments"]["prod"]["services"]["api"]["reason"]
    assert "moved" not in reason and f"new stamp {stamp_tag}" in reason, reason

    code, doc = shipped.cli_json("rollback", "tier", "--tier", "staging")
    assert code == 0, doc
    back_to = doc["images"]["api"]["digest"][:19]
    for env in ("staging", "mb-staging"):
        reason = doc["environments"][env]["services"]["api"]["reason"]
        assert f"the tag staging moved back to {back_to}" in reason, reason
    assert "moved to a new digest" not in json.dumps(doc)


# -- item: rollbacks that converge -------------------------------------------------------


@pytest.fixture
def refuse_update(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Services added to the set have every UpdateService refused by moto's server."""
    refused: set[str] = set()
    original = EC2ContainerServiceResponse.update_service

    @functools.wraps(original)
    def update_service(self: EC2ContainerServiceResponse, *args: Any, **kwargs: Any) -> Any:
        if json.loads(self.body).get("service") in refused:
            raise JsonRESTError("AccessDeniedException", "not allowed to update this service")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EC2ContainerServiceResponse, "update_service", update_service)
    yield refused


def test_rerunning_a_partial_cluster_rollback_finishes_it_and_flips_nothing_back(
    shipped: World, refuse_update: set[str]
) -> None:
    first = {i: str(shipped.tag_digest(i, "dev")) for i in ("api", "worker")}
    new = new_commit(shipped, "two")
    ship(shipped, "dev", minute=2)
    refuse_update.add("worker")

    code, doc = shipped.cli_json("rollback", "cluster", "--env", "dev")

    assert code == 3, doc
    services = doc["environments"]["dev"]["services"]
    assert services["api"]["status"] == "rolled_back"
    assert services["worker"]["status"] == "failed"
    assert container_digests(shipped, "dev", "api") == {"api": {first["api"]}}
    assert container_digests(shipped, "dev", "worker") == {"worker": {new["worker"]}}
    event = ledger_of(shipped).events(env="dev", limit=1)[0]
    worker = event["environments"]["dev"]["services"]["worker"]
    assert worker["target_images"] == {"worker": first["worker"]}  # recorded, though refused

    # the same command again, once the refusal is gone: it finishes, api stays back
    refuse_update.clear()
    code, doc = shipped.cli_json("rollback", "cluster", "--env", "dev")

    assert code == 0, doc
    services = doc["environments"]["dev"]["services"]
    assert services["api"]["status"] == "unchanged", services["api"]
    assert services["worker"]["status"] == "rolled_back", services["worker"]
    for image in ("api", "worker"):
        assert container_digests(shipped, "dev", image) == {image: {first[image]}}
        assert stable(shipped, "dev", image)
    # and once finished, a rollback is a deployment like any other: going back again
    # goes to what ran before it
    code, doc = shipped.cli_json("rollback", "cluster", "--env", "dev", "--dry-run")
    assert code == 0, doc
    assert {p["service"] for p in doc["plan"]} == {"api", "worker"}


def test_rerunning_a_partial_tier_rollback_finishes_it_without_going_further_back(
    shipped: World, refuse_update: set[str]
) -> None:
    first = {i: str(shipped.tag_digest(i, "staging")) for i in ("api", "worker")}
    new_commit(shipped, "two")
    ship(shipped, "dev", "staging", minute=2)
    refuse_update.add("worker")

    code, doc = shipped.cli_json("rollback", "tier", "--tier", "staging")

    assert code == 3, doc
    assert {i: doc["images"][i]["digest"] for i in first} == first
    assert shipped.tag_digest("api", "staging") == first["api"]

    refuse_update.clear()
    code, doc = shipped.cli_json("rollback", "tier", "--tier", "staging")

    assert code == 0, doc
    assert {i: doc["images"][i]["digest"] for i in first} == first  # the same target
    for env in ("staging", "mb-staging"):
        services = doc["environments"][env]["services"]
        assert services["api"]["status"] == "skipped", services["api"]
        assert services["worker"]["status"] == "completed", services["worker"]
        for image in ("api", "worker"):
            assert container_digests(shipped, env, image) == {image: {first[image]}}
    assert shipped.tag_digest("worker", "staging") == first["worker"]


def test_rerunning_a_partial_restore_finishes_it(shipped: World, refuse_update: set[str]) -> None:
    code, doc = shipped.cli_json("snapshot", "--env", "staging", "--name", "good")
    assert code == 0, doc
    first = {i: str(shipped.tag_digest(i, "staging")) for i in ("api", "worker")}
    new_commit(shipped, "two")
    ship(shipped, "dev", "staging", minute=2)
    refuse_update.add("worker")
    code, doc = shipped.cli_json("restore", "--env", "staging")
    assert code == 3, doc
    refuse_update.clear()

    code, doc = shipped.cli_json("restore", "--env", "staging")

    assert code == 0, doc
    services = doc["environments"]["staging"]["services"]
    assert services["api"]["status"] == "unchanged", services["api"]
    assert services["worker"]["status"] == "restored", services["worker"]
    for image in ("api", "worker"):
        assert container_digests(shipped, "staging", image) == {image: {first[image]}}


# -- item: write-ahead: a run that dies leaves an open event, reconciled next --------------


def test_a_killed_promotion_leaves_an_open_event_the_next_command_reconciles(
    shipped: World,
) -> None:
    shipped.config_path.write_text(shipped.config_path.read_text() + "lock: {ttl: 1}\n")
    new = new_commit(shipped, "two")
    ship(shipped, "dev", minute=2)
    mark_image(shipped, "api", new["api"], "sandbox-hang.staging-cluster")
    ledger_file = shipped.root / ".tierup" / "ledger.jsonl"
    before = len(ledger_file.read_text().splitlines())

    proc = tierup(shipped, "promote", "--tier", "staging", "--timeout", "10m")
    deadline = time.monotonic() + 60
    # the tags moved, the open event is there: kill -9 while it waits for the rollouts
    while shipped.tag_digest("worker", "staging") != new["worker"] or not any(
        json.loads(line)["status"] == "open"
        for line in ledger_file.read_text().splitlines()[before:]
    ):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.0)
    proc.kill()
    proc.communicate(timeout=30)

    opened = ledger_of(shipped).events(tier="staging", limit=1)[0]
    assert opened["status"] == "open" and opened["command"] == "promote"
    assert any(w["write"] == "registry:PutImage" for w in opened["intent"]["writes"])
    history = shipped.cli("history", "--tier", "staging", "--limit", "1").stdout
    assert "promote --tier staging  open  by " in history, history
    assert "reconciles it" in history, history

    time.sleep(1.1)  # the dead run's lock is older than lock.ttl
    assert shipped.cli("unlock", "--tier", "staging").exit_code == 0
    code, doc = shipped.cli_json("deploy", "--env", "mb-staging", "--no-wait")
    assert code == 0, doc
    assert doc["reconciled"] == [opened["id"]]

    found = ledger_of(shipped).events(tier="staging", command="promote", limit=1)[0]
    assert found["closes"] == opened["id"] and found["status"] == "interrupted"
    assert found["reconciled"] is True
    images = {i["image"]: i for i in found["images"]}
    assert images["api"]["to_digest"] == new["api"] and images["api"]["status"] == "moved"
    staging = found["environments"]["staging"]["services"]["api"]
    assert staging["status"] == "deployed"
    assert all(e["status"] != "open" for e in ledger_of(shipped).events(tier="staging"))
    history = shipped.cli("history", "--tier", "staging").stdout
    assert " open " not in history, history


def test_a_killed_cluster_rollback_is_reconciled_and_its_rerun_flips_nothing_back(
    shipped: World,
) -> None:
    shipped.config_path.write_text(shipped.config_path.read_text() + "lock: {ttl: 1}\n")
    first = {i: str(shipped.tag_digest(i, "dev")) for i in ("api", "worker")}
    new_commit(shipped, "two")
    ship(shipped, "dev", minute=2)
    for image, digest in first.items():
        # what it goes back to never finishes rolling out: the run waits, and is killed
        mark_image(shipped, image, digest, "sandbox-hang.dev-cluster")
    pinned = {i: f"{HOST}/{i}@{first[i]}" for i in first}

    def names_first(image: str) -> bool:
        td = task_definition(shipped, "dev", image)
        return bool(td["containerDefinitions"][0]["image"] == pinned[image])

    proc = tierup(shipped, "rollback", "cluster", "--env", "dev", "--timeout", "10m")
    deadline = time.monotonic() + 60
    while not all(names_first(i) for i in first):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.5)
    proc.kill()
    proc.communicate(timeout=30)
    assert ledger_of(shipped).events(tier="dev", limit=1)[0]["status"] == "open"
    time.sleep(1.1)
    assert shipped.cli("unlock", "--tier", "dev").exit_code == 0

    code, doc = shipped.cli_json("rollback", "cluster", "--env", "dev", "--no-wait")

    assert code == 0, doc
    assert len(doc["reconciled"]) == 1
    for image in first:
        service = doc["environments"]["dev"]["services"][image]
        assert "finishing rollback cluster" in service["reason"], service
        assert names_first(image), image  # still on its way back, never flipped forward
