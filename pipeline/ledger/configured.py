"""The ledger envs.yaml configures: S3 when ``ledger.s3`` is set, else a file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tierup.pipeline.config import Config, EcrRegistry
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.ledger.identity import Identity
from tierup.pipeline.ledger.local import LocalLedger
from tierup.pipeline.ledger.s3 import S3Ledger
from tierup.pipeline.ledger.s3_store import S3Store
from tierup.pipeline.ledger.times import Clock, IdMaker, new_event_id
from tierup.pipeline.sessions import AwsSessions

DEFAULT_DIR = ".tierup"
DEFAULT_FILE = "ledger.jsonl"


def split_s3_url(url: str) -> tuple[str, str]:
    rest = url[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix


def _region(config: Config) -> str:
    if config.ledger is not None and config.ledger.region:
        return config.ledger.region
    if isinstance(config.registry, EcrRegistry):
        return config.registry.region
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def open_ledger(
    config: Config,
    sessions: AwsSessions,
    *,
    root: Path,
    environ: Mapping[str, str] | None = None,
    now: Clock | None = None,
    ids: IdMaker = new_event_id,
) -> Ledger:
    """The configured ledger: S3 when ``ledger.s3`` is set, else a file under ``root/.tierup``."""
    env = os.environ if environ is None else environ
    region = _region(config)
    identity = Identity(
        environ=dict(env),
        root=root,
        caller_arn=lambda: sessions.caller_arn(region=region),
    )
    identity.prefetch()
    lc = config.ledger
    if lc is not None and lc.s3:
        bucket, prefix = split_s3_url(lc.s3)
        client = sessions.client("s3", region=region, role_arn=lc.role_arn)
        return S3Ledger(S3Store(client, bucket, prefix), identity=identity, now=now, ids=ids)
    path = Path(lc.path) if lc is not None and lc.path else Path(DEFAULT_DIR) / DEFAULT_FILE
    if not path.is_absolute():
        path = root / path
    return LocalLedger(path, identity=identity, now=now, ids=ids)
