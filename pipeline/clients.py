"""Production wiring: the side-effecting clients a command needs, made in one place."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierup.pipeline import interrupt
from tierup.pipeline.config import Config, EcrRegistry, Environment
from tierup.pipeline.sessions import AwsSessions
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.adapters.registry import Registry
from tierup.stages.errors import InputError
from tierup.stages.wait import RetryLog


def make_registry(config: Config, sessions: AwsSessions) -> Registry:
    reg = config.registry
    if isinstance(reg, EcrRegistry):
        from tierup.stages.adapters.ecr import EcrRegistry as Ecr

        client = sessions.client(
            "ecr", region=reg.region, role_arn=reg.role_arn, external_id=reg.external_id
        )
        return Ecr(client, account_id=reg.account_id, region=reg.region)
    from tierup.stages.adapters.oci.registry import OciRegistry

    return OciRegistry(reg.url, insecure=reg.insecure)


@dataclass
class Clients:
    """Everything with a side effect, injected into the core functions."""

    config: Config
    sessions: AwsSessions = field(default_factory=AwsSessions)
    sleep: Callable[[float], None] = interrupt.sleep  # ends at once on Ctrl-C
    clock: Callable[[], float] = time.monotonic
    repo_path: Path = field(default_factory=Path.cwd)
    poll_interval: float = 5.0
    retries: RetryLog = field(default_factory=RetryLog)  # polls tried again, by environment
    _registry: Registry | None = None
    _ecs: dict[str, Ecs] = field(default_factory=dict)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = make_registry(self.config, self.sessions)
        return self._registry

    def ecs(self, env: Environment) -> Ecs:
        key = f"{env.account_id}/{env.region}/{env.role_arn}"
        cached = self._ecs.get(key)
        if cached is None:
            cached = Ecs(self.aws("ecs", env))
            self._ecs[key] = cached
        return cached

    @classmethod
    def from_environment(cls, config: Config, environ: Mapping[str, str]) -> Clients:
        """The clients a command runs with; ``TIERUP_POLL_INTERVAL`` sets the poll interval."""
        clients = cls(config=config)
        interval = environ.get("TIERUP_POLL_INTERVAL")
        if interval:
            try:
                clients.poll_interval = float(interval)
            except ValueError as e:
                raise InputError(
                    f"TIERUP_POLL_INTERVAL={interval!r} is not a number of seconds",
                    hint="set it to seconds between polls, e.g. 5",
                ) from e
        return clients

    def aws(self, service: str, env: Environment) -> Any:
        return self.sessions.client(
            service, region=env.region, role_arn=env.role_arn, external_id=env.external_id
        )

    def git_repo(self) -> Any:
        try:
            import git
        except ImportError as e:  # GitPython refuses to load without a `git` program
            raise InputError(
                "tierup needs the `git` program to read the repository's commits, and none "
                "was found on PATH",
                hint="install git (apt-get install git, brew install git, ...) or point "
                "GIT_PYTHON_GIT_EXECUTABLE at it",
            ) from e

        try:
            return git.Repo(self.repo_path, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as e:
            raise InputError(
                f"{self.repo_path} is not inside a git repository",
                hint="run tierup from inside the git repository that holds the images' source",
            ) from e

    def head_commit(self) -> tuple[str, list[str]]:
        """HEAD's SHA and its ancestors, newest first (for images not rebuilt at HEAD)."""
        repo = self.git_repo()
        try:
            head = repo.head.commit
        except ValueError as e:
            raise InputError("the git repository has no commits", hint="commit first") from e
        ancestors = [c.hexsha for c in head.iter_parents(max_count=500)]
        return head.hexsha, ancestors
