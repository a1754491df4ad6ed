"""The wheel, installed as a user would, outside this repository: `tierup --version`, `init`,
`validate` and `sandbox up/down` work there; without the sandbox extra, `sandbox up` says what
to install. No network: the dependencies are the ones this interpreter already has."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SKIP_IN_COPY = {".git", ".venv", ".tierup", "build", "dist", "__pycache__"}
SKIP_IN_COPY |= {".mypy_cache", ".ruff_cache", ".pytest_cache"}

pytestmark = pytest.mark.slow


def _has_build_system(python: str) -> bool:
    """setuptools>=77 and setuptools-scm, the build system pyproject names, are importable."""
    code = (
        "import setuptools, setuptools_scm, sys; "
        "sys.exit(int(setuptools.__version__.split('.')[0]) < 77)"
    )
    return subprocess.run([python, "-c", code], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An interpreter that builds tierup: this one (its test extra has the build system), or
    else a virtualenv that fetches it from the package index once."""
    if _has_build_system(sys.executable):
        return sys.executable
    venv = tmp_path_factory.mktemp("builder") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "setuptools>=77", "setuptools-scm>=8,<11"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return python


def _checkout_copy(dst: Path) -> Path:
    """The working tree as git would list it (tracked and new files, nothing ignored)."""

    def ignore(_dir: str, names: list[str]) -> set[str]:
        return {n for n in names if n in SKIP_IN_COPY or n.endswith(".egg-info")}

    shutil.copytree(ROOT, dst, ignore=ignore)
    subprocess.run(["git", "init", "-q", str(dst)], check=True)
    git = ["git", "-C", str(dst), "-c", "user.name=T", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "-A"], check=True)
    # the sdist lists what the commit holds, as it does in a clone
    subprocess.run([*git, "commit", "-q", "--no-verify", "-m", "build"], check=True)
    return dst


def _build(python: str, tmp: Path, kind: str) -> Path:
    """The wheel or the sdist, built offline by setuptools' own backend from a copy."""
    src = _checkout_copy(tmp / "src")
    out = tmp / "dist"
    out.mkdir()
    hook = "build_wheel" if kind == "wheel" else "build_sdist"
    code = f"from setuptools import build_meta as b; print(b.{hook}({str(out)!r}))"
    subprocess.run(
        [python, "-c", code], cwd=src, check=True, capture_output=True, text=True, timeout=300
    )
    (built,) = out.glob("tierup-*.whl" if kind == "wheel" else "tierup-*.tar.gz")
    return built


def _dependencies(tmp: Path, *, without: tuple[str, ...]) -> Path:
    """This interpreter's installed packages, less tierup itself and ``without``."""
    site = Path(sysconfig.get_paths()["purelib"])
    deps = tmp / ("deps-" + "-".join(without) if without else "deps")
    deps.mkdir()
    own = ("pipeline", "stages", "tierup", "__editable__", "_tierup")
    for entry in site.iterdir():
        name = entry.name
        base = name.split("-")[0].lower()
        if name.endswith(".pth") or name.startswith(own) or base in without:
            continue
        (deps / name).symlink_to(entry)
    return deps


def _venv(tmp: Path, name: str, wheel: Path, deps: Path) -> Path:
    venv = tmp / name
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    site = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "dependencies.pth").write_text(f"{deps}\n")
    # pip itself comes from the dependencies, like everything else
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        env=_clean_env(),
    )
    return venv


