"""Stages 5 and 6 of a sweep: is each stored digest the MD5 of its state object, and is a mismatch drift?

An ETag equal to the digest proves a match (a single-part, unencrypted or SSE-S3 upload); otherwise the object is
streamed through MD5, a few at a time, never kept. Terraform writes the object, then the digest, under the lock:
a mismatch on an object written after a writing lock was taken is unverified (``checks.evidence``) unless that
lock is stale (then its run died between the two writes: an interrupted write). Every suspect is confirmed by a
consistent re-read of its lock and digest items before it is reported, and a drifted state's versions say which
one is Terraform's last write (scan/forensics.py). The stream monitor's check of one state takes the same path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tfjanitor.aws.backend import Bucket, LockTable, ObjectEntry
from tfjanitor.aws.posture import PostureReader
from tfjanitor.aws.session import AwsError, AwsSession
from tfjanitor.checks import findings as build
from tfjanitor.checks.evidence import lock_taken_at, locked_reason, may_write, predates_lock
from tfjanitor.durations import Deadline, in_time
from tfjanitor.model import DriftHistory, Kind, ScanError, ScanResult, Unverified
from tfjanitor.scan.buckets import BucketView
from tfjanitor.scan.forensics import drift_history
from tfjanitor.scan.reading import Read, StateRef, SweepRequest, describe_error
from tfjanitor.terraform import (
    DIGEST_SUFFIX,
    LOCKFILE_SUFFIX,
    DigestItem,
    LockInfo,
    LockItem,
    classify_item,
    normalize_etag,
    state_checksum,
)

PROVEN, UNVERIFIED, EMPTY, HASH = "proven", "unverified", "empty", "hash"


@dataclass(frozen=True)
class Look:
    """What a state object's listing entry says of its digest before anything is downloaded."""

    what: str  # proven | unverified | empty (no state to Terraform: nothing to download) | hash
    lock: LockInfo | None = None  # unverified: the writing lock that may be mid-write
    taken: datetime | None = None  # unverified: when that lock was taken
    dead: LockInfo | None = None  # the stale writing lock held over the object (an interrupted write if it drifted)

    def since(self) -> datetime:
        """When the lock that leaves this look unverified was taken (first_look always says, for that verdict)."""
        if self.taken is None:
            raise ValueError(f"a {self.what} look has no lock time")
        return self.taken


def first_look(
    digest: DigestItem, obj: ObjectEntry, held: list[LockInfo], lockfile_written: datetime | None, dead: Callable[[], LockInfo | None]
) -> Look:
    """The ETag proves the digest; or a lock that may write the state was taken before the object was written
    (Terraform may be between its two writes: unverified, unless ``dead()`` names that lock's dead run); or the
    object must be hashed (a 0-byte object needs no download: it is no state)."""
    if normalize_etag(obj.etag) == digest.digest and obj.size > 0:  # a 0-byte object's ETag proves nothing
        return Look(PROVEN)
    taken = lock_taken_at(held, lockfile_written)
    holder = None
    if taken is not None and not predates_lock(obj.last_modified, taken):
        holder = dead()
        if holder is None:
            return Look(UNVERIFIED, next(filter(may_write, held), None), taken)
    return Look(EMPTY if obj.size == 0 else HASH, dead=holder)


@dataclass
class Candidate:
    table: str
    digest: DigestItem
    actual: str | None  # None: the object does not exist
    etag: str = ""
    size: int = 0
    written: datetime | None = None  # the hashed object's LastModified
    dead: LockInfo | None = None  # the stale writing lock held over it when it was listed


def unreadable_reason(bucket: str, key: str, code: str) -> str:
    """Why a state that S3 would not serve as asked (400) is neither drift, nor healthy, nor missing."""
    return (
        f"S3 answered {code} (400) to reading s3://{bucket}/{key}: an object encrypted with a customer-provided "
        "key (SSE-C, sse_customer_key) cannot be read or hashed without that key, so its digest cannot be checked"
    )


