"""Reading one state bucket for a sweep: what the sweep must see, for as few calls as the bucket allows.

What a sweep must see in a bucket:
- the listing entry (ETag, size, LastModified) of each state a lock table names, by a digest or a lock;
- the ``.tflock`` next to such a state while it matters: the table holds its lock, or its ETag does not prove
  its digest (is the object a write in flight under a lock file?);
- every ``.tflock`` under each prefix the bucket was given with (``--bucket NAME[/PREFIX]``, ``ExtraBucketNames``):
  states that lock with a lock file only are named by no table.

How, per bucket:
1. For the audit, and for a bucket given without a prefix: the whole bucket, one ListObjectsV2 per 1,000 objects.
2. Otherwise each given prefix is listed, then the key range the other named states span: ``StartAfter`` just
   before the first of them, stopping after the last one's ``.tflock``.
3. After each page of that range, the listing goes on only while the rest of the range, at the density of named
   states its pages showed so far, looks at least ``WORTH`` times cheaper than one HeadObject per state left;
   otherwise each state left is asked for by HeadObject (a bucket of build artifacts with a few states among
   them). The range starts on a named state, so that one is not counted in the density. A bucket so never costs
   more than one call per named state, plus the pages that looked worth it, plus one HeadObject per ``.tflock``
   that matters and was not listed.

What was looked at for lock files is recorded (``LockfileCoverage``): a lock-file alert outside it is neither
resolved nor re-sent (alerts.lifecycle), and the sweep asks for those lock files by name (``recheck``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

from tfjanitor.aws.backend import Bucket, ObjectEntry, storable
from tfjanitor.aws.session import AwsError, AwsSession
from tfjanitor.durations import Deadline, in_time
from tfjanitor.model import LockfileCoverage
from tfjanitor.terraform import LOCKFILE_SUFFIX, normalize_etag

PROVEN = ""  # in ``wanted``: the listed ETag equals every digest of this key (no digest is empty)
PAGE = 1000  # objects per ListObjectsV2 page
WORTH = 2.0  # the rest of a key range is listed only if it looks this many times cheaper than HeadObject


@dataclass
class BucketView:
    """What reading one bucket told us, kept small: only keys we care about."""

    exists: bool = True
    listed: bool = False  # read completely (however it was read)
    objects_seen: int = 0
    # State keys named by locks or digests, but not those proven by their ETag (unless kept for the audit,
    # in a bucket of another region, or under a .tflock): kept in ``wanted`` as PROVEN instead.
    objects: dict[str, ObjectEntry] = field(default_factory=dict)
    lockfiles: dict[str, ObjectEntry] = field(default_factory=dict)  # state key -> its .tflock
    # Objects asked for by name that S3 would not serve as asked (400: SSE-C without the key), key -> error code:
    # there, and unverifiable, never "missing".
    unreadable: dict[str, str] = field(default_factory=dict)
    coverage: LockfileCoverage | None = None  # None: listed whole (every lock file seen)
    pages: int = 0
    heads: int = 0
    how: list[str] = field(default_factory=list)

    def report(self) -> dict[str, object]:
        return {"how": "+".join(self.how) or "none", "pages": self.pages, "heads": self.heads}


@dataclass
class BucketRead:
    """One bucket to read: the states named in it and the prefixes it was given with."""

    bucket: Bucket
    wanted: dict[str, str | None]  # state key -> the digest its ETag must equal (None: keep its entry)
    prefixes: list[str] | None = None  # given explicitly: its lock files are looked for there ("" = everywhere)
    whole: bool = False  # list the whole bucket (the audit)
    keep_all: bool = False  # keep the entry of every named state (the audit)
    scan_region: str | None = None
    deadline: Deadline | None = None
    recheck: set[str] = field(default_factory=set)  # states whose lock file an open alert is about


def read_bucket(aws: AwsSession, req: BucketRead) -> tuple[BucketView, str | None, list[tuple[str, AwsError]]]:
    """Its region, then the reads the plan above chooses. Errors come back as (check, error): the bucket is then
    ``listed = False`` (or ``exists = False``), never a silent all-clear."""
    view = BucketView()
    errors: list[tuple[str, AwsError]] = []
    bucket = req.bucket
    try:
        bucket_region: str | None = bucket.location()
    except AwsError as exc:
        if exc.code == "NoSuchBucket":
            view.exists = False
            return view, None, errors
        errors.append(("bucket_location", exc))
        bucket_region = None
    keep_all = req.keep_all or (bucket_region is not None and bucket_region != req.scan_region)
    reader = _Reader(aws, req, view, keep_all)
    try:
        if req.whole or "" in (req.prefixes or []):
            view.how.append("bucket")
            reader.listing(bucket.list_pages())
        else:
            coverage = view.coverage = LockfileCoverage()
            for prefix in dict.fromkeys(req.prefixes or []):
                view.how.append("prefix")
                reader.listing(bucket.list_pages(prefix=prefix))
                coverage.prefixes.append(prefix)
            reader.named_range(coverage)
        view.listed = True
    except AwsError as exc:
        if exc.code == "NoSuchBucket":
            view.exists = False
        else:
            errors.append(("head_object" if exc.operation == "HeadObject" else "list_bucket", exc))
    return view, bucket_region, errors


def _xml_safe(c: str) -> bool:
    """A character S3 (and moto) can echo back in a listing's XML: StartAfter is sent back in the response."""
    n = ord(c)
    return 0x20 <= n < 0x7F or (0xA0 <= n < 0xD800) or (0xE000 <= n < 0xFFFE) or n >= 0x10000


