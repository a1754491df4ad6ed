"""Rollouts that end in one true answer: wait, failures, ECS rollbacks, timeouts, rolling back.

A tier of three environments in three accounts on moto's server with the sandbox's ECS
emulation; images are marked bad or hanging the documented way (an ECR tag).
"""

from __future__ import annotations

import io
import json
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.ecs_checks import (
    circuit_breaker,
    mark_image,
    primary,
    running_digests,
    settle,
    stable_on,
)
from tests.support.guarded import promote
from tests.support.world import World, Writes, env_block, make_world
from tierup.pipeline import interrupt
from tierup.pipeline.clients import Clients
from tierup.pipeline.ledger.configured import open_ledger
from tierup.pipeline.progress import LineProgress, LiveProgress, progress_display
from tierup.pipeline.promote import RunOptions
from tierup.pipeline.release import run_promotion
from tierup.pipeline.sessions import AwsSessions
from tierup.stages import wait as wait_stage

pytestmark = pytest.mark.usefixtures("aws_env")

STAGING = (("s1", "210000000001"), ("s2", "210000000002"), ("s3", "210000000003"))
PROD = (("p1", "220000000001"), ("p2", "220000000002"), ("p3", "220000000003"))
BOTH = {"api": "{image: api}", "worker": "{image: worker}"}


@dataclass
class Tier3:
    """A world whose staging tier has three environments; dev holds a newer build."""

    world: World
    previous: dict[str, str]  # image -> digest every environment runs now
    new: dict[str, str]  # image -> digest dev has, to be promoted

    def cli_json(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any, str]:
        r = self.world.cli(*args, "--json", env=env)
        return r.exit_code, json.loads(r.stdout), r.stderr


def _tier3(tmp_path: Path, endpoint: str, *, prod: bool = False) -> Tier3:
    blocks = [env_block(n, "staging", a, BOTH) for n, a in STAGING]
    blocks.append(env_block("dev", "dev", "111111111111", BOTH))
    if prod:
        blocks += [env_block(n, "prod", a, {"api": "{image: api}"}) for n, a in PROD]
    w = make_world(tmp_path, endpoint, "\n".join(blocks))
    previous = {i: str(w.tag_digest(i, "staging")) for i in ("api", "worker")}
    w.push_images(w.commit("second"))
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    new = {i: str(w.tag_digest(i, "dev")) for i in ("api", "worker")}
    assert new["api"] != previous["api"]
    return Tier3(w, previous, new)


@pytest.fixture
def t3(tmp_path: Path, aws_env: str) -> Tier3:
    return _tier3(tmp_path, aws_env)


def _services(doc: dict[str, Any], env: str) -> dict[str, Any]:
    return dict(doc["environments"][env]["services"])


# -- waiting -----------------------------------------------------------------------------------


def test_success_waits_for_every_environment_and_reports_each_state_change_once(
    t3: Tier3,
) -> None:
    code, doc, stderr = t3.cli_json("promote", "--tier", "staging")
    assert code == 0, doc
    for env, _ in STAGING:
        for svc in ("api", "worker"):
            out = _services(doc, env)[svc]
            assert out["status"] == "completed"
            assert primary(t3.world, env, svc)["id"] == out["deployment_id"]
            assert running_digests(t3.world, env, svc) == {t3.new[svc]}
    # off a terminal: plain lines, one per state change (CI logs)
    lines = stderr.splitlines()
    assert sum(1 for x in lines if x.startswith("s1/api: in_progress")) == 1
    assert sum(1 for x in lines if x.startswith("s1/api: completed (2/2 running)")) == 1


