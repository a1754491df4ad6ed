"""`tierup build` with a real Docker engine, a real registry and real git repositories."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import boto3
import git
import pytest
from typer.testing import CliRunner

from tests.conftest import add_commit
from tests.support.fixtures_docker import AuthRegistry
from tests.support.oci_api import image_config, raw_manifest, sha256, tags
from tierup.pipeline.build import build, registry_login
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.config_load import loads
from tierup.pipeline.exit_codes import exit_code_of
from tierup.stages.adapters.docker_client import DockerEngine, RegistryAuth, ecr_login
from tierup.stages.adapters.oci.registry import OciRegistry
from tierup.stages.build import (
    LABEL_CREATED,
    LABEL_REVISION,
    LABEL_SOURCE,
    commit_tag,
    public_url,
    read_revision,
)
from tierup.stages.errors import ConfigError, InputError
from tierup.stages.resolve import resolve_tag
from tierup.stages.types import is_dirty_tag

DOCKERFILE = """\
FROM scratch AS api
COPY hello.txt /hello.txt

FROM scratch AS worker
ARG MODE=none
COPY worker.txt /worker.txt
LABEL mode=$MODE
"""

REMOTE = "https://ci-bot:ghp_notarealtoken@git.example.com/org/app.git"


@dataclass
class Lines:
    lines: list[str] = field(default_factory=list)

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _config(registry: str, prefix: str, extra: str = "") -> str:
    return f"""\
version: 1
registry: {{type: oci, url: "{registry}"}}
images:
  api:
    repository: {prefix}/api
    target: api
  worker:
    repository: {prefix}/worker
    target: worker
    build_args: {{MODE: worker}}
    labels: {{team: platform, {LABEL_REVISION}: overridden}}
{extra}tiers:
  - {{name: dev, tag: dev}}
