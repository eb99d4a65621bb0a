"""Releasing stale locks safely: by hand (``tfjanitor unlock``) and, opt-in, by the sweeper.

Every release deletes exactly the lock that was observed (DynamoDB ``Info = :info``, S3
``If-Match: <etag>``), never a digest item or a state object. A lock that changed or
vanished between observation and delete is left alone and reported.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .adapters import AwsError, LockGone, LockWriter
from .alerts import OPEN, AlertStore, Notice, finding_fingerprint
from .findings import human_duration
from .model import Finding, Kind
from .terraform import LOCKFILE_SUFFIX, LockInfo, MalformedItem, format_time, normalize_etag, parse_lock_info

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
            "source": self.source, "table": self.table, "bucket": self.bucket, "key": self.key,
            "lock_id": self.lock_id,
        }
        if self.source == LOCKFILE:
            doc["object"] = f"s3://{self.bucket}/{self.key}{LOCKFILE_SUFFIX}"
            doc["etag"] = self.etag
        if self.lock:
            doc.update({
                "operation": self.lock.operation, "who": self.lock.who, "version": self.lock.version,
                "created": format_time(self.lock.created), "age_seconds": int(self.lock.age_seconds(now)),
            })
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


def _parse(raw: str) -> LockInfo | None:
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
            found.append(ObservedLock(DYNAMODB, bucket, key, raw, _parse(raw), table=table))
    if lockfile:
        got = writer.read_lockfile(bucket, key + LOCKFILE_SUFFIX)
        if got is not None:
            body, etag = got
            raw = body.decode("utf-8", errors="replace")
            found.append(ObservedLock(LOCKFILE, bucket, key, raw, _parse(raw), etag=normalize_etag(etag)))
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


# -- automatic release by the sweeper (opt-in) -------------------------------------------

@dataclass(frozen=True)
class ReleasePolicy:
    enabled: bool = False
    grace: timedelta = timedelta(minutes=30)  # after the stale alert, before any release
    min_sightings: int = 2  # sweeps that saw the lock byte-for-byte unchanged
    protected: tuple[str, ...] = ()  # globs on the state key, e.g. "prod/**"
    operations: frozenset[str] = frozenset({"plan", "other"})  # apply only when allowed explicitly

    def protected_by(self, key: str) -> str | None:
        for pattern in self.protected:
            # "**" crosses "/" like "*" does in fnmatch; "prod/**" also covers "prod" itself.
            if fnmatch.fnmatchcase(key, pattern) or fnmatch.fnmatchcase(key, pattern.replace("/**", "*")):
                return pattern
        return None


@dataclass
class Decision:
    finding: Finding
    observed: ObservedLock
    release: bool
    rule: str  # why it may or may not be released
    details: dict[str, Any] = field(default_factory=dict)


def decide(
    policy: ReleasePolicy, finding: Finding, observed: ObservedLock, opened_at: datetime | None,
    sightings: int, now: datetime,
) -> Decision:
    """Whether the sweeper may release this stale lock now, and the rule that says so."""
    lock = observed.lock
    if not policy.enabled:
        return Decision(finding, observed, False, "auto-release is off")
    if lock is None:
        return Decision(finding, observed, False, "not a valid Terraform lock: left for a person")
    if opened_at is None:
        return Decision(finding, observed, False, "not yet reported stale (alert first)")
    if now - opened_at < policy.grace:
        left = human_duration((policy.grace - (now - opened_at)).total_seconds())
        return Decision(finding, observed, False, f"grace period: {left} left after the stale alert")
    if sightings < policy.min_sightings:
        return Decision(finding, observed, False, f"seen unchanged in {sightings} of {policy.min_sightings} sweeps")
    pattern = policy.protected_by(observed.key)
    if pattern:
        return Decision(finding, observed, False, f"state key matches protected pattern {pattern!r}")
    if lock.operation_class not in policy.operations:
        return Decision(finding, observed, False,
                        f"{lock.operation_class} locks are not allowed for auto-release")
    rule = (
        f"stale for {human_duration(lock.age_seconds(now))} (threshold "
        f"{human_duration(finding.details.get('threshold_seconds', 0))}), alerted {human_duration((now - opened_at).total_seconds())} "
        f"ago (grace {human_duration(policy.grace.total_seconds())}), unchanged in {sightings} sweeps, "
        f"operation class {lock.operation_class} allowed, key not protected"
    )
    return Decision(finding, observed, True, rule)


def observed_from_finding(finding: Finding) -> ObservedLock | None:
    """The lock a stale finding saw, exactly (the engine keeps the raw Info / body and ETag)."""
    raw = finding.details.get("raw")
    if not isinstance(raw, str) or finding.bucket is None or finding.key is None:
        return None
    if finding.kind is Kind.STALE_LOCK:
        return ObservedLock(DYNAMODB, finding.bucket, finding.key, raw, _parse(raw), table=finding.table)
    if finding.kind is Kind.STALE_LOCKFILE:
        return ObservedLock(LOCKFILE, finding.bucket, finding.key, raw, _parse(raw),
                            etag=normalize_etag(finding.details.get("etag")))
    return None


def auto_release(
    findings: list[Finding], store: AlertStore, writer: LockWriter, policy: ReleasePolicy, now: datetime,
    sweep_id: str,
) -> tuple[list[Notice], list[Decision]]:
    """The sweeper's opt-in hands: staged, conditional, recorded releases of stale locks."""
    notices: list[Notice] = []
    decisions: list[Decision] = []
    for finding in findings:
        if finding.kind not in (Kind.STALE_LOCK, Kind.STALE_LOCKFILE):
            continue
        observed = observed_from_finding(finding)
        if observed is None:
            continue
        fp = finding_fingerprint(finding)
        record = store.get(fp)
        opened_at = record.opened_at if record is not None and record.status == OPEN else None
        sightings = store.sight(fp, observed.fingerprint, now) if opened_at is not None else 0
        decision = decide(policy, finding, observed, opened_at, sightings, now)
        decisions.append(decision)
        if not decision.release:
            continue
        outcome = release(writer, observed)
        decision.details = {"released": outcome.released, "reason": outcome.reason}
        if not outcome.released:
            continue
        lock = observed.lock
        assert lock is not None
        entry = {
            "released_at": now.isoformat(), "sweep": sweep_id, "rule": decision.rule, "source": observed.source,
            "table": observed.table, "bucket": observed.bucket, "key": observed.key, "etag": observed.etag,
            "original_info": observed.raw,
        }
        if store.record_release(fp, entry, now):
            doc = finding.to_dict()
            notices.append(Notice("released", doc, fp, now, opened_at or now, "released by tfjanitor",
                                  extra={"rule": decision.rule, "sweep": sweep_id}))
    return notices, decisions


__all__ = ["AwsError", "Decision", "auto_release", "ObservedLock", "ReleasePolicy", "ReleaseResult", "decide", "observe", "release"]
