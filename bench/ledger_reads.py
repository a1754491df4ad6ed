"""S3 requests per promotion as the ledger's history grows: after 10 events and after 1,000.

moto's server (with the sandbox's emulation) behind a counting proxy on loopback; the ledger
in S3. The history is written through the ledger API (events dated in the past, spread over
the tiers), not by promoting a thousand times; then `tierup promote --tier staging` runs once
at each size and its S3 requests are counted by operation. With the ledger's index the two
counts are the same; without it, every promotion read every event ever written.

    .venv/bin/python bench/ledger_reads.py [--events 10 1000]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fault_suite import clean_environment  # noqa: E402
from tests.support.faults import FaultProxy  # noqa: E402
from tests.support.release_world import T0, ledger_of, new_digests, release_world  # noqa: E402
from tierup.pipeline.sandbox import emulation  # noqa: E402
from tierup.pipeline.sandbox.server import moto_server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, nargs="+", default=[10, 1000], help="history sizes, ascending"
    )
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    emulation.install()
    server = moto_server()
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    clean_environment(endpoint)
    counts: list[int] = []
    try:
        with tempfile.TemporaryDirectory() as tmp, FaultProxy(endpoint) as proxy:
            os.environ["AWS_ENDPOINT_URL"] = proxy.url
            world = release_world(Path(tmp), endpoint)
            ticks = itertools.count()
            # the history goes straight to moto's server: only the promotions are counted
            os.environ["AWS_ENDPOINT_URL"] = endpoint
            past = ledger_of(world, now=lambda: T0 - timedelta(days=60, minutes=-next(ticks)))
            os.environ["AWS_ENDPOINT_URL"] = proxy.url
            tiers = itertools.cycle(["staging", "staging", "dev", "prod"])
            written = 0
            for size in args.events:
                started = time.monotonic()
                for n in range(written, size):
                    past.record(
                        {
                            "command": "deploy",
                            "tier": next(tiers),
                            "status": "ok",
                            "message": f"event {n}",
                            "images": [],
                            "environments": {},
                        }
                    )
                made = time.monotonic() - started
                written = size
                new_digests(world, f"at {size}")
                since = len(proxy.calls)
                r = world.cli("promote", "--tier", "staging")
                if r.exit_code != 0:
                    print(r.output, file=sys.stderr)
                    return 1
                calls = [c for c in proxy.calls[since:] if c.service == "s3"]
                by_op = Counter(c.operation for c in calls)
                counts.append(len(calls))
                ops = ", ".join(f"{op} {n}" for op, n in sorted(by_op.items()))
                print(
                    f"after {size:5d} events (written in {made:.1f} s): "
                    f"{len(calls)} S3 requests per promotion ({ops})",
                    flush=True,
                )
            world.repo.close()
    finally:
        server.stop()
        emulation.uninstall()
    same = len(set(counts)) == 1
    print("the same at every size" if same else "it grows with the history")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
