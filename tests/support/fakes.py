"""In-memory fakes with the same conditional semantics as the DynamoDB-backed adapters."""

from __future__ import annotations

import copy
import random
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from tests.support.faults import http_headers
from tfjanitor.alerts.delivery import Progress
from tfjanitor.alerts.emails import Email, render
from tfjanitor.alerts.lifecycle import CLOSED, OPEN, AlertRecord, Notice, Sighting
from tfjanitor.aws.session import AwsError


@dataclass
class Queued:
    """A notice in the fake outbox (the findings table's ``notice#`` items)."""

    notice: Notice
    delivered: bool = False
    reached: dict[str, str] = field(default_factory=dict)  # topic ARN -> MessageId
    claim: str | None = None
    claimed_until: datetime | None = None
    attempts: int = 0
    gave_up: dict[str, str] = field(default_factory=dict)  # destination -> why
    undeliverable: bool = False

    @property
    def pending(self) -> bool:
        return not self.delivered and not self.undeliverable

    @property
    def progress(self) -> Progress:
        return Progress(frozenset(self.reached), frozenset(self.gave_up))


class FakeAlertStore:
    """The findings table in memory: transitions and their notices are written together or not at all."""

    def __init__(self) -> None:
        self.records: dict[str, AlertRecord] = {}
        self.sightings: dict[str, tuple[str, int, datetime]] = {}  # fp -> (observed, count, first seen)
        self.releases: dict[str, dict[str, Any]] = {}
        self.outbox: dict[str, Queued] = {}
        self._lock = threading.Lock()

    def _queue(self, notice: Notice) -> None:
        assert notice.id not in self.outbox
        self.outbox[notice.id] = Queued(copy.deepcopy(notice))

    def list_open(self) -> list[AlertRecord]:
        with self._lock:
            return [copy.deepcopy(r) for r in self.records.values() if r.status == OPEN]

    def get(self, fp: str) -> AlertRecord | None:
        with self._lock:
            return copy.deepcopy(self.records.get(fp))

    @staticmethod
    def _closed_before(current: AlertRecord | None, evidence: datetime) -> bool:
        return current is None or (current.status == CLOSED and (current.changed_at is None or current.changed_at < evidence))

    def open(self, record: AlertRecord, notice: Notice) -> bool:
        with self._lock:
            current = self.records.get(record.fingerprint)
            if not self._closed_before(current, record.changed_at or record.opened_at):
                return False
            self.records[record.fingerprint] = copy.deepcopy(record)
            self._queue(notice)
            return True

    def tombstone(self, fp: str, evidence: datetime) -> bool:
        with self._lock:
            current = self.records.get(fp)
            if not self._closed_before(current, evidence):
                return False
            base = current or AlertRecord(fp, CLOSED, "warning", "warning", "", {}, evidence, evidence)
            self.records[fp] = replace(base, status=CLOSED, changed_at=evidence)
            return True

    def escalate(self, fp: str, seen_notified: str, severity: str, finding: dict[str, Any], now: datetime, notice: Notice) -> bool:
        with self._lock:
            r = self.records.get(fp)
            if r is None or r.status != OPEN or r.notified_severity != seen_notified:
                return False
            self.records[fp] = replace(r, severity=severity, notified_severity=severity, finding=finding, last_notified_at=now)
            self._queue(notice)
            return True

    def remind(self, fp: str, seen_last: datetime, now: datetime, notice: Notice) -> bool:
        with self._lock:
            r = self.records.get(fp)
            if r is None or r.status != OPEN or r.last_notified_at != seen_last:
                return False
            self.records[fp] = replace(r, last_notified_at=now)
            self._queue(notice)
            return True

    def resolve(self, fp: str, now: datetime, resolution: str, notice: Notice, evidence: datetime | None = None) -> bool:
        evidence = evidence or now
        with self._lock:
            r = self.records.get(fp)
            if r is None or r.status != OPEN or (r.changed_at is not None and r.changed_at >= evidence):
                return False
            self.records[fp] = replace(r, status=CLOSED, closed_at=now, resolution=resolution, changed_at=evidence)
            self._queue(notice)
            return True

    def sight(self, fp: str, observed: str, now: datetime) -> Sighting:
        with self._lock:
            r = self.records.get(fp)
            if r is None or r.status != OPEN:
                return Sighting(0, None)
            seen = self.sightings.get(fp)
            if seen and seen[0] == observed:
                self.sightings[fp] = (observed, seen[1] + 1, seen[2])
            else:
                self.sightings[fp] = (observed, 1, now)
            return Sighting(self.sightings[fp][1], self.sightings[fp][2])

    def record_release(self, fp: str, record: dict[str, Any], now: datetime, notice: Notice) -> bool:
        with self._lock:
            r = self.records.get(fp)
            if r is None or r.status != OPEN:
                return False
            self.records[fp] = replace(r, status=CLOSED, closed_at=now, resolution="released by tfjanitor", changed_at=now)
            self.releases[fp] = record
            self._queue(notice)
            return True

    def pending_notices(self) -> list[Notice]:
        return [notice for notice, _ in self.queued_notices()]

    def queued_notices(self) -> list[tuple[Notice, Progress]]:
        with self._lock:
            return sorted(
                ((copy.deepcopy(q.notice), q.progress) for q in self.outbox.values() if q.pending), key=lambda queued: queued[0].id
            )

    def claim_notice(self, notice_id: str, token: str, until: datetime, now: datetime) -> Progress | None:
        with self._lock:
            q = self.outbox.get(notice_id)
            if q is None or not q.pending or (q.claimed_until is not None and q.claimed_until >= now):
                return None
            q.claim, q.claimed_until, q.attempts = token, until, q.attempts + 1
            return q.progress

    def _if_claimed(self, notice_id: str, token: str, **changes: Any) -> bool:
        """Apply ``changes`` to the queued notice if ``token`` still holds its claim (DynamoDB: ``Claim = :token``)."""
        with self._lock:
            q = self.outbox[notice_id]
            if q.claim != token:
                return False
            for name, value in changes.items():
                setattr(q, name, value)
            return True

    def notice_reached(self, notice_id: str, token: str, arn: str, message_id: str) -> bool:
        with self._lock:
            reached = {**self.outbox[notice_id].reached, arn: message_id}
        return self._if_claimed(notice_id, token, reached=reached)

    def notice_delivered(self, notice_id: str, token: str, now: datetime) -> bool:
        return self._if_claimed(notice_id, token, delivered=True, claim=None, claimed_until=None)

    def notice_gave_up(self, notice_id: str, token: str, arn: str, error: str) -> bool:
        with self._lock:
            gave_up = {**self.outbox[notice_id].gave_up, arn: error}
        return self._if_claimed(notice_id, token, gave_up=gave_up)

    def notice_undeliverable(self, notice_id: str, token: str, now: datetime) -> bool:
        return self._if_claimed(notice_id, token, undeliverable=True, claim=None, claimed_until=None)

    def notice_failed(self, notice_id: str, token: str, error: str) -> bool:
        return self._if_claimed(notice_id, token, claim=None, claimed_until=None)


