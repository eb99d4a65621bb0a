"""Alert lifecycle: open, worse, reminder, resolved - each notice queued exactly once.

The stack keeps its own small table of findings keyed by a stable fingerprint.
Every transition is a conditional write on what the writer last saw, so two
sweeps (or a sweep and the stream monitor) racing each other never queue the
same notice twice: only the writer whose condition held records the transition,
and the same write queues its notice as pending. :mod:`tfjanitor.alerts.delivery`
sends pending notices and marks each delivered only once SNS has accepted it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from tfjanitor.durations import Deadline
from tfjanitor.model import Finding, Kind, LockfileCoverage, ScanResult, Severity, bucket_scope, history_scope, table_scope

OPEN, CLOSED = "open", "closed"
CLOSED_TTL = timedelta(days=30)
DEFAULT_REMINDER = timedelta(hours=24)
ALERT_AT = Severity.WARNING  # info findings are logged and counted, never emailed


def fingerprint(kind: Kind | str, region: str, table: str | None, bucket: str | None, key: str | None, lock_id: str | None) -> str:
    """Stable identity of a problem: a new lock on the same state is a new alert."""
    kind_value = kind.value if isinstance(kind, Kind) else kind
    raw = json.dumps([kind_value, region, table, bucket, key, lock_id], ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def finding_fingerprint(f: Finding) -> str:
    return fingerprint(f.kind, f.region, f.table, f.bucket, f.key, f.lock_id)


def scope_of(f: Finding) -> str:
    """The alert's home scope (stored with it): its table, or its bucket. What must have been read to resolve it is
    :func:`requirements`."""
    return table_scope(f.region, f.table) if f.table else bucket_scope(f.region, str(f.bucket))


@dataclass
class AlertRecord:
    fingerprint: str
    status: str
    severity: str  # the finding's severity as last seen
    notified_severity: str  # the severity the last notice announced
    scope: str
    finding: dict[str, Any]
    opened_at: datetime
    last_notified_at: datetime
    closed_at: datetime | None = None
    resolution: str = ""
    # The time of the evidence behind the last open or close (a sweep's first read, a stream
    # record's timestamp): a decision on older evidence never undoes it.
    changed_at: datetime | None = None


def new_notice_id() -> str:
    """Unique, and in the order notices were made (nanoseconds first)."""
    return f"{time.time_ns():020d}-{secrets.token_hex(4)}"


@dataclass
class Notice:
    """One email-worthy transition."""

    event: str  # opened | worse | reminder | resolved | released
    finding: dict[str, Any]
    fingerprint: str
    at: datetime
    opened_at: datetime
    resolution: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_notice_id)  # the transition's: one delivery per id


@dataclass(frozen=True)
class Sighting:
    """What the findings table knows of one exact lock (its bytes): how many sweeps in a row saw it,
    and when tfjanitor first saw it (its own clock, never the lock's ``Created``)."""

    count: int
    first_seen: datetime | None


class AlertStore(Protocol):
    """The findings table; each method returns False when its condition did not hold.

    A transition and its ``notice`` are one write: both recorded (the notice pending) or neither.
    """

    def list_open(self) -> list[AlertRecord]: ...
    def get(self, fp: str) -> AlertRecord | None: ...
    def open(self, record: AlertRecord, notice: Notice) -> bool:
        """Open (or reopen) unless open already, or closed on evidence newer than ``record.changed_at``."""

    def escalate(self, fp: str, seen_notified: str, severity: str, finding: dict[str, Any], now: datetime, notice: Notice) -> bool: ...
    def remind(self, fp: str, seen_last: datetime, now: datetime, notice: Notice) -> bool: ...
    def resolve(self, fp: str, now: datetime, resolution: str, notice: Notice, evidence: datetime | None = None) -> bool:
        """Close an open alert, unless it changed on evidence newer than ``evidence`` (default ``now``)."""

    def tombstone(self, fp: str, evidence: datetime) -> bool:
        """Remember that the problem was gone at ``evidence`` (no alert was open): a run that read
        before that cannot open it."""

    def sight(self, fp: str, observed: str, now: datetime) -> Sighting: ...
    def record_release(self, fp: str, record: dict[str, Any], now: datetime, notice: Notice) -> bool: ...


def _rank(severity: str) -> int:
    return Severity(severity).rank


def _state(finding: dict[str, Any]) -> tuple[Any, Any, Any]:
    return finding.get("table"), finding.get("bucket"), finding.get("key")


# Kinds about a held lock: "not stale any more" needs the whole evidence of its liveness (its state object, the
# stack's history); "gone" needs only its table, read whole, without that lock in it.
_HELD_LOCK_KINDS = frozenset({Kind.STALE_LOCK.value, Kind.INTERRUPTED_WRITE.value, Kind.STALE_LOCKFILE.value})


def requirements(finding: dict[str, Any]) -> set[str]:
    """The scopes a run must have read whole to say this finding is gone: its table, its bucket (the object, the
    lock file), and for a held lock the stack's history (learned thresholds, digest writes). A malformed table item
    needs only its table (its bucket may be read by nobody)."""
    region, kind = str(finding.get("region")), finding.get("kind")
    table, bucket = finding.get("table"), finding.get("bucket")
    need = {table_scope(region, table)} if table else set()
    if bucket and not (table and kind == Kind.MALFORMED_ITEM.value):
        need.add(bucket_scope(region, bucket))
    if kind in _HELD_LOCK_KINDS:
        need.add(history_scope(region))
    return need


class Coverage(set[str]):
    """The scopes a run read and judged whole (positive evidence: ``ScanResult.covered``); for a bucket it did not
    list whole, also where it looked for lock files (scan/buckets.py): a lock-file alert elsewhere in it was not
    looked at; and the DynamoDB locks each table it read whole holds (``held``: (table, bucket, key) -> lock IDs).

    An alert may be resolved only if every scope its finding depends on (:func:`requirements`) is here, or, for a
    DynamoDB lock, if its table is here without that lock. A plain set of scopes given instead (unit tests of the
    lifecycle) stands for a caller that vouches for the alert's own scope."""

    def __init__(
        self,
        scopes: Iterable[str] = (),
        lockfiles: dict[str, LockfileCoverage] | None = None,
        held: dict[tuple[str, str, str], set[str]] | None = None,
    ):
        super().__init__(scopes)
        self.lockfiles = lockfiles or {}
        self.held = held

    def covers(self, scope: str, key: str | None) -> bool:
        partial = self.lockfiles.get(scope)
        return scope in self and (partial is None or partial.covers(key))

    def resolves(self, record: AlertRecord) -> bool:
        f = record.finding
        key = f.get("key")
        if not self.covers(record.scope, key):
            return False
        if self.held is not None and f.get("kind") in _HELD_LOCK_KINDS and f.get("table") and f.get("bucket") and key:
            region = str(f.get("region"))
            if table_scope(region, f["table"]) in self and f.get("lock_id") not in self.held.get(
                (f["table"], f["bucket"], key), set()
            ):
                return True  # its table was read whole and that lock is not in it: gone
        return all(self.covers(scope, key) for scope in requirements(f))


def _covers(covered: set[str], record: AlertRecord) -> bool:
    if isinstance(covered, Coverage):
        return covered.resolves(record)
    return record.scope in covered


def _seen(
    store: AlertStore, fp: str, f: Finding, record: AlertRecord | None, now: datetime, evidence: datetime, reminder: timedelta
) -> Notice | None:
    """A finding the check sees: its alert opened, escalated or reminded of (each a conditional write), or nothing."""
    doc = f.to_dict()
    if record is None:
        new = AlertRecord(fp, OPEN, f.severity.value, f.severity.value, scope_of(f), doc, now, now, changed_at=evidence)
        notice = Notice("opened", doc, fp, now, now)
        return notice if store.open(new, notice) else None
    if _rank(f.severity.value) > _rank(record.notified_severity):
        notice = Notice("worse", doc, fp, now, record.opened_at, extra={"was": record.notified_severity})
        return notice if store.escalate(fp, record.notified_severity, f.severity.value, doc, now, notice) else None
    if now - record.last_notified_at >= reminder:
        notice = Notice("reminder", doc, fp, now, record.opened_at)
        return notice if store.remind(fp, record.last_notified_at, now, notice) else None
    return None


def process_findings(
    findings: list[Finding],
    covered_scopes: set[str],
    store: AlertStore,
    now: datetime,
    reminder: timedelta = DEFAULT_REMINDER,
    resolvable_kinds: set[Kind] | None = None,
    resolution: str = "no longer seen",
    evidence_at: datetime | None = None,
    unverified: set[tuple[str, str, str]] | frozenset[tuple[str, str, str]] = frozenset(),
    not_looked_at: list[AlertRecord] | None = None,
    deadline: Deadline | None = None,
) -> list[Notice]:
    """Reconcile what a check saw with the open alerts; return the notices this caller queued.

    ``covered_scopes``: what the check read and judged whole (a :class:`Coverage`, from :func:`covered_scopes`). An
    open alert is resolved only if everything its finding depends on was covered and the check no longer sees it: an
    incomplete sweep never closes (never falsely all-clears) what it did not look at. ``evidence_at``: when the check's first
    read started (default ``now``): an alert opened or closed after that is left as it is.
    ``unverified``: (table, bucket, key) of states the check could not judge: their alerts stay open.
    ``not_looked_at``: if given, gets the open alerts of scopes read only in part (a :class:`Coverage`) that the
    check did not look at: the caller may look at them (``SweepRequest.recheck``).
    ``deadline``: past it, no more transitions are made (each is a write of its own, conditional on what was read):
    the next run makes the rest, and a run with many new findings still ends in time.
    """
    evidence = evidence_at or now
    notices: list[Notice] = []
    open_records = {r.fingerprint: r for r in store.list_open()}
    current: dict[str, Finding] = {}
    for f in findings:
        if f.severity.rank >= ALERT_AT.rank:
            current[finding_fingerprint(f)] = f
    for fp, f in current.items():
        if deadline is not None and deadline.left() <= 0:
            return notices
        notice = _seen(store, fp, f, open_records.get(fp), now, evidence, reminder)
        if notice is not None:
            notices.append(notice)
    # A stale lock whose run turns out to have died between its state and digest writes is the same lock, now an
    # interrupted write: its stale-lock alert is superseded (kept, never "resolved" while the lock is held).
    superseded = {(f.bucket, f.key, f.lock_id) for f in current.values() if f.kind is Kind.INTERRUPTED_WRITE}
    for fp, record in open_records.items():
        if fp in current or _state(record.finding) in unverified:
            continue
        doc = record.finding
        if doc.get("kind") in _HELD_LOCK_KINDS and (doc.get("bucket"), doc.get("key"), doc.get("lock_id")) in superseded:
            continue
        if deadline is not None and deadline.left() <= 0:
            return notices
        if resolvable_kinds is not None and record.finding.get("kind") not in {k.value for k in resolvable_kinds}:
            continue
        if not _covers(covered_scopes, record):
            key = record.finding.get("key")
            if (
                not_looked_at is not None
                and key
                and isinstance(covered_scopes, Coverage)
                and record.scope in covered_scopes
                and not covered_scopes.covers(record.scope, key)
            ):
                not_looked_at.append(record)  # a lock file the reads did not reach
            continue
        if record.changed_at is not None and record.changed_at >= evidence:
            continue  # opened on evidence newer than ours: we cannot know it is gone
        notice = Notice("resolved", record.finding, fp, now, record.opened_at, resolution)
        if store.resolve(fp, now, resolution, notice, evidence):
            notices.append(notice)
    return notices


def covered_scopes(result: ScanResult) -> Coverage:
    """What a run read and judged whole (``result.covered``: positive evidence, never derived from the absence of
    errors), with where it looked for lock files in the buckets it did not list whole and the locks each table held."""
    held: dict[tuple[str, str, str], set[str]] = {}
    for lock in result.locks:
        if lock.table is not None:
            held.setdefault((lock.table, lock.bucket, lock.key), set()).add(str(lock.lock.get("id")))
    return Coverage(result.covered, {bucket_scope(result.region, b): c for b, c in result.lockfile_coverage.items()}, held)


def resolve_if_open(
    store: AlertStore, fp: str, now: datetime, resolution: str, evidence: datetime | None = None, tombstone: bool = False
) -> Notice | None:
    """Close one alert on evidence from ``evidence`` (default ``now``): e.g. the stream monitor saw the
    lock released at that time. A notice if we closed it. With ``tombstone``, remember the problem was
    gone then even if no alert is open, so a sweep that read before it cannot open it afterwards."""
    evidence = evidence or now
    for _ in range(3):  # a racing sweep may open it between our read and our write: look again
        record = store.get(fp)
        if record is not None and record.status == OPEN:
            if record.changed_at is not None and record.changed_at >= evidence:
                return None  # opened on newer evidence than ours
            notice = Notice("resolved", record.finding, fp, now, record.opened_at, resolution)
            return notice if store.resolve(fp, now, resolution, notice, evidence) else None
        if not tombstone or store.tombstone(fp, evidence):
            return None
        if record is not None and record.changed_at is not None and record.changed_at >= evidence:
            return None  # closed already, on newer evidence
    return None


def open_one(store: AlertStore, finding: Finding, now: datetime, evidence: datetime | None = None) -> Notice | None:
    """Open one alert outside a sweep (the stream monitor's drift check, read at ``evidence``)."""
    fp = finding_fingerprint(finding)
    doc = finding.to_dict()
    record = AlertRecord(
        fp, OPEN, finding.severity.value, finding.severity.value, scope_of(finding), doc, now, now, changed_at=evidence or now
    )
    notice = Notice("opened", doc, fp, now, now)
    return notice if store.open(record, notice) else None
