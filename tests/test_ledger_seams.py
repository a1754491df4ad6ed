"""The seams between the writing commands and the ledger, on moto's server with the emulation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.release import stamp
from tests.ecs_checks import container_digests, mark_image, stable
from tests.release_world import T0, ledger_of, new_commit, release_world, ship
from tests.world import DEFAULT_ENVS, World, make_world

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
