"""The GitLab example's promote and stamp jobs, run by gitlab-ci-local (a real GitLab CI runner
emulation) with the shell executor against the sandbox: the component's jobs work, leave a
dotenv report and the release board, take `--force --reason` from a variable, plan prod into an
artifact that the manual job applies, and a job without its OIDC token stops with one clear
error."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ci" / "gitlab-ci.yml"
COMPONENT = ROOT / "examples" / "ci" / "gitlab" / "tierup.yml"

pytestmark = pytest.mark.slow


def _gitlab_ci_local() -> Path:
    for candidate in (os.environ.get("TIERUP_NODE_TOOLS"), str(ROOT / ".venv" / "npm")):
        if candidate:
            found = Path(candidate) / "node_modules" / ".bin" / "gitlab-ci-local"
            if found.exists() and shutil.which("rsync"):
                return found
    if os.environ.get("TIERUP_REQUIRE_TOOLS"):
        pytest.fail("gitlab-ci-local (npm) or rsync is missing: run scripts/setup.sh")
    pytest.skip("gitlab-ci-local is not installed (scripts/setup.sh installs it)")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=G", "-c", "user.email=g@example.com", *args],
        check=True,
        capture_output=True,
    )


def _project(path: Path) -> Path:
    """A user's project: the example pipeline, the component included from a local file (as
    `include: project` would from tierup's repository), tierup already on the PATH."""
    path.mkdir()
    (path / "ci").mkdir()
    shutil.copy(ROOT / "envs.yaml", path / "envs.yaml")
    shutil.copy(COMPONENT, path / "ci" / "tierup.yml")
    text = EXAMPLE.read_text()
    local = (
        "include:\n"
        "  - local: /ci/tierup.yml\n"
        "    inputs:\n"
        "      role-arn: arn:aws:iam::012345678922:role/tierup-ci\n"
        '      tierup: ""\n'
    )
    text, count = re.subn(r"include:\n(?:  .*\n|\n)*", local, text)
    assert count == 1
    (path / ".gitlab-ci.yml").write_text(text)
    (path / ".gitignore").write_text(".tierup/\n.gitlab-ci-local/\n")
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "one")
    (path / "README").write_text("x\n")
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "two")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """The project, and the environment of a shell that runs its jobs on the sandbox."""
    project = _project(tmp_path / "project")
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "tierup").write_text(
        f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m tierup.pipeline.cli "$@"\n'
    )
    (shim / "tierup").chmod(0o755)
    drop = ("AWS_", "GITHUB_", "GITLAB_", "CI_", "TIERUP_", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "CI"}
    env["PATH"] = f"{shim}:{env['PATH']}"
    env["HOME"] = str(tmp_path)  # gitlab-ci-local keeps its own state under HOME
    up = subprocess.run(
        ["tierup", "sandbox", "up", "--port", str(_free_port())],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert up.returncode == 0, up.stderr
    variables = dict(p.split("=", 1) for p in up.stdout.strip().removeprefix("export ").split())
    try:
        yield project, {**env, **variables}
    finally:
        subprocess.run(
            ["tierup", "sandbox", "down"], cwd=project, env=env, capture_output=True, timeout=60
        )


def _run(
    project: Path, env: dict[str, str], job: str, **variables: str
) -> subprocess.CompletedProcess[str]:
    args = [str(_gitlab_ci_local()), "--force-shell-executor", "--ignore-predefined-vars"]
    args += ["GITLAB_CI"]
    aws = {k: v for k, v in env.items() if k.startswith("AWS_") or k == "TIERUP_POLL_INTERVAL"}
    for key, value in {**aws, "GITLAB_CI": "true", **variables}.items():
        args += ["--variable", f"{key}={value}"]
    return subprocess.run(
        [*args, job], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )


def _report(project: Path, job: str) -> dict[str, str]:
    path = project / ".gitlab-ci-local" / "artifacts" / job / ".gitlab-ci-reports" / "dotenv"
    text = (path / "tierup.env").read_text()
    return dict(line.split("=", 1) for line in text.splitlines())


def _ledger(project: Path) -> list[dict[str, object]]:
    """The events, oldest first (an amendment, which adds notify's outcome to the event
    before it, left out)."""
    lines = (project / ".tierup" / "ledger.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["command"] != "amend"]


def test_gitlab_example_promotes_and_stamps_on_the_sandbox(
    sandbox: tuple[Path, dict[str, str]],
) -> None:
    project, env = sandbox
    token = {"AWS_OIDC_TOKEN": "a-token-from-gitlab"}

    for job, tier in (("promote-dev", "dev"), ("promote-staging", "staging")):
        run = _run(project, env, job, **token)
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"PASS  {job}" in run.stdout
        # tierup's log section, as the runner saw it
        log = run.stdout + run.stderr
        assert re.search(rf"{job} tierup_promote took \d+ms", log), log
        report = _report(project, job)
        assert report["TIERUP_STATUS"] == "ok"
        event = _ledger(project)[-1]
        assert event["tier"] == tier
        assert report["TIERUP_EVENT_ID"] == event["id"]  # `where` after it keeps it
        assert report["TIERUP_API_TAG"] == tier
        assert report["TIERUP_API_DIGEST"].startswith("sha256:")
        board = project / ".gitlab-ci-local" / "artifacts" / job / "release-board.html"
        assert "tierup release board" in board.read_text()

    # prod's soak gate refuses a fresh digest; the manual plan job passes it with a reason
    refused = _run(project, env, "plan-prod", **token)
    assert refused.returncode != 0
    assert "promotion refused: gate soak" in refused.stdout + refused.stderr
    reason = "hotfix: approved in the change board"
    planned = _run(project, env, "plan-prod", **token, TIERUP_FORCE_REASON=reason)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    # the plan is the job's artifact, and planning wrote nothing
    plan = json.loads(
        (project / ".gitlab-ci-local" / "artifacts" / "plan-prod" / "prod-plan.json").read_text()
    )
    assert (plan["kind"], plan["command"]) == ("tierup-plan", "stamp")
    assert plan["arguments"]["reason"] == reason
    assert _ledger(project)[-1]["tier"] == "staging"
    (stamp,) = [
        s["tag"]
        for s in plan["result"]["plan"]
        if s.get("write") == "registry:PutImage" and s["image"] == "api"
    ]

    # the protected environment's button applies exactly that plan
    stamped = _run(project, env, "stamp-prod", **token)
    assert stamped.returncode == 0, stamped.stdout + stamped.stderr
    assert "plan (the writes a real run makes):" in stamped.stdout + stamped.stderr  # `show`
    event = _ledger(project)[-1]
    assert (event["command"], event["tier"], event["status"]) == ("stamp", "prod", "ok")
    assert event["reason"] == reason
    assert str(event["message"]).startswith("Release ")
    assert event["saved_plan"]["id"] == plan["id"]
    assert _report(project, "stamp-prod")["TIERUP_API_TAG"] == stamp


def test_gitlab_job_without_its_oidc_token_stops_with_one_clear_error(
    sandbox: tuple[Path, dict[str, str]],
) -> None:
    project, env = sandbox
    run = _run(project, env, "promote-dev", AWS_OIDC_TOKEN="")
    assert run.returncode != 0
    log = run.stdout + run.stderr
    errors = [line for line in log.splitlines() if "error:" in line and "origin" not in line]
    assert errors and "error: this job has no OIDC token: AWS_OIDC_TOKEN is empty" in errors[0]
    assert "Invalid length for parameter WebIdentityToken" not in log
    assert not (project / ".tierup" / "ledger.jsonl").exists()  # nothing ran
