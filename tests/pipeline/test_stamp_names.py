"""A stamp never moves and is never doubled: through config, or by stamping a digest again."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.guarded import promote
from tests.support.release_world import STAMP_RE, ledger_of, new_digests, release_world, tags_of
from tests.support.world import World
from tierup.pipeline.cli import app
from tierup.pipeline.promote import Source
from tierup.pipeline.release import stamp

T = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
TIERS = """\
version: 1
registry: {{account_id: "012345678922", region: us-east-1}}
images:
  api: {{repository: api}}
tiers:
  - {{name: dev, tag: dev}}
  - {{name: staging, tag: {staging}, from: dev}}
  - {{name: prod, tag: "prod-{{timestamp}}", from: staging}}
"""


@pytest.mark.parametrize(
    ("staging", "why"),
    [
        ('"prod-{timestamp!s}"', "{timestamp!s}"),
        ('"prod-{timestamp:>16}"', "{timestamp:>16}"),
        ('"prod-{commit!r}"', "{commit!r}"),
        ('"prod-20261205T165258Z"', "could name a stamp of tier 'prod'"),
        ('"prod-{timestamp}"', "could name a stamp of tier 'prod'"),
    ],
)
def test_validate_refuses_a_tier_tag_that_could_render_another_tiers_stamp(
    tmp_path: Path, staging: str, why: str
) -> None:
    path = tmp_path / "envs.yaml"
    path.write_text(TIERS.format(staging=staging))
    r = CliRunner().invoke(app, ["validate", "-f", str(path)])
    assert r.exit_code == 2, r.output
    (line,) = [x for x in r.output.splitlines() if x.startswith("error:")]
    assert f"{path}:7: tiers[1].tag" in line or f"{path}:8: tiers[2].tag" in line, line
    assert why in line, line


def test_a_plain_tag_that_only_looks_like_a_word_of_a_stamp_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "envs.yaml"
    path.write_text(TIERS.format(staging="prod-candidate"))
    assert CliRunner().invoke(app, ["validate", "-f", str(path)]).exit_code == 0


def _stamps(world: World) -> dict[str, str]:
    return {t: d for t, d in tags_of(world, "api").items() if re.match(STAMP_RE, t)}


def test_stamping_a_digest_that_has_an_older_stamp_is_unchanged(
    tmp_path: Path, aws_env: str
) -> None:
    world = release_world(tmp_path, aws_env)
    first = new_digests(world, "one")
    assert promote(world.config, world.clients(), tier="staging").exit_code == 0
    ledger = ledger_of(world)
    assert stamp(world.config, world.clients(), ledger, tier="prod", now=lambda: T).exit_code == 0
    new_digests(world, "two")
    assert promote(world.config, world.clients(), tier="staging").exit_code == 0
    later = T + timedelta(hours=1)
    assert (
        stamp(world.config, world.clients(), ledger, tier="prod", now=lambda: later).exit_code == 0
    )
    assert len(_stamps(world)) == 2
    # the first digest again, after another digest got a newer stamp
    again = stamp(
        world.config,
        world.clients(),
        ledger,
        tier="prod",
        source=Source("digest", first["api"]),
        images=["api"],
        now=lambda: T + timedelta(hours=2),
    )
    assert again.exit_code == 0, again.to_json()
    (api,) = again.images
    assert api.status == "unchanged" and api.tag == "prod-20261126T103000Z"
    assert _stamps(world) == {
        "prod-20261126T103000Z": first["api"],
        "prod-20261126T113000Z": world.tag_digest("api", "staging"),
    }
