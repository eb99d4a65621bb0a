"""The lock table's DynamoDB stream, understood record by record.

Every record Terraform causes is one of: lock acquired (INSERT with Info), lock
released (REMOVE of a lock item: hold time = release - Created), digest written
(INSERT/MODIFY with Digest), digest removed (workspace delete). Anything else is a
foreign or malformed record: reported, never a poison pill.

Handling is idempotent: checks only read, and alerts change through conditional
writes, so a record delivered twice changes nothing the second time.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from tfjanitor.alerts.lifecycle import AlertStore, Notice, fingerprint, open_one, resolve_if_open
from tfjanitor.aws.history import life_key
from tfjanitor.model import Kind, ScanResult
from tfjanitor.terraform import BadItem, DigestItem, LockInfo, LockItem, classify_item

LOCK_ACQUIRED, LOCK_RELEASED = "lock_acquired", "lock_released"
DIGEST_WRITTEN, DIGEST_REMOVED = "digest_written", "digest_removed"
FOREIGN, MALFORMED = "foreign", "malformed"


class MalformedRecord(ValueError):
    pass


@dataclass(frozen=True)
class StreamEvent:
    kind: str
    region: str
    table: str
    bucket: str | None = None
    key: str | None = None
    lock: LockInfo | None = None
    at: datetime | None = None
    reason: str = ""

    def happened_by(self, now: datetime) -> datetime:
        """A time the change had surely happened by: stream timestamps are whole seconds, rounded down."""
        return self.at + timedelta(seconds=1) if self.at is not None else now

    @property
    def hold_seconds(self) -> float | None:
        if self.kind != LOCK_RELEASED or self.lock is None or self.at is None:
            return None
        return max(0.0, (self.at - self.lock.created).total_seconds())


def parse_stream_arn(arn: str) -> tuple[str, str]:
    """``arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL`` -> (region, table)."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "dynamodb" or not parts[5].startswith("table/"):
        raise MalformedRecord(f"not a DynamoDB stream ARN: {arn!r}")
    return parts[3], parts[5].split("/")[1]


def classify_record(
    event_name: str, region: str, table: str, new_image: dict[str, Any] | None, old_image: dict[str, Any] | None, at: datetime | None
) -> StreamEvent:
    """Classify one stream record from its low-level (typed) images."""
    image = old_image if event_name == "REMOVE" else new_image
    if not image:
        return StreamEvent(MALFORMED, region, table, reason=f"{event_name} record without an image (stream view type?)")
    item = classify_item(image)
    if isinstance(item, BadItem):
        return StreamEvent(FOREIGN if item.foreign else MALFORMED, region, table, reason=item.reason)
    if isinstance(item, LockItem):
        if event_name == "INSERT":
            return StreamEvent(LOCK_ACQUIRED, region, table, item.bucket, item.key, item.lock, at)
        if event_name == "REMOVE":
            return StreamEvent(LOCK_RELEASED, region, table, item.bucket, item.key, item.lock, at)
        return StreamEvent(MALFORMED, region, table, item.bucket, item.key, reason="a lock item was modified in place")
    assert isinstance(item, DigestItem)
    kind = DIGEST_REMOVED if event_name == "REMOVE" else DIGEST_WRITTEN
    return StreamEvent(kind, region, table, item.bucket, item.key, at=at)


class StateChecker(Protocol):
    def check_state(self, region: str, table: str, bucket: str, key: str) -> ScanResult: ...


class LifeRecorder(Protocol):
    """Where the stream's signs of life and hold times are kept (aws.history.History)."""

    def digest_written(self, key: str, state: str, at: datetime) -> None: ...
    def record_hold(self, key: str, state: str, klass: str, lock_id: str, seconds: float, now: datetime) -> bool: ...


class CheckFailed(RuntimeError):
    """A drift check could not run: the record must be retried (partial batch failure)."""


@dataclass
class BatchSummary:
    """What the handler turns into metrics after the batch."""

    acquired: Counter[str] = field(default_factory=Counter)  # by operation class
    released: Counter[str] = field(default_factory=Counter)
    hold_seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    drift_detected: int = 0
    foreign: int = 0
    malformed: int = 0