"""


@dataclass
class Project:
    repo: git.Repo
    root: Path
    config: Config
    prefix: str
    registry_url: str

    @property
    def registry(self) -> OciRegistry:
        return OciRegistry(self.registry_url)


def _project(repo: git.Repo, registry_url: str) -> Project:
    prefix = f"build-{uuid.uuid4().hex[:8]}"
    root = Path(str(repo.working_tree_dir))
    text = _config(registry_url, prefix)
    add_commit(
        repo,
        {"Dockerfile": DOCKERFILE, "worker.txt": "worker\n", "envs.yaml": text},
        "two images",
    )
    repo.create_remote("origin", REMOTE)
    return Project(repo, root, loads(text), prefix, registry_url)


@pytest.fixture
def project(git_repo: git.Repo, oci_registry_url: str) -> Project:
    return _project(git_repo, oci_registry_url)


def _build(project: Project, engine: DockerEngine | None, **kwargs: Any) -> Any:
    progress = kwargs.pop("progress", Lines())
    return build(
        project.config,
        repo=project.repo,
        engine=engine,
        registry=project.registry,
        progress=progress,
        **kwargs,
    )


@pytest.fixture
def engine(docker_client: Any) -> DockerEngine:
    return DockerEngine(docker_client)


# -- pure parts --------------------------------------------------------------------------


def test_dirty_tags_are_never_resolved_for_promotion() -> None:
    sha = "a" * 40
    assert is_dirty_tag(f"{sha}-dirty")
    assert not is_dirty_tag(sha)
    assert not is_dirty_tag("staging")
    # refused before the registry is asked: nothing listens on this port
    with pytest.raises(InputError, match="dirty working tree"):
        resolve_tag(OciRegistry("http://127.0.0.1:9"), "api", "app/api", f"{sha}-dirty")


@pytest.mark.parametrize(
    ("url", "public"),
    [
        (REMOTE, "https://git.example.com/org/app.git"),
        ("https://x-access-token:abc@github.com/o/r", "https://github.com/o/r"),
        ("https://github.com/o/r.git", "https://github.com/o/r.git"),
        ("ssh://git@github.com:22/o/r.git", "ssh://github.com:22/o/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
    ],
)
def test_public_url(url: str, public: str) -> None:
    assert public_url(url) == public


def test_revision_and_dirty_tree(git_repo: git.Repo) -> None:
    root = Path(str(git_repo.working_tree_dir))
    revision = read_revision(git_repo)
    head = git_repo.head.commit
    assert revision.commit == head.hexsha
    assert revision.created == head.committed_datetime.astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert commit_tag(revision) == head.hexsha
    assert revision.source is None

    (root / "hello.txt").write_text("changed\n")
    (root / "new dir").mkdir()
    (root / "new dir" / "untracked.txt").write_text("new\n")
    (root / "staged.txt").write_text("staged\n")
    git_repo.index.add(["staged.txt"])
    dirty = read_revision(git_repo)
    assert set(dirty.changes) == {"hello.txt", "new dir/untracked.txt", "staged.txt"}
    with pytest.raises(InputError) as info:
        commit_tag(dirty)
    assert exit_code_of(info.value) == 2
    for name in ("hello.txt", "new dir/untracked.txt", "staged.txt"):
        assert name in info.value.message
    assert "--allow-dirty" in info.value.hint
    assert commit_tag(dirty, allow_dirty=True) == f"{head.hexsha}-dirty"


def test_ignored_files_do_not_make_a_tree_dirty(git_repo: git.Repo) -> None:
    add_commit(git_repo, {".gitignore": "build/\n"})
    root = Path(str(git_repo.working_tree_dir))
    (root / "build").mkdir()
    (root / "build" / "out.bin").write_text("x")
    assert not read_revision(git_repo).dirty


# -- with the engine and the registry ----------------------------------------------------


@pytest.mark.docker
def test_build_push_then_exists(project: Project, engine: DockerEngine) -> None:
    sha = project.repo.head.commit.hexsha
    progress = Lines()
    result = _build(project, engine, progress=progress)

    assert result.exit_code == 0, result.to_json()
    doc = result.to_json()
    assert doc["status"] == "ok"
    assert doc["tag"] == sha
    assert set(doc["images"]) == {"api", "worker"}
    for name in ("api", "worker"):
        item = doc["images"][name]
        assert item["status"] == "pushed"
        assert item["tag"] == sha
        repo = f"{project.prefix}/{name}"
        body, headers = raw_manifest(project.registry_url, repo, sha)
        assert item["digest"] == headers["Docker-Content-Digest"] == sha256(body)
    assert "api: Step 1/5 : FROM scratch AS api" in progress.lines
    assert any(line.startswith("worker: pushing ") for line in progress.lines)

    again = Lines()
    second = _build(project, engine, progress=again)
    assert second.exit_code == 0
    for name in ("api", "worker"):
        item = second.to_json()["images"][name]
        assert item["status"] == "exists"
        assert item["digest"] == doc["images"][name]["digest"]
    assert not any("Step" in line or "pushing" in line for line in again.lines)


@pytest.mark.docker
def test_labels_come_from_the_commit(project: Project, engine: DockerEngine) -> None:
    commit = project.repo.head.commit
    result = _build(project, engine, images=["worker"])
    assert [i.image for i in result.images] == ["worker"]
    config = image_config(project.registry_url, f"{project.prefix}/worker", commit.hexsha)
    labels = config["config"]["Labels"]
    assert labels[LABEL_REVISION] == commit.hexsha
    assert labels[LABEL_SOURCE] == "https://git.example.com/org/app.git"
    assert labels[LABEL_CREATED] == commit.committed_datetime.astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert labels["team"] == "platform"
    assert labels["mode"] == "worker"
    assert "ghp_notarealtoken" not in json.dumps(config)


@pytest.mark.docker
def test_dirty_tree(project: Project, engine: DockerEngine) -> None:
    (project.root / "hello.txt").write_text("uncommitted\n")
    (project.root / "scratch.txt").write_text("untracked\n")
    with pytest.raises(InputError) as info:
        _build(project, engine)
    assert exit_code_of(info.value) == 2
    assert "hello.txt" in info.value.message and "scratch.txt" in info.value.message
    assert tags(project.registry_url, f"{project.prefix}/api") == []

    sha = project.repo.head.commit.hexsha
    first = _build(project, engine, allow_dirty=True, images=["api"])
    assert first.exit_code == 0
    item = first.images[0]
    assert item.tag == f"{sha}-dirty" and is_dirty_tag(item.tag)
    assert item.status == "pushed"
    assert any("never promoted" in n for n in first.notes)
    # a -dirty tag is rebuilt and pushed over: the tree it came from is gone
    (project.root / "hello.txt").write_text("uncommitted, changed again\n")
    second = _build(project, engine, allow_dirty=True, images=["api"])
    assert second.images[0].status == "pushed"
    assert second.images[0].digest != item.digest
    assert tags(project.registry_url, f"{project.prefix}/api") == [f"{sha}-dirty"]


@pytest.mark.docker
def test_no_push_and_dry_run(project: Project, engine: DockerEngine, docker_client: Any) -> None:
    sha = project.repo.head.commit.hexsha
    plan = _build(project, None, dry_run=True)
    assert plan.exit_code == 0
    assert [(s["action"], s["image"]) for s in plan.plan] == [
        ("build", "api"),
        ("push", "api"),
        ("build", "worker"),
        ("push", "worker"),
    ]
    assert {i.status for i in plan.images} == {"planned"}
    assert tags(project.registry_url, f"{project.prefix}/api") == []

    local = _build(project, engine, push=False, images=["api"])
    item = local.images[0]
    assert item.status == "built" and item.digest is None
    assert tags(project.registry_url, f"{project.prefix}/api") == []
    image = docker_client.images.get(f"{project.registry_url}/{project.prefix}/api:{sha}")
    assert image.labels[LABEL_REVISION] == sha

    _build(project, engine, images=["api"])
    plan = _build(project, None, dry_run=True)
    assert [(s["action"], s["image"]) for s in plan.plan] == [
        ("build", "worker"),
        ("push", "worker"),
    ]
    assert {i.image: i.status for i in plan.images} == {"api": "exists", "worker": "planned"}


def test_unknown_image_and_missing_context(project_config_only: Project) -> None:
    project = project_config_only
    with pytest.raises(ConfigError, match="unknown image 'nope'") as info:
        _build(project, None, images=["nope"], dry_run=True)
    assert exit_code_of(info.value) == 2
    broken = Project(
        project.repo,
        project.root,
        loads(
            _config(project.registry_url, project.prefix).replace("target: api", "context: gone")
        ),
        project.prefix,
        project.registry_url,
    )
    with pytest.raises(ConfigError, match=r"images\.api\.context"):
        _build(broken, None, dry_run=True, push=False)


@pytest.fixture
def project_config_only(git_repo: git.Repo) -> Project:
    root = Path(str(git_repo.working_tree_dir))
    text = _config("127.0.0.1:9", "p")
    add_commit(git_repo, {"Dockerfile": DOCKERFILE, "worker.txt": "w\n", "envs.yaml": text})
    return Project(git_repo, root, loads(text), "p", "127.0.0.1:9")


TINI = Path("/usr/bin/tini-static")  # package tini (scripts/setup.sh): a static binary


@pytest.mark.docker
def test_failed_run_step_carries_its_output(project: Project, engine: DockerEngine) -> None:
    tini = project.root / "tini"
    tini.write_bytes(TINI.read_bytes())
    tini.chmod(0o755)
    project.repo.index.add(["tini"])
    add_commit(
        project.repo,
        {"Dockerfile": 'FROM scratch AS api\nCOPY tini /tini\nRUN ["/tini", "--", "/no/such"]\n'},
    )
    progress = Lines()
    result = _build(project, engine, images=["api"], progress=progress)
    assert result.exit_code == 1
    item = result.images[0]
    assert item.status == "failed" and item.error is not None
    first, *output = item.error.splitlines()
    assert 'at Step 3/6 : RUN ["/tini", "--", "/no/such"]' in first
    assert "returned a non-zero code: 127" in first
    assert any("exec /no/such failed" in line for line in output)
    assert not any("Removing intermediate container" in line for line in output)
    assert "\x1b" not in item.error + progress.text
    assert result.error == item.error


# -- the CLI -------------------------------------------------------------------------------


@pytest.fixture
def cli(project: Project, docker_host: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    from tierup.pipeline.cli import app

    monkeypatch.chdir(project.root)
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    monkeypatch.delenv("TIERUP_CONFIG", raising=False)
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, ["build", *args], catch_exceptions=False)

    return invoke


@pytest.mark.docker
def test_cli_build_json(project: Project, cli: Callable[..., Any]) -> None:
    sha = project.repo.head.commit.hexsha
    result = cli("--json", "--image", "api")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["images"]["api"]["status"] == "pushed"
    assert doc["images"]["api"]["tag"] == sha
    assert "api: Step 1/5 : FROM scratch AS api" in result.stderr


@pytest.mark.docker
def test_cli_dirty_tree_is_exit_2(project: Project, cli: Callable[..., Any]) -> None:
    (project.root / "hello.txt").write_text("uncommitted\n")
    result = cli()
    assert result.exit_code == 2
    assert "hello.txt" in result.stderr
    assert "--allow-dirty" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.docker
def test_cli_failed_build_is_exit_1(project: Project, cli: Callable[..., Any]) -> None:
    add_commit(
        project.repo,
        {"Dockerfile": DOCKERFILE.replace("COPY worker.txt", "COPY missing.txt")},
        "break the worker build",
    )
    result = cli()
    assert result.exit_code == 1, result.output
    assert re.search(r"at Step \d+/\d+ : COPY missing\.txt /worker\.txt", result.output)
    assert "COPY failed: file not found in build context" in result.output
    assert "Traceback" not in result.output
    as_json = json.loads(cli("--json").stdout)
    assert as_json["status"] == "failed"
    assert as_json["images"]["worker"]["status"] == "failed"
    assert "COPY missing.txt" in as_json["images"]["worker"]["error"]
    assert "Dockerfile" in as_json["images"]["worker"]["hint"]
    # the other image was built and pushed by the first run all the same
    assert as_json["images"]["api"]["status"] == "exists"


# -- credentials -------------------------------------------------------------------------------


@pytest.mark.docker
def test_push_with_credentials_from_docker_config(
    git_repo: git.Repo, oci_auth_registry: AuthRegistry, engine: DockerEngine
) -> None:
    project = _project(git_repo, oci_auth_registry.url)
    creds = (oci_auth_registry.username, oci_auth_registry.password)
    secret = base64.b64encode(":".join(creds).encode()).decode()
    config_dir = Path(os.environ["DOCKER_CONFIG"])
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.json").write_text(
        json.dumps({"auths": {oci_auth_registry.url: {"auth": secret}}})
    )
    clients = Clients(config=project.config)
    progress = Lines()
    result = build(
        project.config,
        repo=project.repo,
        engine=engine,
        registry=clients.registry,
        registry_login=registry_login(clients),
        images=["api"],
        progress=progress,
    )
    assert result.exit_code == 0, result.to_json()
    item = result.images[0]
    assert item.status == "pushed"
    sha = project.repo.head.commit.hexsha
    body, _ = raw_manifest(oci_auth_registry.url, f"{project.prefix}/api", sha, auth=creds)
    assert item.digest == sha256(body)
    assert oci_auth_registry.password not in progress.text + json.dumps(result.to_json())

    again = build(
        project.config,
        repo=project.repo,
        engine=engine,
        registry=clients.registry,
        registry_login=registry_login(clients),
        images=["api"],
    )
    assert again.images[0].status == "exists"


# -- ECR login -------------------------------------------------------------------------------


@pytest.mark.docker
def test_ecr_login_and_push(
    aws_env: str,
    project: Project,
    engine: DockerEngine,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    account = "012345678922"
    client = boto3.client("ecr", region_name="us-east-1", endpoint_url=aws_env)
    host = f"{account}.dkr.ecr.us-east-1.amazonaws.com"
    auth = ecr_login(client, host)
    assert auth.username == "AWS"
    assert auth.server == f"https://{host}"
    assert auth.password
    assert auth.password not in repr(auth)

    logins: list[RegistryAuth | None] = []

    def login() -> RegistryAuth | None:
        logins.append(ecr_login(client, host))
        return logins[-1]

    progress = Lines()
    result = _build(project, engine, registry_login=login, progress=progress)
    assert result.exit_code == 0, result.to_json()
    assert len(logins) == 1
    assert {i.status for i in result.images} == {"pushed"}
    seen = "\n".join(
        [progress.text, json.dumps(result.to_json()), caplog.text, *capsys.readouterr()]
    )
    assert auth.password not in seen
    # nothing to push: no login at all
    _build(project, engine, registry_login=login)
    assert len(logins) == 1


@pytest.fixture(autouse=True)
def _no_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A developer's ~/.docker must not reach the engine's pushes or the registry client."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    yield