def test_a_failed_environment_is_reported_with_its_events_and_exit_3(t3: Tier3) -> None:
    w = t3.world
    circuit_breaker(w, "s2", "api", enable=True, rollback=False)
    mark_image(w, "api", t3.new["api"], "sandbox-fail.s2-cluster")
    code, doc, stderr = t3.cli_json("promote", "--tier", "staging")
    assert code == 3, doc
    assert doc["status"] == "partial"
    api = _services(doc, "s2")["api"]
    assert api["status"] == "failed"
    assert "circuit breaker" in api["error"]
    assert any("unable to consistently start tasks" in e for e in api["events"])
    assert _services(doc, "s2")["worker"]["status"] == "completed"
    assert doc["environments"]["s1"]["status"] == "ok"
    assert doc["environments"]["s3"]["status"] == "ok"
    assert doc["environments"]["s2"]["status"] == "partial"
    assert "s2/api: failed" in stderr and "event:" in stderr
    # the text rendering shows the latest events below the table
    r = w.cli("promote", "--tier", "staging")
    assert r.exit_code == 3
    assert "event:" in r.stdout and "unable to consistently start tasks" in r.stdout


def test_a_circuit_breaker_rollback_is_a_failure_though_the_service_looks_healthy(
    t3: Tier3,
) -> None:
    w = t3.world
    mark_image(w, "api", t3.new["api"], "sandbox-fail.s2-cluster")
    code, doc, stderr = t3.cli_json("promote", "--tier", "staging")
    assert code == 3, doc
    api = _services(doc, "s2")["api"]
    assert api["status"] == "rolled_back_by_ecs"
    assert "rolled the deployment back" in api["error"]
    assert "stable again" in api["error"]
    assert "rolled_back_by_ecs" in stderr
    # what a naive check would see: a healthy service, on the old image
    s = stable_on(w, "s2", "api")
    assert s["deployments"][0]["id"] != api["deployment_id"]
    assert running_digests(w, "s2", "api") == {t3.previous["api"]}


def test_when_every_environment_is_rolled_back_by_ecs_the_promotion_failed(t3: Tier3) -> None:
    mark_image(t3.world, "api", t3.new["api"], "sandbox-fail")
    code, doc, _ = t3.cli_json("promote", "--tier", "staging", "--image", "api")
    assert code == 1, doc
    assert doc["status"] == "failed"
    assert {_services(doc, e)["api"]["status"] for e, _ in STAGING} == {"rolled_back_by_ecs"}


class _Clock:
    """A clock that moves a second each time it is read: a 30 s timeout is 30 reads."""

    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            self.now += 1.0
            return self.now


def test_a_rollout_that_does_not_finish_times_out_with_exit_4_and_its_events(t3: Tier3) -> None:
    w = t3.world
    mark_image(w, "api", t3.new["api"], "sandbox-hang.s2-cluster")
    clients = w.clients()
    clients.clock = _Clock()
    result = promote(w.config, clients, tier="staging", options=RunOptions(timeout=30))
    assert result.exit_code == 4, result.to_json()
    doc = result.to_json()
    assert doc["status"] == "timed_out"
    api = _services(doc, "s2")["api"]
    assert api["status"] == "timed_out"
    assert "not stable after 30s" in api["error"]
    assert any("unable to place a task" in e for e in api["events"])
    assert _services(doc, "s1")["api"]["status"] == "completed"

    # through the CLI, with the real clock
    w.commit("third")
    w.push_images(w.head)
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    mark_image(w, "api", str(w.tag_digest("api", "dev")), "sandbox-hang.s2-cluster")
    r = w.cli("promote", "--tier", "staging", "--timeout", "1", env={"TIERUP_POLL_INTERVAL": "0.2"})
    assert r.exit_code == 4, r.output
    assert "timed_out" in r.stdout and "unable to place a task" in r.stdout


@pytest.fixture
def stop() -> Any:
    """The Ctrl-C event, clear before and after the test."""
    interrupt.STOP.clear()
    yield interrupt.STOP
    interrupt.STOP.clear()


