"""The fault suite's scenarios, shared by tests/test_faults.py and bench/fault_suite.py.

Each scenario sets a world up without faults, then runs one tierup command behind a
``FaultProxy`` that throttles, fails (500) and drops answers after forwarding at a set rate and
seed, and judges it: the run either converged (exit 0 and the state is what was asked for) or
exited non-zero with a report per target (no traceback, the tier's lock given back); then the
same command again without faults must converge.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from tests.support.ecs_checks import running_digests
from tests.support.faults import Call, FaultProxy, random_faults
from tests.support.guarded import promote
from tests.support.release_world import BUCKET, PREFIX, STAMP_RE, new_digests, tags_of
from tests.support.world import REGION, World
from tierup.pipeline.lock import key_for

Check = Callable[[], list[str]]


@dataclass
class Case:
    """One command to run under faults, and what the world looks like once it converged."""

    tier: str
    args: tuple[str, ...]
    converged: Check
    only: Callable[[Call], bool] | None = None  # which calls may get a fault (None: all)


@dataclass
class Outcome:
    scenario: str
    seed: int
    exit_code: int
    problems: list[str] = field(default_factory=list)  # of the faulted run: must be none
    rerun_exit: int | None = None
    rerun_problems: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    seconds: float = 0.0

    @property
    def converged_at_once(self) -> bool:
        return self.exit_code == 0 and not self.problems

    @property
    def ok(self) -> bool:
        return not self.problems and self.rerun_exit == 0 and not self.rerun_problems


def environment_runs(world: World, env: str, digests: dict[str, str]) -> list[str]:
    """What is wrong with ``env``: a service not settled on its image's digest in ``digests``."""
    problems = []
    e = world.config.environment(env)
    for name, svc in world.services(env).items():
        image = e.services[name].image
        if image not in digests:
            continue
        states = [(d["status"], d.get("rolloutState")) for d in svc["deployments"]]
        if states != [("PRIMARY", "COMPLETED")]:
            problems.append(f"{env}/{name}: deployments {states}")
        running = running_digests(world, env, name)
        if running != {digests[image]}:
            problems.append(f"{env}/{name}: runs {sorted(running)}, not {digests[image]}")
    return problems


def _tags_on(world: World, tier: str, digests: dict[str, str]) -> list[str]:
    tag = world.config.tier(tier).tag
    return [
        f"{image}:{tag} is {world.tag_digest(image, tag)}, not {digest}"
        for image, digest in digests.items()
        if world.tag_digest(image, tag) != digest
    ]


def _environments(world: World, tier: str, digests: dict[str, str]) -> list[str]:
    return [
        p
        for env in world.config.environments_of(tier)
        for p in environment_runs(world, env, digests)
    ]


def _current(world: World, tier: str) -> dict[str, str]:
    tag = world.config.tier(tier).tag
    return {name: str(world.tag_digest(name, tag)) for name in world.config.images}


def promote_case(world: World) -> Case:
    new_digests(world, "fault suite: promote")
    wanted = _current(world, "dev")
    return Case(
        "staging",
        ("promote", "--tier", "staging"),
        lambda: _tags_on(world, "staging", wanted) + _environments(world, "staging", wanted),
    )


def stamp_case(world: World) -> Case:
    new_digests(world, "fault suite: stamp")
    assert promote(world.config, world.clients(), tier="staging").exit_code == 0
    wanted = {"api": str(world.tag_digest("api", "staging"))}

    def converged() -> list[str]:
        stamps = [t for t, d in tags_of(world, "api").items() if re.match(STAMP_RE, t)]
        on_it = [t for t in stamps if tags_of(world, "api")[t] == wanted["api"]]
        problems = [] if len(on_it) == 1 else [f"stamps on {wanted['api']}: {on_it}"]
        return problems + _environments(world, "prod", wanted)

    return Case("prod", ("stamp", "--tier", "prod", "--image", "api"), converged)


def rollback_case(world: World) -> Case:
    before = _current(world, "staging")
    new_digests(world, "fault suite: rollback")
    assert promote(world.config, world.clients(), tier="staging").exit_code == 0
    wanted = {"api": before["api"]}
    return Case(
        "staging",
        ("rollback", "tier", "--tier", "staging", "--to", before["api"], "--image", "api"),
        lambda: _tags_on(world, "staging", wanted) + _environments(world, "staging", wanted),
    )


