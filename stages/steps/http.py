"""``http``: request a URL and expect a status (and a JSON value or a regex on the body).

The URL and headers are templated with the environment, tier and images
(``https://{environment}.example.com/version?digest={images[api][digest]}``). The check is tried
again every ``interval`` until it passes or ``deadline`` passes (a service may take a moment to
answer on the new image); the step's ``timeout``, when shorter, wins.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from tierup.stages.step import Duration, StepConfig, StepContext, StepResult

if TYPE_CHECKING:
    from tierup.stages.adapters.web import Response

_INDEX_RE = re.compile(r"^([^\[\]]*)((?:\[\d+\])*)$")
_MISSING = object()


class JsonExpect(StepConfig):
    path: str = Field(description="dotted path into the JSON body: status, data.items[0].ok")
    equals: Any = Field(
        default=None, description="the value expected (absent: any value; a string is templated)"
    )


class Expect(StepConfig):
    status: int | list[int] = Field(default=200, description="status code(s) that pass")
    json_: JsonExpect | None = Field(default=None, alias="json")
    regex: str | None = Field(default=None, description="a regular expression the body matches")

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"regex {v!r} does not compile: {e}") from e
        return v


_ENV_LEAD = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*(?::-(.*))?\}")


class HttpConfig(StepConfig):
    url: str = Field(description="the URL (templated)")
    method: Literal["GET", "HEAD", "POST"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict, description="headers (templated)")
    headers_from_env: dict[str, str] = Field(
        default_factory=dict,
        description="header -> the environment variable holding its value (a token: never printed)",
    )
    expect: Expect = Field(default_factory=Expect)
    deadline: Duration = Field(default=60, description="keep trying this long")
    interval: Duration = Field(default=5, description="seconds between tries")
    request_timeout: Duration = Field(default=10, description="seconds one request may take")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        # `${VAR:-default}` first: the default must be a URL (the value is checked when run)
        first = _ENV_LEAD.match(v)
        if first and first[1] is None:
            return v
        if not re.match(r"^https?://", first[1] if first else v):
            raise ValueError(f"url {v!r} must start with http:// or https://")
        return v


def json_value(doc: Any, path: str) -> Any:
    """``a.b[0].c`` (a leading ``$.`` is allowed) in ``doc``; ``_MISSING`` when absent."""
    cur = doc
    for part in path.removeprefix("$.").split("."):
        m = _INDEX_RE.match(part)
        if m is None:
            return _MISSING
        key, indexes = m.group(1), re.findall(r"\[(\d+)\]", m.group(2))
        if key:
            if not isinstance(cur, dict) or key not in cur:
                return _MISSING
            cur = cur[key]
        for i in indexes:
            if not isinstance(cur, list) or int(i) >= len(cur):
                return _MISSING
            cur = cur[int(i)]
    return cur


def check(expect: Expect, response: Response) -> str | None:
    """Why ``response`` does not pass, or None."""
    wanted = expect.status if isinstance(expect.status, list) else [expect.status]
    if response.status not in wanted:
        return f"status {response.status}, expected {' or '.join(map(str, wanted))}"
    if expect.json_ is not None:
        try:
            doc = json.loads(response.body)
        except ValueError:
            return "the body is not JSON"
        value = json_value(doc, expect.json_.path)
        if value is _MISSING:
            return f"the body has no {expect.json_.path}"
        if expect.json_.equals is not None and value != expect.json_.equals:
            return f"{expect.json_.path} is {value!r}, expected {expect.json_.equals!r}"
    if expect.regex is not None and re.search(expect.regex, response.body) is None:
        return f"the body does not match {expect.regex!r}"
    return None


class Http:
    name = "http"
    config = HttpConfig

    def describe(self, config: Any, ctx: StepContext) -> str:
        c: HttpConfig = config
        s = c.expect.status
        status = " or ".join(map(str, s)) if isinstance(s, list) else str(s)
        return f"{c.method} {ctx.render(c.url)}, expect {status} within {c.deadline}s"

    def run(self, config: Any, ctx: StepContext) -> StepResult:
        from tierup.stages.adapters import web  # urllib: imported when a check runs

        c: HttpConfig = config
        url = ctx.render(c.url)
        if not re.match(r"^https?://", url):
            return StepResult.failed(
                f"url {url!r} does not start with http:// or https://",
                f"check the environment variable {c.url} names",
            )
        headers = {k: ctx.render(v) for k, v in c.headers.items()}
        missing = [v for v in c.headers_from_env.values() if not ctx.environ.get(v)]
        if missing:
            return StepResult.failed(
                f"environment variable {', '.join(missing)} is not set",
                "set it (a CI secret) or drop it from headers_from_env",
            )
        headers.update({k: ctx.environ[v] for k, v in c.headers_from_env.items()})
        expect = c.expect
        if expect.json_ is not None and isinstance(expect.json_.equals, str):
            wanted = expect.json_.model_copy(update={"equals": ctx.render(expect.json_.equals)})
            expect = expect.model_copy(update={"json_": wanted})
        start = ctx.clock()
        tries = 0
        while True:
            tries += 1
            left = min(ctx.remaining(float(c.deadline)), c.deadline - (ctx.clock() - start))
            try:
                response = web.request(
                    url,
                    method=c.method,
                    headers=headers,
                    timeout=min(float(c.request_timeout), max(left, 0.1)),
                )
                why = check(expect, response)
            except web.HttpError as e:
                why = str(e)
            if why is None:
                status = response.status
                return StepResult(True, output=f"{c.method} {url}: {status} ({tries} tries)")
            left = min(ctx.remaining(float(c.deadline)), c.deadline - (ctx.clock() - start))
            if left <= 0:
                return StepResult.failed(
                    f"{c.method} {url}: {why} (after {tries} tries)",
                    "check the service's health on the new image; raise deadline if it "
                    "needs longer to answer",
                )
            ctx.sleep(min(float(c.interval), left))


STEP = Http()
