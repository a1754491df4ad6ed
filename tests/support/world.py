"""A test world: envs.yaml, a git repo, moto's server seeded from them, the CLI to drive it."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import git
from typer.testing import CliRunner

from tierup.pipeline import config as config_mod
from tierup.pipeline import config_load
from tierup.pipeline.cli import app
from tierup.pipeline.clients import Clients
from tierup.pipeline.sandbox import seed as seed_mod
from tierup.pipeline.sandbox.control import caller_credentials

REGISTRY = "012345678922"
REGION = "us-east-1"

CONFIG = """\
version: 1
registry: {{account_id: "{registry}", region: us-east-1}}
images:
  api: {{repository: api}}
  worker: {{repository: worker}}
tiers:
  - {{name: dev, tag: dev}}
  - {{name: staging, tag: staging, from: dev}}
  - {{name: prod, tag: "prod-{{timestamp}}", from: staging}}
environments:
{environments}
"""


def env_block(name: str, tier: str, account: str, services: dict[str, str], **extra: str) -> str:
    lines = [
        f"  {name}:",
        f"    tier: {tier}",
        f'    account_id: "{account}"',
        f"    role_arn: arn:aws:iam::{account}:role/deployer",
        "    region: us-east-1",
        f"    cluster: {name}-cluster",
    ]
    lines += [f"    {k}: {v}" for k, v in extra.items()]
    lines.append("    services:")
    lines += [f"      {s}: {body}" for s, body in services.items()]
    return "\n".join(lines)


DEFAULT_ENVS = "\n".join(
    [
        env_block(
            "dev", "dev", "111111111111", {"api": "{image: api}", "worker": "{image: worker}"}
        ),
        env_block(
            "staging",
            "staging",
            "333333333333",
            {"api": "{image: api}", "worker": "{image: worker}"},
        ),
        env_block(
            "mb-staging",
            "staging",
            "444444444444",
            {"api": "{image: api}", "worker": "{image: worker}"},
        ),
        env_block("prod", "prod", "555555555555", {"api": "{image: api}"}),
    ]
)


def assumed_client(
    endpoint: str,
    service: str,
    account: str,
    region: str = REGION,
    *,
    role: str = "deployer",
    credentials: tuple[str, str] | None = None,
) -> Any:
    """A boto3 client of ``service`` in ``account`` through ``role`` there.

    ``credentials`` (key id, secret) assume the role; without them, the environment's do.
    """
    caller: dict[str, Any] = {"region_name": region, "endpoint_url": endpoint}
    if credentials is not None:
        caller["aws_access_key_id"], caller["aws_secret_access_key"] = credentials
    creds = boto3.client("sts", **caller).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="tests"
    )["Credentials"]
    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


@dataclass
class Writes:
    """AWS write calls seen through botocore's event hooks (not a patch: an observer)."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    WRITE_OPS = (
        "PutImage",
        "UpdateService",
        "RegisterTaskDefinition",
        "DeregisterTaskDefinition",
        "CreateChangeSet",
        "ExecuteChangeSet",
        "CreateDeployment",
        "PutObject",
    )

    def hook(self, service: str, client: Any) -> None:
        def before(params: dict[str, Any], model: Any, **_: Any) -> None:
            if model.name in self.WRITE_OPS:
                with self.lock:
                    self.calls.append((model.name, dict(params)))

        client.meta.events.register("provide-client-params.*.*", before)

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]


@dataclass
class World:
    root: Path
    endpoint: str
    config_path: Path
    repo: git.Repo
    seeded: seed_mod.SeedResult

    @property
    def config(self) -> config_mod.Config:
        return config_load.load(self.config_path)

    @property
    def head(self) -> str:
        return self.repo.head.commit.hexsha

    def clients(self, writes: Writes | None = None) -> Clients:
        from tierup.pipeline.sessions import AwsSessions

        return Clients(
            config=self.config,
            sessions=AwsSessions(on_client=writes.hook if writes else None),
            sleep=lambda _s: None,
            repo_path=self.root,
            poll_interval=0,
        )

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Any:
        full_env = {"TIERUP_POLL_INTERVAL": "0", **(env or {})}
        with _cwd(self.root):
            return CliRunner().invoke(app, [*args, "-f", str(self.config_path)], env=full_env)

    def cli_json(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        r = self.cli(*args, "--json", env=env)
        return r.exit_code, json.loads(r.stdout)

    def commit(self, message: str = "change") -> str:
        path = self.root / "change.txt"
        path.write_text(path.read_text() + "x" if path.exists() else "x")
        self.repo.index.add([str(path)])
        return self.repo.index.commit(message).hexsha

    def push_images(self, commit: str, tags: tuple[str, ...] = ()) -> dict[str, str]:
        return dict(
            seed_mod.push_commit_images(
                self.config, endpoint_url=self.endpoint, commit=commit, tags=tags
            )
        )

    # -- reading AWS directly ------------------------------------------------------

    def ecr(self) -> Any:
        return boto3.client(
            "ecr",
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key="x",
        )

    def tag_digest(self, repository: str, tag: str) -> str | None:
        resp = self.ecr().batch_get_image(
            registryId=REGISTRY, repositoryName=repository, imageIds=[{"imageTag": tag}]
        )
        images = resp.get("images", [])
        return images[0]["imageId"]["imageDigest"] if images else None

    def ecs(self, account: str) -> Any:
        return self.aws("ecs", account)

    def aws(self, service: str, account: str) -> Any:
        """A boto3 client of ``service`` in ``account``, through its deployer role."""
        return assumed_client(self.endpoint, service, account)

    def services(self, env: str) -> dict[str, dict[str, Any]]:
        e = self.config.environment(env)
        resp = self.ecs(e.account_id).describe_services(
            cluster=e.cluster, services=list(e.services)
        )
        return {s["serviceName"]: s for s in resp["services"]}


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def make_world(
    tmp_path: Path,
    endpoint: str,
    environments: str = DEFAULT_ENVS,
    *,
    tag_tiers: bool = True,
    images: str | None = None,
) -> World:
    """``images``: the `images:` block's entries, in place of api and worker's own repositories."""
    root = tmp_path / "repo"
    root.mkdir()
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "Test User")
        cw.set_value("user", "email", "test@example.com")
    (root / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /\n")
    (root / "hello.txt").write_text("hello\n")
    text = CONFIG.format(registry=REGISTRY, environments=environments)
    if images is not None:
        text = text.replace("  api: {repository: api}\n  worker: {repository: worker}\n", images)
    config_path = root / "envs.yaml"
    config_path.write_text(text)
    repo.index.add(["Dockerfile", "hello.txt", "envs.yaml"])
    repo.index.commit("initial")
    cfg = config_load.load(config_path)
    seeded = seed_mod.seed(
        cfg, endpoint_url=endpoint, commit=repo.head.commit.hexsha, tag_tiers=tag_tiers
    )
    # the caller's own credentials live in the registry account, as a CI role would
    os.environ["AWS_ACCESS_KEY_ID"] = caller_credentials(endpoint, REGISTRY)
    return World(root=root, endpoint=endpoint, config_path=config_path, repo=repo, seeded=seeded)
