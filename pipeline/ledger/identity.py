"""Who acts and from where: the actor and CI run each event records."""

from __future__ import annotations

import getpass
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


def ci_url(environ: Mapping[str, str]) -> str | None:
    """The URL of the CI run, when tierup runs inside one."""
    if environ.get("GITHUB_RUN_ID") and environ.get("GITHUB_REPOSITORY"):
        server = environ.get("GITHUB_SERVER_URL") or "https://github.com"
        return f"{server}/{environ['GITHUB_REPOSITORY']}/actions/runs/{environ['GITHUB_RUN_ID']}"
    for var in ("CI_JOB_URL", "CI_PIPELINE_URL", "BUILD_URL", "CODEBUILD_BUILD_URL"):
        if environ.get(var):
            return environ[var]
    return None


def actor_name(environ: Mapping[str, str], root: Path) -> str:
    """The CI user in CI, else git's user.name, else the OS user."""
    for var in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN"):
        if environ.get(var):
            return environ[var]
    try:
        # git itself reads the repository's, the user's and the system's config (includes and
        # worktrees too); importing GitPython for this one value would cost more than the call
        found = subprocess.run(
            ["git", "config", "--get", "user.name"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    except (OSError, subprocess.SubprocessError):  # no git: fall through to the OS user
        pass
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


@dataclass
class Identity:
    """Who acts: resolved once per process.

    The STS caller lookup starts in the background (``prefetch``) so that it overlaps the
    command's own reads instead of delaying them.
    """

    environ: Mapping[str, str]
    root: Path
    caller_arn: Callable[[], str | None] = lambda: None
    _name: str | None = None
    _arn: list[str | None] | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prefetch(self) -> None:
        with self._lock:
            if self._thread is not None or self._arn is not None:
                return
            self._thread = threading.Thread(target=self._resolve_arn, daemon=True)
            self._thread.start()

    def _resolve_arn(self) -> None:
        arn = self.caller_arn()
        self._arn = [arn]

    def name(self) -> str:
        with self._lock:
            if self._name is None:
                self._name = actor_name(self.environ, self.root)
            return self._name

    def arn(self) -> str | None:
        self.prefetch()
        thread = self._thread
        if thread is not None:
            thread.join()
        return self._arn[0] if self._arn else None

    def actor(self) -> dict[str, str | None]:
        return {"name": self.name(), "arn": self.arn()}

    def holder(self) -> dict[str, str | None]:
        """Who holds a lock: the name now, the ARN if it is already known (never waits)."""
        return {"name": self.name(), "arn": self._arn[0] if self._arn else None}

    def ci_url(self) -> str | None:
        return ci_url(self.environ)
