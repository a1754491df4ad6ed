"""Faults between tierup and AWS, made by a proxy on loopback in front of moto's server.

Throttling, 500s and answers lost after the write happened: every run either converges or
exits non-zero with a report per target, and its re-run converges.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import strategy_worlds
from tests.support.fault_suite import SCENARIOS, run_case
from tests.support.faults import ERROR, THROTTLE, Call, Fault, FaultProxy, Rule, drop_answer
from tests.support.guarded import promote
from tests.support.release_world import BUCKET, PREFIX, new_digests, release_world, s3
from tests.support.world import World, make_world
from tierup.pipeline.lock import key_for


@pytest.fixture
def world(tmp_path: Path, aws_env: str, fault_proxy: FaultProxy) -> World:
    w = release_world(tmp_path, aws_env)
    new_digests(w)
    return w


def _lock_exists(tier: str) -> bool:
    resp = s3().list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/{key_for(tier)}")
    return bool(resp.get("KeyCount"))


@pytest.mark.parametrize("lost", [1, 6], ids=["one-answer-lost", "every-answer-lost"])
def test_a_lost_answer_to_the_lock_write_is_recognised_as_our_own_lock(
    world: World, fault_proxy: FaultProxy, lost: int
) -> None:
    # the lock object is written, its answer lost; botocore's retry then meets 412 (and with
    # every answer lost, botocore gives up: the lock is there all the same, and it is ours)
    lock = f"/{PREFIX}/{key_for('staging')}"
    fault_proxy.rules.append(drop_answer("s3", "PutObject", path=lock, times=lost))
    fault_proxy.rules.append(drop_answer("s3", "DeleteObject", path=lock))
    r = world.cli("promote", "--tier", "staging")
    assert fault_proxy.stats.faults == {"drop": lost + 1}
    assert r.exit_code == 0, r.output
    assert "locked by" not in r.output
    assert not _lock_exists("staging")
    assert world.tag_digest("api", "staging") == world.tag_digest("api", "dev")


def fail_polls_after_write(cluster: str, faults: list[str]) -> Rule:
    """Once a service of ``cluster`` was updated, its next describe_services get ``faults``."""
    written: list[bool] = []
    left = list(faults)

    def rule(call: Call) -> Fault | None:
        if f'"{cluster}"' not in call.body.decode("utf-8", "replace"):
            return None
        if call.operation == "UpdateService":
            written.append(True)
        elif call.operation == "DescribeServices" and written and left:
            return left.pop(0) if left[0] != "forever" else THROTTLE
        return None

    return rule


def test_a_failed_poll_is_retried_within_the_deadline_counted_and_listed(
    world: World, fault_proxy: FaultProxy
) -> None:
    fault_proxy.rules.append(fail_polls_after_write("staging-cluster", [THROTTLE, ERROR]))
    # no retry by the SDK: each fault reaches tierup's own poll
    r = world.cli(
        "--verbose", "promote", "--tier", "staging", "--json", env={"AWS_MAX_ATTEMPTS": "1"}
    )
    assert fault_proxy.stats.faults == {"throttle": 1, "error": 1}
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    envs = doc["environments"]
    assert envs["staging"]["retries"] == 2 and envs["mb-staging"]["retries"] == 0, r.stderr
    assert {s["status"] for s in envs["staging"]["services"].values()} == {"completed"}
    listed = [line for line in r.stderr.splitlines() if "failed (" in line and ": retry " in line]
    assert len(listed) == 2, r.stderr
    assert all("staging: describing the services of cluster staging-cluster" in x for x in listed)
    assert "ThrottlingException" in listed[0] and "retry 1" in listed[0]
    assert "InternalFailure" in listed[1] and "retry 2" in listed[1]
    # the SDK's own retries are listed too, when it makes them
    fault_proxy.rules.append(fail_polls_after_write("staging-cluster", [THROTTLE]))
    new_digests(world, "again")
    r = world.cli("--verbose", "promote", "--tier", "staging")
    assert r.exit_code == 0, r.output
    assert "aws sdk: Retry needed" in r.stderr, r.stderr
    # the text rendering says so too
    text = world.cli("promote", "--tier", "staging")
    assert text.exit_code == 0 and "retries:" not in text.stdout  # nothing failed this time


def test_polls_failing_until_the_deadline_time_the_rollout_out_not_fail_it(
    world: World, fault_proxy: FaultProxy
) -> None:
    fault_proxy.rules.append(fail_polls_after_write("staging-cluster", ["forever"]))
    r = world.cli(
        "promote", "--tier", "staging", "--timeout", "5s", "--json", env={"AWS_MAX_ATTEMPTS": "1"}
    )
    assert r.exit_code == 4, r.output
    doc = json.loads(r.stdout)
    staging = doc["environments"]["staging"]
    assert staging["status"] == "timed_out" and staging["retries"] >= 1
    for svc in staging["services"].values():
        assert svc["status"] == "timed_out"
        assert "still failing when the wait's time ran out" in svc["error"]
    assert doc["environments"]["mb-staging"]["status"] == "ok"
    # without faults, the re-run converges
    fault_proxy.clear()
    code, doc = world.cli_json("promote", "--tier", "staging")
    assert code == 0, doc


# -- the fault suite: every writing command under random faults ----------------------------------

# small enough for the suite; bench/fault_suite.py runs more, at a higher rate
SUITE_RATE = 0.15
SUITE_LIMIT = 6


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_under_faults_a_run_converges_or_reports_each_target_and_its_rerun_converges(
    world: World, fault_proxy: FaultProxy, scenario: str
) -> None:
    seed = list(SCENARIOS).index(scenario) + 1
    # the lock's few calls (create, read, delete) each get a fault, until the limit
    rate, limit = (1.0, 3) if scenario == "lock" else (SUITE_RATE, SUITE_LIMIT)
    out = run_case(world, fault_proxy, scenario, rate=rate, seed=seed, limit=limit)
    assert out.faults, f"no fault was made in {out.calls} calls"
    assert out.problems == [], out
    assert out.rerun_exit == 0 and out.rerun_problems == [], out


@pytest.mark.parametrize("operation", ["GetObject", "DeleteObject"])
def test_a_failed_lock_release_is_tried_again(
    world: World, fault_proxy: FaultProxy, operation: str
) -> None:
    lock = f"/{PREFIX}/{key_for('staging')}"
    faults = [THROTTLE, ERROR]

    def rule(call: Call) -> Fault | None:
        if call.operation == operation and lock in call.path and faults:
            return faults.pop(0)
        return None

    fault_proxy.rules.append(rule)
    r = world.cli("promote", "--tier", "staging", env={"AWS_MAX_ATTEMPTS": "1"})
    assert r.exit_code == 0, r.output
    assert fault_proxy.stats.faults == {"throttle": 1, "error": 1}
    assert not _lock_exists("staging")


def test_a_failed_lock_write_is_tried_again(world: World, fault_proxy: FaultProxy) -> None:
    lock = f"/{PREFIX}/{key_for('staging')}"
    faults = [THROTTLE, ERROR]

    def rule(call: Call) -> Fault | None:
        if call.operation == "PutObject" and lock in call.path and faults:
            return faults.pop(0)
        return None

    fault_proxy.rules.append(rule)
    r = world.cli("promote", "--tier", "staging", env={"AWS_MAX_ATTEMPTS": "1"})
    assert r.exit_code == 0, r.output
    assert fault_proxy.stats.faults == {"throttle": 1, "error": 1}
    assert not _lock_exists("staging")


def test_an_aws_failure_on_its_side_is_one_error_line_with_a_hint(
    world: World, fault_proxy: FaultProxy
) -> None:
    fault_proxy.rules.append(lambda call: ERROR if call.operation == "BatchGetImage" else None)
    r = world.cli("promote", "--tier", "staging", env={"AWS_MAX_ATTEMPTS": "1"})
    assert r.exit_code == 1, r.output
    (line,) = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert "InternalFailure" in line and "(hint: AWS failed on its side (a 5xx)" in line
    assert not _lock_exists("staging")


@pytest.mark.parametrize("scenario", ["promote", "restore"])
def test_under_faults_the_sdk_does_not_retry_a_failed_run_reports_each_target(
    world: World, fault_proxy: FaultProxy, scenario: str
) -> None:
    # every fault reaches tierup: the run fails more often than not, and must say what failed
    out = run_case(
        world, fault_proxy, scenario, rate=0.2, seed=7, limit=4, env={"AWS_MAX_ATTEMPTS": "1"}
    )
    assert out.faults, f"no fault was made in {out.calls} calls"
    assert out.problems == [], out
    assert out.rerun_exit == 0 and out.rerun_problems == [], out


def fail_after(write: str, read: str, faults: list[str]) -> Rule:
    """Once ``write`` was called, the next ``read`` calls get ``faults``, one each."""
    written: list[bool] = []
    left = list(faults)

    def rule(call: Call) -> Fault | None:
        if call.operation == write:
            written.append(True)
        elif call.operation == read and written and left:
            return left.pop(0)
        return None

    return rule


@pytest.mark.parametrize("strategy", ["cloudformation", "codedeploy"])
def test_a_strategys_failed_poll_is_retried_and_counted(
    tmp_path: Path, aws_env: str, fault_proxy: FaultProxy, strategy: str
) -> None:
    if strategy == "cloudformation":
        strategy_worlds.create_stack(aws_env, f"{strategy_worlds.HOST}/api:staging")
        w = make_world(tmp_path, aws_env, strategy_worlds.STACK_ENVS)
        env, rule = "stack", fail_after("ExecuteChangeSet", "DescribeStacks", [THROTTLE, ERROR])
    else:
        w = make_world(tmp_path, aws_env, strategy_worlds.BLUEGREEN_ENVS)
        env, rule = "bluegreen", fail_after("CreateDeployment", "GetDeployment", [THROTTLE, ERROR])
    w.push_images(w.commit("second"))
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    fault_proxy.rules.append(rule)
    r = w.cli("promote", "--tier", "staging", "--json", env={"AWS_MAX_ATTEMPTS": "1"})
    assert r.exit_code == 0, r.output
    assert fault_proxy.stats.faults == {"throttle": 1, "error": 1}
    doc = json.loads(r.stdout)
    assert doc["environments"][env]["retries"] == 2
    assert doc["environments"][env]["services"]["api"]["status"] == "completed"