def test_ctrl_c_ends_a_wait_at_once_and_releases_the_lock(t3: Tier3, stop: Any) -> None:
    w = t3.world
    mark_image(w, "api", t3.new["api"], "sandbox-hang.s2-cluster")
    # the clients as the CLI makes them: their pause between polls is the real one
    clients = Clients(config=w.config, repo_path=w.root, poll_interval=0.2)
    ledger = open_ledger(w.config, clients.sessions, root=w.root)
    threading.Timer(1.0, stop.set).start()  # what the SIGINT handler does first
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_promotion(w.config, clients, ledger, tier="staging", options=RunOptions(timeout=120))
    # s2's rollout never finishes: without the stop the wait would last its 120 s
    assert time.monotonic() - started < 60
    stop.clear()
    # what was written is in the ledger, marked as interrupted
    event = ledger.events(tier="staging", limit=1)[0]
    assert event["command"] == "promote" and event["interrupted"] is True
    assert {
        s["status"] for e in event["environments"].values() for s in e["services"].values()
    } == {"deployed"}
    # the lock was released on the way out: the next run takes it at once
    code, doc, _ = t3.cli_json("promote", "--tier", "staging", "--no-wait")
    assert code == 0, doc


def test_the_sigint_handler_stops_every_wait_then_interrupts(stop: Any) -> None:
    with pytest.raises(KeyboardInterrupt):
        interrupt.on_interrupt(signal.SIGINT, None)
    assert stop.is_set()
    with pytest.raises(KeyboardInterrupt):
        interrupt.sleep(30)  # a worker's next pause ends at once


def test_no_wait_returns_after_the_writes(t3: Tier3) -> None:
    code, doc, _ = t3.cli_json("promote", "--tier", "staging", "--no-wait")
    assert code == 0
    assert {s["status"] for e, _ in STAGING for s in _services(doc, e).values()} == {"deployed"}
    assert primary(t3.world, "s1", "api")["rolloutState"] == "IN_PROGRESS"
    code, doc, _ = t3.cli_json("promote", "--tier", "staging", "--no-wait", "--atomic")
    assert code == 2 and "--atomic needs --wait" in doc["error"]


def test_waiting_asks_for_ten_services_a_call(tmp_path: Path, aws_env: str) -> None:
    services = {f"svc{i:02d}": "{image: api}" for i in range(12)}
    w = make_world(
        tmp_path,
        aws_env,
        env_block("dev", "dev", "111111111111", services)
        + "\n"
        + env_block("big", "staging", "230000000001", services),
    )
    w.push_images(w.commit("second"))
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    sizes: list[int] = []

    def hook(service: str, client: Any) -> None:
        def before(params: dict[str, Any], model: Any, **_: Any) -> None:
            if model.name == "DescribeServices":
                sizes.append(len(params["services"]))

        client.meta.events.register("provide-client-params.ecs.DescribeServices", before)

    clients = Clients(
        config=w.config,
        sessions=AwsSessions(on_client=hook),
        sleep=lambda _s: None,
        repo_path=w.root,
        poll_interval=0,
    )
    result = promote(w.config, clients, tier="staging")
    assert result.exit_code == 0, result.to_json()
    assert {s.status for e in result.environments for s in e.services} == {"completed"}
    assert max(sizes) == 10 and 2 in sizes


# -- rolling back ------------------------------------------------------------------------------


def test_atomic_puts_every_environment_of_the_tier_back_on_the_previous_image(t3: Tier3) -> None:
    w = t3.world
    mark_image(w, "api", t3.new["api"], "sandbox-fail.s2-cluster")
    code, doc, stderr = t3.cli_json("promote", "--tier", "staging", "--atomic")
    assert code == 1, doc
    assert doc["status"] == "failed"
    rb = doc["rollback"]
    assert rb["mode"] == "atomic" and "s2/api" in rb["trigger"]
    for image in ("api", "worker"):
        assert rb["tags"][image]["to_digest"] == t3.previous[image]
        assert rb["tags"][image]["status"] == "moved_back"
        assert doc["images"][image]["status"] == "moved_back"
        # proven by ECR: the tier's tag is back
        assert w.tag_digest(image, "staging") == t3.previous[image]
    for env, _ in STAGING:
        for svc in ("api", "worker"):
            out = _services(doc, env)[svc]
            if (env, svc) != ("s2", "api"):
                assert out["status"] == "reverted", (env, svc, out)
            assert out["rollback"]["status"] == "completed", (env, svc, out)
            assert out["rollback"]["action"] == "force-new-deployment"
            # proven by describe_services and the tasks: stable, on the previous image
            stable_on(w, env, svc)
            assert running_digests(w, env, svc) == {t3.previous[svc]}, (env, svc)
    assert any("--atomic" in n for n in doc["notes"])
    assert any("shared by every environment" in n for n in doc["notes"])
    # the ledger does not count the tag as moved (`rollback tier` reads it)
    assert {i["status"] for i in _last_event(w)["images"]} == {"moved_back"}
    assert "rollback completed" in stderr


