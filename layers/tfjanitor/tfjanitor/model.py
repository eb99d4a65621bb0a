"""Plain result types shared by the engine, the CLI and the functions."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Any


class Severity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


class Kind(str, Enum):
    STALE_LOCK = "stale_lock"
    STALE_LOCKFILE = "stale_lockfile"
    DIGEST_DRIFT = "digest_drift"
    ORPHAN_DIGEST = "orphan_digest"
    CROSS_REGION_BUCKET = "cross_region_bucket"
    MALFORMED_ITEM = "malformed_item"


@dataclass
class Finding:
    kind: Kind
    severity: Severity
    region: str
    table: str | None
    bucket: str | None
    key: str | None
    lock_id: str | None
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    fix: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["kind"] = self.kind.value
        doc["severity"] = self.severity.value
        doc["details"] = {**self.details, "fix": list(self.fix)}
        del doc["fix"]
        return doc


@dataclass
class ScanError:
    """A check that could not run: the sweep is incomplete because of it."""

    check: str  # scan_table | list_bucket | bucket_location | read_state | read_lockfile | confirm
    target: str  # table or bucket (and key) the check was about
    code: str  # AWS error code, or a short name of ours
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TableStats:
    """Per lock table: what the metrics and the dashboard show."""

    items: int = 0
    active_locks: int = 0
    oldest_lock_age_seconds: float = 0.0
    buckets: list[str] = field(default_factory=list)


@dataclass
class Stats:
    items: int = 0
    lock_items: int = 0
    digest_items: int = 0
    malformed_items: int = 0
    states: int = 0
    lockfiles: int = 0
    objects_listed: int = 0
    etag_proven: int = 0
    downloads: int = 0
    bytes_downloaded: int = 0
    skipped_locked: int = 0
    api_calls: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    duration_seconds: float = 0.0
    tables: dict[str, TableStats] = field(default_factory=dict)

    @property
    def total_api_calls(self) -> int:
        return sum(self.api_calls.values())

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        for t in doc["tables"].values():
            t["oldest_lock_age_seconds"] = int(t["oldest_lock_age_seconds"])
        doc["api_calls"] = dict(sorted(self.api_calls.items()))
        doc["total_api_calls"] = self.total_api_calls
        doc["duration_seconds"] = round(self.duration_seconds, 3)
        return doc


@dataclass(frozen=True)
class StalePolicy:
    """When a lock counts as stale: one default, a shorter one for plan/refresh."""

    default: timedelta = timedelta(hours=1)
    read_only: timedelta = timedelta(minutes=15)

    def threshold(self, read_only: bool) -> timedelta:
        # A read-only threshold longer than the default would make no sense: cap it.
        return min(self.read_only, self.default) if read_only else self.default


@dataclass
class ScanResult:
    region: str
    tables: list[str]
    buckets: list[str]
    findings: list[Finding] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    releases: list[dict[str, Any]] = field(default_factory=list)  # auto-release decisions (sweeper)

    @property
    def complete(self) -> bool:
        return not self.errors

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)

    @property
    def exit_code(self) -> int:
        if not self.complete:
            return 2
        worst = self.worst
        return 1 if worst is not None and worst.rank >= Severity.WARNING.rank else 0

    def table_errors(self, table: str) -> list[ScanError]:
        """Errors that leave this table's part of the sweep incomplete."""
        buckets = self.stats.tables.get(table, TableStats()).buckets
        return [e for e in self.errors if e.target == table or e.target.partition("/")[0] in buckets]

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "complete": self.complete,
            "tables": list(self.tables),
            "buckets": list(self.buckets),
            "findings": [f.to_dict() for f in self.findings],
            "errors": [e.to_dict() for e in self.errors],
            "stats": self.stats.to_dict(),
        }
