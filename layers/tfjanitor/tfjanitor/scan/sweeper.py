"""The sweep: read every lock table and bucket in bulk, judge, report.

Cost is proportional to the number of states: one paginated Scan per table, one GetBucketLocation and a
listing (or a key range, or HeadObject per state: scan/buckets.py) per bucket; a state is downloaded (streamed
through MD5) only when its ETag cannot prove its digest. A suspected drift is confirmed with one consistent
BatchGetItem per 50 states before it is reported, so a healthy apply racing the sweep is never drift.

The stages, each a method of its own: 1-2 read (scan/reading.py), 3 held DynamoDB locks and 4 ``.tflock``
objects judged by their last sign of life (here), 5-6 digests (scan/digests.py), then what was read whole is
recorded (``ScanResult.covered``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone

from tfjanitor.aws.backend import Bucket, ObjectEntry
from tfjanitor.aws.history import History, StateLife, life_key
from tfjanitor.aws.session import AwsError, AwsSession
from tfjanitor.checks import findings as build
from tfjanitor.checks.evidence import may_write
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
from tfjanitor.durations import OutOfTime, in_time
from tfjanitor.model import HeldLock, ScanError, ScanResult, StalePolicy, Stats, Unverified, bucket_scope, history_scope, table_scope
from tfjanitor.scan.buckets import BucketView
from tfjanitor.scan.digests import Digests, unreadable_reason
from tfjanitor.scan.reading import Read, Reader, StateRef, SweepRequest, describe_error
from tfjanitor.terraform import LOCKFILE_SUFFIX, LockInfo, MalformedItem, normalize_etag, parse_lock_info

__all__ = ["Sweeper", "SweepRequest", "describe_error", "unreadable_reason"]

Stale = dict[tuple[str, str, str], LockInfo]  # (table, bucket, key) -> the stale writing lock held over the state
Lives = dict[tuple[str, str, str], StateLife]  # (table, bucket, key) -> the stack's record of that state


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

    def _run(self, request: SweepRequest, stages: Callable[[SweepRequest, datetime, ScanResult], None], what: str) -> ScanResult:
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
        read = Reader(self._aws).read(replace(request, for_audit=True), now, result)
        result.stats.states = read.count_states()
        result.stats.lockfiles = sum(len(v.lockfiles) for v in read.views.values())
        result.inventory = read.inventory()

    def _sweep(self, request: SweepRequest, now: datetime, result: ScanResult) -> None:
        read = Reader(self._aws).read(request, now, result)  # 1-2
        if request.for_audit:
            result.inventory = read.inventory()
        self._items(request, read, result)
        result.stats.states = read.count_states()
        lives = self._lives(request, read, result)
        stale, alive = self._judge_locks(request, read, result, lives, now)  # 3
        self._judge_lockfiles(request, read, result, lives, now, alive)  # 4
        Digests(self._aws).judge(request, read, result, stale, alive)  # 5-6
        # Every stage ran: what was read whole (less what an error left unread) may resolve alerts.
        region = request.region
        scopes = {table_scope(region, t) for t in read.tables_read}
        scopes |= {bucket_scope(region, name) for name, view in read.views.items() if view.listed or not view.exists}
        if lives is not None or not request.findings_table:
            scopes.add(history_scope(region))
        result.finished(scopes)

    def _items(self, request: SweepRequest, read: Read, result: ScanResult) -> None:
        """What the table items say without any judgement of time: another key schema, items that are no lock or
        digest (on a known state's lock slot: a warning), buckets in another region than their table."""
        Reader(self._aws).keyless(result, read, request.profile)
        for table, bad in read.bad:
            bucket_key = bad.lock_id.partition("/") if bad.lock_id else ("", "", "")
            slot = bool(bad.foreign and bucket_key[1] and read.knows(bucket_key[0], bucket_key[2]))
            result.findings.append(
                build.malformed_item(
                    request.region,
                    table,
                    bad.lock_id,
                    bad.reason,
                    bad.foreign and not slot,
                    bad.values,
                    request.profile,
                    attributes=bad.attributes,
                    slot=slot,
                )
            )
        self._cross_region(result, read, request.profile)

    def _judge_locks(
        self, request: SweepRequest, read: Read, result: ScanResult, lives: Lives | None, now: datetime
    ) -> tuple[Stale, set[StateRef]]:
        """3. Held DynamoDB locks: each one's last sign of life, the threshold in force, a verdict. The stale writing
        locks, and the states under a lock that is not stale."""
        region, stats = request.region, result.stats
        stale: Stale = {}
        alive: set[StateRef] = set()
        for (bucket_name, key), held in read.locks.items():
            view = read.views.get(bucket_name)
            obj = view.objects.get(key) if view else None
            for table, item in held:
                life = None if lives is None else lives.get((table, bucket_name, key), StateLife())
                sign, threshold, verdict = self._liveness(
                    request.policy,
                    item.lock,
                    obj.last_modified if obj else None,
                    life,
                    now,
                    first_seen=life.first_seen(item.lock.id) if life is not None else None,
                )
                if sign.what == FIRST_SEEN:
                    self._saw_ahead(request, table, bucket_name, key, item.lock, life, now)
                    per_table = stats.tables[table]
                    per_table.oldest_lock_age_seconds = max(per_table.oldest_lock_age_seconds, sign.quiet_seconds(now))
                result.locks.append(_held(region, bucket_name, key, table, item.lock, sign, threshold, verdict, now))
                if verdict != STALE:
                    alive.add((bucket_name, key))
                    continue
                result.findings.append(
                    build.stale_lock(region, table, bucket_name, key, item.lock, now, threshold, request.profile, sign=sign)
                )
                if may_write(item.lock):
                    stale[(table, bucket_name, key)] = item.lock
        return stale, alive

    def _judge_lockfiles(
        self, request: SweepRequest, read: Read, result: ScanResult, lives: Lives | None, now: datetime, alive: set[StateRef]
    ) -> None:
        """4. ``.tflock`` objects: only old ones are worth reading (all of them to list every lock)."""
        policy = request.policy
        shortest = min(policy.threshold(True), policy.threshold(False))
        if lives is not None and policy.adaptive:
            shortest = min(shortest, policy.min_stale_after)
        for name, view in read.views.items():
            result.stats.lockfiles += len(view.lockfiles)
            for key in (k for k in view.unreadable if k.endswith(LOCKFILE_SUFFIX)):
                state_key = key[: -len(LOCKFILE_SUFFIX)]
                result.unverified.append(
                    Unverified(
                        name,
                        state_key,
                        "",
                        unreadable_reason(name, key, view.unreadable[key]).replace("its digest", "whose lock it is"),
                    )
                )
                alive.add((name, state_key))
            for key, obj in view.lockfiles.items():
                if not request.all_lockfiles and (now - obj.last_modified).total_seconds() <= shortest.total_seconds():
                    alive.add((name, key))
                    continue
                in_time(request.deadline)
                if not self._check_lockfile(result, read.handles[name], view, key, obj, now, request, lives, read):
                    alive.add((name, key))

    def _cross_region(self, result: ScanResult, read: Read, profile: str | None) -> None:
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
                        result.region, table, name, bucket_region, named[name], state_sizes=sizes, profile=profile
                    )
                )

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
        try:
            Digests(self._aws).check(result, table, bucket, key)
        except AwsError as exc:
            lock_id = f"{bucket}/{key}"
            result.errors.append(ScanError("check_state", lock_id, exc.code, describe_error(exc, "state", lock_id)))
        finally:
            self._count_calls(result.stats, calls_before)
            result.stats.critical_path_calls = self._aws.counter.depth() - depth_before
            result.stats.duration_seconds = time.monotonic() - started
        return result

    def _check_lockfile(
        self,
        result: ScanResult,
        bucket: Bucket,
        view: BucketView,
        key: str,
        obj: ObjectEntry,
        now: datetime,
        request: SweepRequest,
        lives: Lives | None,
        read: Read,
    ) -> bool:
        """Read one ``.tflock`` and judge it like a DynamoDB lock: True if it is stale (or unreadable)."""
        region = result.region
        try:
            body, etag = bucket.read_small(key + LOCKFILE_SUFFIX)
        except AwsError as exc:
            if exc.unreadable:  # held, by whom is not known (OpenTofu encrypts it with the state's SSE-C key)
                result.unverified.append(
                    Unverified(
                        bucket.name,
                        key,
                        "",
                        unreadable_reason(bucket.name, key + LOCKFILE_SUFFIX, exc.code).replace("its digest", "whose lock it is"),
                    )
                )
                return False
            if not exc.not_found:  # released since the listing: nothing to report
                result.errors.append(
                    ScanError(
                        "read_lockfile",
                        f"{bucket.name}/{key}{LOCKFILE_SUFFIX}",
                        exc.code,
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
            result.findings.append(
                build.malformed_lockfile(
                    region, bucket.name, key, reason, obj.last_modified, normalize_etag(etag) or obj.etag, request.profile
                )
            )
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
            policy, lock, state.last_modified if state else None, life, now, first_seen=obj.last_modified
        )
        result.locks.append(_held(region, bucket.name, key, None, lock, sign, threshold_in_force, verdict, now))
        if verdict != STALE:
            return False
        result.findings.append(
            build.stale_lockfile(
                region, bucket.name, key, normalize_etag(etag) or obj.etag, lock, now, threshold_in_force, request.profile, sign=sign
            )
        )
        return True

    def _saw_ahead(
        self, request: SweepRequest, table: str, bucket: str, key: str, lock: LockInfo, life: StateLife | None, now: datetime
    ) -> None:
        """Remember when this lock (its Created ahead of the clock) was first seen, in the stack's table: later
        sweeps count its silence from then. Without that table (the CLI) each run counts from its own first look."""
        if not request.findings_table or life is None or life.first_seen(lock.id) is not None:
            return
        try:
            History(self._aws, request.region, request.findings_table).saw_ahead(
                life_key(request.region, table, bucket, key), f"{bucket}/{key}", lock.id, now
            )
        except AwsError:
            pass  # counted from this run again next time: later, never earlier, so never a false alarm

    @staticmethod
    def _liveness(
        policy: StalePolicy,
        lock: LockInfo,
        state_written: datetime | None,
        life: StateLife | None,
        now: datetime,
        first_seen: datetime | None = None,
    ) -> tuple[SignOfLife, Threshold, str]:
        """A lock's last sign of life, its threshold (learned from ``life`` if given) and verdict. ``first_seen``:
        when a lock whose Created is ahead of ``now`` was first seen (see checks.liveness.last_sign_of_life)."""
        sign = last_sign_of_life(lock.created, state_written, life.digest_written if life else None, now=now, first_seen=first_seen)
        holds = None if life is None else life.holds.get(lock.operation_class, [])
        threshold = stale_threshold(policy, lock.read_only, lock.operation_class, holds)
        return sign, threshold, verdict(sign.quiet_seconds(now), threshold, policy.multiplier)

    def _lives(self, request: SweepRequest, read: Read, result: ScanResult) -> Lives | None:
        """The stack's records (digest writes seen on the stream, hold history) of every state under a lock:
        one BatchGetItem per 100 held locks, never a read per state. None without a history table."""
        if not request.findings_table:
            return None
        wanted = {(table, b, k) for (b, k), held in read.locks.items() for table, _ in held}
        for name, view in read.views.items():
            wanted.update((t, name, k) for k in view.lockfiles if (t := read.table_of(name, k)))
        keys = {life_key(request.region, t, b, k): (t, b, k) for t, b, k in wanted}
        if not keys:
            return {}
        try:
            records = History(self._aws, request.region, request.findings_table).read(list(keys))
        except AwsError as exc:
            result.errors.append(
                ScanError(
                    "read_history",
                    request.findings_table,
                    exc.code,
                    describe_error(exc, "history table", request.findings_table).replace(
                        "its checks did not run", "locks were judged with the fixed thresholds and without the stream's digest writes"
                    ),
                )
            )
            return None
        return {keys[k]: life for k, life in records.items()}


def _held(
    region: str,
    bucket: str,
    key: str,
    table: str | None,
    lock: LockInfo,
    sign: SignOfLife,
    threshold: Threshold,
    verdict: str,
    now: datetime,
) -> HeldLock:
    return HeldLock(
        bucket,
        key,
        table,
        lock.summary(),
        sign.to_dict(),
        int(sign.quiet_seconds(now)),
        threshold.to_dict(),
        verdict,
        region,
        clock_ahead_seconds=int(clock_ahead(lock.created, now)),
    )