class FlakySender:
    """Stands in for the alert topics: renders each notice, and fails a share of the publishes."""

    def __init__(self, failure_rate: float = 0.0, seed: int = 0, arns: tuple[str, ...] = ("topic",)) -> None:
        self.failure_rate = failure_rate
        self.arns = list(arns)
        self.published: list[tuple[str, Notice, Email]] = []  # (topic, notice, email)
        self.failures = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def send(self, notice: Notice, arn: str, compact: bool = False) -> str:
        """``compact``: the Sender protocol's; a fake that never refuses a message is never asked for it."""
        email = render(notice)
        with self._lock:
            if self._random.random() < self.failure_rate:
                self.failures += 1
                raise AwsError("Publish", "Throttling", "Rate exceeded")
            self.published.append((arn, notice, email))
            return f"msg-{len(self.published)}"


def fail_publishes(session: boto3.session.Session, share: float, seed: int = 0) -> Counter[str]:
    """Make a share of the SNS ``Publish`` calls of clients made from ``session`` fail as throttled (the
    others reach the emulator). Returns the running count of ``failed`` and ``passed`` calls."""
    rng, counts = random.Random(seed), Counter[str]()
    lock = threading.Lock()

    def maybe_fail(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        with lock:
            failed = rng.random() < share
            counts["failed" if failed else "passed"] += 1
        if not failed:
            return None
        error = {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
        return AWSResponse("https://sns.invalid/", 400, http_headers(), None), error

    session.events.register(
        "before-call.sns.Publish",
        maybe_fail,  # type: ignore[arg-type]  # a before-call handler returns the call's answer; the stubs say None
    )
    return counts


def refuse_put_events(session: boto3.session.Session, times: int) -> Counter[str]:
    """Make EventBridge refuse the entry of the next ``times`` ``PutEvents`` calls of clients made from
    ``session`` the way it does: HTTP 200, ``FailedEntryCount`` 1 and the entry's ``ErrorCode``."""
    counts = Counter[str]()

    def refuse(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        counts["calls"] += 1
        if counts["refused"] >= times:
            return None
        counts["refused"] += 1
        body = {
            "FailedEntryCount": 1,
            "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}],
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }
        return AWSResponse("https://events.invalid/", 200, http_headers(), None), body

    session.events.register(
        "before-call.events.PutEvents",
        refuse,  # type: ignore[arg-type]  # a before-call handler returns the call's answer; the stubs say None
    )
    return counts
