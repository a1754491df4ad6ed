"""Role sessions that end while tierup waits: the role is re-assumed and the wait goes on.

moto never expires what assume_role gives, so a proxy on loopback in front of it answers
``ExpiredTokenException`` for one session's access key once that session is N seconds old, as
AWS does when a one-hour (role-chained) session ends during a long rollout.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.aws_proxy import Answer, AwsProxy, Seen, aws_proxy, json_error
from tests.support.world import make_world
from tierup.pipeline.sandbox import emulation

pytestmark = pytest.mark.usefixtures("aws_env")

DEV_ROLE = "arn:aws:iam::111111111111:role/deployer"
LIFETIME = 1.0  # seconds the first session of the dev role lives


class ExpiringSession:
    """The first session issued for ``role`` expires ``lifetime`` seconds after it was issued."""

    def __init__(self, role: str, lifetime: float) -> None:
        self.role = role
        self.lifetime = lifetime
        self.doomed: dict[str, float] = {}
        self.refused: list[str] = []
        self.assumed = 0
        self._lock = threading.Lock()

    def after(self, seen: Seen, status: int, body: bytes) -> None:
        if seen.operation != "AssumeRole" or status != 200:
            return
        form = urllib.parse.parse_qs(seen.body.decode())
        if form.get("RoleArn", [""])[0] != self.role:
            return
        key = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", body)
        assert key is not None
        with self._lock:
            self.assumed += 1
            if self.assumed == 1:
                self.doomed[key.group(1).decode()] = time.monotonic() + self.lifetime

    def rule(self, seen: Seen) -> Answer | None:
        with self._lock:
            ends = self.doomed.get(seen.access_key or "")
            if ends is None or time.monotonic() < ends:
                return None
            self.refused.append(seen.operation)
        return json_error(
            "ExpiredTokenException", "The security token included in the request is expired"
        )


def _proxied(monkeypatch: pytest.MonkeyPatch, proxy: AwsProxy, session: ExpiringSession) -> None:
    proxy.rules.append(session.rule)
    proxy.after.append(session.after)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)


def test_a_wait_across_the_end_of_a_role_session_completes(
    tmp_path: Path, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(tmp_path, aws_env)
    world.push_images(world.commit())
    # a rollout that takes longer than the session lives: 20 polls, 0.15 s apart
    emulation.install().polls_to_complete = 20
    session = ExpiringSession(DEV_ROLE, LIFETIME)
    with aws_proxy(aws_env) as proxy:
        _proxied(monkeypatch, proxy, session)
        code, doc = world.cli_json("promote", "--tier", "dev", env={"TIERUP_POLL_INTERVAL": "0.15"})
    assert session.refused, "the session never expired during the run: the test proves nothing"
    assert code == 0, doc
    assert doc["status"] == "ok"
    services = doc["environments"]["dev"]["services"]
    assert {s["status"] for s in services.values()} == {"completed"}
    assert session.assumed == 2  # re-assumed once, not on every request
    forms = [urllib.parse.parse_qs(s.body.decode()) for s in proxy.calls("AssumeRole")]
    names = [f["RoleSessionName"][0] for f in forms if f["RoleArn"][0] == DEV_ROLE]
    assert len(names) == 2 and len(set(names)) == 1  # the same session name both times


def test_a_session_still_refused_after_reassuming_is_an_access_error(
    tmp_path: Path, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(tmp_path, aws_env)
    world.push_images(world.commit())
    emulation.install().polls_to_complete = 20

    def always_expired(seen: Seen) -> Answer | None:
        if seen.operation == "DescribeServices":
            return json_error("ExpiredTokenException", "The security token is expired")
        return None

    with aws_proxy(aws_env) as proxy:
        proxy.rules.append(always_expired)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, doc = world.cli_json("promote", "--tier", "dev")
    assert code != 0
    assert "ExpiredTokenException" in str(doc)
    # one re-assumption, then the refusal stands: no loop
    assert len(proxy.calls("AssumeRole")) <= 4


def test_a_session_close_to_its_end_is_renewed_before_it_expires(
    tmp_path: Path, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS says when a session ends: 12 minutes ahead is inside botocore's refresh window, so
    the next request assumes the role again first, without waiting for a refusal."""
    world = make_world(tmp_path, aws_env)
    world.push_images(world.commit())
    soon = (datetime.now(UTC) + timedelta(minutes=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    shortened: list[str] = []

    def short_first_session(seen: Seen, status: int, body: bytes) -> bytes | None:
        form = urllib.parse.parse_qs(seen.body.decode()) if seen.operation == "AssumeRole" else {}
        if status != 200 or form.get("RoleArn", [""])[0] != DEV_ROLE or shortened:
            return None
        shortened.append(soon)
        return re.sub(
            rb"<Expiration>[^<]+</Expiration>", f"<Expiration>{soon}</Expiration>".encode(), body
        )

    with aws_proxy(aws_env) as proxy:
        proxy.rewrites.append(short_first_session)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, doc = world.cli_json("promote", "--tier", "dev")
        forms = [urllib.parse.parse_qs(s.body.decode()) for s in proxy.calls("AssumeRole")]
    assert code == 0, doc
    assert shortened
    # renewed once, early: nothing here ever answers ExpiredToken
    assert len([f for f in forms if f["RoleArn"][0] == DEV_ROLE]) == 2
