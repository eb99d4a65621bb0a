"""Plain result types shared by the engine, the CLI and the functions."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tfjanitor import catalog
from tfjanitor.commands import shell_line

# A finding's kind and severity live in the catalog, next to what describes each kind; every room keeps
# importing them from here.
Kind = catalog.Kind
Severity = catalog.Severity


@dataclass
class Alternative:
    """Another way to fix a finding: what it is for, and its commands (argument lists) in order."""

    label: str
    commands: list[list[str]]


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
    fix: list[str] = field(default_factory=list)  # the human explanation
    account: str | None = None  # the 12-digit AWS account, where known (the CLI asks STS; the Lambda its ARN)
    # The recommended fix as argument lists, run in order from the state's working directory; printed
    # as shell text only through commands.shell_line (details.commands / details.alternatives).
    commands: list[list[str]] = field(default_factory=list)
    alternatives: list[Alternative] = field(default_factory=list)

    def command_lines(self) -> list[str]:
        return [shell_line(argv) for argv in self.commands]

    def alternative_lines(self) -> list[dict[str, Any]]:
        return [{"label": a.label, "commands": [shell_line(argv) for argv in a.commands]} for a in self.alternatives]

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["kind"] = self.kind.value
        doc["severity"] = self.severity.value
        doc["details"] = {
            **self.details,
            "fix": list(self.fix),
            "commands": self.command_lines(),
            "alternatives": self.alternative_lines(),
        }
        for name in ("fix", "commands", "alternatives"):
            del doc[name]
        return doc


def table_scope(region: str, table: str) -> str:
    """What a run read when it read a lock table whole (and judged what it holds): alerts on it may be resolved."""
    return f"table:{region}:{table}"


def bucket_scope(region: str, bucket: str) -> str:
    """What a run read when it read a bucket (as its plan says: see scan/buckets.py) and judged its states."""
    return f"bucket:{region}:{bucket}"


def history_scope(region: str) -> str:
    """The stack's records of signs of life and hold times (learned thresholds), read in full."""
    return f"history:{region}"


# Which scope an error leaves unread, by its check (the target names the table or the bucket, and key). An error
# of any other check has no known scope: a run with one covers nothing (it resolves no alert).
_TABLE_CHECKS = frozenset({"scan_table", "confirm", "describe_table", "continuous_backups", "scan_peer_table", "lock_table_schema"})
_BUCKET_CHECKS = frozenset(
    {
        "bucket_location",
        "list_bucket",
        "head_object",
        "read_state",
        "read_lockfile",
        "bucket_spec",
        "bucket_versioning",
        "public_access_block",
        "bucket_policy",
        "bucket_lifecycle",
        "list_versions",
    }
)


@dataclass
class ScanError:
    """A check that could not run: the sweep is incomplete because of it."""

    # scan_table | list_bucket | bucket_location | read_state | read_lockfile | confirm; the audit adds
    # describe_table | continuous_backups | scan_peer_table | bucket_versioning | public_access_block |
    # bucket_policy | bucket_lifecycle | list_versions
    check: str
    target: str  # table or bucket (and key) the check was about
    code: str  # AWS error code, or a short name of ours
    message: str
    region: str | None = None  # set when a run reads several regions

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def scope(self, region: str) -> str | None:
        """The scope this error leaves unread (see :func:`table_scope`), or None when that is not known."""
        name = self.target.partition("/")[0]
        if self.check in _TABLE_CHECKS:
            return table_scope(self.region or region, self.target)
        if self.check in _BUCKET_CHECKS:
            return bucket_scope(self.region or region, name)
        if self.check == "read_history":
            return history_scope(self.region or region)
        return None

    @classmethod
    def out_of_time(cls, target: str, what: str, reason: object) -> ScanError:
        """The run's time budget ran out (``reason`` says which budget): incomplete, so it resolves nothing."""
        return cls(
            "time_budget",
            target,
            "TimeBudgetExceeded",
            f"{reason} before the {what} finished: what it found so far is real, nothing was resolved",
        )


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
    # The longest chain of calls made one after another (calls in parallel count once): with a fixed latency
    # per request, wall time is about this times the latency.
    critical_path_calls: int = 0
    retries: int = 0
    duration_seconds: float = 0.0
    tables: dict[str, TableStats] = field(default_factory=dict)
    # How each bucket was read: {"how": "listed" | "range" | "head" | ..., "pages": ListObjectsV2 calls,
    # "heads": HeadObject calls} (see scan/buckets.py).
    bucket_reads: dict[str, dict[str, Any]] = field(default_factory=dict)

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
    """When a lock counts as stale: one default, a shorter one for plan/refresh (the fixed thresholds),
    and how thresholds are learned from a state's own hold times (checks/liveness.py): ``adaptive``,
    ``multiplier`` x p95, never under ``min_stale_after``, once ``min_history`` holds are on record."""

    default: timedelta = timedelta(hours=1)
    read_only: timedelta = timedelta(minutes=15)
    adaptive: bool = True
    min_stale_after: timedelta = timedelta(minutes=10)
    multiplier: float = 3.0
    min_history: int = 5

    def threshold(self, read_only: bool) -> timedelta:
        # A read-only threshold longer than the default would make no sense: cap it.
        return min(self.read_only, self.default) if read_only else self.default


