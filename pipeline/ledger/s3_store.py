"""The store in S3: exclusive create with ``IfNoneMatch``, errors with a hint."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tierup.stages.adapters.aws import error_code, raise_translated
from tierup.stages.errors import AwsError

# S3 answers a lost conditional write with 412; a concurrent one still in flight gives 409
_KEY_TAKEN = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


class S3Store:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _fail(self, e: Exception, action: str) -> None:
        if error_code(e) == "NoSuchBucket":
            raise AwsError(
                f"{action}: bucket {self.bucket!r} does not exist",
                hint="create it, or fix ledger.s3 in envs.yaml",
            ) from e
        raise_translated(e, action, hint="check ledger.s3 in envs.yaml and the caller's S3 access")

    def create(self, key: str, body: bytes) -> bool:
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=body,
                IfNoneMatch="*",
                ContentType="application/json",
            )
        except Exception as e:
            if error_code(e) in _KEY_TAKEN:
                return False
            self._fail(e, f"writing {self.where}{key}")
        return True

    def read(self, key: str) -> bytes | None:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return bytes(resp["Body"].read())
        except Exception as e:
            if error_code(e) in ("NoSuchKey", "404", "NotFound"):
                return None
            self._fail(e, f"reading {self.where}{key}")
        return None

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as e:
            self._fail(e, f"deleting {self.where}{key}")

    def put(self, key: str, body: bytes) -> None:
        """Write ``key``, replacing it (the ledger's index, which is rebuilt from the events)."""
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=body, ContentType="application/json"
            )
        except Exception as e:
            self._fail(e, f"writing {self.where}{key}")

    def keys(self, prefix: str, *, after: str | None = None) -> list[tuple[str, datetime]]:
        """As ``Store.keys``; ``after``: only the keys that sort after ``prefix + after``."""
        out: list[tuple[str, datetime]] = []
        extra = {"StartAfter": self._key(prefix + after)} if after is not None else {}
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix), **extra
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    modified = obj["LastModified"]
                    if modified.tzinfo is None:
                        modified = modified.replace(tzinfo=UTC)
                    out.append((obj["Key"][len(self.prefix) :], modified))
        except Exception as e:
            self._fail(e, f"listing {self.where}{prefix}")
        return out
