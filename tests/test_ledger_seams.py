"""The seams between the writing commands and the ledger, on moto's server with the emulation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ecs_checks import container_digests, stable
from tests.release_world import ledger_of, new_commit, ship
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
