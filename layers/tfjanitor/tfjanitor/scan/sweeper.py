"""The sweep: read every lock table and bucket in bulk, judge, report.

Cost is proportional to the number of states: one paginated Scan per table,
one GetBucketLocation and a paginated ListObjectsV2 per bucket; a state is
downloaded (streamed through MD5) only when its ETag cannot prove its digest.
A suspected drift is confirmed with one consistent BatchGetItem per 50 states
before it is reported, so a healthy apply racing the sweep is never drift.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from tfjanitor.aws.backend import Bucket, LockTable, ObjectEntry
from tfjanitor.aws.history import LifeTable, StateLife, life_key
from tfjanitor.aws.posture import PostureReader
from tfjanitor.aws.session import AwsError, AwsSession
from tfjanitor.checks import audit_rules as audit
from tfjanitor.checks import findings as build
from tfjanitor.checks.evidence import lock_taken_at, locked_reason, may_write, predates_lock
from tfjanitor.checks.liveness import (
    FIRST_SEEN,
    STALE,
    SignOfLife,
    Threshold,
    clock_ahead,
    last_sign_of_life,
    stale_threshold,
    verdict,
)
from tfjanitor.durations import Deadline, OutOfTime, in_time
from tfjanitor.model import (
    BucketFacts,
    BucketSpec,
    DriftHistory,
    HeldLock,
    Inventory,
    Kind,
    ObjectFacts,
    ScanError,
    ScanResult,
    StalePolicy,
    Stats,
    TableStats,
    Unverified,
    bucket_scope,
    history_scope,
    table_scope,
)
from tfjanitor.scan.buckets import PROVEN, BucketRead, BucketView, read_bucket
from tfjanitor.scan.forensics import drift_history
from tfjanitor.terraform import (
    DIGEST_SUFFIX,
    LOCKFILE_SUFFIX,
    BadItem,
    DigestItem,
    LockInfo,
    LockItem,
    MalformedItem,
    classify_item,
    normalize_etag,
    parse_lock_info,
    state_checksum,
)
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
    history_table: str | None = None  # the stack's table: digest writes seen on the stream, hold history
    all_lockfiles: bool = False  # read every .tflock, not only old ones (to list every lock)
    # Keep what the audit reads (``result.inventory``: every listed state's facts, every MD5). Off for the
    # scheduled sweep and ``scan --skip-audit``: a state proven by its ETag then leaves nothing behind.
    for_audit: bool = False
    # (bucket, state key) of lock-file alerts still open: their .tflock is looked at even where the plan of
    # scan/buckets.py would not (so each such alert can be resolved once its lock is gone).
    recheck: frozenset[StateRef] = frozenset()


@dataclass
class _Read:
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
                objects={
                    k: ObjectFacts(normalize_etag(o.etag), o.size, o.last_modified) for k, o in view.objects.items()
                },
                lockfiles=set(view.lockfiles),
            )
        return inv


@dataclass
class _Candidate:
    table: str
    digest: DigestItem
    actual: str | None  # None: the object does not exist
    etag: str = ""
    size: int = 0
    written: datetime | None = None  # the hashed object's LastModified
    dead: LockInfo | None = None  # the stale writing lock held over it when it was listed


class Sweeper:
    def __init__(self, aws: AwsSession, now: datetime | None = None):
        self._aws = aws
        self._now = now

    def sweep(self, request: SweepRequest) -> ScanResult:
        return self._run(request, self._sweep, "sweep")

    def survey(self, request: SweepRequest) -> ScanResult:
        """Stages 1-2 only (tables scanned, buckets located and listed), for the auditor.

        No state object is read and nothing is judged: the result has no findings, its
        errors, stats and ``inventory``. Needs only Scan, GetBucketLocation and ListBucket.
        """
        return self._run(request, self._survey_stages, "survey")

    def _run(self, request: SweepRequest, stages, what: str) -> ScanResult:  # type: ignore[no-untyped-def]
        started = time.monotonic()
        now = self._now or datetime.now(timezone.utc)
        result = ScanResult(region=request.region, tables=list(request.tables), buckets=[], read_at=now)
        calls_before = dict(self._aws.counter.calls)
        attempts_before = self._aws.counter.attempts
        depth_before = self._aws.counter.depth()
        try:
            stages(request, now, result)
        except OutOfTime as exc:
            result.errors.append(ScanError.out_of_time(",".join(request.tables) or request.region, what, exc))
        self._count_calls(result.stats, calls_before)
        result.stats.critical_path_calls = self._aws.counter.depth() - depth_before
        result.stats.retries = max(0, self._aws.counter.attempts - attempts_before - result.stats.total_api_calls)
        result.stats.duration_seconds = time.monotonic() - started
        result.findings.sort(key=lambda f: (-f.severity.rank, f.kind.value, f.bucket or "", f.key or ""))
        return result

    def _survey_stages(self, request: SweepRequest, now: datetime, result: ScanResult) -> None:
        read = self._read(replace(request, for_audit=True), now, result)
        result.stats.states = read.count_states()
        result.stats.lockfiles = sum(len(v.lockfiles) for v in read.views.values())
        result.inventory = read.inventory()

    def _sweep(self, request: SweepRequest, now: datetime, result: ScanResult) -> None:
        region, stats, deadline = request.region, result.stats, request.deadline
        read = self._read(request, now, result)
        locks, views, handles = read.locks, read.views, read.handles
        if request.for_audit:
            result.inventory = read.inventory()
        self._keyless(result, read, request.profile)
        for table, bad in read.bad:
            bucket_key = bad.lock_id.partition("/") if bad.lock_id else ("", "", "")
            slot = bool(bad.foreign and bucket_key[1] and read.knows(bucket_key[0], bucket_key[2]))
            result.findings.append(build.malformed_item(
                region, table, bad.lock_id, bad.reason, bad.foreign and not slot, bad.values, request.profile,
                attributes=bad.attributes, slot=slot))
        self._cross_region(result, read, request.profile)
        stats.states = read.count_states()

        # 3. Held DynamoDB locks: each one's last sign of life, the threshold in force, a verdict.
        lives = self._lives(request, read, result)
        stale: dict[tuple[str, str, str], LockInfo] = {}  # (table, bucket, key) -> its stale writing lock
        alive: set[StateRef] = set()  # states with a lock that is not stale
        for (bucket_name, key), held in locks.items():
            view = views.get(bucket_name)
            obj = view.objects.get(key) if view else None
            for table, item in held:
                life = None if lives is None else lives.get((table, bucket_name, key), StateLife())
                sign, threshold, verdict = self._liveness(
                    request.policy, item.lock, obj.last_modified if obj else None, life, now,
                    first_seen=life.first_seen(item.lock.id) if life is not None else None,
                )
                if sign.what == FIRST_SEEN:
                    self._saw_ahead(request, table, bucket_name, key, item.lock, life, now)
                    per_table = stats.tables[table]
                    per_table.oldest_lock_age_seconds = max(per_table.oldest_lock_age_seconds,
                                                            sign.quiet_seconds(now))
                result.locks.append(_held(region, bucket_name, key, table, item.lock, sign, threshold, verdict, now))
                if verdict != STALE:
                    alive.add((bucket_name, key))
                    continue
                result.findings.append(
                    build.stale_lock(region, table, bucket_name, key, item.lock, now, threshold, request.profile, sign=sign)
                )
                if may_write(item.lock):
                    stale[(table, bucket_name, key)] = item.lock

        # 4. .tflock objects: only old ones are worth reading (all of them to list every lock).
        policy = request.policy
        shortest = min(policy.threshold(True), policy.threshold(False))
        if lives is not None and policy.adaptive:
            shortest = min(shortest, policy.min_stale_after)
        for name, view in views.items():
            stats.lockfiles += len(view.lockfiles)
            for key in (k for k in view.unreadable if k.endswith(LOCKFILE_SUFFIX)):
                state_key = key[: -len(LOCKFILE_SUFFIX)]
                result.unverified.append(Unverified(name, state_key, "", unreadable_reason(
                    name, key, view.unreadable[key]).replace("its digest", "whose lock it is")))
                alive.add((name, state_key))
            for key, obj in view.lockfiles.items():
                if not request.all_lockfiles and (now - obj.last_modified).total_seconds() <= shortest.total_seconds():
                    alive.add((name, key))
                    continue
                in_time(deadline)
                if not self._check_lockfile(result, handles[name], view, key, obj, now, request, lives, read):
                    alive.add((name, key))

        # 5. Digests: ETag proves a match; otherwise stream the object through MD5.
        candidates: list[_Candidate] = []
        to_hash: list[tuple[str, DigestItem, str, LockInfo | None]] = []
        for table, digest in read.digests():
            view = views.get(digest.bucket)
            if view is None:
                continue
            if not view.exists:
                candidates.append(_Candidate(table, digest, None))
                continue
            if not view.listed:
                continue  # the listing failed: already an error, never a silent all-clear
            obj = view.objects.get(digest.key)
            if obj is None and digest.key in view.unreadable:
                result.unverified.append(Unverified(digest.bucket, digest.key, table, unreadable_reason(
                    digest.bucket, digest.key, view.unreadable[digest.key])))
                continue
            if obj is None:
                if read.proven(digest.bucket, digest.key):
                    stats.etag_proven += 1  # decided while listing (never when kept for the audit)
                else:
                    candidates.append(_Candidate(table, digest, None))
                continue
            etag = normalize_etag(obj.etag)
            if etag == digest.digest and obj.size > 0:  # a 0-byte object is no state: its ETag proves nothing
                stats.etag_proven += 1
                if request.for_audit:
                    read.md5[(digest.bucket, digest.key)] = etag
                continue
            ref = (digest.bucket, digest.key)
            held = [item.lock for _, item in locks.get(ref, [])]
            lockfile = view.lockfiles.get(digest.key)
            taken = lock_taken_at(held, lockfile.last_modified if lockfile else None)
            dead = None
            if taken is not None and not predates_lock(obj.last_modified, taken):
                dead = stale.get((table, *ref)) if ref not in alive else None
                if dead is None:
                    self._unverified(result, table, digest, next(filter(may_write, held), None), taken, obj.last_modified)
                    continue  # Terraform may be between its object and digest writes: judge it later
                # Its holder is dead: if this object is not its digest, the run died between the two writes.
            if obj.size == 0:  # no state to Terraform: no digest matches it, nothing to download
                candidates.append(_Candidate(table, digest, state_checksum("", 0), etag, 0, obj.last_modified, dead))
                continue
            to_hash.append((table, digest, etag, dead))
        hashed = self._hash_all(handles, [(t, d, e) for t, d, e, _ in to_hash], deadline)
        for (table, digest, etag, dead), outcome in zip(to_hash, hashed, strict=True):
            if isinstance(outcome, AwsError):
                if outcome.not_found:
                    candidates.append(_Candidate(table, digest, None))
                elif outcome.unreadable:
                    result.unverified.append(Unverified(digest.bucket, digest.key, table, unreadable_reason(
                        digest.bucket, digest.key, outcome.code)))
                else:
                    target = f"{digest.bucket}/{digest.key}"
                    result.errors.append(
                        ScanError("read_state", target, outcome.code,
                                  describe_error(outcome, "state object", f"s3://{target}"))
                    )
                continue
            actual, size, written = outcome
            stats.downloads += 1
            stats.bytes_downloaded += size
            if request.for_audit:
                read.md5[(digest.bucket, digest.key)] = actual
            if state_checksum(actual, size) != digest.digest:
                candidates.append(_Candidate(table, digest, state_checksum(actual, size), etag, size, written, dead))

        # 6. Confirm suspects with consistent reads before crying wolf.
        in_time(deadline)
        self._confirm(result, candidates, views, handles, request.profile)

        # Every stage ran: what was read whole (less what an error left unread) may resolve alerts.
        scopes = {table_scope(region, t) for t in read.tables_read}
        scopes |= {bucket_scope(region, name) for name, view in views.items() if view.listed or not view.exists}
        if lives is not None or not request.history_table:
            scopes.add(history_scope(region))
        result.finished(scopes)

    @staticmethod
    def _unverified(
        result: ScanResult, table: str, digest: DigestItem, lock: LockInfo | None, taken: datetime, written: datetime
    ) -> None:
        result.stats.skipped_locked += 1
        result.unverified.append(Unverified(digest.bucket, digest.key, table, locked_reason(lock, taken, written)))

    def _read(self, request: SweepRequest, now: datetime, result: ScanResult) -> _Read:
        """1. Lock tables: one paginated, consistent Scan each. 2. Buckets: location and one listing each."""
        region = request.region
        stats = result.stats
        read = _Read(buckets_by_table={t: defaultdict(int) for t in request.tables})
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

        # Buckets: those the tables name plus those given explicitly (NAME or NAME/PREFIX).
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
        bucket_names = list(dict.fromkeys(
            [b for t in read.buckets_by_table.values() for b in t] + list(given) + [b for b, _ in request.recheck]
        ))
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
            BucketRead(read.handles[name], wanted[name], given.get(name), whole=request.for_audit,
                       keep_all=request.for_audit, scan_region=region, deadline=request.deadline,
                       recheck=recheck.get(name, set()))
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
            for check, exc in errors:
                result.errors.append(ScanError(check, name, exc.code, describe_error(exc, "bucket", name)))
        return read

    @staticmethod
    def _take(read: _Read, stats: Stats, per_table: TableStats, table: str, item: Any, now: datetime) -> None:
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

    def _keyless(self, result: ScanResult, read: _Read, profile: str | None) -> None:
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
                ", ".join(f"{name}={cap(_scalar(raw.get(name)), 200)}" for name in names) for raw in read.keyless[table]]
            result.findings.append(finding)

    def _cross_region(self, result: ScanResult, read: _Read, profile: str | None) -> None:
        """A bucket in another region than the table naming it: every lock operation crosses regions."""
        if all(not r or r == result.region for r in read.regions.values()):
            return
        keys_by_table: dict[tuple[str, str], set[str]] = defaultdict(set)
        for (bucket_name, key), held in read.locks.items():
            for table, _ in held:
                keys_by_table[(table, bucket_name)].add(key)
        for table, d in read.digests():
            keys_by_table[(table, d.bucket)].add(d.key)
        for name, bucket_region in read.regions.items():
            if not bucket_region or bucket_region == result.region:
                continue
            view = read.views[name]
            for table, named in read.buckets_by_table.items():
                if not named.get(name):
                    continue
                sizes = [view.objects[k].size for k in keys_by_table[(table, name)] if k in view.objects]
                result.findings.append(
                    build.cross_region_bucket(
                        result.region, table, name, bucket_region, named[name], state_sizes=sizes, profile=profile,
                    )
                )

    def _hash_all(
        self, handles: dict[str, Bucket], work: list[tuple[str, DigestItem, str]], deadline: Deadline | None = None
    ) -> list[tuple[str, int, datetime] | AwsError]:
        """MD5 of each suspect state, a few streams at a time (each read in 64 KiB chunks)."""

        def one(item: tuple[str, DigestItem, str]) -> tuple[str, int, datetime] | AwsError:
            in_time(deadline)
            digest = item[1]
            try:
                return handles[digest.bucket].md5(digest.key)
            except AwsError as exc:
                return exc

        return self._aws.in_parallel(one, work)  # type: ignore[no-any-return]

    def _count_calls(self, stats: Stats, before: dict[str, int]) -> None:
        """This run's API calls by operation (the session may be shared by several runs)."""
        for op, n in self._aws.counter.calls.items():
            if n > before.get(op, 0):
                stats.api_calls[op] += n - before.get(op, 0)

    def check_state(self, region: str, table: str, bucket: str, key: str) -> ScanResult:
        """Check one state now (the stream monitor, after a digest write or a lock release).

        The result has a drift or orphan finding, nothing (digest proven, no digest), an
        ``unverified`` entry (locked, and the object may be the holder's write in flight: the
        caller re-checks after the release), or an error.
        """
        started = time.monotonic()
        now = self._now or datetime.now(timezone.utc)
        result = ScanResult(region=region, tables=[table], buckets=[bucket], read_at=now)
        calls_before, depth_before = dict(self._aws.counter.calls), self._aws.counter.depth()
        lock_id, digest_id = f"{bucket}/{key}", f"{bucket}/{key}{DIGEST_SUFFIX}"
        try:
            items = LockTable(self._aws, region, table).get_many([lock_id, digest_id])
            digest = classify_item(items.get(digest_id, {}))
            if not isinstance(digest, DigestItem):
                return result  # no digest (lockfile-only state, deleted workspace): nothing to compare
            result.stats.states = result.stats.digest_items = 1
            handle = Bucket(self._aws, region, bucket)
            view = BucketView(listed=True)
            try:
                obj = handle.head(key)
            except AwsError as exc:
                if not exc.unreadable:
                    raise
                result.unverified.append(Unverified(bucket, key, table, unreadable_reason(bucket, key, exc.code)))
                return result
            candidate = _Candidate(table, digest, None)
            if obj is not None:
                etag = normalize_etag(obj.etag)
                if etag == digest.digest and obj.size > 0:
                    result.stats.etag_proven = 1
                    return result
                lock = classify_item(items[lock_id]) if lock_id in items else None
                held = [lock.lock] if isinstance(lock, LockItem) else []
                lockfile = handle.head(key + LOCKFILE_SUFFIX)
                taken = lock_taken_at(held, lockfile.last_modified if lockfile else None)
                if taken is not None and not predates_lock(obj.last_modified, taken):
                    self._unverified(result, table, digest, next(filter(may_write, held), None), taken, obj.last_modified)
                    return result
                try:
                    actual, size, written = handle.md5(key)
                except AwsError as exc:
                    if not exc.unreadable:
                        raise
                    result.unverified.append(Unverified(bucket, key, table, unreadable_reason(bucket, key, exc.code)))
                    return result
                result.stats.downloads, result.stats.bytes_downloaded = 1, size
                if state_checksum(actual, size) == digest.digest:
                    return result
                candidate = _Candidate(table, digest, state_checksum(actual, size), etag, size, written)
            self._confirm(result, [candidate], {bucket: view}, {bucket: handle})
        except AwsError as exc:
            result.errors.append(ScanError("check_state", lock_id, exc.code, describe_error(exc, "state", lock_id)))
        finally:
            self._count_calls(result.stats, calls_before)
            result.stats.critical_path_calls = self._aws.counter.depth() - depth_before
            result.stats.duration_seconds = time.monotonic() - started
        return result

    def _check_lockfile(
        self, result: ScanResult, bucket: Bucket, view: BucketView, key: str, obj: ObjectEntry, now: datetime,
        request: SweepRequest, lives: dict[tuple[str, str, str], StateLife] | None, read: _Read,
    ) -> bool:
        """Read one ``.tflock`` and judge it like a DynamoDB lock: True if it is stale (or unreadable)."""
        region = result.region
        try:
            body, etag = bucket.read_small(key + LOCKFILE_SUFFIX)
        except AwsError as exc:
            if exc.unreadable:  # held, by whom is not known (OpenTofu encrypts it with the state's SSE-C key)
                result.unverified.append(Unverified(bucket.name, key, "", unreadable_reason(
                    bucket.name, key + LOCKFILE_SUFFIX, exc.code).replace("its digest", "whose lock it is")))
                return False
            if not exc.not_found:  # released since the listing: nothing to report
                result.errors.append(
                    ScanError(
                        "read_lockfile", f"{bucket.name}/{key}{LOCKFILE_SUFFIX}", exc.code,
                        describe_error(exc, "lock object", f"s3://{bucket.name}/{key}{LOCKFILE_SUFFIX}"),
                    )
                )
            return True
        result.stats.downloads += 1
        result.stats.bytes_downloaded += len(body)
        try:
            lock = parse_lock_info(body.decode("utf-8"))
        except (MalformedItem, UnicodeDecodeError) as exc:
            reason = str(exc) if isinstance(exc, MalformedItem) else "body is not UTF-8"
            result.findings.append(build.malformed_lockfile(
                region, bucket.name, key, reason, obj.last_modified, normalize_etag(etag) or obj.etag, request.profile))
            return True
        # Its state's record (digest writes, holds) is kept per lock table: a state locking with both a table
        # and a lock file has one; a lockfile-only state has none, and its fixed threshold applies.
        table = read.table_of(bucket.name, key)
        life = None if lives is None else lives.get((table, bucket.name, key), StateLife()) if table else None
        policy, state = request.policy, view.objects.get(key)
        fixed = policy.threshold(lock.read_only).total_seconds()
        if state is None and (request.all_lockfiles or lock.age_seconds(now) > min(fixed, policy.min_stale_after.total_seconds())):
            try:  # not named by any digest, so not kept from the listing: one HEAD, only for an old lock
                state = bucket.head(key)
            except AwsError:
                state = None  # no write to count: judged from Created alone
        # The lock file's LastModified is AWS's clock: when a lock whose Created is ahead was surely taken by.
        sign, threshold_in_force, verdict = self._liveness(
            policy, lock, state.last_modified if state else None, life, now, first_seen=obj.last_modified)
        result.locks.append(_held(region, bucket.name, key, None, lock, sign, threshold_in_force, verdict, now))
        if verdict != STALE:
            return False
        result.findings.append(
            build.stale_lockfile(region, bucket.name, key, normalize_etag(etag) or obj.etag, lock, now,
                                 threshold_in_force, request.profile, sign=sign)
        )
        return True

    def _saw_ahead(self, request: SweepRequest, table: str, bucket: str, key: str, lock: LockInfo,
                   life: StateLife | None, now: datetime) -> None:
        """Remember when this lock (its Created ahead of the clock) was first seen, in the stack's table: later
        sweeps count its silence from then. Without that table (the CLI) each run counts from its own first look."""
        if not request.history_table or life is None or life.first_seen(lock.id) is not None:
            return
        try:
            LifeTable(self._aws, request.region, request.history_table).saw_ahead(
                life_key(request.region, table, bucket, key), f"{bucket}/{key}", lock.id, now)
        except AwsError:
            pass  # counted from this run again next time: later, never earlier, so never a false alarm

    @staticmethod
    def _liveness(
        policy: StalePolicy, lock: LockInfo, state_written: datetime | None, life: StateLife | None, now: datetime,
        first_seen: datetime | None = None,
    ) -> tuple[SignOfLife, Threshold, str]:
        """A lock's last sign of life, its threshold (learned from ``life`` if given) and verdict. ``first_seen``:
        when a lock whose Created is ahead of ``now`` was first seen (see checks.liveness.last_sign_of_life)."""
        sign = last_sign_of_life(lock.created, state_written, life.digest_written if life else None, now=now,
                                 first_seen=first_seen)
        holds = None if life is None else life.holds.get(lock.operation_class, [])
        threshold = stale_threshold(policy, lock.read_only, lock.operation_class, holds)
        return sign, threshold, verdict(sign.quiet_seconds(now), threshold, policy.multiplier)

    def _lives(self, request: SweepRequest, read: _Read, result: ScanResult) -> dict[tuple[str, str, str], StateLife] | None:
        """The stack's records (digest writes seen on the stream, hold history) of every state under a lock:
        one BatchGetItem per 100 held locks, never a read per state. None without a history table."""
        if not request.history_table:
            return None
        wanted = {(table, b, k) for (b, k), held in read.locks.items() for table, _ in held}
        for name, view in read.views.items():
            wanted.update((t, name, k) for k in view.lockfiles if (t := read.table_of(name, k)))
        keys = {life_key(request.region, t, b, k): (t, b, k) for t, b, k in wanted}
        if not keys:
            return {}
        try:
            records = LifeTable(self._aws, request.region, request.history_table).read(list(keys))
        except AwsError as exc:
            result.errors.append(ScanError(
                "read_history", request.history_table, exc.code,
                describe_error(exc, "history table", request.history_table).replace(
                    "its checks did not run", "locks were judged with the fixed thresholds and without the stream's "
                    "digest writes")))
            return None
        return {keys[k]: life for k, life in records.items()}

    def _confirm(
        self, result: ScanResult, candidates: list[_Candidate], views: dict[str, BucketView],
        handles: dict[str, Bucket], profile: str | None = None,
    ) -> None:
        """Re-read lock and digest items (consistently) after the object was read.

        Terraform writes the object, then the digest, under the lock. If the
        digest is unchanged and no lock is held now, the object we hashed was
        not a write in progress: the mismatch is real.
        """
        by_table: dict[str, list[_Candidate]] = defaultdict(list)
        for c in candidates:
            by_table[c.table].append(c)
        drifts: list[tuple[_Candidate, LockInfo | None]] = []
        for table, group in by_table.items():
            ids: list[str] = []
            for c in group:
                ids += [f"{c.digest.bucket}/{c.digest.key}", f"{c.digest.bucket}/{c.digest.key}{DIGEST_SUFFIX}"]
            try:
                now_items = LockTable(self._aws, result.region, table).get_many(ids)
            except AwsError as exc:
                result.errors.append(
                    ScanError("confirm", table, exc.code, describe_error(exc, "table", table) + " (drift not confirmed)")
                )
                continue
            for c in group:
                drift = self._judge(result, c, now_items, views.get(c.digest.bucket), profile)
                if drift is not None:
                    drifts.append(drift)
        for (c, locked_by), history in zip(drifts, self._histories([c for c, _ in drifts], handles), strict=True):
            d, view = c.digest, views.get(c.digest.bucket)
            if history is not None:
                result.stats.downloads += history.downloads
                result.stats.bytes_downloaded += history.bytes_downloaded
            result.findings.append(build.digest_drift(
                result.region, c.table, d.bucket, d.key, d.stored, c.actual or "", c.etag, c.size,
                has_lockfile_history=view is not None and d.key in view.lockfiles,
                locked_by=locked_by.summary() if locked_by is not None else None, history=history, profile=profile,
            ))

    def _histories(self, drifts: list[_Candidate], handles: dict[str, Bucket]) -> list[DriftHistory | None]:
        """What each drifted state's versions show: one GetBucketVersioning per bucket with a drift, then, in a
        versioned bucket, one ListObjectVersions per drifted state (a few at a time)."""
        posture = PostureReader(self._aws)
        versioned: dict[str, bool] = {}
        for name in dict.fromkeys(c.digest.bucket for c in drifts):
            handle = handles.get(name)
            if handle is None:
                continue
            try:
                versioned[name] = posture.bucket_versioning(handle.home_region, name) is not None
            except AwsError:
                versioned[name] = True  # not known: the listing itself tells

        def one(c: _Candidate) -> DriftHistory | None:
            handle = handles.get(c.digest.bucket)
            if handle is None:
                return None
            if not versioned.get(c.digest.bucket, True):
                return DriftHistory(False, None, None, c.etag)  # never versioned: no older version to find
            return drift_history(handle, c.digest.key, c.digest.digest, c.etag, c.actual or "")

        return self._aws.in_parallel(one, drifts)  # type: ignore[no-any-return]

    def _judge(
        self, result: ScanResult, c: _Candidate, now_items: dict[str, dict[str, Any]], view: BucketView | None,
        profile: str | None,
    ) -> tuple[_Candidate, LockInfo | None] | None:
        """One suspect, with its lock and digest items as re-read after its object was hashed: a drift to report
        (with the lock held over it, if any) is returned; every other verdict is recorded here."""
        d = c.digest
        current = classify_item(now_items.get(f"{d.bucket}/{d.key}{DIGEST_SUFFIX}", {}))
        if not isinstance(current, DigestItem) or current.stored != d.stored:
            # Rewritten or removed since the scan: the next run judges it afresh.
            result.unverified.append(Unverified(d.bucket, d.key, c.table, "the digest changed while it was being checked"))
            return None
        lock = classify_item(now_items.get(f"{d.bucket}/{d.key}", {}))
        # A lock held now: judged only if the object we hashed is older than it. A lock held at the
        # scan and released since, with the digest unchanged, wrote nothing: the mismatch stands.
        locked_by = lock.lock if isinstance(lock, LockItem) else None
        in_flight = locked_by is not None and may_write(locked_by)
        if in_flight and (c.written is None or not predates_lock(c.written, locked_by.created)):
            if c.dead is not None and c.actual is not None and c.written is not None and locked_by.raw == c.dead.raw:
                self._interrupted(result, c, locked_by, c.actual, c.written, profile)
                return None
            self._unverified(result, c.table, d, locked_by, locked_by.created, c.written or locked_by.created)
            return None
        if c.actual is None:
            missing = view is not None and not view.exists
            result.findings.append(build.orphan_digest(result.region, c.table, d.bucket, d.key, d.stored, missing, profile))
            return None
        return c, locked_by

    @staticmethod
    def _interrupted(
        result: ScanResult, c: _Candidate, lock: LockInfo, actual: str, written: datetime, profile: str | None
    ) -> None:
        """The stale lock's holder wrote the object and died before the digest: one interrupted_write finding
        instead of its stale_lock (and of the stale_lockfile of the same run, which the fix releases too)."""
        d = c.digest
        same_run = [
            f for f in result.findings
            if f.kind in (Kind.STALE_LOCK, Kind.STALE_LOCKFILE) and f.lock_id == lock.id
            and (f.bucket, f.key) == (d.bucket, d.key) and f.table in (c.table, None)
        ]
        stale = next((f for f in same_run if f.kind is Kind.STALE_LOCK), None)
        if stale is None:  # pragma: no cover (a dead lock always has its stale finding)
            return
        for f in same_run:
            result.findings.remove(f)
        result.findings.append(build.interrupted_write(stale, lock, d.stored, actual, written, profile))
        result.locks[:] = [
            replace(h, interrupted_write=True) if (h.bucket, h.key, h.lock.get("id")) == (d.bucket, d.key, lock.id) else h
            for h in result.locks
        ]


