"""The AWS and git side of the test world: moto's server on loopback, a clean AWS environment
per test, and real git repositories.

The Docker engine and the registry come from `tests/support/fixtures_docker.py` when it exists.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import git
import pytest

_HERE = Path(__file__).resolve().parent

# moto's server logs every request through werkzeug: noise in every failure report
logging.getLogger("werkzeug").setLevel(logging.ERROR)

pytest_plugins = ["tests.support.faults", "tests.support.loopback"]
if (_HERE / "support" / "fixtures_docker.py").exists():
    pytest_plugins.append("tests.support.fixtures_docker")

TEST_REGION = "us-east-1"
TEST_ACCESS_KEY_ID = "testing-key"
TEST_SECRET_ACCESS_KEY = "testing-secret"  # a dummy that moto accepts

# The developer's or the CI runner's identity must not reach a test, nor must tierup believe it
# runs inside a CI job.
_CI_PREFIXES = ("GITHUB_", "GITLAB_", "CI_")


class _MotoWorld:
    """moto's threaded server with the sandbox's ECS/CodeDeploy emulation installed."""

    def __init__(self) -> None:
        from tierup.pipeline.sandbox import emulation

        self._emulation = emulation
        emulation.install()

        from tierup.pipeline.sandbox.server import moto_server

        # Port 0: the kernel picks a free port as the server binds, so there is no race for it.
        self._server = moto_server()
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"

    def reset(self) -> None:
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset", data=b"", method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        self._emulation.reset()

    def stop(self) -> None:
        self._server.stop()
        self._emulation.uninstall()


@pytest.fixture(scope="session")
def _moto_world() -> Iterator[_MotoWorld]:
    world = _MotoWorld()
    try:
        yield world
    finally:
        world.stop()


@pytest.fixture(scope="session")
def moto_server(_moto_world: _MotoWorld) -> str:
    """The endpoint URL (`http://127.0.0.1:<port>`) of moto's server, emulation installed."""
    return _moto_world.endpoint_url


@pytest.fixture(autouse=True)
def _no_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-xdist gives its workers COLUMNS=80, and tierup sizes its tables by COLUMNS: a test
    sees what a run without a terminal prints (200 wide) unless it sets COLUMNS itself."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture
def aws_env(
    monkeypatch: pytest.MonkeyPatch, moto_server: str, _moto_world: _MotoWorld
) -> Iterator[str]:
    """Point every AWS SDK call at moto's server with dummy credentials, from a clean state.

    Yields the endpoint URL. moto and the emulation are reset before the test runs.
    """
    for name in list(os.environ):
        if name == "CI" or name.startswith(_CI_PREFIXES) or name.startswith("AWS_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", TEST_REGION)
    # Never read ~/.aws: a developer's profiles must not leak into a test.
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    _moto_world.reset()
    yield moto_server


# --- git --------------------------------------------------------------------------------------

GIT_AUTHOR = git.Actor("Tierup Tests", "tests@tierup.invalid")

INITIAL_FILES: Mapping[str, str] = {
    "Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
    "hello.txt": "hello from tierup's tests\n",
}


def add_commit(
    repo: git.Repo,
    files: Mapping[str, str] | None = None,
    message: str | None = None,
) -> str:
    """Write `files` (path relative to the work tree -> text), commit them, return the SHA.

    Without files, appends a line to `hello.txt` so that every call makes a new tree.
    """
    root = Path(str(repo.working_tree_dir))
    if files is None:
        count = sum(1 for _ in repo.iter_commits()) if repo.head.is_valid() else 0
        hello = root / "hello.txt"
        previous = hello.read_text() if hello.exists() else ""
        files = {"hello.txt": f"{previous}change {count}\n"}
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    repo.index.add(list(files))
    commit = repo.index.commit(
        message or f"change {', '.join(sorted(files))}",
        author=GIT_AUTHOR,
        committer=GIT_AUTHOR,
    )
    return str(commit.hexsha)


def init_repo(path: Path) -> git.Repo:
    """A new repository on branch `main` at `path`, with one commit of `INITIAL_FILES`."""
    path.mkdir(parents=True, exist_ok=True)
    repo = git.Repo.init(path, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", GIT_AUTHOR.name)
        config.set_value("user", "email", GIT_AUTHOR.email)
        config.set_value("commit", "gpgsign", "false")
        config.set_value("tag", "gpgsign", "false")
    add_commit(repo, INITIAL_FILES, "initial commit")
    return repo


@pytest.fixture
def git_repo(tmp_path: Path) -> Iterator[git.Repo]:
    """A real git repository on `main` whose first commit holds a `FROM scratch` Dockerfile."""
    repo = init_repo(tmp_path / "repo")
    try:
        yield repo
    finally:
        repo.close()
