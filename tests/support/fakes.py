"""In-memory fakes with the same conditional semantics as the DynamoDB-backed adapters."""

from __future__ import annotations

import copy
import threading
from dataclasses import replace
from datetime import datetime
from typing import Any

from tfjanitor.alerts import CLOSED, OPEN, AlertRecord, Notice
from tfjanitor.emails import Email, render


class FakeAlertStore:
    def __init__(self) -> None:
        self.records: dict[str, AlertRecord] = {}
        self._lock = threading.Lock()

    def list_open(self) -> list[AlertRecord]:
        with self._lock:
            return [copy.deepcopy(r) for r in self.records.values() if r.status == OPEN]

    def get(self, fp: str) -> AlertRecord | None:
        with self._lock:
            return copy.deepcopy(self.records.get(fp))

    def open(self, record: AlertRecord) -> bool:
        with self._lock:
            current = self.records.get(record.fingerprint)
            if current is not None and current.status != CLOSED:
                return False
            self.records[record.fingerprint] = copy.deepcopy(record)
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

    def resolve(self, fp: str, now: datetime, resolution: str) -> bool:
        with self._lock:
            r = self.records.get(fp)
            if r is None or r.status != OPEN:
                return False
            self.records[fp] = replace(r, status=CLOSED, closed_at=now, resolution=resolution)
            return True


class FakeNotifier:
    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.emails: list[Email] = []

    def send(self, notice: Notice) -> None:
        self.notices.append(notice)
        self.emails.append(render(notice))
