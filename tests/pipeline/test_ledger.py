"""The ledger on its two backends: a local JSON-lines file and S3 on moto's server."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from tierup.pipeline import config_load
from tierup.pipeline.ledger.base import EVENT_KEYS, DocumentExists, Ledger, task_definitions_in_use
from tierup.pipeline.ledger.configured import open_ledger
from tierup.pipeline.ledger.identity import Identity, actor_name, ci_url
from tierup.pipeline.ledger.local import LocalLedger
from tierup.pipeline.ledger.s3 import S3Ledger
from tierup.pipeline.ledger.s3_store import S3Store
from tierup.pipeline.sessions import AwsSessions

pytestmark = pytest.mark.usefixtures("aws_env")

BUCKET = "tierup-ledger"
T0 = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)

BASE = """\
version: 1
registry: {account_id: "012345678922", region: us-east-1}
images:
  api: {repository: api}
tiers:
  - {name: dev, tag: dev}
"""


def _s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")


def _clock(start: datetime = T0) -> Any:
    ticks = itertools.count()
    return lambda: start + timedelta(seconds=next(ticks))


def _identity(tmp_path: Path) -> Identity:
    return Identity(environ={"GITHUB_ACTOR": "alice"}, root=tmp_path, caller_arn=lambda: "arn:x")


def _event(command: str, tier: str, env: str = "staging", image: str = "api") -> dict[str, Any]:
    return {
        "command": command,
        "tier": tier,
        "status": "ok",
        "images": [{"image": image, "to_digest": "sha256:" + "1" * 64}],
        "environments": {env: {"status": "ok", "services": {}}},
    }


@pytest.fixture(params=["local", "s3"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Ledger:
    if request.param == "local":
        return LocalLedger(
            tmp_path / ".tierup" / "ledger.jsonl", identity=_identity(tmp_path), now=_clock()
        )
    _s3().create_bucket(Bucket=BUCKET)
    return S3Ledger(
        S3Store(_s3(), BUCKET, "team/ledger"), identity=_identity(tmp_path), now=_clock()
    )


def test_actor_is_the_ci_user_else_the_repository_git_user(
    git_repo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = Path(git_repo.working_tree_dir) / "sub"
    root.mkdir()
    with git_repo.config_writer() as config:
        config.set_value("user", "name", "Release Manager")
    assert actor_name({}, root) == "Release Manager"  # found from a subfolder, as git does
    assert actor_name({"GITLAB_USER_LOGIN": "bob"}, root) == "bob"
    # no user.name anywhere: the OS user
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("USER", "someone")
    monkeypatch.setenv("LOGNAME", "someone")
    (tmp_path / "no-repo").mkdir()
    assert actor_name({}, tmp_path / "no-repo") == "someone"
    assert actor_name({}, tmp_path / "gone") == "someone"


def test_record_adds_id_time_actor_and_every_key(ledger: Ledger) -> None:
    stored = ledger.record(_event("promote", "staging"))
    assert list(stored) == list(EVENT_KEYS)
    assert stored["actor"] == {"name": "alice", "arn": "arn:x"}
    assert stored["time"] == "2026-11-26T10:30:00Z"
    assert stored["id"].startswith("20261126T103000.000000Z-")
    assert stored["message"] is None and stored["reason"] is None
    assert ledger.events() == [stored]


def test_events_are_newest_first_and_filtered(ledger: Ledger) -> None:
    a = ledger.record(_event("promote", "staging"))
    b = ledger.record(_event("stamp", "prod", env="prod"))
    c = ledger.record(_event("rollback tier", "staging", image="worker"))
    assert [e["id"] for e in ledger.events()] == [c["id"], b["id"], a["id"]]
    assert [e["id"] for e in ledger.events(tier="staging")] == [c["id"], a["id"]]
    assert [e["id"] for e in ledger.events(command="rollback")] == [c["id"]]
    assert [e["id"] for e in ledger.events(command="promote")] == [a["id"]]
    assert [e["id"] for e in ledger.events(image="worker")] == [c["id"]]
    assert [e["id"] for e in ledger.events(env="prod")] == [b["id"]]
    assert [e["id"] for e in ledger.events(limit=2)] == [c["id"], b["id"]]
    assert ledger.events(limit=0) == []


def test_documents_never_overwrite_and_list_oldest_first(ledger: Ledger) -> None:
    assert ledger.get_document("snapshot", "one") is None
    assert ledger.list_documents("snapshot") == []
    ledger.put_document("snapshot", "b-first", {"n": 1})
    ledger.put_document("snapshot", "a-second", {"n": 2})
    with pytest.raises(DocumentExists):
        ledger.put_document("snapshot", "b-first", {"n": 3})
    assert ledger.get_document("snapshot", "b-first") == {"n": 1}
    ledger.put_document("snapshot", "0-third", {"n": 4})
    assert ledger.list_documents("snapshot") == ["b-first", "a-second", "0-third"]
    assert ledger.list_documents("other") == []


def test_two_s3_writers_colliding_on_one_key_both_keep_their_events(tmp_path: Path) -> None:
    _s3().create_bucket(Bucket=BUCKET)
    taken = "20261126T103000.000000Z-same"
    fresh = (f"20261126T103000.000000Z-{n:04d}" for n in itertools.count())

    def ids() -> Any:
        first = iter([taken])
        return lambda _now: next(first, None) or next(fresh)

    one = S3Ledger(
        S3Store(_s3(), BUCKET, "p"), identity=_identity(tmp_path), now=lambda: T0, ids=ids()
    )
    two = S3Ledger(
        S3Store(_s3(), BUCKET, "p"), identity=_identity(tmp_path), now=lambda: T0, ids=ids()
    )
    e1 = one.record({**_event("promote", "staging"), "message": "one"})
    e2 = two.record({**_event("promote", "staging"), "message": "two"})
    assert e1["id"] == taken
    assert e2["id"] != taken
    listed = _s3().list_objects_v2(Bucket=BUCKET, Prefix="p/events/")["Contents"]
    keys = sorted(o["Key"] for o in listed)
    assert keys == sorted([f"p/events/{taken}.json", f"p/events/{e2['id']}.json"])
    body = json.loads(_s3().get_object(Bucket=BUCKET, Key=f"p/events/{taken}.json")["Body"].read())
    assert body["message"] == "one"
    assert {e["message"] for e in one.events()} == {"one", "two"}


def test_open_ledger_local_by_default_and_s3_when_configured(tmp_path: Path) -> None:
    cfg = config_load.loads(BASE)
    local = open_ledger(cfg, AwsSessions(), root=tmp_path, environ={})
    assert isinstance(local, LocalLedger)
    local.record(_event("promote", "dev"))
    lines = (tmp_path / ".tierup" / "ledger.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["command"] == "promote"
    # no CI: the git user (none here) or the OS user; the STS caller's ARN from moto
    actor = json.loads(lines[0])["actor"]
    assert actor["name"] and actor["arn"].startswith("arn:aws:")

    _s3().create_bucket(Bucket=BUCKET)
    cfg = config_load.loads(BASE + f"ledger: {{s3: s3://{BUCKET}/a/b, region: us-east-1}}\n")
    remote = open_ledger(cfg, AwsSessions(), root=tmp_path, environ={"GITLAB_USER_LOGIN": "bob"})
    assert isinstance(remote, S3Ledger)
    stored = remote.record(_event("promote", "dev"))
    assert stored["actor"]["name"] == "bob"
    listed = _s3().list_objects_v2(Bucket=BUCKET, Prefix="a/b/events/")["Contents"]
    assert [o["Key"] for o in listed] == [f"a/b/events/{stored['id']}.json"]


def test_missing_bucket_is_one_error_with_a_hint(tmp_path: Path) -> None:
    from tierup.stages.errors import AwsError

    led = S3Ledger(S3Store(_s3(), "no-such-bucket", ""), identity=_identity(tmp_path))
    with pytest.raises(AwsError) as info:
        led.record(_event("promote", "dev"))
    assert "no-such-bucket" in info.value.message and "ledger.s3" in info.value.hint


def test_ci_url_for_github_and_gitlab() -> None:
    assert (
        ci_url({"GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "42"})
        == "https://github.com/o/r/actions/runs/42"
    )
    assert ci_url({"CI_JOB_URL": "https://gitlab.example/j/1"}) == "https://gitlab.example/j/1"
    assert ci_url({}) is None


def test_task_definitions_in_use_names_before_and_after(ledger: Ledger) -> None:
    ev = _event("promote", "staging")
    ev["environments"]["staging"]["services"] = {
        "api": {"task_definition_before": "td:1", "task_definition_after": "td:2"}
    }
    ledger.record(ev)
    assert task_definitions_in_use(ledger) == {"td:1", "td:2"}
    assert task_definitions_in_use(ledger, env="prod") == set()


# -- end to end: one event per operation -----------------------------------------------


def test_one_event_per_operation_with_its_digests_and_task_definitions(
    tmp_path: Path, aws_env: str
) -> None:
    from tests.support.release_world import ledger_of, new_digests, release_world

    world = release_world(tmp_path, aws_env)
    first = world.seeded.digests
    second = new_digests(world)
    before = {
        e: {s: d["taskDefinition"] for s, d in world.services(e).items()}
        for e in ("staging", "mb-staging")
    }
    code, promoted = world.cli_json("promote", "--tier", "staging", "--message", "weekly")
    assert code == 0, promoted
    code, deployed = world.cli_json("deploy", "--env", "mb-staging")
    assert code == 0, deployed
    r = world.cli("promote", "--tier", "staging", "--dry-run")
    assert r.exit_code == 0
    events = ledger_of(world).events()
    assert [e["command"] for e in events] == ["deploy", "promote"]  # a dry run records nothing
    deploy_event, promote_event = events
    assert promote_event["id"] == promoted["event"] and deploy_event["id"] == deployed["event"]
    assert promote_event["message"] == "weekly" and promote_event["status"] == "ok"
    images = {i["image"]: i for i in promote_event["images"]}
    for name in ("api", "worker"):
        assert images[name]["from_digest"] == first[name]
        assert images[name]["to_digest"] == second[name]
        assert images[name]["tag"] == "staging" and images[name]["status"] == "moved"
        assert images[name]["commit"] == world.head
    for env in ("staging", "mb-staging"):
        services = promote_event["environments"][env]["services"]
        for svc in ("api", "worker"):
            s = services[svc]
            # force-new-deployment: the same task definition, a new digest
            assert s["task_definition_before"] == before[env][svc]
            assert s["task_definition_after"] == world.services(env)[svc]["taskDefinition"]
            assert (s["digest_before"], s["digest_after"]) == (first[svc], second[svc])
            assert s["status"] == "completed"
    assert deploy_event["tier"] == "staging"
    assert set(deploy_event["environments"]) == {"mb-staging"}
    assert {
        s["status"] for s in deploy_event["environments"]["mb-staging"]["services"].values()
    } == {"skipped"}
    code, doc = world.cli_json("history", "--env", "mb-staging", "--limit", "1")
    assert code == 0 and [e["command"] for e in doc["events"]] == ["deploy"]
    code, doc = world.cli_json("history", "--image", "api", "--tier", "staging")
    assert [e["command"] for e in doc["events"]] == ["promote"]
    r = world.cli("history", "--tier", "nope")
    assert r.exit_code == 2 and "unknown tier" in r.output


def test_an_amendment_folds_into_the_event_it_amends(ledger: Ledger) -> None:
    """Steps that run after their event is written (notify names it) are recorded as an
    amendment: reading shows them in that event, and never the amendment by itself."""
    from tierup.pipeline.events import Event, amendment

    first = ledger.record(Event.from_json(_event("promote", "staging")))
    later = ledger.record(Event.from_json(_event("promote", "staging")))
    ledger.record(amendment(first, [{"as": "team", "uses": "notify", "status": "ok"}]))
    ledger.record(
        amendment(first, [{"as": "page", "uses": "notify", "status": "failed", "error": "500"}])
    )
    ledger.record(Event.from_json(_event("promote", "dev")))
    events = ledger.events(tier="staging")
    assert [e["id"] for e in events] == [later.id, first.id]
    assert [(s["as"], s["status"]) for s in events[1]["steps"]] == [
        ("team", "ok"),
        ("page", "failed"),
    ]
    assert "steps" not in events[0]
    assert [e["command"] for e in ledger.events()] == ["promote", "promote", "promote"]
    assert len(ledger.events(tier="staging", limit=2)) == 2
    assert ledger.events(tier="staging", limit=2)[1]["steps"][0]["as"] == "team"
