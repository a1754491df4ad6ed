"""The ledger's schema: typed, versioned events; a version 1 ledger on disk or in S3 reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.guarded import promote
from tests.support.release_world import new_commit
from tests.support.world import REGION, World, make_world
from tierup.pipeline.events import SCHEMA_VERSION, Event, EventStatus
from tierup.pipeline.ledger.base import EVENT_KEYS
from tierup.pipeline.ledger.identity import Identity
from tierup.pipeline.ledger.local import LocalLedger
from tierup.pipeline.ledger.s3 import S3Ledger
from tierup.pipeline.ledger.s3_store import S3Store

pytestmark = pytest.mark.usefixtures("aws_env")

# written by tierup before schema version 2 (events as JSON lines, no schema_version)
V1 = Path(__file__).resolve().parents[1] / "support" / "data" / "ledger-v1.jsonl"
V1_KEYS = EVENT_KEYS[:11]


def _v1_lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in V1.read_text().splitlines()]


def _identity(root: Path) -> Identity:
    return Identity(environ={"GITHUB_ACTOR": "alice"}, root=root, caller_arn=lambda: "arn:x")


def _check_v1(events: list[Event]) -> None:
    raw = _v1_lines()
    assert all("schema_version" not in e for e in raw)
    assert [e.id for e in events] == [e["id"] for e in reversed(raw)]
    commands = [e.command for e in reversed(events)]
    assert commands == [e["command"] for e in raw]
    for event, doc in zip(reversed(events), raw, strict=True):
        assert event.schema_version == SCHEMA_VERSION
        assert event.status == doc["status"]
        assert event.tier == doc["tier"] and event.actor == doc["actor"]
        assert [i.to_json() for i in event.images] == doc["images"]
        for env, e in doc["environments"].items():
            for name, s in e["services"].items():
                record = event.service(env, name)
                assert record is not None
                for key in ("task_definition_before", "task_definition_after", "status"):
                    assert record.to_json()[key] == s[key]
                assert record.digest_before == s["digest_before"]
                assert record.digest_after == s["digest_after"]
                # what version 1 kept beside (a rollback's source, pinned references) stays
                assert {k: v for k, v in record.to_json().items() if k in s} == s
        # read back and written again, a version 1 event keeps every key it had
        written = event.to_json()
        assert list(written)[: len(V1_KEYS)] == list(V1_KEYS)
        assert {k: written[k] for k in doc if k not in ("environments",)} == {
            k: v for k, v in doc.items() if k != "environments"
        }
    failed = next(e for e in events if e.command == "stamp" and e.status == EventStatus.FAILED)
    assert failed.service("prod", "api") is not None


def test_a_version_1_file_reads_as_typed_events(tmp_path: Path) -> None:
    path = tmp_path / ".tierup" / "ledger.jsonl"
    path.parent.mkdir()
    path.write_text(V1.read_text())
    ledger = LocalLedger(path, identity=_identity(tmp_path))
    _check_v1(ledger.read())
    assert [e["id"] for e in ledger.events(command="rollback")] == [
        e["id"] for e in reversed(_v1_lines()) if e["command"].startswith("rollback")
    ]
    # new events go on after the old ones, in the new version
    ledger.record(Event(command="unlock", tier="staging", status=EventStatus.OK))
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["schema_version"] == SCHEMA_VERSION
    assert len(ledger.read()) == len(lines)


def test_a_version_1_s3_ledger_reads_as_typed_events(tmp_path: Path) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="v1-ledger")
    for doc in _v1_lines():
        s3.put_object(Bucket="v1-ledger", Key=f"team/events/{doc['id']}.json", Body=json.dumps(doc))
    ledger = S3Ledger(S3Store(s3, "v1-ledger", "team"), identity=_identity(tmp_path))
    _check_v1(ledger.read())


def _v1_event(result: Any) -> dict[str, Any]:
    """A promotion's event exactly as tierup wrote it before version 2."""
    return {
        "id": "20261126T100000.000000Z-0000v1v1",
        "time": "2026-11-26T10:00:00Z",
        "actor": {"name": "Test User", "arn": None},
        "command": result.command,
        "tier": result.tier,
        "status": str(result.status),
        "message": None,
        "reason": None,
        "ci_url": None,
        "images": [
            {
                "image": i.image,
                "repository": i.repository,
                "tag": i.tag,
                "from_digest": i.previous_digest,
                "to_digest": i.digest,
                "commit": i.commit,
                "status": i.status,
            }
            for i in result.images
        ],
        "environments": {
            e.name: {
                "status": e.status,
                "services": {
                    s.service: {
                        "task_definition_before": s.previous_task_definition,
                        "task_definition_after": s.task_definition,
                        "digest_before": s.previous_digest,
                        "digest_after": s.digest,
                        "status": s.status,
                    }
                    for s in e.services
                },
            }
            for e in result.environments
        },
    }


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    return make_world(tmp_path, aws_env)


def test_rollbacks_go_back_by_a_version_1_record(world: World) -> None:
    before = {i: world.tag_digest(i, "dev") for i in ("api", "worker")}
    new_commit(world, "one")
    result = promote(world.config, world.clients(), tier="dev")
    assert result.exit_code == 0
    path = world.root / ".tierup" / "ledger.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(_v1_event(result)) + "\n")

    code, doc = world.cli_json("rollback", "tier", "--tier", "dev", "--dry-run")
    assert code == 0, doc
    assert {i: doc["images"][i]["digest"] for i in before} == before

    code, doc = world.cli_json("rollback", "service", "--env", "dev", "--service", "api")
    assert code == 0, doc
    api = doc["environments"]["dev"]["services"]["api"]
    assert api["source"] == "ledger" and api["status"] == "rolled_back", api

    r = world.cli("history", "--env", "dev")
    assert r.exit_code == 0, r.output
    assert "promote --tier dev  ok  by Test User" in r.stdout
