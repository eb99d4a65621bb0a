"""In-memory fakes with the same conditional semantics as the DynamoDB-backed adapters."""

from __future__ import annotations

import copy
import threading
from dataclasses import replace
from datetime import datetime
from typing import Any

from tfjanitor.alerts.emails import Email, render
from tfjanitor.alerts.lifecycle import CLOSED, OPEN, AlertRecord, Notice, Sighting


class FakeAlertStore:
    def __init__(self) -> None:
        self.records: dict[str, AlertRecord] = {}
        self.sightings: dict[str, tuple[str, int, datetime]] = {}  # fp -> (observed, count, first seen)
        self.releases: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def list_open(self) -> list[AlertRecord]:
        with self._lock:
            return [copy.deepcopy(r) for r in self.records.values() if r.status == OPEN]

    def get(self, fp: str) -> AlertRecord | None:
        with self._lock:
            return copy.deepcopy(self.records.get(fp))

    @staticmethod
    def _closed_before(current: AlertRecord | None, evidence: datetime) -> bool:
        return current is None or (
            current.status == CLOSED and (current.changed_at is None or current.changed_at < evidence)
        )

    def open(self, record: AlertRecord) -> bool:
        with self._lock:
            current = self.records.get(record.fingerprint)
            if not self._closed_before(current, record.changed_at or record.opened_at):
                return False
            self.records[record.fingerprint] = copy.deepcopy(record)
            return True

    def tombstone(self, fp: str, evidence: datetime) -> bool:
        with self._lock:
            current = self.records.get(fp)
            if not self._closed_before(current, evidence):
                return False
            base = current or AlertRecord(fp, CLOSED, "warning", "warning", "", {}, evidence, evidence)
            self.records[fp] = replace(base, status=CLOSED, changed_at=evidence)
            return True

    def escalate(self, fp: str, seen_notified: str, severity: str, finding: dict[str, Any], now: datetime) -> bool:
        with self._lock:
            r = self.records.get(fp)
            if r is None or r.status != OPEN or r.notified_severity != seen_notified:
                return False
            self.records[fp] = replace(r, severity=severity, notified_severity=severity, finding=finding,
                                       last_notified_at=now)
            return True

    def remind(self, fp: str, seen_last: datetime, now: datetime) -> bool:
        with self._lock:
            r = self.records.get(fp)
            if r is None or r.status != OPEN or r.last_notified_at != seen_last:
                return False
            self.records[fp] = replace(r, last_notified_at=now)
            return True

    def resolve(self, fp: str, now: datetime, resolution: str, evidence: datetime | None = None) -> bool:
        evidence = evidence or now
        with self._lock:
            r = self.records.get(fp)
            if r is None or r.status != OPEN or (r.changed_at is not None and r.changed_at >= evidence):
                return False
            self.records[fp] = replace(r, status=CLOSED, closed_at=now, resolution=resolution, changed_at=evidence)
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

    def record_release(self, fp: str, record: dict[str, Any], now: datetime) -> bool:
        with self._lock:
            r = self.records.get(fp)
            if r is None or r.status != OPEN:
                return False
            self.records[fp] = replace(r, status=CLOSED, closed_at=now, resolution="released by tfjanitor", changed_at=now)
            self.releases[fp] = record
            return True


class FakeNotifier:
    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.emails: list[Email] = []

    def send(self, notice: Notice) -> None:
        self.notices.append(notice)
        self.emails.append(render(notice))
