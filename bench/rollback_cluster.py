"""Roll back a 50-service cluster with `tierup rollback cluster --no-wait` on the sandbox.

Each run rolls back its own environment (a 50-service cluster of a mutable tier) right after a
promotion, so that every run does the same work: read the ledger, plan 50 services, register
50 copies pinned to the digests that ran before, update 50 services, record. The time is the
whole process's wall time (interpreter start included), median of 3; the goal is <= 2 s.

    .venv/bin/python bench/rollback_cluster.py [--runs 3] [--services 50]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tierup.pipeline import config_load  # noqa: E402
from tierup.pipeline.sandbox import seed as seed_mod  # noqa: E402
from tierup.pipeline.sandbox import server  # noqa: E402
from tierup.pipeline.sandbox.control import caller_credentials, sandbox_env  # noqa: E402

REGISTRY = "012345678922"
ACCOUNT = "310000000000"
GOAL_SECONDS = 2.0


def make_config(path: Path, runs: int, services: int) -> None:
    lines = [
        "version: 1",
        f'registry: {{account_id: "{REGISTRY}", region: us-east-1}}',
        "images:",
        "  api: {repository: api}",
        "tiers:",
        "  - {name: dev, tag: dev}",
        "environments:",
    ]
    for run in range(runs):
        lines += [
            f"  bench-{run}:",
            "    tier: dev",
            f'    account_id: "{ACCOUNT}"',
            f"    role_arn: arn:aws:iam::{ACCOUNT}:role/deployer",
            "    region: us-east-1",
            f"    cluster: bench-{run}",
            "    services:",
            *[f"      svc{s:02d}: {{image: api}}" for s in range(services)],
        ]
    path.write_text("\n".join(lines) + "\n")


def tierup(env: dict[str, str], cwd: Path, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "tierup.pipeline", *args, "-f", str(cwd / "envs.yaml"), "--json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    if out.returncode != 0:
        raise SystemExit(f"tierup {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    doc: dict[str, object] = json.loads(out.stdout)
    return doc


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far; None where /proc is absent."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--services", type=int, default=50)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tierup-bench-rollback-"))
    make_config(tmp / "envs.yaml", args.runs, args.services)
    cfg = config_load.load(tmp / "envs.yaml")
    state_dir = tmp / "sandbox"
    server.start_background(0, state_dir)
    state = server.read_state(state_dir)
    assert state is not None
    endpoint = state.endpoint_url
    times: list[float] = []
    cpu: list[float] = []
    server_cpu: list[float] = []
    try:
        seed_mod.seed(cfg, endpoint_url=endpoint, commit="0" * 40, tag_tiers=True)
        key = caller_credentials(endpoint, REGISTRY)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            **sandbox_env(endpoint, key),
            "TIERUP_POLL_INTERVAL": "0",
            "PYTHONPATH": str(ROOT),
        }
        # as installed by pip: bytecode compiled once (PYTHONDONTWRITEBYTECODE would otherwise
        # make every run compile tierup's modules again)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "compileall",
                "-q",
                str(ROOT / "pipeline"),
                str(ROOT / "stages"),
            ],
            check=True,
            capture_output=True,
        )
        # a new image, promoted and rolled out everywhere: each cluster has something to undo
        seed_mod.push_commit_images(cfg, endpoint_url=endpoint, commit="1" * 40, tags=("dev",))
        tierup(env, tmp, "promote", "--tier", "dev", "--commit", "1" * 40)
        for run in range(args.runs):
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            served = process_cpu(state.pid)
            start = time.perf_counter()
            doc = tierup(env, tmp, "rollback", "cluster", "--env", f"bench-{run}", "--no-wait")
            times.append(time.perf_counter() - start)
            now = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(now.ru_utime - used.ru_utime + now.ru_stime - used.ru_stime)
            after = process_cpu(state.pid)
            if served is not None and after is not None:
                server_cpu.append(after - served)
            envs = doc["environments"]
            assert isinstance(envs, dict)
            services = envs[f"bench-{run}"]["services"]
            done = [s for s in services.values() if s["status"] == "deployed" and s.get("pinned")]
            if len(done) != args.services:
                raise SystemExit(f"run {run}: {len(done)} of {args.services} rolled back")
    finally:
        server.stop_background(state_dir)
        shutil.rmtree(tmp, ignore_errors=True)

    median = statistics.median(times)
    print(
        f"rollback cluster of {args.services} services (--no-wait), process wall time, "
        f"median of {args.runs}: {median:.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)}); "
        f"goal <= {GOAL_SECONDS:.1f} s: {'met' if median <= GOAL_SECONDS else 'NOT met'}"
    )
    # the sandbox shares the machine's CPUs: a busy machine stretches the wall time
    sandbox = f", the sandbox server's {statistics.median(server_cpu):.2f} s" if server_cpu else ""
    print(
        f"  CPU time, median: tierup's {statistics.median(cpu):.2f} s{sandbox}; load average "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    return 0 if median <= GOAL_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