def _held(
    region: str, bucket: str, key: str, table: str | None, lock: LockInfo, sign: SignOfLife, threshold: Threshold,
    verdict: str, now: datetime,
) -> HeldLock:
    return HeldLock(bucket, key, table, lock.summary(), sign.to_dict(), int(sign.quiet_seconds(now)),
                    threshold.to_dict(), verdict, region, clock_ahead_seconds=int(clock_ahead(lock.created, now)))


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


def _scalar(attribute: Any) -> str:
    """A low-level DynamoDB attribute's value as text (S, N, or the type's name)."""
    if isinstance(attribute, dict) and attribute:
        kind, value = next(iter(attribute.items()))
        return str(value) if kind in ("S", "N") else f"<{kind}>"
    return "<missing>"


def unreadable_reason(bucket: str, key: str, code: str) -> str:
    """Why a state that S3 would not serve as asked (400) is neither drift, nor healthy, nor missing."""
    return (f"S3 answered {code} (400) to reading s3://{bucket}/{key}: an object encrypted with a customer-provided "
            "key (SSE-C, sse_customer_key) cannot be read or hashed without that key, so its digest cannot be checked")


def describe_error(exc: AwsError, what: str, name: str) -> str:
    hint = _HINTS.get(exc.code, exc.message)
    return f"{what} {name}: {hint} ({exc.operation} {exc.code}); its checks did not run"
