"""Test world for release control: prod in two accounts, the ledger in S3 on moto's server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from tests.support.guarded import promote
from tests.support.world import DEFAULT_ENVS, REGION, World, Writes, env_block, make_world
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.ledger.configured import open_ledger
from tierup.pipeline.sessions import AwsSessions

BUCKET = "tierup-ledger"
PREFIX = "team/ledger"
REPO_ROOT = Path(__file__).resolve().parents[2]
PROD_ENVS = (
    DEFAULT_ENVS + "\n" + env_block("mb-prod", "prod", "666666666666", {"api": "{image: api}"})
)
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
STAMP_RE = r"^prod-\d{8}T\d{6}Z$"
AWS_WRITES = frozenset(
    {"PutImage", "UpdateService", "RegisterTaskDefinition", "DeregisterTaskDefinition"}
)


def s3() -> Any:
    return boto3.client("s3", region_name=REGION)


def release_world(
    tmp_path: Path,
    endpoint: str,
    *,
    s3_ledger: bool = True,
    environments: str = PROD_ENVS,
    tier_extra: str = "",
) -> World:
    """Every tier on the first commit, the ledger in S3 (or the local file)."""
    w = make_world(tmp_path, endpoint, environments)
    text = w.config_path.read_text()
    if tier_extra:
        text = text.replace(
            '{name: prod, tag: "prod-{timestamp}", from: staging}',
            '{name: prod, tag: "prod-{timestamp}", from: staging, ' + tier_extra + "}",
        )
    if s3_ledger:
        s3().create_bucket(Bucket=BUCKET)
        text += f"ledger: {{s3: s3://{BUCKET}/{PREFIX}, region: us-east-1}}\n"
    w.config_path.write_text(text)
    return w


def ledger_of(
    world: World,
    writes: Writes | None = None,
    *,
    now: Callable[[], datetime] | None = None,
    environ: dict[str, str] | None = None,
) -> Ledger:
    sessions = AwsSessions(on_client=writes.hook if writes else None)
    return open_ledger(world.config, sessions, root=world.root, environ=environ or {}, now=now)


def new_digests(world: World, message: str = "change") -> dict[str, str]:
    """A new commit, built and pushed; promoted to dev (not in the world's ledger)."""
    digests = world.push_images(world.commit(message))
    assert promote(world.config, world.clients(), tier="dev").exit_code == 0
    return digests


def new_commit(world: World, message: str) -> dict[str, str]:
    """A commit and its images pushed: image name -> digest."""
    return world.push_images(world.commit(message))


def ship(world: World, *tiers: str, minute: int = 0) -> None:
    """Promote the current images through ``tiers``, recorded in the world's ledger."""
    ledger = ledger_of(world)
    for tier in tiers:
        result = promote(
            world.config,
            world.clients(),
            tier=tier,
            ledger=ledger,
            now=lambda: T0 + timedelta(minutes=minute),
        )
        assert result.exit_code == 0, result.to_json()


def aws_writes(writes: Writes) -> list[str]:
    return [n for n in writes.names() if n in AWS_WRITES]


def tags_of(world: World, repository: str) -> dict[str, str]:
    """tag -> digest of a repository."""
    out: dict[str, str] = {}
    pages = (
        world.ecr()
        .get_paginator("describe_images")
        .paginate(registryId="012345678922", repositoryName=repository)
    )
    for page in pages:
        for d in page["imageDetails"]:
            for t in d.get("imageTags", []):
                out[t] = d["imageDigest"]
    return out


def task_definition(world: World, env: str, service: str) -> dict[str, Any]:
    """The service's task definition as described, its tags under ``tags``.

    Any service of the cluster, named in envs.yaml or not.
    """
    e = world.config.environment(env)
    ecs = world.ecs(e.account_id)
    arn = ecs.describe_services(cluster=e.cluster, services=[service])["services"][0][
        "taskDefinition"
    ]
    resp = ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
    return {**resp["taskDefinition"], "tags": resp.get("tags", [])}


def running_digests(world: World, env: str) -> dict[str, list[str]]:
    """service -> the digests its running tasks report (through `tierup where`)."""
    code, doc = world.cli_json("where", "--env", env)
    assert code == 0, doc
    return {
        name: sorted(s.get("running_digests") or [])
        for name, s in doc["environments"][env]["services"].items()
    }


def tierup(
    world: World, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """A real `tierup` process (python -m tierup.pipeline) against the same moto server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env.update(
        {
            "PYTHONPATH": str(REPO_ROOT),
            "TIERUP_POLL_INTERVAL": "0.2",
            **(extra_env or {}),
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "tierup.pipeline", *args, "-f", str(world.config_path)],
        cwd=world.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