def test_rollback_on_failure_with_a_shared_tag_moves_it_back_and_redeploys_the_tier(
    t3: Tier3,
) -> None:
    w = t3.world
    circuit_breaker(w, "s2", "api", enable=True, rollback=False)
    mark_image(w, "api", t3.new["api"], "sandbox-fail.s2-cluster")
    code, doc, _ = t3.cli_json("promote", "--tier", "staging", "--rollback-on-failure")
    # worker reached its new image everywhere; api is back everywhere
    assert code == 3, doc
    assert set(doc["rollback"]["tags"]) == {"api"}
    assert w.tag_digest("api", "staging") == t3.previous["api"]
    assert w.tag_digest("worker", "staging") == t3.new["worker"]
    assert any("shared by every environment of tier 'staging'" in n for n in doc["notes"])
    s2 = _services(doc, "s2")["api"]
    assert s2["status"] == "failed"
    assert s2["rollback"]["status"] == "completed"
    for env, _ in STAGING:
        assert _services(doc, env)["worker"]["status"] == "completed"
        assert "rollback" not in _services(doc, env)["worker"]
        if env != "s2":
            assert _services(doc, env)["api"]["status"] == "reverted"
        stable_on(w, env, "api")
        assert running_digests(w, env, "api") == {t3.previous["api"]}
        assert running_digests(w, env, "worker") == {t3.new["worker"]}


@pytest.fixture
def prod3(tmp_path: Path, aws_env: str) -> Tier3:
    """Prod (task-definition strategy, stamped tags) has 3 environments; staging is newer."""
    t = _tier3(tmp_path, aws_env, prod=True)
    w = t.world
    assert promote(w.config, w.clients(), tier="staging").exit_code == 0
    t.previous = {"api": next(iter(running_digests(w, "p1", "api")))}
    return t


@pytest.mark.parametrize("case", ["breaker-rolls-back", "breaker-without-rollback", "inactive"])
def test_rollback_on_failure_puts_a_task_definition_environment_on_its_previous_revision(
    prod3: Tier3, case: str
) -> None:
    w = prod3.world
    before = {e: w.services(e)["api"]["taskDefinition"] for e, _ in PROD}
    if case != "breaker-rolls-back":
        circuit_breaker(w, "p2", "api", enable=True, rollback=False)
    if case == "inactive":
        # a cleanup deregistered the revision p2 runs: going back needs a copy of it
        w.ecs("220000000002").deregister_task_definition(taskDefinition=before["p2"])
    mark_image(w, "api", prod3.new["api"], "sandbox-fail.p2-cluster")
    code, doc, _ = prod3.cli_json("promote", "--tier", "prod", "--rollback-on-failure")
    assert code == 3, doc
    assert "tags" not in doc["rollback"] or not doc["rollback"]["tags"]
    p2 = _services(doc, "p2")["api"]
    assert p2["status"] == ("rolled_back_by_ecs" if case == "breaker-rolls-back" else "failed")
    rb = p2["rollback"]
    assert rb["action"] == "task-definition" and rb["status"] == "completed", rb
    s = stable_on(w, "p2", "api")
    if case == "inactive":
        assert rb["task_definition"] != before["p2"]
        td = w.ecs("220000000002").describe_task_definition(taskDefinition=rb["task_definition"])
        old = w.ecs("220000000002").describe_task_definition(taskDefinition=before["p2"])
        assert (
            td["taskDefinition"]["containerDefinitions"]
            == old["taskDefinition"]["containerDefinitions"]
        )
    else:
        assert rb["task_definition"] == before["p2"]
    assert s["taskDefinition"] == rb["task_definition"]
    assert running_digests(w, "p2", "api") == {prod3.previous["api"]}
    for env in ("p1", "p3"):
        assert _services(doc, env)["api"]["status"] == "completed"
        assert w.services(env)["api"]["taskDefinition"] != before[env]
        assert running_digests(w, env, "api") == {prod3.new["api"]}