@dataclass
class StreamMonitor:
    checker: StateChecker
    store: AlertStore | None
    summary: BatchSummary = field(default_factory=BatchSummary)
    log: Any = None  # a logger with info/warning; optional
    life: LifeRecorder | None = None  # digest writes and hold times, for the sweeper's liveness judgement

    def _notify(self, notice: Notice | None) -> None:
        """The transition queued its notice in the store: it is sent after the batch."""
        if notice is not None:
            self._say("info", "alert notice queued", event=notice.event, alert=notice.fingerprint)

    def _say(self, level: str, message: str, **extra: Any) -> None:
        if self.log is not None:
            getattr(self.log, level)(message, extra=extra)

    def handle(self, event: StreamEvent, now: datetime | None = None) -> None:
        now = now or datetime.now(timezone.utc)
        if event.kind == LOCK_ACQUIRED and event.lock:
            self.summary.acquired[event.lock.operation_class] += 1
        elif event.kind == LOCK_RELEASED and event.lock:
            klass = event.lock.operation_class
            self.summary.released[klass] += 1
            if event.hold_seconds is not None:
                self.summary.hold_seconds[klass].append(event.hold_seconds)
                if self.life is not None:  # idempotent: a redelivered release is recorded once
                    self.life.record_hold(
                        self._life_key(event), f"{event.bucket}/{event.key}", klass, event.lock.id, event.hold_seconds, now
                    )
            if self.store is not None:
                # Gone at the record's time: a sweep that read the lock before cannot reopen it afterwards. An
                # interrupted write's lock released: what is left, if the digest was not fixed, is drift.
                for kind in (Kind.STALE_LOCK, Kind.INTERRUPTED_WRITE):
                    fp = fingerprint(kind, event.region, event.table, event.bucket, event.key, event.lock.id)
                    self._notify(
                        resolve_if_open(
                            self.store, fp, now, "lock released", evidence=event.happened_by(now), tombstone=kind is Kind.STALE_LOCK
                        )
                    )
            self._check(event, now)  # a digest written under the lock is judged now
        elif event.kind == DIGEST_WRITTEN:
            if self.life is not None and event.at is not None:  # a sign of life of the run holding the lock
                self.life.digest_written(self._life_key(event), f"{event.bucket}/{event.key}", event.at)
            self._check(event, now)
        elif event.kind == DIGEST_REMOVED:
            if self.store is not None:
                for kind in (Kind.ORPHAN_DIGEST, Kind.DIGEST_DRIFT):
                    fp = fingerprint(kind, event.region, event.table, event.bucket, event.key, None)
                    self._notify(resolve_if_open(self.store, fp, now, "digest removed", evidence=event.happened_by(now)))
        elif event.kind == FOREIGN:
            self.summary.foreign += 1
            self._say("info", "foreign item in the lock table", table=event.table, reason=event.reason)
        else:
            self.summary.malformed += 1
            self._say("warning", "malformed lock-table record", table=event.table, reason=event.reason)

    @staticmethod
    def _life_key(event: StreamEvent) -> str:
        assert event.bucket is not None and event.key is not None
        return life_key(event.region, event.table, event.bucket, event.key)

    def _check(self, event: StreamEvent, now: datetime) -> None:
        assert event.bucket is not None and event.key is not None
        result = self.checker.check_state(event.region, event.table, event.bucket, event.key)
        if result.errors:
            raise CheckFailed("; ".join(e.message for e in result.errors))
        if result.unverified:
            return  # locked, maybe mid-write: the release record triggers the check; open alerts stay open
        for finding in result.findings:
            self.summary.drift_detected += finding.kind is Kind.DIGEST_DRIFT
            self._say("warning", finding.message, finding=finding.to_dict())
            if self.store is not None:
                self._notify(open_one(self.store, finding, now, evidence=result.read_at))
        if not result.findings and self.store is not None:
            for kind in (Kind.DIGEST_DRIFT, Kind.ORPHAN_DIGEST):
                fp = fingerprint(kind, event.region, event.table, event.bucket, event.key, None)
                self._notify(resolve_if_open(self.store, fp, now, "digest matches the state again", evidence=result.read_at))


def event_from_record(record: Any) -> StreamEvent:
    """A Powertools ``DynamoDBRecord`` (Lambda's shape) as a :class:`StreamEvent`.

    Never raises for a malformed record: it becomes a MALFORMED event (counted, logged).
    """
    try:
        region, table = parse_stream_arn(record.event_source_arn or "")
        stream = record.dynamodb
        raw = stream.raw_event if stream is not None else {}
        stamp = raw.get("ApproximateCreationDateTime")
        at = datetime.fromtimestamp(float(stamp), timezone.utc) if stamp is not None else None
        name = record.event_name.name if record.event_name is not None else ""
    except (MalformedRecord, AttributeError, TypeError, ValueError, KeyError, OverflowError, OSError) as exc:
        return StreamEvent(MALFORMED, "", "", reason=f"unreadable stream record: {exc}")
    return classify_record(name, region, table, raw.get("NewImage"), raw.get("OldImage"), at)
