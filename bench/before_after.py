"""This checkout against an earlier one, in one sitting: the two benches of each, alternately.

The machine's load changes from minute to minute, so figures taken apart compare badly: this
runs `bench/rollback_cluster.py` and `bench/promote_fanout.py --skip-aws --skip-proxy` of each
checkout in turn (before, after, before, after, ...) with the same interpreter, and prints each
figure's median over the rounds with the load average seen at each run.

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/before_after.py --before /tmp/before [--rounds 3] [--services 50]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FIGURES = {
    "rollback cluster --no-wait, wall (s)": ("rollback", r"median of \d+: ([\d.]+) s"),
    "rollback cluster, tierup CPU (s)": ("rollback", r"tierup's ([\d.]+) s"),
    "promote --no-wait, wall (s)": ("promote", r"tierup --no-wait\s+([\d.]+) s"),
    "promote with wait, wall (s)": ("promote", r"tierup \(wait\)\s+([\d.]+) s"),
    "tierup --help, wall (s)": ("promote", r"tierup --help\s+([\d.]+) s"),
}


def run(checkout: Path, bench: str, runs: int, services: int) -> str:
    if bench == "rollback":
        args = ["bench/rollback_cluster.py", "--runs", str(runs), "--services", str(services)]
    else:
        args = ["bench/promote_fanout.py", "--runs", str(runs), "--skip-aws", "--skip-proxy"]
    out = subprocess.run(
        [sys.executable, *args],
        cwd=checkout,
        env={**os.environ, "PYTHONPATH": str(checkout)},
        capture_output=True,
        text=True,
    )
    if out.returncode not in (0, 1):  # rollback_cluster exits 1 when its goal is not met
        raise SystemExit(f"{checkout}: {' '.join(args)} failed: {out.stderr[-2000:]}")
    return out.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the earlier checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="runs per bench and round")
    parser.add_argument("--services", type=int, default=50)
    args = parser.parse_args()
    sides = {"before": args.before.resolve(), "after": ROOT}
    found: dict[str, dict[str, list[float]]] = {s: {f: [] for f in FIGURES} for s in sides}
    loads: dict[str, list[float]] = {s: [] for s in sides}
    for n in range(args.rounds):
        for side, checkout in sides.items():
            for bench in ("rollback", "promote"):
                loads[side].append(os.getloadavg()[0])
                text = run(checkout, bench, args.runs, args.services)
                for figure, (which, pattern) in FIGURES.items():
                    m = re.search(pattern, text) if which == bench else None
                    if m:
                        found[side][figure].append(float(m.group(1)))
            print(f"round {n + 1}, {side}: load {loads[side][-1]:.2f}", file=sys.stderr)
    print(f"before: {sides['before']}\nafter:  {sides['after']}")
    print(f"{'figure (median of the rounds)':40s} {'before':>8s} {'after':>8s}")
    for figure in FIGURES:
        b, a = found["before"][figure], found["after"][figure]
        if a and b:
            print(f"{figure:40s} {statistics.median(b):8.2f} {statistics.median(a):8.2f}")
    print(
        f"{'load average (1 min), median':40s} {statistics.median(loads['before']):8.2f} "
        f"{statistics.median(loads['after']):8.2f}  on {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
