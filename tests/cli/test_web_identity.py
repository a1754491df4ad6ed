"""An empty or missing web identity token (what an empty CI OIDC token leaves) is one `error:`
line naming the token file and what to check in CI, not botocore's bare parameter validation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tierup(
    cwd: Path, endpoint: str, token_file: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    drop = ("AWS_", "GITHUB_", "GITLAB_", "CI_", "TIERUP_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "CI"}
    env |= {
        "PYTHONPATH": str(ROOT),
        "HOME": str(cwd),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ROLE_ARN": "arn:aws:iam::012345678922:role/tierup-ci",
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
    }
    return subprocess.run(
        [sys.executable, "-m", "tierup.pipeline.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(("token", "problem"), [("", "is empty"), (None, "does not exist")])
@pytest.mark.parametrize("command", [["where"], ["promote", "--tier", "dev"]], ids=" ".join)
def test_an_empty_ci_token_names_the_file_and_the_ci_setting(
    tmp_path: Path, moto_server: str, token: str | None, problem: str, command: list[str]
) -> None:
    (tmp_path / "envs.yaml").write_text((ROOT / "envs.yaml").read_text())
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=tmp_path, check=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=A",
            "-c",
            "user.email=a@example.invalid",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "one",
        ],
        cwd=tmp_path,
        check=True,
    )
    token_file = tmp_path / "oidc-token"
    if token is not None:
        token_file.write_text(token)
    result = _tierup(tmp_path, moto_server, token_file, *command)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    assert (
        f"the web identity token file {token_file} (AWS_WEB_IDENTITY_TOKEN_FILE) {problem}" in line
    )
    assert "id-token: write" in line and "id_tokens:" in line
    assert "WebIdentityToken" not in line and "Traceback" not in line
