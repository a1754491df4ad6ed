"""Promote 3 images to a tier of 6 environments (6 accounts) x 10 services on the sandbox.

Compares, in one run, the whole-process wall time of `tierup promote` with the same work
scripted the way the seed article does it with the aws CLI (batch-get-image + put-image per
image, then assume-role and update-service per service, one after the other). Median of 3.
Then both again behind a TCP proxy that adds 50 ms to every request (bench/delay_proxy.py),
`tierup promote --no-wait` against the aws CLI script.

    .venv/bin/python bench/promote_fanout.py [--runs 3] [--skip-aws] [--skip-proxy]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.promote_fanout_proxy import ProxyFigures, run_behind_proxy, timed  # noqa: E402
from tierup.pipeline import config as config_mod  # noqa: E402
from tierup.pipeline import config_load  # noqa: E402
from tierup.pipeline.sandbox import seed as seed_mod  # noqa: E402
from tierup.pipeline.sandbox import server  # noqa: E402
from tierup.pipeline.sandbox.control import caller_credentials, sandbox_env  # noqa: E402

REGISTRY = "012345678922"
IMAGES = ("api", "worker", "web")
ENVIRONMENTS = 6
SERVICES = 10


def make_config(path: Path) -> None:
    lines = [
        "version: 1",
        f'registry: {{account_id: "{REGISTRY}", region: us-east-1}}',
        "images:",
        *[f"  {i}: {{repository: {i}}}" for i in IMAGES],
        "tiers:",
        "  - {name: dev, tag: dev}",
        "  - {name: staging, tag: staging, from: dev}",
        "environments:",
    ]
    lines += [
        "  dev:",
        "    tier: dev",
        '    account_id: "300000000000"',
        "    region: us-east-1",
        "    cluster: dev",
        "    services:",
        *[f"      {i}: {{image: {i}}}" for i in IMAGES],
    ]
    for e in range(ENVIRONMENTS):
        account = f"3000000000{e + 1:02d}"
        lines += [
            f"  staging-{e}:",
            "    tier: staging",
            f'    account_id: "{account}"',
            f"    role_arn: arn:aws:iam::{account}:role/deployer",
            "    region: us-east-1",
            f"    cluster: staging-{e}",
            "    services:",
        ]
        lines += [f"      svc{s}: {{image: {IMAGES[s % len(IMAGES)]}}}" for s in range(SERVICES)]
    path.write_text("\n".join(lines) + "\n")


def fresh_dev(cfg: config_mod.Config, endpoint: str, n: int) -> None:
    """New images for a new commit, tagged dev: staging has a real promotion to do."""
    commit = f"{n:040x}"
    seed_mod.push_commit_images(cfg, endpoint_url=endpoint, commit=commit, tags=("dev",))


def aws_script(cfg: config_mod.Config, endpoint: str, env: dict[str, str]) -> None:
    """The seed article's way: one aws CLI process per call, one after the other."""
    # Debian's aws CLI v2 (setup.sh installs it) rather than whatever shim comes first on PATH
    aws = shutil.which("aws", path="/usr/bin") or shutil.which("aws")
    assert aws is not None
    ep = ["--endpoint-url", endpoint, "--region", "us-east-1", "--output", "json"]

    def call(*args: str, extra_env: dict[str, str] | None = None) -> dict[str, object]:
        out = subprocess.run(
            [aws, *args, *ep],
            env={**env, **(extra_env or {})},
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(out.stdout) if out.stdout.strip() else {}

    for image in IMAGES:
        got = call(
            "ecr", "batch-get-image", "--repository-name", image, "--image-ids", "imageTag=dev"
        )
        manifest = got["images"][0]["imageManifest"]  # type: ignore[index]
        try:
            call(
                "ecr",
                "put-image",
                "--repository-name",
                image,
                "--image-tag",
                "staging",
                "--image-manifest",
                manifest,
            )
        except subprocess.CalledProcessError as e:
            if "ImageAlreadyExists" not in e.stderr:
                raise
    for name, e in cfg.environments.items():
        if e.tier != "staging":
            continue
        creds = call(
            "sts", "assume-role", "--role-arn", str(e.role_arn), "--role-session-name", "deploy"
        )["Credentials"]
        assumed = {
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],  # type: ignore[index]
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],  # type: ignore[index]
            "AWS_SESSION_TOKEN": creds["SessionToken"],  # type: ignore[index]
        }
        for svc in e.services:
            call(
                "ecs",
                "update-service",
                "--cluster",
                e.cluster,
                "--service",
                svc,
                "--force-new-deployment",
                extra_env=assumed,
            )
        del name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-aws", action="store_true", help="time tierup only")
    parser.add_argument("--skip-proxy", action="store_true", help="no run behind the 50 ms proxy")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tierup-bench-"))
    cfg_path = tmp / "envs.yaml"
    make_config(cfg_path)
    cfg = config_load.load(cfg_path)
    state_dir = tmp / "sandbox"
    server.start_background(0, state_dir)
    state = server.read_state(state_dir)
    assert state is not None
    endpoint = state.endpoint_url
    try:
        seed_mod.seed(cfg, endpoint_url=endpoint, commit="0" * 40, tag_tiers=True)
        key = caller_credentials(endpoint, REGISTRY)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            **sandbox_env(endpoint, key),
            "TIERUP_POLL_INTERVAL": "0.5",
            # the checkout this bench belongs to, whatever the virtualenv installed
            "PYTHONPATH": str(ROOT),
        }
        tierup = [str(Path(sys.executable).parent / "tierup")]
        n = 1

        def run_tierup(*extra: str, run_env: dict[str, str] | None = None) -> Callable[[], None]:
            def go() -> None:
                out = subprocess.run(
                    [
                        *tierup,
                        "promote",
                        "--tier",
                        "staging",
                        "-f",
                        str(cfg_path),
                        "--json",
                        *extra,
                    ],
                    env=run_env or env,
                    capture_output=True,
                    text=True,
                    cwd=tmp,
                )
                doc = json.loads(out.stdout)
                moved = sum(1 for i in doc["images"].values() if i["status"] == "moved")
                deployed = sum(
                    1
                    for e in doc["environments"].values()
                    for s in e["services"].values()
                    if s["status"] != "skipped"
                )
                if out.returncode != 0 or moved != 3 or deployed != ENVIRONMENTS * SERVICES:
                    raise SystemExit(f"tierup did not do the work: {out.returncode} {out.stderr}")

            return go

        results: dict[str, list[float]] = {
            "tierup --no-wait": [],
            "tierup (wait)": [],
            "aws CLI script": [],
        }
        for _ in range(args.runs):
            fresh_dev(cfg, endpoint, n := n + 1)
            results["tierup --no-wait"].append(timed(run_tierup("--no-wait")))
            fresh_dev(cfg, endpoint, n := n + 1)
            results["tierup (wait)"].append(timed(run_tierup()))
            if not args.skip_aws:
                fresh_dev(cfg, endpoint, n := n + 1)
                results["aws CLI script"].append(timed(lambda: aws_script(cfg, endpoint, env)))
        proxied: ProxyFigures | None = None
        if not args.skip_proxy:
            builds = itertools.count(n + 1)
            proxied = run_behind_proxy(
                endpoint=endpoint,
                env=env,
                prepare=lambda: fresh_dev(cfg, endpoint, next(builds)),
                tierup_no_wait=lambda slow_env: run_tierup("--no-wait", run_env=slow_env)(),
                aws_script=None
                if args.skip_aws
                else (lambda url, slow_env: aws_script(cfg, url, slow_env)),
                runs=args.runs,
                targets=[
                    (str(e.role_arn), e.cluster, list(e.services))
                    for e in cfg.environments.values()
                    if e.tier == "staging"
                ],
            )
        help_times = [
            timed(
                lambda: subprocess.run(
                    [*tierup, "--help"], capture_output=True, env=env, check=True
                )
            )
            for _ in range(5)
        ]
    finally:
        server.stop_background(state_dir)
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"promotion of {len(IMAGES)} images to {ENVIRONMENTS} environments x {SERVICES} "
        f"services ({ENVIRONMENTS} accounts), median of {args.runs}:"
    )
    medians = {k: statistics.median(v) for k, v in results.items() if v}
    for k, v in medians.items():
        print(f"  {k:18s} {v:7.2f} s   (runs: {', '.join(f'{x:.2f}' for x in results[k])})")
    if "aws CLI script" in medians:
        print(
            f"  speed-up (aws CLI script / tierup --no-wait): "
            f"{medians['aws CLI script'] / medians['tierup --no-wait']:.1f}x"
        )
        print(
            f"  speed-up (aws CLI script / tierup with wait): "
            f"{medians['aws CLI script'] / medians['tierup (wait)']:.1f}x"
        )
    print(f"  tierup --help      {statistics.median(help_times):7.2f} s")
    if proxied is not None:
        print("\n".join(proxied.lines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
