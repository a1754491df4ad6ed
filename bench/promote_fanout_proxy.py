"""The fan-out promotion behind a slow network: every request to AWS takes 50 ms longer.

`run_behind_proxy` puts a `DelayProxy` in front of the sandbox and times, whole process, the
`tierup promote --no-wait` of the bench against the aws CLI script of the bench, both through
the proxy. Called by `promote_fanout.py` in the same run as its other figures.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

from bench.delay_proxy import DelayProxy

DELAY = 0.05
TARGET_SECONDS = 2.0
TARGET_SPEEDUP = 10.0


@dataclass
class ProxyFigures:
    delay: float
    tierup: list[float] = field(default_factory=list)
    aws: list[float] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)  # per tool, the last run's

    @property
    def tierup_median(self) -> float:
        return statistics.median(self.tierup)

    @property
    def aws_median(self) -> float | None:
        return statistics.median(self.aws) if self.aws else None

    @property
    def speedup(self) -> float | None:
        aws = self.aws_median
        return aws / self.tierup_median if aws is not None else None

    def lines(self) -> list[str]:
        ms = f"{self.delay * 1000:.0f} ms"
        out = [f"behind a proxy adding {ms} to every request, median of {len(self.tierup)}:"]
        out.append(
            f"  {'tierup --no-wait':18s} {self.tierup_median:7.2f} s   "
            f"(runs: {', '.join(f'{x:.2f}' for x in self.tierup)}; "
            f"{self.requests.get('tierup', 0)} requests)   target <= {TARGET_SECONDS:.0f} s: "
            f"{'met' if self.tierup_median <= TARGET_SECONDS else 'MISSED'}"
        )
        aws = self.aws_median
        if aws is not None:
            out.append(
                f"  {'aws CLI script':18s} {aws:7.2f} s   "
                f"(runs: {', '.join(f'{x:.2f}' for x in self.aws)}; "
                f"{self.requests.get('aws', 0)} requests)"
            )
            speedup = aws / self.tierup_median
            out.append(
                f"  speed-up (aws CLI script / tierup --no-wait): {speedup:.1f}x   "
                f"target >= {TARGET_SPEEDUP:.0f}x: "
                f"{'met' if speedup >= TARGET_SPEEDUP else 'MISSED'}"
            )
        return out


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def settle(endpoint: str, env: dict[str, str], targets: list[tuple[str, str, list[str]]]) -> None:
    """Let every rollout the last run started finish, as time would on AWS (not timed).

    The sandbox advances a rollout when it is described; `--no-wait` and the aws CLI script
    never describe, so without this each run would leave the next one more deployments and
    tasks than ECS would have. ``targets``: (role ARN, cluster, services) per environment.
    """
    import boto3

    base = {
        "endpoint_url": endpoint,
        "region_name": env.get("AWS_DEFAULT_REGION", "us-east-1"),
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }
    sts = boto3.client("sts", **base)
    for role_arn, cluster, services in targets:
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="bench-settle")["Credentials"]
        ecs = boto3.client(
            "ecs",
            **{
                **base,
                "aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"],
            },
        )
        for _ in range(20):
            busy = False
            for i in range(0, len(services), 10):
                resp = ecs.describe_services(cluster=cluster, services=services[i : i + 10])
                busy = busy or any(len(s["deployments"]) > 1 for s in resp["services"])
            if not busy:
                break


def run_behind_proxy(
    *,
    endpoint: str,
    env: dict[str, str],
    prepare: Callable[[], None],
    tierup_no_wait: Callable[[dict[str, str]], None],
    aws_script: Callable[[str, dict[str, str]], None] | None,
    runs: int = 3,
    delay: float = DELAY,
    targets: list[tuple[str, str, list[str]]] | None = None,
) -> ProxyFigures:
    """Time both tools through a delay proxy in front of ``endpoint``.

    ``prepare()`` gives dev new images before each timed run (straight to the sandbox, not
    timed); ``tierup_no_wait(env)`` runs the promotion as a process with ``env``, raising if it
    did not do the work; ``aws_script(endpoint, env)`` does the same work with the aws CLI
    (None to skip it). Both get the proxy's URL as their endpoint. ``targets`` (role ARN,
    cluster, services of each environment of the tier) are settled before each timed run.
    """

    def ready() -> None:
        if targets:
            settle(endpoint, env, targets)
        prepare()

    upstream = urlparse(endpoint)
    assert upstream.hostname is not None and upstream.port is not None
    figures = ProxyFigures(delay=delay)
    with DelayProxy(upstream.hostname, upstream.port, delay=delay) as proxy:
        slow_env = {**env, "AWS_ENDPOINT_URL": proxy.url}
        for _ in range(runs):
            ready()
            before = proxy.requests
            figures.tierup.append(timed(lambda: tierup_no_wait(slow_env)))
            figures.requests["tierup"] = proxy.requests - before
            if aws_script is not None:
                ready()
                before = proxy.requests
                figures.aws.append(timed(lambda: aws_script(proxy.url, slow_env)))
                figures.requests["aws"] = proxy.requests - before
    return figures
