"""`tierup where --html FILE`: one self-contained page, opened in headless Chromium."""

from __future__ import annotations

import html.parser
import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.ecs_checks import mark_image
from tests.support.guarded import promote
from tests.support.world import World, make_world
from tierup.pipeline.board import age

pytestmark = pytest.mark.usefixtures("aws_env")

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    """dev and staging on a second commit; prod left behind; an image marked to drift."""
    w = make_world(tmp_path, aws_env)
    w.push_images(w.commit("second"))
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    code, _ = w.cli_json("promote", "--tier", "staging")
    assert code == 0
    return w


class _Page(html.parser.HTMLParser):
    """The page's visible text, and every URL it would load."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.loads: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "title"):
            self._skip += 1
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.loads.append(value)
        if tag == "link":
            self.loads.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.text.append(data.strip())


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("TIERUP_REQUIRE_TOOLS"):
            pytest.fail("chromium is missing: run scripts/setup.sh")
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh installs it)")
    return found


def _open(
    chromium: str, page: Path, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_board_in_headless_chromium(world: World, tmp_path: Path) -> None:
    chromium = _chromium()
    # the board must show drift: prod's environment names a tag prod does not have yet
    mark_image(world, "api", world.tag_digest("api", "staging") or "", "prod-20261126T103000Z")
    board = tmp_path / "out" / "board.html"
    result = world.cli("where", "--html", str(board), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["html"] == str(board)
    source = board.read_text()

    page = _Page()
    page.feed(source)
    assert page.loads == []  # self-contained: no script, stylesheet, font or image to fetch
    assert "<script" not in source
    assert not re.search(r"url\(|@import|https?://", source)

    shot = Path(os.environ.get("TIERUP_BOARD_SCREENSHOT") or tmp_path / "board.png")
    shown = _open(chromium, board, tmp_path, "--window-size=1400,1100", f"--screenshot={shot}")
    assert shot.exists() and shot.stat().st_size > 10_000, shown.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    dom = _open(chromium, board, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr
    rendered = _Page()
    rendered.feed(dom.stdout)
    text = " ".join(rendered.text)

    assert "tierup release board" in text
    # tiers as columns, images as rows
    header = re.search(r"image dev staging prod", text)
    assert header, text
    staging_api = world.tag_digest("api", "staging")
    assert staging_api is not None
    assert f"staging {staging_api[:19]} commit {world.head[:12]}" in text
    assert re.search(rf"staging {staging_api[:19]} commit \w{{12}} (\d+m )?\d+s old", text)
    assert text.startswith("tierup release board generated ")
    # environments under their tier: in sync, rollout completed, drift highlighted
    assert "mb-staging 444444444444 · mb-staging-cluster" in text
    assert f"api in sync rollout completed 2/2 running {staging_api[:19]}" in text
    assert re.search(r"prod 555555555555 · prod-cluster api drift rollout completed", text)
    assert "not the tier's tag prod-20261126T103000Z" in text
    assert len(re.findall('class="env drift"', dom.stdout)) == 1
    assert "worker dev sha256:" in text and text.count("no tag yet") == 1
    # the latest ledger events
    assert re.search(r"latest ledger events .* promote staging ok Test User api sha256:", text)


def test_age_of_an_image() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert age((now - timedelta(seconds=42)).isoformat(), now) == "42s"
    assert age((now - timedelta(minutes=5, seconds=3)).isoformat(), now) == "5m 3s"
    assert age((now - timedelta(hours=2, minutes=5)).isoformat(), now) == "2h 5m"
    assert age((now - timedelta(days=3, hours=4)).isoformat(), now) == "3d 4h"
    assert age(None, now) == "-"