def just_before(key: str) -> str:
    """A StartAfter that lists ``key`` first: the key with its last character one lower (only keys that start with
    that lower neighbour sort between, and S3 keys are never empty). A key with a character a listing cannot echo
    (a control character, from a hostile lock table) starts the range at its longest safe prefix instead."""
    safe = key
    for i, c in enumerate(key):
        if not _xml_safe(c):
            safe = key[:i]
            break
    if not safe:
        return ""
    if safe != key:
        return safe[:-1]  # lists every key starting with safe[:-1]: ``key`` among them
    lower = chr(ord(key[-1]) - 1)
    return key[:-1] + lower if _xml_safe(lower) else key[:-1]


class _Reader:
    def __init__(self, aws: AwsSession, req: BucketRead, view: BucketView, keep_all: bool):
        self._aws = aws
        self._req = req
        self._view = view
        self._keep_all = keep_all
        self._prefixes = [p for p in (req.prefixes or []) if p]
        self.hits = 0  # named states the current listing passed

    def _under_prefix(self, key: str) -> bool:
        return any(key.startswith(p) for p in self._prefixes)

    def listing(self, pages: Iterable[tuple[Iterable[ObjectEntry], bool]]) -> None:
        """Take every entry of a listing."""
        for _ in self._pages(pages, None, False):
            pass

    def _pages(
        self, pages: Iterable[tuple[Iterable[ObjectEntry], bool]], through: str | None, skip_prefixed: bool
    ) -> Iterable[tuple[str, bool]]:
        view, wanted, deadline = self._view, self._req.wanted, self._req.deadline
        held: list[ObjectEntry] = []  # proven states whose .tflock may still come (nested key prefixes)
        last = ""
        for entries, more in pages:
            view.pages += 1
            for obj in entries:
                in_time(deadline)
                key = last = obj.key
                if through is not None and key > through:
                    yield last, False
                    return
                view.objects_seen += 1
                if skip_prefixed and self._under_prefix(key):
                    continue  # read with its prefix already
                while held and not key.startswith(held[-1].key):
                    held.pop()
                if key.endswith(LOCKFILE_SUFFIX):
                    state = key[: -len(LOCKFILE_SUFFIX)]
                    view.lockfiles[state] = obj
                    if held and held[-1].key == state:
                        view.objects[state] = held.pop()
                elif key in wanted:
                    self.hits += 1
                    # A 0-byte object is no state to Terraform: its ETag (the MD5 of nothing) proves nothing.
                    if self._keep_all or wanted[key] != normalize_etag(obj.etag) or obj.size == 0:
                        view.objects[key] = obj
                    else:
                        wanted[key] = PROVEN
                        held.append(obj)
            yield last, more
            if not more:
                return

    def named_range(self, coverage: LockfileCoverage) -> None:
        """The named states not under a given prefix: their key range, page by page, then HeadObject for the rest
        once listing stops paying."""
        req, view = self._req, self._view
        names = sorted(k for k in req.wanted if not self._under_prefix(k) and storable(k))
        recheck = {k for k in req.recheck if not self._under_prefix(k)}
        if not names:
            self._heads([], sorted(recheck))
            return
        view.how.append("range")
        start, through = just_before(names[0]), names[-1] + LOCKFILE_SUFFIX
        self.hits = 0
        objects_before, listed_to, passed = view.objects_seen, start, 0
        pages = self._pages(req.bucket.list_pages(start_after=start), through, skip_prefixed=bool(self._prefixes))
        for last, more in pages:
            listed_to = last or listed_to
            passed = bisect_right(names, listed_to)
            if not more:
                listed_to, passed = through, len(names)  # the listing ended, or went past the range: all seen
                break
            left = len(names) - passed
            if left and not self._worth_listing(left, view.objects_seen - objects_before):
                break
        coverage.ranges.append((start, listed_to))
        # Lock files that matter and lie past what was listed: those of the named states left (asked for with
        # them), of the states passed whose entry was kept (a held lock, an ETag that does not prove the digest),
        # and of the states an open alert is about.
        rest = names[passed:]
        asked = set(rest)
        kept = {k for k in names[:passed] if k in view.objects and k not in view.lockfiles}
        later = sorted(k for k in kept | recheck if k not in asked and k + LOCKFILE_SUFFIX > listed_to)
        self._heads(rest, later)

    def _worth_listing(self, left: int, objects: int) -> bool:
        hits = self.hits - 1  # the range starts on a named state: that one says nothing of the density
        if hits <= 0:
            return False
        pages_left = left * objects / hits / PAGE
        return pages_left * WORTH <= left

    def _heads(self, states: list[str], lockfiles_only: list[str]) -> None:
        """HeadObject each state (and its .tflock when that matters), a few at a time; then the .tflock of
        ``lockfiles_only``."""
        if not states and not lockfiles_only:
            return
        view, wanted, bucket, deadline = self._view, self._req.wanted, self._req.bucket, self._req.deadline
        view.how.append("head")
        if view.coverage is None:  # pragma: no cover (a whole listing never asks by name)
            view.coverage = LockfileCoverage()

        recheck = self._req.recheck

        def head(key: str) -> ObjectEntry | None:
            try:
                return bucket.head(key)
            except AwsError as exc:
                if not exc.unreadable:
                    raise
                view.unreadable[key] = exc.code  # there, but not readable as asked (SSE-C): judged by no one
                return None

        def state(key: str) -> tuple[str, ObjectEntry | None, ObjectEntry | None, int]:
            in_time(deadline)
            entry = head(key)
            digest = wanted.get(key)
            matches = entry is not None and digest is not None and digest == normalize_etag(entry.etag) and entry.size > 0
            if matches and key not in recheck:
                return key, entry, None, 1
            return key, entry, head(key + LOCKFILE_SUFFIX), 2

        def lockfile_of(key: str) -> tuple[str, ObjectEntry | None, ObjectEntry | None, int]:
            in_time(deadline)
            return key, None, head(key + LOCKFILE_SUFFIX), 1

        for key, entry, lockfile, heads in self._aws.in_parallel(state, states):
            view.heads += heads
            if heads == 2:
                view.coverage.keys.add(key)
            if lockfile is not None:
                view.lockfiles[key] = lockfile
            if entry is None:
                continue  # no such state object (a digest left behind): judged as missing
            if self._keep_all or wanted[key] != normalize_etag(entry.etag) or lockfile is not None or entry.size == 0:
                view.objects[key] = entry
            else:
                wanted[key] = PROVEN
        for key, _, lockfile, heads in self._aws.in_parallel(lockfile_of, lockfiles_only):
            view.heads += heads
            view.coverage.keys.add(key)
            if lockfile is not None:
                view.lockfiles[key] = lockfile
