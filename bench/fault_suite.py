"""The fault suite at full size: every writing command under random faults, many times.

A `FaultProxy` in front of moto's server (with the sandbox's emulation) throttles, fails with
500 and drops answers after forwarding, at `--rate` of the calls, seeded. Each scenario
(promote, stamp, rollback, restore, the S3 lock) runs `--runs` times on a fresh world, each run
with its own seed; a run must either converge or exit non-zero with a report per target (no
traceback, no lock left behind), and the same command without faults must then converge. The
test suite runs the same scenarios once each at a small rate (tests/test_faults.py).

    .venv/bin/python bench/fault_suite.py [--runs 10] [--rate 0.2] [--seed 1] [--limit N]
                                          [--max-attempts N] [--scenario promote ...]

Prints, per scenario: runs, how many converged at once, failed with a proper report, and
converged on their re-run; the faults made by kind; the calls per run and the median time.
Exits 1 if any run broke a rule.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.fault_suite import SCENARIOS, Outcome, run_case  # noqa: E402
from tests.support.faults import FaultProxy  # noqa: E402
from tests.support.release_world import release_world  # noqa: E402
from tierup.pipeline.sandbox import emulation  # noqa: E402
from tierup.pipeline.sandbox.server import moto_server  # noqa: E402


def clean_environment(endpoint: str) -> None:
    """As the tests' aws_env: dummy credentials, no profile, no CI identity."""
    for name in list(os.environ):
        if name == "CI" or name.startswith(("GITHUB_", "GITLAB_", "CI_", "AWS_")):
            del os.environ[name]
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing-key",
            "AWS_SECRET_ACCESS_KEY": "testing-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYDANTIC_DISABLE_PLUGINS": "__all__",
        }
    )


def reset(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
    emulation.reset()


def one_run(
    endpoint: str,
    scenario: str,
    *,
    rate: float,
    seed: int,
    limit: int | None,
    max_attempts: int | None,
) -> Outcome:
    reset(endpoint)
    clean_environment(endpoint)
    if max_attempts is not None:
        os.environ["AWS_MAX_ATTEMPTS"] = str(max_attempts)
    with tempfile.TemporaryDirectory() as tmp, FaultProxy(endpoint) as proxy:
        os.environ["AWS_ENDPOINT_URL"] = proxy.url
        world = release_world(Path(tmp), endpoint)
        try:
            return run_case(world, proxy, scenario, rate=rate, seed=seed, limit=limit, first=False)
        finally:
            world.repo.close()


def report(scenario: str, outcomes: list[Outcome]) -> list[str]:
    runs = len(outcomes)
    at_once = sum(o.converged_at_once for o in outcomes)
    reported = sum(o.exit_code != 0 and not o.problems for o in outcomes)
    rerun = sum(o.rerun_exit == 0 and not o.rerun_problems for o in outcomes)
    faults: dict[str, int] = {}
    for o in outcomes:
        for kind, n in o.faults.items():
            faults[kind] = faults.get(kind, 0) + n
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(faults.items())) or "none"
    calls = statistics.median(o.calls for o in outcomes)
    seconds = statistics.median(o.seconds for o in outcomes)
    lines = [
        f"{scenario:9s} {runs:3d} runs: converged at once {at_once:3d}, failed with a report "
        f"{reported:3d}, re-run converged {rerun:3d}/{runs}; faults: {kinds}; "
        f"median {calls:.0f} calls, {seconds:.1f} s"
    ]
    for o in outcomes:
        for p in o.problems:
            lines.append(f"    seed {o.seed}: {p}")
        for p in o.rerun_problems:
            lines.append(f"    seed {o.seed} re-run: {p}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per scenario")
    parser.add_argument("--rate", type=float, default=0.2, help="share of calls given a fault")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first run")
    parser.add_argument("--limit", type=int, default=None, help="at most N faults per run")
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=None,
        help="AWS_MAX_ATTEMPTS of the runs (default: tierup's, 6): fewer lets faults through",
    )
    parser.add_argument(
        "--scenario", action="append", choices=list(SCENARIOS), help="default: all of them"
    )
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    emulation.install()
    server = moto_server()
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    broken = 0
    started = time.monotonic()
    try:
        print(
            f"fault suite: rate {args.rate}, {args.runs} runs per scenario, seeds from {args.seed}"
        )
        for scenario in args.scenario or list(SCENARIOS):
            outcomes = [
                one_run(
                    endpoint,
                    scenario,
                    rate=args.rate,
                    seed=args.seed + n,
                    limit=args.limit,
                    max_attempts=args.max_attempts,
                )
                for n in range(args.runs)
            ]
            broken += sum(not o.ok for o in outcomes)
            for line in report(scenario, outcomes):
                print(line, flush=True)
    finally:
        server.stop()
        emulation.uninstall()
    print(f"{broken} run(s) broke a rule; {time.monotonic() - started:.0f} s in all")
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