class Digests:
    """Judges the digests a sweep read (or one state, for the stream monitor)."""

    def __init__(self, aws: AwsSession):
        self._aws = aws

    def judge(
        self, request: SweepRequest, read: Read, result: ScanResult, stale: dict[tuple[str, str, str], LockInfo], alive: set[StateRef]
    ) -> None:
        """5. Each digest: proven by its ETag, or hashed; 6. every suspect confirmed before it is reported.
        ``stale``: (table, bucket, key) -> the stale writing lock held over the state; ``alive``: states under a
        lock that is not stale."""
        candidates: list[Candidate] = []
        to_hash: list[tuple[str, DigestItem, str, LockInfo | None]] = []
        for table, digest in read.digests():
            self._look(request, read, result, table, digest, stale, alive, candidates, to_hash)
        self._hashed(request, read, result, to_hash, candidates)
        in_time(request.deadline)
        self.confirm(result, candidates, read.views, read.handles, request.profile)

    def _look(
        self,
        request: SweepRequest,
        read: Read,
        result: ScanResult,
        table: str,
        digest: DigestItem,
        stale: dict[tuple[str, str, str], LockInfo],
        alive: set[StateRef],
        candidates: list[Candidate],
        to_hash: list[tuple[str, DigestItem, str, LockInfo | None]],
    ) -> None:
        """One digest against its bucket's view: decided now, a suspect, or one to hash."""
        view = read.views.get(digest.bucket)
        if view is None or (view.exists and not view.listed):
            return  # not read, or the read failed: already an error, never a silent all-clear
        if not view.exists:
            candidates.append(Candidate(table, digest, None))
            return
        obj = view.objects.get(digest.key)
        if obj is None and digest.key in view.unreadable:
            result.unverified.append(
                Unverified(digest.bucket, digest.key, table, unreadable_reason(digest.bucket, digest.key, view.unreadable[digest.key]))
            )
            return
        if obj is None:
            if read.proven(digest.bucket, digest.key):
                result.stats.etag_proven += 1  # decided while listing (never when kept for the audit)
            else:
                candidates.append(Candidate(table, digest, None))
            return
        ref = (digest.bucket, digest.key)
        held = [item.lock for _, item in read.locks.get(ref, [])]
        lockfile = view.lockfiles.get(digest.key)
        look = first_look(
            digest,
            obj,
            held,
            lockfile.last_modified if lockfile else None,
            lambda: stale.get((table, *ref)) if ref not in alive else None,
        )
        etag = normalize_etag(obj.etag)
        if look.what == PROVEN:
            result.stats.etag_proven += 1
            if request.for_audit:
                read.md5[ref] = etag
        elif look.what == UNVERIFIED:
            self._unverified(result, table, digest, look.lock, look.since(), obj.last_modified)
        elif look.what == EMPTY:
            candidates.append(Candidate(table, digest, state_checksum("", 0), etag, 0, obj.last_modified, look.dead))
        else:
            to_hash.append((table, digest, etag, look.dead))

    def _hashed(
        self,
        request: SweepRequest,
        read: Read,
        result: ScanResult,
        to_hash: list[tuple[str, DigestItem, str, LockInfo | None]],
        candidates: list[Candidate],
    ) -> None:
        """Stream each object to hash through MD5, a few at a time: a mismatch is a suspect."""
        stats = result.stats
        hashed = self._hash_all(read.handles, [(t, d, e) for t, d, e, _ in to_hash], request.deadline)
        for (table, digest, etag, dead), outcome in zip(to_hash, hashed, strict=True):
            if isinstance(outcome, AwsError):
                if outcome.not_found:
                    candidates.append(Candidate(table, digest, None))
                elif outcome.unreadable:
                    result.unverified.append(
                        Unverified(digest.bucket, digest.key, table, unreadable_reason(digest.bucket, digest.key, outcome.code))
                    )
                else:
                    target = f"{digest.bucket}/{digest.key}"
                    result.errors.append(
                        ScanError("read_state", target, outcome.code, describe_error(outcome, "state object", f"s3://{target}"))
                    )
                continue
            actual, size, written = outcome
            stats.downloads += 1
            stats.bytes_downloaded += size
            if request.for_audit:
                read.md5[(digest.bucket, digest.key)] = actual
            if state_checksum(actual, size) != digest.digest:
                candidates.append(Candidate(table, digest, state_checksum(actual, size), etag, size, written, dead))

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

        return self._aws.in_parallel(one, work)

    def check(self, result: ScanResult, table: str, bucket: str, key: str) -> None:
        """One state now, into ``result`` (the stream monitor, after a digest write or a lock release): a drift or
        orphan finding, nothing (digest proven, no digest), an ``unverified`` entry, or an AwsError raised."""
        region = result.region
        lock_id, digest_id = f"{bucket}/{key}", f"{bucket}/{key}{DIGEST_SUFFIX}"
        items = LockTable(self._aws, region, table).get_many([lock_id, digest_id])
        digest = classify_item(items.get(digest_id, {}))
        if not isinstance(digest, DigestItem):
            return  # no digest (lockfile-only state, deleted workspace): nothing to compare
        result.stats.states = result.stats.digest_items = 1
        handle = Bucket(self._aws, region, bucket)
        try:
            obj = handle.head(key)
            candidate = Candidate(table, digest, None)
            if obj is not None:
                lock = classify_item(items[lock_id]) if lock_id in items else None
                held = [lock.lock] if isinstance(lock, LockItem) else []
                if normalize_etag(obj.etag) == digest.digest and obj.size > 0:
                    result.stats.etag_proven = 1
                    return
                lockfile = handle.head(key + LOCKFILE_SUFFIX)
                look = first_look(digest, obj, held, lockfile.last_modified if lockfile else None, lambda: None)
                if look.what == UNVERIFIED:
                    self._unverified(result, table, digest, look.lock, look.since(), obj.last_modified)
                    return
                hashed = self._hash_one(result, handle, table, digest, obj, look)
                if hashed is None:
                    return
                candidate = hashed
        except AwsError as exc:
            if not exc.unreadable:
                raise
            result.unverified.append(Unverified(bucket, key, table, unreadable_reason(bucket, key, exc.code)))
            return
        self.confirm(result, [candidate], {bucket: BucketView(listed=True)}, {bucket: handle})

    def _hash_one(
        self, result: ScanResult, handle: Bucket, table: str, digest: DigestItem, obj: ObjectEntry, look: Look
    ) -> Candidate | None:
        """The state's checksum as Terraform calculates it: a suspect, or None when it matches."""
        etag = normalize_etag(obj.etag)
        if look.what == EMPTY:
            return Candidate(table, digest, state_checksum("", 0), etag, 0, obj.last_modified)
        actual, size, written = handle.md5(digest.key)
        result.stats.downloads, result.stats.bytes_downloaded = 1, size
        if state_checksum(actual, size) == digest.digest:
            return None
        return Candidate(table, digest, state_checksum(actual, size), etag, size, written)

    @staticmethod
    def _unverified(
        result: ScanResult, table: str, digest: DigestItem, lock: LockInfo | None, taken: datetime, written: datetime
    ) -> None:
        result.stats.skipped_locked += 1
        result.unverified.append(Unverified(digest.bucket, digest.key, table, locked_reason(lock, taken, written)))

    def confirm(
        self,
        result: ScanResult,
        candidates: list[Candidate],
        views: dict[str, BucketView],
        handles: dict[str, Bucket],
        profile: str | None = None,
    ) -> None:
        """Re-read lock and digest items (consistently) after the object was read.

        Terraform writes the object, then the digest, under the lock. If the
        digest is unchanged and no lock is held now, the object we hashed was
        not a write in progress: the mismatch is real.
        """
        by_table: dict[str, list[Candidate]] = defaultdict(list)
        for c in candidates:
            by_table[c.table].append(c)
        drifts: list[tuple[Candidate, LockInfo | None]] = []
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
            result.findings.append(
                build.digest_drift(
                    result.region,
                    c.table,
                    d.bucket,
                    d.key,
                    d.stored,
                    c.actual or "",
                    c.etag,
                    c.size,
                    has_lockfile_history=view is not None and d.key in view.lockfiles,
                    locked_by=locked_by.summary() if locked_by is not None else None,
                    history=history,
                    profile=profile,
                )
            )

    def _histories(self, drifts: list[Candidate], handles: dict[str, Bucket]) -> list[DriftHistory | None]:
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

        def one(c: Candidate) -> DriftHistory | None:
            handle = handles.get(c.digest.bucket)
            if handle is None:
                return None
            if not versioned.get(c.digest.bucket, True):
                return DriftHistory(False, None, None, c.etag)  # never versioned: no older version to find
            return drift_history(handle, c.digest.key, c.digest.digest, c.etag, c.actual or "")

        return self._aws.in_parallel(one, drifts)

    def _judge(
        self, result: ScanResult, c: Candidate, now_items: dict[str, dict[str, Any]], view: BucketView | None, profile: str | None
    ) -> tuple[Candidate, LockInfo | None] | None:
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
        if locked_by is not None and may_write(locked_by) and (c.written is None or not predates_lock(c.written, locked_by.created)):
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
    def _interrupted(result: ScanResult, c: Candidate, lock: LockInfo, actual: str, written: datetime, profile: str | None) -> None:
        """The stale lock's holder wrote the object and died before the digest: one interrupted_write finding
        instead of its stale_lock (and of the stale_lockfile of the same run, which the fix releases too)."""
        d = c.digest
        same_run = [
            f
            for f in result.findings
            if f.kind in (Kind.STALE_LOCK, Kind.STALE_LOCKFILE)
            and f.lock_id == lock.id
            and (f.bucket, f.key) == (d.bucket, d.key)
            and f.table in (c.table, None)
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
