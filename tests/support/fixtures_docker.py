"""The Docker side of the test world: a real engine and real registries on loopback.

- ``docker_host`` / ``docker_client``: dockerd on a unix socket (``--iptables=false
  --bridge=none``, data and exec roots of its own). An engine already answering at that
  socket is reused; the engine is stopped at session end by the last session that used it,
  and only if these fixtures started it.
- ``oci_registry_url``: ``docker-registry serve`` on 127.0.0.1, filesystem storage, no auth.
- ``oci_auth_registry``: the same with htpasswd basic auth (``AuthRegistry``: url, username,
  password).

There is no network: images are built ``FROM scratch``. Needs root, the Debian packages
docker.io, docker-registry and apache2-utils (scripts/setup.sh installs them).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pytest

ENGINE_DIR = Path(os.environ.get("TIERUP_TEST_DOCKER_DIR", "/tmp/tierup-test-docker"))
STARTED_MARK = "started-by-tierup-tests"
ENGINE_START_TIMEOUT = 60.0
REGISTRY_START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0

REGISTRY_USER = "tierup"
REGISTRY_PASSWORD = "registry-test-password"


def _need(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None and Path("/usr/sbin", binary).exists():
        path = str(Path("/usr/sbin", binary))
    if path is None:
        pytest.fail(f"{binary} is not installed (Debian package {package}): run scripts/setup.sh")
    return path


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# -- the engine ---------------------------------------------------------------------


def _engine_answers(base_url: str) -> bool:
    path = base_url.removeprefix("unix://")
    # the Docker SDK leaks its socket when the connection is refused: knock first
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(path)
        except OSError:
            return False
    import docker

    try:
        client = docker.DockerClient(base_url=base_url, timeout=5)
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


@dataclass
class _Engine:
    base_url: str
    lock: TextIO = field(repr=False)


def _start_engine() -> _Engine:
    ENGINE_DIR.mkdir(parents=True, exist_ok=True)
    sock = ENGINE_DIR / "docker.sock"
    base_url = f"unix://{sock}"
    lock = open(ENGINE_DIR / "users.lock", "w")  # noqa: SIM115 (held for the whole session)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        if _engine_answers(base_url):
            return _Engine(base_url, lock)
        if os.geteuid() != 0:
            pytest.fail("the Docker tests start dockerd, which needs root")
        dockerd = _need("dockerd", "docker.io")
        sock.unlink(missing_ok=True)
        (ENGINE_DIR / STARTED_MARK).unlink(missing_ok=True)
        log_path = ENGINE_DIR / "dockerd.log"
        pidfile = ENGINE_DIR / "docker.pid"
        with open(log_path, "w") as log:
            # `setsid --fork`: dockerd outlives this session if another one still uses it
            subprocess.run(
                [
                    _need("setsid", "util-linux"),
                    "--fork",
                    dockerd,
                    "--host",
                    base_url,
                    "--iptables=false",
                    "--bridge=none",
                    "--data-root",
                    str(ENGINE_DIR / "data"),
                    "--exec-root",
                    str(ENGINE_DIR / "exec"),
                    "--pidfile",
                    str(pidfile),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=True,
            )
        deadline = time.monotonic() + ENGINE_START_TIMEOUT
        while not _engine_answers(base_url):
            if time.monotonic() > deadline:
                if pidfile.exists():
                    _stop(int(pidfile.read_text().strip()))
                pytest.fail(f"dockerd did not start:\n{_log_tail(log_path)}")
            time.sleep(0.2)
        (ENGINE_DIR / STARTED_MARK).write_text(pidfile.read_text().strip())
        return _Engine(base_url, lock)
    finally:
        # from here on this session is one user among others: a shared lock
        fcntl.flock(lock, fcntl.LOCK_SH)


def _release_engine(engine: _Engine) -> None:
    """The last session that used an engine these fixtures started stops it."""
    try:
        fcntl.flock(engine.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        engine.lock.close()  # another session still uses it
        return
    try:
        mark = ENGINE_DIR / STARTED_MARK
        if mark.exists():
            pid = int(mark.read_text())
            _stop(pid)
            mark.unlink(missing_ok=True)
    finally:
        engine.lock.close()


@pytest.fixture(scope="session")
def docker_host() -> Iterator[str]:
    """``unix:///.../docker.sock`` of a running Docker engine (started if none answers)."""
    engine = _start_engine()
    try:
        yield engine.base_url
    finally:
        _release_engine(engine)


@pytest.fixture(scope="session")
def docker_client(docker_host: str) -> Iterator[Any]:
    """A ``docker.DockerClient`` on ``docker_host``."""
    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=120)
    try:
        yield client
    finally:
        client.close()


# -- registries ---------------------------------------------------------------------


@dataclass(frozen=True)
class AuthRegistry:
    """A registry that wants HTTP basic auth."""

    url: str  # "127.0.0.1:PORT"
    username: str
    password: str = field(repr=False)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _registry_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{url}/v2/", timeout=2) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError as e:
        return e.code == 401
    except OSError:
        return False


@contextlib.contextmanager
def _registry(root: Path, htpasswd: Path | None = None) -> Iterator[str]:
    binary = _need("docker-registry", "docker-registry")
    root.mkdir(parents=True, exist_ok=True)
    for _attempt in range(3):
        port = _free_port()
        url = f"127.0.0.1:{port}"
        auth = (
            f"auth:\n  htpasswd:\n    realm: tierup-tests\n    path: {htpasswd}\n"
            if htpasswd is not None
            else ""
        )
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {url}\n  secret: tierup-tests-secret\n" + auth
        )
        log_path = root / "registry.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [binary, "serve", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + REGISTRY_START_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            if _registry_answers(url):
                try:
                    yield url
                finally:
                    _stop(proc.pid)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=STOP_TIMEOUT)
                return
            time.sleep(0.05)
        _stop(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_TIMEOUT)
    pytest.fail(f"docker-registry did not start:\n{_log_tail(root / 'registry.log')}")


@pytest.fixture(scope="session")
def oci_registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a registry (CNCF distribution) without auth, plain http."""
    with _registry(tmp_path_factory.mktemp("registry")) as url:
        yield url


@pytest.fixture(scope="session")
def oci_auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    """A registry behind htpasswd basic auth (user ``REGISTRY_USER``)."""
    root = tmp_path_factory.mktemp("auth-registry")
    htpasswd_bin = _need("htpasswd", "apache2-utils")
    entry = subprocess.run(
        [htpasswd_bin, "-Bbn", REGISTRY_USER, REGISTRY_PASSWORD],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    htpasswd = root / "htpasswd"
    htpasswd.write_text(entry)
    with _registry(root, htpasswd) as url:
        yield AuthRegistry(url, REGISTRY_USER, REGISTRY_PASSWORD)
