"""Releasing one observed lock: exactly that lock (DynamoDB ``Info = :info``, S3 ``If-Match``) or nothing.

Never a digest item or a state object. A lock that changed or vanished between observation and
delete is left alone and reported. Used by ``tfjanitor unlock`` and by the sweeper's auto-release.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tfjanitor.aws.backend import LockGone, LockWriter
from tfjanitor.terraform import LOCKFILE_SUFFIX, LockInfo, MalformedItem, format_time, normalize_etag, parse_lock_info

DYNAMODB, LOCKFILE = "dynamodb", "lockfile"


@dataclass(frozen=True)
class ObservedLock:
    source: str  # dynamodb | lockfile
    bucket: str
    key: str  # the state key (without .tflock)
    raw: str  # Info JSON (DynamoDB) or the .tflock body, exactly as read
    lock: LockInfo | None  # None when the raw value is not a valid LockInfo
    table: str | None = None
    etag: str | None = None  # lockfile only

    @property
    def lock_id(self) -> str | None:
        return self.lock.id if self.lock else None

    @property
    def fingerprint(self) -> str:
        """Byte-for-byte identity of what was observed (the value and, for S3, the ETag)."""
        return hashlib.sha256(f"{self.source}\0{self.raw}\0{self.etag or ''}".encode()).hexdigest()

    def describe(self, now: datetime) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "source": self.source,
            "table": self.table,
            "bucket": self.bucket,
            "key": self.key,
            "lock_id": self.lock_id,
        }
        if self.source == LOCKFILE:
            doc["object"] = f"s3://{self.bucket}/{self.key}{LOCKFILE_SUFFIX}"
            doc["etag"] = self.etag
        if self.lock:
            doc.update(
                {
                    "operation": self.lock.operation,
                    "who": self.lock.who,
                    "version": self.lock.version,
                    "created": format_time(self.lock.created),
                    "age_seconds": int(self.lock.age_seconds(now)),
                }
            )
        else:
            doc["problem"] = "not a valid Terraform lock"
        return doc


@dataclass
class ReleaseResult:
    lock: ObservedLock
    released: bool
    reason: str  # what happened, in one sentence

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {**self.lock.describe(now), "released": self.released, "reason": self.reason}


def lock_info_or_none(raw: str) -> LockInfo | None:
    try:
        return parse_lock_info(raw)
    except MalformedItem:
        return None


def observe(writer: LockWriter, bucket: str, key: str, table: str | None, lockfile: bool) -> list[ObservedLock]:
    """The locks one state holds now: the DynamoDB item (if ``table``), the .tflock (if ``lockfile``)."""
    found: list[ObservedLock] = []
    if table:
        raw = writer.read_lock_item(table, f"{bucket}/{key}")
        if raw is not None:
            found.append(ObservedLock(DYNAMODB, bucket, key, raw, lock_info_or_none(raw), table=table))
    if lockfile:
        got = writer.read_lockfile(bucket, key + LOCKFILE_SUFFIX)
        if got is not None:
            body, etag = got
            raw = body.decode("utf-8", errors="replace")
            found.append(ObservedLock(LOCKFILE, bucket, key, raw, lock_info_or_none(raw), etag=normalize_etag(etag)))
    return found


def release(writer: LockWriter, observed: ObservedLock) -> ReleaseResult:
    """Delete exactly this lock, or nothing."""
    try:
        if observed.source == DYNAMODB:
            assert observed.table is not None
            writer.delete_lock_item(observed.table, f"{observed.bucket}/{observed.key}", observed.raw)
            where = f"lock item {observed.bucket}/{observed.key} in {observed.table}"
        else:
            assert observed.etag is not None
            writer.delete_lockfile(observed.bucket, observed.key + LOCKFILE_SUFFIX, f'"{observed.etag}"')
            where = f"s3://{observed.bucket}/{observed.key}{LOCKFILE_SUFFIX}"
    except LockGone as exc:
        return ReleaseResult(observed, False, f"not released: {exc}; nothing was deleted")
    return ReleaseResult(observed, True, f"released {where} (it still held lock {observed.lock_id})")
