"""Retag of every manifest media type, `validate --remote`, sessions, and the sandbox commands."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.world import REGISTRY, World, Writes, make_world
from tierup.pipeline.sessions import AwsSessions, session_name
from tierup.stages import retag
from tierup.stages.adapters.ecr import EcrRegistry
from tierup.stages.adapters.registry import TagWrite
from tierup.stages.types import MANIFEST_MEDIA_TYPES

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("aws_env")


def _layer(n: int) -> dict[str, object]:
    return {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "size": 100 + n,
        "digest": "sha256:" + f"{n:02x}" * 32,
    }


def _manifest(media_type: str, n: int) -> str:
    # deliberately unusual spacing and key order: the bytes must survive unchanged
    if media_type.endswith("list.v2+json") or media_type.endswith("index.v1+json"):
        doc = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                {
                    "mediaType": MANIFEST_MEDIA_TYPES[0],
                    "size": 528,
                    "digest": "sha256:" + f"{n:02x}" * 32,
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    else:
        doc = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "size": 7,
                "digest": "sha256:" + f"{n + 1:02x}" * 32,
            },
            "layers": [_layer(n)],
        }
    return json.dumps(doc, indent=3, separators=(",", " : "))


@pytest.mark.parametrize("media_type", MANIFEST_MEDIA_TYPES)
def test_retag_moves_the_manifest_bytes_and_media_type_unchanged(
    tmp_path: Path, aws_env: str, media_type: str
) -> None:
    world = make_world(tmp_path, aws_env)
    ecr = world.ecr()
    n = MANIFEST_MEDIA_TYPES.index(media_type) + 10
    body = _manifest(media_type, n)
    put = ecr.put_image(
        registryId=REGISTRY,
        repositoryName="api",
        imageManifest=body,
        imageManifestMediaType=media_type,
        imageTag="src",
    )
    source_digest = put["image"]["imageId"]["imageDigest"]

    writes = Writes()
    sessions = AwsSessions(on_client=writes.hook)
    registry = EcrRegistry(
        sessions.client("ecr", region="us-east-1"), account_id=REGISTRY, region="us-east-1"
    )
    manifest = registry.get_manifest("api", "src")
    assert manifest is not None
    assert manifest.body == body.encode()
    assert manifest.media_type == media_type
    plan = retag.plan_retag(registry, "api", "api", "promoted", manifest)
    assert plan.action is TagWrite.CREATED
    assert retag.retag(registry, plan) is TagWrite.CREATED

    [(op, params)] = writes.calls
    assert op == "PutImage"
    assert params["imageManifest"] == body
    assert params["imageManifestMediaType"] == media_type
    assert params["imageTag"] == "promoted"
    assert world.tag_digest("api", "promoted") == source_digest
    # planned again, the same write is "unchanged" and makes no request
    again = retag.plan_retag(registry, "api", "api", "promoted", manifest)
    assert again.action is TagWrite.UNCHANGED
    assert retag.retag(registry, again) is TagWrite.UNCHANGED
    # a stale plan (the tag moved meanwhile to this very digest) is still "unchanged": the
    # read right before the write sees it, and nothing is written
    assert retag.retag(registry, plan) is TagWrite.UNCHANGED
    assert [n for n, _ in writes.calls].count("PutImage") == 1


def test_validate_remote_passes_on_a_good_world_and_names_each_problem(world_fn: World) -> None:
    world = world_fn
    code, doc = world.cli_json("validate", "--remote")
    assert code == 0, doc
    assert {e["status"] for e in doc["environments"].values()} == {"ok"}
    assert {i["status"] for i in doc["images"].values()} == {"ok"}

    # a service naming another tag, a repository policy without one account, a missing service
    ecs = world.ecs("333333333333")
    td = ecs.register_task_definition(
        family="other",
        containerDefinitions=[
            {
                "name": "api",
                "memory": 128,
                "image": f"{REGISTRY}.dkr.ecr.us-east-1.amazonaws.com/api:{world.head}",
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster="staging-cluster", service="api", taskDefinition=td)
    for _ in range(3):
        ecs.describe_services(cluster="staging-cluster", services=["api"])
    policy = json.loads(
        world.ecr().get_repository_policy(registryId=REGISTRY, repositoryName="worker")[
            "policyText"
        ]
    )
    for st in policy["Statement"]:
        principals = st["Principal"]["AWS"]
        principals = [principals] if isinstance(principals, str) else principals
        st["Principal"]["AWS"] = [p for p in principals if "444444444444" not in p]
    world.ecr().set_repository_policy(
        registryId=REGISTRY, repositoryName="worker", policyText=json.dumps(policy)
    )
    world.config_path.write_text(
        world.config_path.read_text().replace(
            "      worker: {image: worker}\n  mb-staging:",
            "      gone: {image: worker}\n  mb-staging:",
        )
    )
    code, doc = world.cli_json("validate", "--remote")
    assert code == 1, doc
    assert doc["status"] == "failed"
    staging = doc["environments"]["staging"]["services"]
    assert "api:staging" in staging["api"]["error"] and world.head in staging["api"]["error"]
    assert "not found" in staging["gone"]["error"]
    assert "444444444444" in doc["images"]["worker"]["error"]
    assert doc["images"]["api"]["status"] == "ok"


@pytest.fixture
def world_fn(tmp_path: Path, aws_env: str) -> World:
    return make_world(tmp_path, aws_env)


def test_session_name_carries_the_ci_run_id() -> None:
    assert session_name({"GITHUB_RUN_ID": "123456"}) == "tierup-123456"
    assert session_name({"CI_PIPELINE_ID": "77"}) == "tierup-77"
    assert session_name({"GITHUB_RUN_ID": "a b/c"}) == "tierup-a-b-c"
    name = session_name({"GITHUB_RUN_ID": "9" * 100})
    assert len(name) == 64
    assert session_name({}).startswith("tierup-")


def test_assumed_sessions_are_cached_per_role(aws_env: str) -> None:
    writes: list[str] = []
    sessions = AwsSessions(on_client=lambda service, _c: writes.append(service))
    a = sessions.client("ecs", region="us-east-1", role_arn="arn:aws:iam::111111111111:role/x")
    b = sessions.client("ecs", region="us-east-1", role_arn="arn:aws:iam::111111111111:role/x")
    c = sessions.client("ecs", region="us-east-1", role_arn="arn:aws:iam::222222222222:role/x")
    assert a is b and a is not c
    assert writes.count("sts") == 1
    ident = sessions.client(
        "sts", region="us-east-1", role_arn="arn:aws:iam::222222222222:role/x"
    ).get_caller_identity()
    assert ident["Account"] == "222222222222"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sandbox_up_promote_where_down(tmp_path: Path) -> None:
    """The README's first command, in a copy of the example envs.yaml and a fresh repo."""
    import git

    repo = git.Repo.init(tmp_path, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "T").set_value("user", "email", "t@example.com")
    (tmp_path / "envs.yaml").write_text((ROOT / "envs.yaml").read_text())
    repo.index.add(["envs.yaml"])
    repo.index.commit("one")
    (tmp_path / "x").write_text("x")
    repo.index.add(["x"])
    head = repo.index.commit("two").hexsha
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    tierup = [sys.executable, "-m", "tierup.pipeline.cli"]
    port = str(_free_port())
    up = subprocess.run(
        [*tierup, "sandbox", "up", "--port", port],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert up.returncode == 0, up.stderr
        line = up.stdout.strip()
        assert line.startswith("export AWS_ENDPOINT_URL=http://127.0.0.1:" + port)
        for part in line.removeprefix("export ").split():
            key, _, value = part.partition("=")
            env[key] = value
        env["TIERUP_POLL_INTERVAL"] = "0.2"
        for tier in ("dev", "staging"):
            r = subprocess.run(
                [*tierup, "promote", "--tier", tier, "--json"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert r.returncode == 0, r.stdout + r.stderr
            doc = json.loads(r.stdout)
            assert {i["status"] for i in doc["images"].values()} == {"moved"}
            assert {
                s["status"] for e in doc["environments"].values() for s in e["services"].values()
            } == {"completed"}
        r = subprocess.run(
            [*tierup, "where", "--json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        doc = json.loads(r.stdout)
        assert doc["images"]["api"]["tiers"]["staging"]["commits"] == [head]
        assert doc["environments"]["mb-staging"]["services"]["api"]["drift"] is False
    finally:
        down = subprocess.run(
            [*tierup, "sandbox", "down"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert down.returncode == 0
    assert (
        not (tmp_path / ".tierup" / "sandbox" / "sandbox.pid").exists() or "stopped" in down.stdout
    )
