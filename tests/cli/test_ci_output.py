"""In CI, every command leaves what the job reads: GitHub's step summary, outputs and
annotations; GitLab's dotenv report; a collapsible log section around the command."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.ecs_checks import mark_image
from tests.support.guarded import promote
from tests.support.world import World, make_world

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    """Every tier on the first commit; a second commit built and promoted to dev."""
    w = make_world(tmp_path, aws_env)
    w.push_images(w.commit("second"))
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    return w


def _github(tmp_path: Path) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
        "GITHUB_REPOSITORY": "team/app",
        "GITHUB_RUN_ID": "4242",
    }


def _outputs(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        out[key] = value
    return out


def test_github_summary_outputs_and_a_group_around_the_log(world: World, tmp_path: Path) -> None:
    env = _github(tmp_path)
    result = world.cli("promote", "--tier", "staging", "--json", env=env)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # stdout stays one JSON document
    event = doc["event"]
    digest = world.tag_digest("api", "staging")
    assert digest is not None

    outputs = _outputs(tmp_path / "output.txt")
    assert outputs["status"] == "ok"
    assert outputs["exit-code"] == "0"
    assert outputs["event-id"] == event
    assert outputs["digest-api"] == digest
    assert outputs["tag-api"] == "staging"
    assert outputs["commit-api"] == world.head
    assert json.loads(outputs["images"])["worker"]["digest"] == world.tag_digest(
        "worker", "staging"
    )

    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("### tierup promote --tier staging: ✅ ok\n")
    assert f"ledger event `{event}`" in summary
    assert "[this run](https://github.com/team/app/actions/runs/4242)" in summary
    row = next(line for line in summary.splitlines() if line.startswith("| api |"))
    assert f"`staging` | `{digest[:19]}` | `{world.head[:12]}`" in row
    for env_name in ("staging", "mb-staging"):
        for service in ("api", "worker"):
            assert re.search(rf"\| {env_name} \| {service} \| ✅ completed \| `", summary)

    assert result.stderr.startswith("::group::tierup promote\n")
    assert "::endgroup::" in result.stderr
    assert "::error" not in result.stderr and "::warning" not in result.stderr

    # a second command appends to the same files
    again = world.cli("where", "--tier", "staging", env=env)
    assert again.exit_code == 0, again.output
    summary = (tmp_path / "summary.md").read_text()
    assert "### tierup where --tier staging" in summary
    assert re.search(
        r"\| staging \| staging \| api \| `sha256:[0-9a-f]{12}` \| ✅ in sync", summary
    )


def test_failed_and_rolled_back_targets_are_annotated(world: World, tmp_path: Path) -> None:
    new_api = world.tag_digest("api", "dev")
    assert new_api is not None
    mark_image(world, "api", new_api, "sandbox-fail.mb-staging-cluster")
    env = _github(tmp_path)
    result = world.cli("promote", "--tier", "staging", "--rollback-on-failure", env=env)
    assert result.exit_code == 3, result.output
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("::error ")]
    warnings = [line for line in lines if line.startswith("::warning ")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(
        "::error title=tierup promote --tier staging%3A mb-staging/api::rolled back by ECS"
    )
    assert any(
        w.startswith("::warning title=tierup promote --tier staging%3A mb-staging/api::rolled back")
        for w in warnings
    ), result.stderr
    outputs = _outputs(tmp_path / "output.txt")
    # the rollback moved the tier's tag back: the output says where it is now
    assert outputs["digest-api"] == world.tag_digest("api", "staging") != new_api
    assert outputs["status"] == "partial"
    assert outputs["exit-code"] == "3"
    summary = (tmp_path / "summary.md").read_text()
    assert "### tierup promote --tier staging: ⚠️ partial" in summary
    assert "| mb-staging | api | ❌ rolled_back_by_ecs |" in summary


def test_an_error_before_any_result_is_one_annotation_and_a_summary(
    world: World, tmp_path: Path
) -> None:
    env = _github(tmp_path)
    result = world.cli("promote", "--tier", "nope", env=env)
    assert result.exit_code == 2
    annotations = [line for line in result.stderr.splitlines() if line.startswith("::")]
    assert annotations[0] == "::group::tierup promote"
    assert annotations[1] == "::endgroup::"
    assert annotations[2].startswith("::error title=tierup promote::")
    assert "nope" in annotations[2]
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("### tierup promote: ❌ failed (exit 2)")
    assert _outputs(tmp_path / "output.txt")["status"] == "failed"


def _dotenv(path: Path) -> dict[str, Any]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_gitlab_dotenv_report_and_a_collapsible_section(world: World, tmp_path: Path) -> None:
    report = tmp_path / "deploy.env"
    env = {"GITLAB_CI": "true", "TIERUP_DOTENV": str(report), "CI_JOB_URL": "https://gl/j/1"}
    result = world.cli("promote", "--tier", "staging", env=env)
    assert result.exit_code == 0, result.output
    values = _dotenv(report)
    assert values["TIERUP_STATUS"] == "ok"
    assert values["TIERUP_API_DIGEST"] == world.tag_digest("api", "staging")
    assert values["TIERUP_WORKER_TAG"] == "staging"
    assert values["TIERUP_API_COMMIT"] == world.head
    event = values["TIERUP_EVENT_ID"]
    assert event and event in result.stdout
    assert re.match(
        r"\x1b\[0Ksection_start:\d+:tierup_promote\[collapsed=true\]\r\x1b\[0Ktierup promote\n",
        result.stderr,
    )
    assert re.search(r"\x1b\[0Ksection_end:\d+:tierup_promote\r\x1b\[0K\n", result.stderr)
    # the result is printed after the section, so it stays in view when collapsed
    assert "status: ok" in result.stdout
    assert "::" not in result.stderr

    # a second command in the same job updates the same report
    result = world.cli("where", "--tier", "staging", env=env)
    assert result.exit_code == 0
    values = _dotenv(report)
    assert values["TIERUP_EVENT_ID"] == event  # `where` records nothing: the event stays
    assert values["TIERUP_API_DIGEST"] == world.tag_digest("api", "staging")


def test_nothing_is_written_outside_ci(world: World, tmp_path: Path) -> None:
    result = world.cli("promote", "--tier", "staging")
    assert result.exit_code == 0
    assert "::" not in result.stderr and "section_start" not in result.stderr
    assert not (world.root / "tierup.env").exists()