def test_atomic_on_task_definition_environments_returns_each_to_its_previous_revision(
    prod3: Tier3,
) -> None:
    w = prod3.world
    before = {e: w.services(e)["api"]["taskDefinition"] for e, _ in PROD}
    mark_image(w, "api", prod3.new["api"], "sandbox-fail.p3-cluster")
    code, doc, _ = prod3.cli_json("promote", "--tier", "prod", "--atomic")
    assert code == 1, doc
    for env, _ in PROD:
        settle(w, env)
        assert w.services(env)["api"]["taskDefinition"] == before[env]
        assert running_digests(w, env, "api") == {prod3.previous["api"]}
        assert _services(doc, env)["api"]["rollback"]["status"] == "completed"
    # the ledger says what runs after the run: the revisions put back
    event = _last_event(w)
    for env, _ in PROD:
        svc = event["environments"][env]["services"]["api"]
        assert svc["task_definition_after"] == before[env]
        assert svc["rollback"] == "completed"


def _last_event(w: World) -> dict[str, Any]:
    lines = (w.root / ".tierup" / "ledger.jsonl").read_text().splitlines()
    return dict(json.loads(lines[-1]))


def test_rollback_settings_come_from_the_tier_and_flags_override_them(t3: Tier3) -> None:
    w = t3.world
    text = w.config_path.read_text().replace(
        "{name: staging, tag: staging, from: dev}",
        "{name: staging, tag: staging, from: dev, atomic: true}",
    )
    w.config_path.write_text(text)
    mark_image(w, "api", t3.new["api"], "sandbox-fail.s2-cluster")
    code, doc, _ = t3.cli_json("promote", "--tier", "staging")
    assert code == 1 and doc["rollback"]["mode"] == "atomic"
    assert w.tag_digest("api", "staging") == t3.previous["api"]
    code, doc, _ = t3.cli_json("promote", "--tier", "staging", "--no-atomic")
    assert code == 3 and "rollback" not in doc
    assert w.tag_digest("api", "staging") == t3.new["api"]


# -- what really runs --------------------------------------------------------------------------


def test_where_shows_running_digests_and_drift_after_a_tag_moved_without_a_deployment(
    t3: Tier3,
) -> None:
    w = t3.world
    code, doc, _ = t3.cli_json("where", "--tier", "staging")
    assert code == 0
    svc = doc["environments"]["s1"]["services"]["api"]
    assert svc["running_digests"] == [t3.previous["api"]]
    assert svc["tasks_agree"] is True and svc["drift"] is False

    # the tag moves, nothing is deployed: every environment drifts until its next deployment
    code, _doc, _ = t3.cli_json("promote", "--tier", "staging", "--no-deploy")
    assert code == 0
    code, doc, _ = t3.cli_json("where", "--tier", "staging")
    for env, _ in STAGING:
        svc = doc["environments"][env]["services"]["api"]
        assert svc["running_digests"] == [t3.previous["api"]]
        assert svc["drift"] is True
        assert any("deploy to pick it up" in r for r in svc["drift_reasons"])
    text = w.cli("where", "--tier", "staging")
    assert "drift" in text.stdout

    # deploying one environment ends its drift, not the others'
    r = w.cli("deploy", "--env", "s1")
    assert r.exit_code == 0, r.output
    code, doc, _ = t3.cli_json("where", "--tier", "staging")
    s1 = doc["environments"]["s1"]["services"]["api"]
    assert s1["drift"] is False and s1["running_digests"] == [t3.new["api"]]
    assert doc["environments"]["s2"]["services"]["api"]["drift"] is True


def test_where_shows_tasks_that_disagree_during_a_rollout(t3: Tier3) -> None:
    code, _doc, _ = t3.cli_json("promote", "--tier", "staging", "--no-wait")
    assert code == 0
    code, doc, _ = t3.cli_json("where", "--env", "s1")
    svc = doc["environments"]["s1"]["services"]["api"]
    assert svc["tasks_agree"] is False
    assert set(svc["running_digests"]) == {t3.previous["api"], t3.new["api"]}