def _user_repo(path: Path) -> Path:
    """A user's repository with two commits and nothing of tierup's but its envs.yaml."""
    path.mkdir()
    git = ["git", "-C", str(path), "-c", "user.name=T", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    shutil.copy(ROOT / "envs.yaml", path / "envs.yaml")
    subprocess.run([*git, "add", "envs.yaml"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    (path / "README").write_text("x\n")
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "two"], check=True)
    return path


def _clean_env() -> dict[str, str]:
    drop = ("AWS_", "PYTHON", "TIERUP_", "VIRTUAL_ENV", "GITHUB_", "GITLAB_", "CI")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def installed(
    tmp_path_factory: pytest.TempPathFactory, builder: str
) -> Iterator[tuple[Path, Path]]:
    """(a virtualenv with the wheel and every extra, one without moto)."""
    tmp = tmp_path_factory.mktemp("install")
    wheel = _build(builder, tmp, "wheel")
    full = _venv(tmp, "venv", wheel, _dependencies(tmp, without=()))
    bare = _venv(tmp, "venv-bare", wheel, _dependencies(tmp, without=("moto", "flask")))
    yield full, bare


def _tierup(venv: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [str(venv / "bin" / "tierup"), *args],
        cwd=cwd,
        env=env if env is not None else _clean_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_wheel_installs_and_runs_outside_the_repository(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    venv, _ = installed
    repo = _user_repo(tmp_path / "user")
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import tierup.pipeline as p, importlib.util as u; print(p.__file__); "
            "print(u.find_spec('pipeline'), u.find_spec('stages'))",
        ],
        cwd=repo,
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed_at, generic = where.splitlines()
    assert installed_at.startswith(str(venv)), where  # the installed copy, not this checkout
    # the repository's pipeline/ and stages/ install under tierup only: no generic name
    assert generic == "None None", where
    # every package folder of the repository is in the wheel, under tierup/
    site = Path(installed_at).parents[2]
    packages = {
        str(p.parent.relative_to(ROOT))
        for top in ("pipeline", "stages")
        for p in (ROOT / top).rglob("__init__.py")
    }
    shipped = {str(p.parent.relative_to(site / "tierup")) for p in site.rglob("__init__.py")}
    assert packages <= shipped, sorted(packages - shipped)

    version = _tierup(venv, "--version", cwd=repo)
    assert version.returncode == 0 and version.stdout.strip() == "tierup 0.1.0"

    valid = _tierup(venv, "validate", "--json", cwd=repo)
    assert valid.returncode == 0, valid.stderr
    assert json.loads(valid.stdout)["status"] == "ok"

    env = _clean_env()
    up = _tierup(venv, "sandbox", "up", "--port", str(_free_port()), cwd=repo, env=env)
    try:
        assert up.returncode == 0, up.stderr
        assert up.stdout.startswith("export AWS_ENDPOINT_URL=http://127.0.0.1:")
        for part in up.stdout.strip().removeprefix("export ").split():
            key, _, value = part.partition("=")
            env[key] = value
        where_doc = _tierup(venv, "where", "--json", cwd=repo, env=env)
        assert where_doc.returncode == 0, where_doc.stderr
        assert "api" in json.loads(where_doc.stdout)["images"]
        # init, from what the sandbox runs, writes a file that validate --remote accepts
        roles = sorted(
            {
                e["role_arn"]
                for e in yaml.safe_load((repo / "envs.yaml").read_text())["environments"].values()
                if e.get("role_arn")
            }
        )
        args = [w for arn in roles for w in ("--role-arn", arn)]
        # mb-prod's cluster is `api` and its task definitions name commits: nothing to guess
        args += ["--tier-for", "666666666666/api=prod"]
        made = _tierup(venv, "init", "-o", "init.yaml", *args, "--gitignore", cwd=repo, env=env)
        assert made.returncode == 0, made.stderr
        assert ".tierup/" in (repo / ".gitignore").read_text()
        checked = _tierup(venv, "validate", "--remote", "-f", "init.yaml", cwd=repo, env=env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        down = _tierup(venv, "sandbox", "down", cwd=repo, env=env)
    assert down.returncode == 0, down.stderr
    assert not (repo / ".tierup" / "sandbox" / "sandbox.pid").exists()


def test_sandbox_without_its_extra_names_the_install_command(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, bare = installed
    repo = _user_repo(tmp_path / "user")
    up = _tierup(bare, "sandbox", "up", "--port", str(_free_port()), cwd=repo)
    assert up.returncode == 2
    assert "pip install 'tierup[sandbox]'" in up.stderr
    assert "Traceback" not in up.stderr and "ModuleNotFoundError" not in up.stderr
    assert up.stderr.count("\n") == 1
    assert not (repo / ".tierup" / "sandbox" / "sandbox.pid").exists()


def test_sdist_carries_the_examples_and_what_the_tests_read(builder: str, tmp_path: Path) -> None:
    sdist = _build(builder, tmp_path, "sdist")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in (
        "LICENSE",
        "envs.yaml",
        "examples/ci/github-actions.yml",
        "examples/ci/gitlab-ci.yml",
        "tests/conftest.py",
        "tests/support/world.py",
        "tests/support/templates/ecs-service.yaml",
        "tests/cli/test_examples_ci.py",
    ):
        assert needed in names, needed
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/PKG-INFO"))
        pkg_info = tar.extractfile(member)
        assert pkg_info is not None
        meta = pkg_info.read().decode()
    assert "License-Expression: Apache-2.0" in meta
    assert "Project-URL:" not in meta  # no public address yet: none invented
    assert "Classifier: Typing :: Typed" in meta
