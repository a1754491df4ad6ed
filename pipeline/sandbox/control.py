"""`tierup sandbox up|down`: a local AWS for trying tierup, no AWS account needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tierup.pipeline.config import Config, EcrRegistry
from tierup.pipeline.results import CommandResult
from tierup.stages.errors import InputError

STATE_DIR = ".tierup/sandbox"
SANDBOX_USER = "tierup-sandbox"
SANDBOX_SECRET = "sandbox-secret-not-a-real-key"  # moto checks no signatures
REGION = "us-east-1"


def caller_credentials(endpoint_url: str, account_id: str) -> str:
    """An access key id that moto attributes to ``account_id`` (the registry's account).

    moto gives plain credentials its default account; an IAM user's key in the registry
    account makes the sandbox look like a CI role living next to the registry.
    """
    import boto3

    sts = boto3.client(
        "sts",
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id="sandbox",
        aws_secret_access_key=SANDBOX_SECRET,
    )
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/{SANDBOX_USER}", RoleSessionName="sandbox-setup"
    )["Credentials"]
    iam = boto3.client(
        "iam",
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    try:
        iam.create_user(UserName=SANDBOX_USER)
    except iam.exceptions.EntityAlreadyExistsException:
        keys = iam.list_access_keys(UserName=SANDBOX_USER)["AccessKeyMetadata"]
        if keys:
            return str(keys[0]["AccessKeyId"])
    return str(iam.create_access_key(UserName=SANDBOX_USER)["AccessKey"]["AccessKeyId"])


def sandbox_env(endpoint_url: str, access_key_id: str) -> dict[str, str]:
    """The environment variables that point the aws CLI and tierup at the sandbox, and only
    there (no profile or credentials file is read)."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": access_key_id,
        "AWS_SECRET_ACCESS_KEY": SANDBOX_SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "TIERUP_POLL_INTERVAL": "1",
        # the example envs.yaml's smoke check asks each environment's application here
        "TIERUP_APP_URL": endpoint_url + "/_sandbox/app/{environment}",
    }


def export_line(endpoint_url: str, access_key_id: str) -> str:
    variables = sandbox_env(endpoint_url, access_key_id)
    return "export " + " ".join(f"{name}={value}" for name, value in variables.items())


def _head(repo_path: Path) -> tuple[str, str | None]:
    """HEAD's SHA and its parent's (None for a first commit)."""
    import git

    try:
        head = git.Repo(repo_path, search_parent_directories=True).head.commit
        parent = head.parents[0].hexsha if head.parents else None
        return str(head.hexsha), parent
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError) as e:
        raise InputError(
            f"{repo_path} is not a git repository with a commit",
            hint="the sandbox seeds an image tagged with HEAD's commit: run it from a repository",
        ) from e


def require_moto() -> None:
    """The sandbox is moto's server: without the `sandbox` extra, say what to install."""
    import importlib.util

    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise InputError(
            "the sandbox needs moto's server, which is not installed",
            hint="pip install 'tierup[sandbox]' (or pipx inject tierup 'moto[server]')",
        )


def sandbox_up(config: Config, *, port: int, repo_path: Path) -> CommandResult:
    require_moto()
    from tierup.pipeline.sandbox import seed as seed_mod
    from tierup.pipeline.sandbox import server

    if not isinstance(config.registry, EcrRegistry):
        raise InputError(
            "the sandbox emulates ECR; this envs.yaml uses an OCI registry",
            hint="use an envs.yaml whose registry is ECR (account_id, region)",
        )
    commit, parent = _head(repo_path)
    state_dir = repo_path / STATE_DIR
    state = server.read_state(state_dir)
    if state is None:
        server.start_background(port, state_dir)
        state = server.read_state(state_dir)
    assert state is not None
    endpoint = state.endpoint_url
    # every tier starts on the parent's images; HEAD's images are built but not yet promoted,
    # as they are after a CI build, so `tierup promote --tier dev` has something to do
    seeded = seed_mod.seed(config, endpoint_url=endpoint, commit=parent or commit, tag_tiers=True)
    if parent is not None:
        seed_mod.push_commit_images(config, endpoint_url=endpoint, commit=commit)
    key = caller_credentials(endpoint, config.registry.account_id)
    result = CommandResult(command="sandbox up")
    envs: dict[str, Any] = {
        e.name: {
            "account_id": e.account_id,
            "cluster": e.cluster,
            "services": [s.name for s in e.services],
        }
        for e in seeded.environments
    }
    result.data = {
        "endpoint_url": endpoint,
        "pid": state.pid,
        "commit": commit,
        "repositories": list(seeded.repositories),
        "environments": envs,
        "export": export_line(endpoint, key),
    }
    return result


def sandbox_down(*, repo_path: Path) -> CommandResult:
    from tierup.pipeline.sandbox import server

    stopped = server.stop_background(repo_path / STATE_DIR)
    result = CommandResult(command="sandbox down")
    result.data = {"stopped": stopped}
    if not stopped:
        result.notes.append("no sandbox was running")
    return result