# -- progress ----------------------------------------------------------------------------------


def _state(state: str, running: int = 0, **kw: Any) -> wait_stage.RolloutState:
    return wait_stage.RolloutState("api", "ecs-svc/1", state, running, 2, **kw)


def test_line_progress_writes_one_line_per_state_change() -> None:
    out = io.StringIO()
    p = LineProgress(out)
    p.rollout("s1", _state("in_progress", 0))
    p.rollout("s1", _state("in_progress", 1))
    p.rollout("s1", _state("completed", 2))
    p.rollout(
        "s2",
        _state("failed", 0, reason="circuit breaker", events=("unable to place a task", "x")),
    )
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("s1/api: in_progress (0/2 running")
    assert lines[1] == "s1/api: completed (2/2 running)"
    assert lines[2] == "s2/api: failed: circuit breaker (0/2 running)"
    assert lines[3] == "    event: unable to place a task"
    assert len(lines) == 5


def test_live_progress_draws_a_table_per_environment_on_a_terminal() -> None:
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with LiveProgress(out, console=console) as p:
        p("staging/api: force-new-deployment -> deployment ecs-svc/1")
        p.rollout("staging", _state("in_progress", 1))
        p.rollout("mb-staging", _state("completed", 2))
    text = out.getvalue()
    assert "rollouts" in text and "mb-staging" in text and "completed" in text
    assert "force-new-deployment" in text
    assert isinstance(progress_display(io.StringIO()), LineProgress)
    assert not isinstance(progress_display(io.StringIO()), LiveProgress)


def _writes_of(steps: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """A plan's steps as the AWS writes they name: a tag, or an update of each service."""
    out: list[tuple[str, str, str]] = []
    for s in steps:
        if s["write"] == "registry:PutImage":
            out.append(("PutImage", s["repository"], s["tag"]))
        else:
            out += [("UpdateService", s["cluster"], svc) for svc in s.get("services", [])]
            if "service" in s:
                out.append(("UpdateService", s["cluster"], s["service"]))
    return out


def _made(calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, str]]:
    return [
        ("PutImage", p["repositoryName"], p["imageTag"])
        if n == "PutImage"
        else ("UpdateService", p["cluster"], p["service"])
        for n, p in calls
        if n in ("PutImage", "UpdateService")
    ]


@pytest.mark.parametrize("tier", ["staging", "prod"])
def test_the_compensation_is_a_plan_whose_steps_are_the_writes_it_makes(
    tmp_path: Path, aws_env: str, tier: str
) -> None:
    """--atomic: what the rollback writes is, item for item, its plan's steps (after the
    promotion's own writes): tags back and forced deployments on a shared tag (staging), a
    rollback to the previous revision per service (prod)."""
    t = _tier3(tmp_path, aws_env, prod=tier == "prod")
    w = t.world
    if tier == "prod":
        assert promote(w.config, w.clients(), tier="staging").exit_code == 0
    envs = STAGING if tier == "staging" else PROD
    mark_image(w, "api", t.new["api"], f"sandbox-fail.{envs[1][0]}-cluster")
    writes = Writes()
    result = promote(w.config, w.clients(writes), tier=tier, options=RunOptions(atomic=True))
    assert result.exit_code == 1
    steps = result.data["rollback"]["steps"]
    made = _made(writes.calls)
    promoted = _writes_of(result.plan)
    assert sorted(made[: len(promoted)]) == sorted(promoted)
    assert sorted(made[len(promoted) :]) == sorted(_writes_of(steps))
    kinds = {s["write"] for s in steps}
    if tier == "staging":
        assert kinds == {"registry:PutImage", "ecs:UpdateService"}
        assert [s["action"] for s in steps[:2]] == ["moved-back", "moved-back"]
    else:
        # p2's circuit breaker already took it back: the rollback follows it, writing nothing
        assert kinds == {"rollback"} and [s["environment"] for s in steps] == ["p1", "p3"]
        assert {s["action"] for s in steps} == {"task-definition"}
