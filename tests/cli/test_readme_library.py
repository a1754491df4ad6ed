"""The README's "As a library" examples, run as written against the sandbox seeded from the
repository's own envs.yaml."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import git
import pytest

from tests.support.world import REGISTRY, assumed_client
from tierup.pipeline import config_load
from tierup.pipeline.sandbox import seed as seed_mod
from tierup.pipeline.sandbox.control import caller_credentials

ROOT = Path(__file__).resolve().parents[2]


def library_examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## As a library", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def staging_digest(endpoint: str) -> str:
    ecr = assumed_client(endpoint, "ecr", REGISTRY)
    image = ecr.batch_get_image(repositoryName="api", imageIds=[{"imageTag": "staging"}])
    return str(image["images"][0]["imageId"]["imageDigest"])


def test_the_readme_library_examples_run_as_written(
    tmp_path: Path, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = library_examples()
    assert len(examples) == 2
    repo = git.Repo.init(tmp_path, initial_branch="main")
    shutil.copy(ROOT / "envs.yaml", tmp_path / "envs.yaml")
    repo.index.add(["envs.yaml"])
    first = repo.index.commit("initial", author=git.Actor("A", "a@example.invalid")).hexsha
    cfg = config_load.load(tmp_path / "envs.yaml")
    seed_mod.seed(cfg, endpoint_url=aws_env, commit=first, tag_tiers=True)
    sha = repo.index.commit("second", author=git.Actor("A", "a@example.invalid")).hexsha
    pushed = dict(seed_mod.push_commit_images(cfg, endpoint_url=aws_env, commit=sha))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", caller_credentials(aws_env, REGISTRY))
    monkeypatch.setenv("TIERUP_POLL_INTERVAL", "0")
    monkeypatch.chdir(tmp_path)

    guarded: dict[str, object] = {"sha": sha}
    exec(examples[0], guarded)

    result = guarded["result"]
    assert getattr(result, "status", None) == "ok", getattr(result, "to_json", dict)()
    assert staging_digest(aws_env) == pushed["api"]
    ledger = (tmp_path / ".tierup" / "ledger.jsonl").read_text()
    events = [json.loads(line) for line in ledger.splitlines()]
    # the write-ahead event opened before the first write, then the one that closes it
    assert [(e["command"], e["status"]) for e in events] == [("promote", "open"), ("promote", "ok")]
    assert events[-1]["tier"] == "staging"

    composed: dict[str, object] = {}
    exec(examples[1], composed)

    states = composed["states"]
    assert isinstance(states, dict) and list(states) == ["api"]
    assert states["api"].state == "completed"
    dev = assumed_client(aws_env, "ecr", REGISTRY).batch_get_image(
        repositoryName="api", imageIds=[{"imageTag": "dev"}]
    )["images"][0]["imageId"]["imageDigest"]
    assert staging_digest(aws_env) == dev != pushed["api"]
