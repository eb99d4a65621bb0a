"""Stages 1 and 2 of a sweep: what the lock tables hold and what each bucket shows, read in bulk.

One paginated, consistent Scan per lock table (in parallel segments once it spans several pages), each item
classified as Terraform writes it; then every bucket the tables name or the request gives, read for as few
calls as it allows (scan/buckets.py), a few at a time. What was read is a :class:`Read`: the one record of a
sweep's states, judged by scan/sweeper.py (locks) and scan/digests.py (digests).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tfjanitor.aws.backend import Bucket, LockTable
from tfjanitor.aws.posture import PostureReader
from tfjanitor.aws.session import AwsError, AwsSession
from tfjanitor.checks import audit_rules as audit
from tfjanitor.durations import Deadline, in_time
from tfjanitor.model import BucketFacts, BucketSpec, Inventory, ObjectFacts, ScanError, ScanResult, StalePolicy, Stats, TableStats
from tfjanitor.scan.buckets import PROVEN, BucketRead, BucketView, read_bucket
from tfjanitor.terraform import BadItem, DigestItem, LockItem, classify_item, normalize_etag
from tfjanitor.untrusted import cap

StateRef = tuple[str, str]  # (bucket, key)

KEYLESS_EXAMPLES = 3  # items of a table with another key schema named in its finding


@dataclass(frozen=True)
class SweepRequest:
    region: str
    tables: list[str]
    buckets: list[str] = field(default_factory=list)
    policy: StalePolicy = field(default_factory=StalePolicy)
    deadline: Deadline | None = None
    profile: str | None = None  # the CLI's --profile: fix commands carry it (the Lambda has none)
    findings_table: str | None = None  # the stack's table: digest writes seen on the stream, hold history
    all_lockfiles: bool = False  # read every .tflock, not only old ones (to list every lock)
    # Keep what the audit reads (``result.inventory``: every listed state's facts, every MD5). Off for the
    # scheduled sweep and ``scan --skip-audit``: a state proven by its ETag then leaves nothing behind.
    for_audit: bool = False
    # (bucket, state key) of lock-file alerts still open: their .tflock is looked at even where the plan of
    # scan/buckets.py would not (so each such alert can be resolved once its lock is gone).
    recheck: frozenset[StateRef] = frozenset()


@dataclass
class Read:
    """Stages 1-2 of a sweep: what the tables hold and what each bucket listing showed."""

    locks: dict[StateRef, list[tuple[str, LockItem]]] = field(default_factory=lambda: defaultdict(list))
    by_table: dict[str, list[DigestItem]] = field(default_factory=lambda: defaultdict(list))  # in scan order
    bad: list[tuple[str, BadItem]] = field(default_factory=list)
    buckets_by_table: dict[str, dict[str, int]] = field(default_factory=dict)
    handles: dict[str, Bucket] = field(default_factory=dict)
    views: dict[str, BucketView] = field(default_factory=dict)
    regions: dict[str, str | None] = field(default_factory=dict)
    tables_read: set[str] = field(default_factory=set)
    md5: dict[StateRef, str] = field(default_factory=dict)  # proven by ETag or computed by hashing (audit only)
    # Tables whose items have no LockID (another key schema): how many, and a few of them to name.
    keyless: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    keyless_count: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # bucket -> state key named by a lock or digest -> the digest its listed ETag must equal to prove it
    # (None: keep its listing entry; PROVEN once it did): the one per-state record of a sweep.
    wanted: dict[str, dict[str, str | None]] = field(default_factory=lambda: defaultdict(dict))

    def table_of(self, bucket: str, key: str) -> str | None:
        """A lock table that holds a lock or a digest of this state (where its stream record is kept)."""
        for table, _ in self.locks.get((bucket, key), []):
            return table
        return next((table for table, d in self.digests() if (d.bucket, d.key) == (bucket, key)), None)

    def digests(self) -> Iterator[tuple[str, DigestItem]]:
        """(table, digest item), in scan order (no tuple kept per state)."""
        for table, items in self.by_table.items():
            for d in items:
                yield table, d

    def knows(self, bucket: str, key: str) -> bool:
        """Whether this is a state the sweep knows: a table holds its digest or its lock, or its bucket its .tflock."""
        view = self.views.get(bucket)
        return key in self.wanted.get(bucket, {}) or (view is not None and key in view.lockfiles)

    def proven(self, bucket: str, key: str) -> bool:
        return self.wanted.get(bucket, {}).get(key) == PROVEN

    def count_states(self) -> int:
        """States named by a lock, a digest or a .tflock (counted without building a set of them)."""
        count = sum(len(keys) for keys in self.wanted.values())
        for name, view in self.views.items():
            keys = self.wanted.get(name, {})
            count += sum(1 for k in view.lockfiles if k not in keys)
        return count

    def inventory(self) -> Inventory:
        """The audit's facts; ``md5`` is shared, so hashes the sweep adds later show in it."""
        inv = Inventory(tables_read=set(self.tables_read), md5=self.md5)
        for ref, held in self.locks.items():
            inv.locks.setdefault(ref, {}).update({table: item.lock.summary() for table, item in held})
        for table, d in self.digests():
            inv.digests.setdefault((d.bucket, d.key), {})[table] = d.stored
        for name, view in self.views.items():
            inv.buckets[name] = BucketFacts(
                region=self.regions.get(name),
                exists=view.exists,
                listed=view.listed,
                objects={k: ObjectFacts(normalize_etag(o.etag), o.size, o.last_modified) for k, o in view.objects.items()},
                lockfiles=set(view.lockfiles),
            )
        return inv