def restore_case(world: World) -> Case:
    before = _current(world, "staging")
    r = world.cli("snapshot", "--env", "staging", "--name", "before-faults")
    assert r.exit_code == 0, r.output
    new_digests(world, "fault suite: restore")
    assert promote(world.config, world.clients(), tier="staging").exit_code == 0
    return Case(
        "staging",
        ("restore", "--env", "staging", "--snapshot", "before-faults"),
        lambda: environment_runs(world, "staging", before),
    )


def lock_case(world: World) -> Case:
    case = promote_case(world)
    case.only = lambda call: "/locks/" in call.path
    return case


SCENARIOS: dict[str, Callable[[World], Case]] = {
    "promote": promote_case,
    "stamp": stamp_case,
    "rollback": rollback_case,
    "restore": restore_case,
    "lock": lock_case,
}


def _s3(world: World) -> Any:
    """S3 straight from moto's server, not through the proxy."""
    return boto3.client("s3", region_name=REGION, endpoint_url=world.endpoint)


def lock_left(world: World, tier: str) -> bool:
    resp = _s3(world).list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/{key_for(tier)}")
    return bool(resp.get("KeyCount"))


def report_problems(code: int, stdout: str, stderr: str) -> list[str]:
    """What is wrong with a failed run's report: it must name what failed, per target."""
    problems = []
    if "Traceback" in stderr or "unexpected error" in stderr:
        problems.append(f"not a clean failure: {stderr[-2000:]}")
    if code not in (1, 2, 3, 4):
        problems.append(f"exit {code}")
    try:
        doc = json.loads(stdout)
    except ValueError:
        return [*problems, f"no JSON document on stdout: {stdout[-500:]!r}"]
    if doc.get("status") == "ok":
        problems.append(f"exit {code} with status ok")
    if doc.get("error"):
        if not doc.get("hint"):
            problems.append(f"an error without a hint: {doc['error']}")
        return problems
    failed = 0
    for name, image in (doc.get("images") or {}).items():
        if image.get("status") == "failed":
            failed += 1
            if not image.get("error"):
                problems.append(f"image {name} failed without an error")
    for name, env in (doc.get("environments") or {}).items():
        if env.get("status") in ("ok", None):
            continue
        failed += 1
        services = env.get("services") or {}
        bad = {s: v for s, v in services.items() if v.get("status") in ("failed", "timed_out")}
        if not env.get("error") and not bad:
            problems.append(f"environment {name} is {env.get('status')} without a reason")
        for svc, v in bad.items():
            if not v.get("error"):
                problems.append(f"{name}/{svc} is {v.get('status')} without an error")
    if not failed:
        problems.append(f"exit {code} but no target failed: {stdout[-1000:]}")
    return problems


def run_case(
    world: World,
    proxy: FaultProxy,
    scenario: str,
    *,
    rate: float,
    seed: int,
    limit: int | None = None,
    env: dict[str, str] | None = None,
    first: bool = True,
) -> Outcome:
    """Set ``scenario`` up, run it under faults, judge it, re-run it without faults.

    ``env``: environment variables of the faulted run (``AWS_MAX_ATTEMPTS``); ``first``: the
    run's first call gets a fault whatever the draw (a test is never fault-free).
    """
    case = SCENARIOS[scenario](world)
    calls = proxy.stats.calls
    faults = dict(proxy.stats.faults)
    proxy.rules[:] = [random_faults(rate, seed=seed, limit=limit, only=case.only, first=first)]
    started = time.monotonic()
    r = world.cli(*case.args, "--json", env=env)
    seconds = time.monotonic() - started
    proxy.clear()
    out = Outcome(scenario, seed, r.exit_code, seconds=seconds)
    out.calls = proxy.stats.calls - calls
    out.faults = {
        k: v - faults.get(k, 0) for k, v in proxy.stats.faults.items() if v - faults.get(k, 0)
    }
    if r.exit_code == 0:
        out.problems += case.converged()
    else:
        out.problems += report_problems(r.exit_code, r.stdout, r.stderr)
    if lock_left(world, case.tier):
        out.problems.append(f"the lock on tier {case.tier!r} was left behind")
    again = world.cli(*case.args, "--json")
    out.rerun_exit = again.exit_code
    if again.exit_code != 0:
        out.rerun_problems.append(f"re-run exit {again.exit_code}: {again.output[-2000:]}")
    out.rerun_problems += case.converged()
    return out