@dataclass(frozen=True)
class ObjectFacts:
    """One state object as a listing showed it (never its contents)."""

    etag: str  # without quotes
    size: int
    last_modified: datetime


@dataclass
class BucketFacts:
    region: str | None = None  # None: unknown (GetBucketLocation failed) or the bucket is missing
    exists: bool = True
    listed: bool = False
    objects: dict[str, ObjectFacts] = field(default_factory=dict)  # state keys the tables name
    lockfiles: set[str] = field(default_factory=set)  # state keys with a current .tflock


@dataclass
class Inventory:
    """What a sweep read, kept for the audit (checks/audit_rules.py): who holds what for each state.

    Keys are (bucket, state key). Only tables read without error appear in ``tables_read``.
    """

    locks: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)  # -> {table: lock summary}
    digests: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # -> {table: digest}
    buckets: dict[str, BucketFacts] = field(default_factory=dict)
    md5: dict[tuple[str, str], str] = field(default_factory=dict)  # object MD5s the sweep proved or computed
    tables_read: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class TableFacts:
    """A lock table's DescribeTable, reduced to what the audit judges."""

    name: str
    region: str
    key_schema: tuple[tuple[str, str, str], ...]  # (attribute, HASH|RANGE, S|N|B)
    status: str = "ACTIVE"
    deletion_protection: bool = False
    replicas: tuple[tuple[str, str], ...] = ()  # (region, ReplicaStatus), the table's own region included
    multi_region_consistency: str | None = None  # EVENTUAL (MREC) | STRONG (MRSC) | None
    global_table_version: str | None = None
    stream_enabled: bool = False
    stream_view_type: str | None = None
    latest_stream_arn: str | None = None


@dataclass(frozen=True)
class ObjectVersion:
    """One entry of ListObjectVersions (a version or a delete marker)."""

    key: str
    version_id: str
    is_latest: bool
    last_modified: datetime
    delete_marker: bool = False
    size: int = 0
    etag: str = ""  # without quotes ("" for a delete marker)


@dataclass(frozen=True)
class DriftHistory:
    """What a drifted state's versions show (scan/forensics.py)."""

    versioned: bool  # the listing showed more than one version (or a real version ID)
    matching: ObjectVersion | None  # the newest version whose content matches the stored digest
    overwritten_at: datetime | None  # when the next version (or delete marker) after it was written
    current_etag: str  # the ETag a restore must be conditional on
    downloads: int = 0
    bytes_downloaded: int = 0
    note: str = ""  # why the history is incomplete (listing failed, too many versions to hash)


@dataclass
class BucketPosture:
    """What a bucket's configuration calls returned (None: not configured at all)."""

    versioning: str | None = None  # Enabled | Suspended | None (never enabled)
    public_access_block: dict[str, bool] | None = None
    policy: str | None = None  # the policy document (JSON text)
    lifecycle_rules: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Unverified:
    """A state whose digest this run could not judge (it may be mid-write): neither drift nor healthy.

    An open alert on it stays open, unrepeated, until a later run verifies the state.
    """

    bucket: str
    key: str
    table: str  # "" for a lock file that could not be read
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HeldLock:
    """One lock held right now (``tfjanitor locks``): who holds it, its last sign of life, the threshold in
    force and the verdict (checks/liveness.py). ``table`` is None for a ``.tflock`` object."""

    bucket: str
    key: str
    table: str | None
    lock: dict[str, Any]  # LockInfo.summary()
    last_sign_of_life: dict[str, str]  # {"at", "what"}
    quiet_seconds: int
    threshold: dict[str, Any]  # Threshold.to_dict(): seconds, learned, why, fixed_seconds, runs, p95_seconds
    verdict: str  # alive | quiet | stale
    region: str = ""
    interrupted_write: bool = False
    clock_ahead_seconds: int = 0  # its Created is this far ahead of the reader's clock: silent since first seen

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "bucket": self.bucket,
            "key": self.key,
            "table": self.table,
            "lock_id": self.lock.get("id"),
            "operation": self.lock.get("operation"),
            "who": self.lock.get("who"),
            "created": self.lock.get("created"),
            "last_sign_of_life": dict(self.last_sign_of_life),
            "threshold_seconds": self.threshold.get("seconds"),
            "verdict": self.verdict,
            "quiet_seconds": self.quiet_seconds,
            "threshold_learned": self.threshold.get("learned"),
            "threshold_why": self.threshold.get("why"),
            "interrupted_write": self.interrupted_write,
            "clock_ahead_seconds": self.clock_ahead_seconds,
        }


BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class BucketSpec:
    """A bucket given by name (``--bucket``, ``ExtraBucketNames``): ``NAME`` or ``NAME/PREFIX``. Its ``.tflock``
    objects are looked for under the prefix (the whole bucket without one): states that lock with a lock file
    only are named by no lock table, so this is how the sweep finds them."""

    name: str
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> BucketSpec:
        name, slash, prefix = text.strip().partition("/")
        if not BUCKET_NAME.match(name):
            raise ValueError(
                f"{text!r} is not a bucket: give NAME or NAME/PREFIX (NAME: 3 to 63 lowercase letters, digits, dots or dashes)"
            )
        if slash and not prefix:
            raise ValueError(f"{text!r}: give a prefix after the slash, or the bucket name alone")
        return cls(name, prefix)

    def __str__(self) -> str:
        return f"{self.name}/{self.prefix}" if self.prefix else self.name


@dataclass
class LockfileCoverage:
    """Where a sweep looked for ``.tflock`` objects in a bucket it did not list whole: the prefixes and key ranges
    it listed (``(after, through)``: keys after ``after`` up to ``through``) and the states whose lock file it
    asked for by name. A lock-file alert outside these was not looked at: it is neither resolved nor re-sent."""

    prefixes: list[str] = field(default_factory=list)
    ranges: list[tuple[str, str]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)

    def covers(self, state_key: str | None) -> bool:
        if state_key is None:
            return False
        lockfile = state_key + ".tflock"
        return (
            state_key in self.keys
            or any(lockfile.startswith(p) for p in self.prefixes)
            or any(after < lockfile <= through for after, through in self.ranges)
        )


@dataclass
class ScanResult:
    region: str
    tables: list[str]
    buckets: list[str]
    findings: list[Finding] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    # What the sweep read, for the audit; never serialized (to_dict lists its fields explicitly).
    inventory: Inventory | None = field(default=None, repr=False, compare=False)
    releases: list[dict[str, Any]] = field(default_factory=list)  # auto-release decisions (sweeper)
    unverified: list[Unverified] = field(default_factory=list)
    locks: list[HeldLock] = field(default_factory=list)  # every lock held (``tfjanitor locks``); not in to_dict
    # When this run's first read started: its evidence is no newer than this, so it never resolves or
    # reopens an alert changed after it (see alerts.lifecycle).
    read_at: datetime | None = None
    account: str | None = None
    regions: list[str] = field(default_factory=list)  # every region read (a fleet scan reads several)
    # Buckets not listed whole (their lock files were looked for only there): not in to_dict.
    lockfile_coverage: dict[str, LockfileCoverage] = field(default_factory=dict, repr=False, compare=False)
    # The scopes (table_scope, bucket_scope, history_scope) this run finished reading and judging: positive evidence,
    # set only when the run's stages all ran (an error of unknown scope, or running out of time, leaves it empty).
    # Only these may resolve alerts (alerts.lifecycle.covered_scopes). Not in to_dict.
    covered: set[str] = field(default_factory=set, repr=False, compare=False)
    audited: bool = False  # the region, topology and posture audit ran (scan/auditor.py): not in to_dict
    # A function's run that found another still running (its lease, runtime/lease.py) and stopped: why. Not in to_dict.
    skipped: str = ""

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

    def set_account(self, account: str | None) -> None:
        """The account that was read, on the result and every finding (the CLI asks STS; a function reads its ARN)."""
        self.account = account
        for f in self.findings:
            f.account = account

    def merge_recheck(self, again: ScanResult) -> None:
        """A follow-up read of a few lock files (the sweeper's recheck): its findings, errors and calls are this
        run's too."""
        self.findings += again.findings
        self.errors += again.errors
        self.locks += again.locks
        self.stats.api_calls.update(again.stats.api_calls)
        self.stats.critical_path_calls += again.stats.critical_path_calls
        self.stats.downloads += again.stats.downloads
        self.stats.bytes_downloaded += again.stats.bytes_downloaded

    def finished(self, scopes: set[str]) -> None:
        """Record what this run read and judged whole: ``scopes`` less those its errors left unread; nothing at all
        if an error's scope is not known."""
        left = set(scopes)
        for error in self.errors:
            spoiled = error.scope(self.region)
            if spoiled is None:
                self.covered = set()
                return
            left.discard(spoiled)
        self.covered = left

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "region": self.region,
            "regions": list(self.regions or [self.region]),
            "complete": self.complete,
            "tables": list(self.tables),
            "buckets": list(self.buckets),
            "findings": [f.to_dict() for f in self.findings],
            "errors": [e.to_dict() for e in self.errors],
            "unverified": [u.to_dict() for u in self.unverified],
            "stats": self.stats.to_dict(),
        }