class Reader:
    """Reads the tables and buckets of one sweep."""

    def __init__(self, aws: AwsSession):
        self._aws = aws

    def read(self, request: SweepRequest, now: datetime, result: ScanResult) -> Read:
        """Stages 1 and 2 of a sweep: every lock table, then every bucket they name or were given."""
        read = Read(buckets_by_table={t: defaultdict(int) for t in request.tables})
        self._tables(request, now, result, read)
        self._buckets(request, result, read)
        return read

    def _tables(self, request: SweepRequest, now: datetime, result: ScanResult, read: Read) -> None:
        """1. Lock tables: one consistent Scan each (in parallel segments once a table spans several pages)."""
        region = request.region
        stats = result.stats
        guard = threading.Lock()
        for table in dict.fromkeys(request.tables):
            per_table = stats.tables[table] = TableStats()
            reader = LockTable(self._aws, region, table)

            def take(raw: dict[str, Any], table: str = table, per_table: TableStats = per_table) -> None:
                in_time(request.deadline)
                item = classify_item(raw)
                with guard:
                    if isinstance(item, BadItem) and item.lock_id is None and isinstance(raw, dict) and "LockID" not in raw:
                        stats.items += 1
                        per_table.items += 1
                        read.keyless_count[table] += 1
                        if len(read.keyless[table]) < KEYLESS_EXAMPLES:
                            read.keyless[table].append(raw)
                        return
                    self._take(read, stats, per_table, table, item, now)

            try:
                reader.read(take)  # in parallel segments once the table is known to span several pages
                read.tables_read.add(table)
            except AwsError as exc:
                result.errors.append(ScanError("scan_table", table, exc.code, describe_error(exc, "table", table)))

    def _buckets(self, request: SweepRequest, result: ScanResult, read: Read) -> None:
        """2. Buckets: those the tables name and those given (NAME or NAME/PREFIX), each read as scan/buckets.py plans
        (its location, then a listing, a key range or HeadObject per state), a few at a time."""
        region, stats = request.region, result.stats
        for table, named in read.buckets_by_table.items():
            stats.tables[table].buckets = sorted(named)
        given: dict[str, list[str]] = defaultdict(list)
        for text in request.buckets:
            try:
                spec = BucketSpec.parse(text)
            except ValueError as exc:
                result.errors.append(ScanError("bucket_spec", text, "InvalidBucket", str(exc)))
                continue
            given[spec.name].append(spec.prefix)
        bucket_names = list(
            dict.fromkeys([b for t in read.buckets_by_table.values() for b in t] + list(given) + [b for b, _ in request.recheck])
        )
        result.buckets = bucket_names
        wanted = read.wanted
        for _, d in read.digests():
            keys = wanted[d.bucket]
            if keys.setdefault(d.key, d.digest) != d.digest:
                keys[d.key] = None  # tables disagree: each digest is judged from the listing entry
        for bucket_name, key in read.locks:  # a held lock needs its object's LastModified (and the audit too)
            wanted[bucket_name][key] = None
        recheck: dict[str, set[str]] = defaultdict(set)
        for bucket_name, key in request.recheck:
            recheck[bucket_name].add(key)
        read.handles = {name: Bucket(self._aws, region, name) for name in bucket_names}
        self._aws.s3(region)  # create the client once, before the buckets are read concurrently
        reads = [
            BucketRead(
                read.handles[name],
                wanted[name],
                given.get(name),
                whole=request.for_audit,
                keep_all=request.for_audit,
                scan_region=region,
                deadline=request.deadline,
                recheck=recheck.get(name, set()),
            )
            for name in bucket_names
        ]
        surveys = self._aws.in_parallel(lambda req: read_bucket(self._aws, req), reads)
        for name, (view, bucket_region, errors) in zip(bucket_names, surveys, strict=True):
            read.views[name] = view
            read.regions[name] = bucket_region
            stats.objects_listed += view.objects_seen
            stats.bucket_reads[name] = view.report()
            if view.coverage is not None:
                result.lockfile_coverage[name] = view.coverage
            for check, error in errors:
                result.errors.append(ScanError(check, name, error.code, describe_error(error, "bucket", name)))

    @staticmethod
    def _take(read: Read, stats: Stats, per_table: TableStats, table: str, item: Any, now: datetime) -> None:
        """One lock table item, classified: a lock, a digest, or a bad item."""
        stats.items += 1
        per_table.items += 1
        if isinstance(item, LockItem):
            stats.lock_items += 1
            per_table.active_locks += 1
            per_table.oldest_lock_age_seconds = max(per_table.oldest_lock_age_seconds, item.lock.age_seconds(now))
            read.locks[(item.bucket, item.key)].append((table, item))
            read.buckets_by_table[table][item.bucket] += 1
        elif isinstance(item, DigestItem):
            stats.digest_items += 1
            read.by_table[table].append(item)
            read.buckets_by_table[table][item.bucket] += 1
        else:
            stats.malformed_items += 1
            read.bad.append((table, item))

    def keyless(self, result: ScanResult, read: Read, profile: str | None) -> None:
        """A table whose items have no LockID has another key schema (old Terragrunt's ``StateFileId``, another
        workload's table): one lock_table_schema finding, never one finding per item."""
        for table, count in read.keyless_count.items():
            try:
                facts = PostureReader(self._aws).describe_table(result.region, table)
            except AwsError as exc:
                result.errors.append(ScanError("describe_table", table, exc.code, describe_error(exc, "table", table)))
                continue
            finding = audit.lock_table_schema(facts, profile)
            if finding is None:  # pragma: no cover (a LockID-keyed table holds no item without LockID)
                continue
            names = [name for name, _, _ in facts.key_schema]
            finding.details["items_without_lockid"] = count
            finding.details["example_items"] = [
                ", ".join(f"{name}={cap(_scalar(raw.get(name)), 200)}" for name in names) for raw in read.keyless[table]
            ]
            result.findings.append(finding)


def _scalar(attribute: Any) -> str:
    """A low-level DynamoDB attribute's value as text (S, N, or the type's name)."""
    if isinstance(attribute, dict) and attribute:
        kind, value = next(iter(attribute.items()))
        return str(value) if kind in ("S", "N") else f"<{kind}>"
    return "<missing>"


_HINTS = {
    "ResourceNotFoundException": "does not exist in this region",
    "NoSuchBucket": "does not exist",
    "AccessDenied": "access denied: the credentials lack a read permission",
    "AccessDeniedException": "access denied: the credentials lack a read permission",
    "ProvisionedThroughputExceededException": "throttled past retries",
    "ThrottlingException": "throttled past retries",
    "RequestLimitExceeded": "throttled past retries",
    "SlowDown": "throttled past retries",
    "EndpointConnectionError": "endpoint unreachable",
}


def describe_error(exc: AwsError, what: str, name: str) -> str:
    hint = _HINTS.get(exc.code, exc.message)
    return f"{what} {name}: {hint} ({exc.operation} {exc.code}); its checks did not run"
