"""The `http` and `notify` steps alone, against a loopback HTTP server, on a fake clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.loopback import Loopback
from tierup.stages.step import ImageInfo, StepContext
from tierup.stages.steps import http, notify

DIGEST = "sha256:" + "ab" * 32


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def time() -> Iterator[FakeTime]:
    yield FakeTime()


def _ctx(time: FakeTime, **kw: Any) -> StepContext:
    return StepContext(
        environment="staging",
        tier="staging",
        account_id="333333333333",
        region="us-east-1",
        cluster="api",
        services=("api",),
        images={"api": ImageInfo("api", "api", "staging", DIGEST, "c" * 40)},
        client=lambda _s: None,
        sleep=time.sleep,
        clock=time.clock,
        **kw,
    )


def test_http_templates_the_url_and_the_expected_value(loopback: Loopback, time: FakeTime) -> None:
    loopback.answers["/staging/version"] = (200, json.dumps({"build": {"digest": DIGEST}}))
    config = http.HttpConfig.model_validate(
        {
            "url": loopback.url("/{environment}/version"),
            "expect": {"json": {"path": "build.digest", "equals": "{images[api][digest]}"}},
        }
    )
    result = http.STEP.run(config, _ctx(time))
    assert result.ok, result.error
    assert loopback.gets() == ["/staging/version"]
    loopback.answers["/staging/version"] = (200, '{"build": {"digest": "sha256:00"}}')
    config = config.model_copy(update={"deadline": 20, "interval": 5})
    result = http.STEP.run(config, _ctx(time))
    assert not result.ok
    assert f"build.digest is 'sha256:00', expected '{DIGEST}'" in str(result.error)
    assert "after 5 tries" in str(result.error) and time.slept == [5, 5, 5, 5]


def test_http_status_list_regex_and_a_server_that_does_not_answer(
    loopback: Loopback, time: FakeTime
) -> None:
    loopback.answers["/ping"] = (201, "pong v2")
    ok = http.HttpConfig.model_validate(
        {"url": loopback.url("/ping"), "expect": {"status": [200, 201], "regex": r"v\d"}}
    )
    assert http.STEP.run(ok, _ctx(time)).ok
    bad = ok.model_copy(
        update={"expect": http.Expect.model_validate({"status": 201, "regex": "v3"})}
    )
    result = http.STEP.run(bad.model_copy(update={"deadline": 0}), _ctx(time))
    assert not result.ok and "does not match 'v3'" in str(result.error)
    closed = http.HttpConfig.model_validate({"url": "http://127.0.0.1:9/", "deadline": 0})
    result = http.STEP.run(closed, _ctx(time))
    assert not result.ok and "no answer" in str(result.error)


def test_http_stops_at_the_steps_timeout(loopback: Loopback, time: FakeTime) -> None:
    loopback.answers["/slow"] = (503, "")
    config = http.HttpConfig.model_validate(
        {"url": loopback.url("/slow"), "deadline": 600, "interval": 10}
    )
    result = http.STEP.run(config, _ctx(time, deadline=30.0))
    assert not result.ok and sum(time.slept) == 30


def test_notify_posts_the_summary_and_never_shows_the_url(
    loopback: Loopback, time: FakeTime
) -> None:
    hook = loopback.url("/secret-hook-path")
    summary = {
        "command": "promote",
        "tier": "staging",
        "status": "partial",
        "event": "20261126T103000.000000Z-1a2b3c4d",
        "images": {"api": {"tag": "staging", "digest": DIGEST, "commit": "c" * 40}},
        "environments": {
            "staging": {"status": "ok", "steps": []},
            "mb-staging": {"status": "failed", "steps": [{"as": "smoke", "status": "failed"}]},
        },
    }
    config = notify.NotifyConfig.model_validate({"url_env": "HOOK", "text": "release of {tier}"})
    result = notify.STEP.run(config, _ctx(time, environ={"HOOK": hook}, summary=lambda: summary))
    assert result.ok and hook not in result.output
    (posted,) = loopback.posts("/secret-hook-path")
    assert posted["tier"] == "staging" and posted["event"] == summary["event"]
    lines = posted["text"].splitlines()
    assert lines[0] == "release of staging"
    assert lines[1] == "tierup promote --tier staging: partial"
    assert "• mb-staging: failed (failed: smoke)" in lines
    loopback.answers["/secret-hook-path"] = (404, "")
    result = notify.STEP.run(config, _ctx(time, environ={"HOOK": hook}, summary=lambda: summary))
    assert not result.ok and hook not in str(result.error) and "answered 404" in str(result.error)
    result = notify.STEP.run(
        config, _ctx(time, environ={"HOOK": "http://127.0.0.1:9/x"}, summary=lambda: summary)
    )
    assert not result.ok and "127.0.0.1:9" not in str(result.error)


def test_http_takes_a_header_from_an_environment_variable(
    loopback: Loopback, time: FakeTime
) -> None:
    config = http.HttpConfig.model_validate(
        {"url": loopback.url("/private"), "headers_from_env": {"Authorization": "SMOKE_TOKEN"}}
    )
    result = http.STEP.run(config, _ctx(time, environ={"SMOKE_TOKEN": "Bearer s3cr3t"}))
    assert result.ok and "s3cr3t" not in result.output
    assert loopback.headers[-1]["Authorization"] == "Bearer s3cr3t"
    result = http.STEP.run(config, _ctx(time))
    assert not result.ok and "SMOKE_TOKEN is not set" in str(result.error)


def test_a_template_takes_an_environment_variable_or_its_default(
    loopback: Loopback, time: FakeTime
) -> None:
    from tierup.stages.step import StepError

    template = "${APP_URL:-https://{environment}.example.com}/version"
    assert _ctx(time).render(template) == "https://staging.example.com/version"
    base = loopback.url("/apps/{environment}")
    assert _ctx(time, environ={"APP_URL": ""}).render(template) == (
        "https://staging.example.com/version"
    )
    # the variable's value is a template too; `${environment}` stays a dollar and a variable
    ctx = _ctx(time, environ={"APP_URL": base})
    assert ctx.render(template) == loopback.url("/apps/staging/version")
    assert ctx.render("${environment}") == "$staging"
    with pytest.raises(StepError, match="APP_URL, which is not set"):
        _ctx(time).render("${APP_URL}/version")
    loopback.answers["/apps/staging/version"] = (200, '{"status": "ok"}')
    config = http.HttpConfig.model_validate(
        {"url": template, "expect": {"json": {"path": "status", "equals": "ok"}}}
    )
    assert http.STEP.run(config, ctx).ok
    assert loopback.gets() == ["/apps/staging/version"]
    # the default must be a URL; a value that is not one fails the step, not the config
    with pytest.raises(ValueError, match="must start with http"):
        http.HttpConfig.model_validate({"url": "${APP_URL:-ftp://x}/version"})
    bare = http.HttpConfig.model_validate({"url": "${APP_URL}/version", "deadline": 0})
    failed = http.STEP.run(bare, _ctx(time, environ={"APP_URL": "ftp://x"}))
    assert not failed.ok and "does not start with http" in str(failed.error)
