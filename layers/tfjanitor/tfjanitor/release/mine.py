"""``tfjanitor unlock --mine``: release the locks this machine's dead terraform runs left, and nothing else.

A lock goes only if all of these hold (:func:`judge`, pure):

1. its ``Who`` is exactly what Terraform writes on this machine for this user (``machine.Machine.who``);
2. it was created at or after ``--since``, when given (the job's start: an older leftover is the sweeper's);
3. it was created before every live terraform/tofu process of this user on this machine started: a process
   cannot hold a lock created before it existed, and a lock created after one started may be that run's.

The locks are read first and the process table after (:func:`release_mine`): a run that starts between the
two reads is then either seen alive, or started after every lock that was read and so holds none of them. The
release is ``release.locks.release``, as for ``tfjanitor unlock``: the DynamoDB item only if ``Info`` is still
exactly what was read, the ``.tflock`` only if its ETag is; a lock replaced in between is kept and reported.
A state locked both ways (same ID) has both released. Digest items and state objects are never touched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tfjanitor.aws.backend import Bucket, LockTable, LockWriter
from tfjanitor.aws.session import AwsError, AwsSession
from tfjanitor.durations import parse_duration
from tfjanitor.model import BucketSpec
from tfjanitor.release.locks import DYNAMODB, LOCKFILE, ObservedLock, ReleaseResult, lock_info_or_none, observe, release
from tfjanitor.release.machine import Machine, MachineError, Process
from tfjanitor.terraform import LOCKFILE_SUFFIX, LockItem, MalformedItem, classify_item, normalize_etag, parse_time

LIVE_RUN, OTHER_MACHINE, BEFORE_SINCE, CHANGED = "live_run", "other_machine", "before_since", "changed"
REASON_CODES = (LIVE_RUN, OTHER_MACHINE, BEFORE_SINCE, CHANGED)
OTHER_MACHINES_LISTED = 100  # other machines' locks listed one by one (all are counted): a shared table has many
LIVE_RUNS_LISTED = 20  # live runs named in one reason or listed in the report


def precise(when: datetime) -> str:
    """A time to the millisecond, UTC: a lock and a run that started in the same second are told apart."""
    utc = when.astimezone(timezone.utc)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: an RFC 3339 time with a zone, or a duration ago (``2h``, ``90m``, ``1h30m``)."""
    stripped = text.strip()
    try:
        return now - parse_duration(stripped)
    except ValueError:
        pass
    try:
        return parse_time(stripped)
    except MalformedItem:
        raise ValueError(
            f"--since: not a time: {text!r} (an RFC 3339 time with a zone, e.g. 2026-11-25T00:01:26Z, or a duration ago, e.g. 2h, 90m)"
        ) from None


@dataclass(frozen=True)
class StateScope:
    """One state's locks, as a working directory's backend names them (``--chdir``)."""

    bucket: str
    key: str  # the state key, workspace prefix included
    table: str | None
    lockfile: bool
    directory: str | None = None
    workspace: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "mode": "working_dir",
            "working_dir": self.directory,
            "workspace": self.workspace,
            "bucket": self.bucket,
            "key": self.key,
            "table": self.table,
            "lockfile": self.lockfile,
        }


@dataclass(frozen=True)
class StoreScope:
    """Every lock in a lock table and/or under a bucket prefix (``--table``, ``--bucket NAME[/PREFIX]``)."""

    table: str | None
    bucket: BucketSpec | None

    def describe(self) -> dict[str, Any]:
        return {"mode": "store", "table": self.table, "bucket": str(self.bucket) if self.bucket else None}


@dataclass(frozen=True)
class Verdict:
    code: str | None  # None: it may be released; else one of REASON_CODES
    reason: str  # one sentence, starting with the reason's words
    holders: tuple[Process, ...] = ()  # live_run: the runs that may hold it

    @property
    def release(self) -> bool:
        return self.code is None


def judge(observed: ObservedLock, who: str, live: Sequence[Process], since: datetime | None) -> Verdict:
    """Whether this machine's dead run left ``observed``, and may it go (see the module's rules)."""
    info = observed.lock
    if info is None:
        return Verdict(
            OTHER_MACHINE, "another machine's, or not Terraform's: not a valid Terraform lock, so nothing says it is this machine's"
        )
    if info.who != who:
        return Verdict(
            OTHER_MACHINE, f"another machine's (or another user's): Who is {info.who!r}, and this machine's runs write {who!r}"
        )
    if since is not None and info.created < since:
        return Verdict(
            BEFORE_SINCE,
            f"before --since: created {precise(info.created)}, before {precise(since)}: an "
            "older leftover this job did not cause (the sweeper's)",
        )
    holders = tuple(p for p in live if info.created >= p.started)
    if holders:
        named = ", ".join(f"{p.name} pid {p.pid} started {precise(p.started)}" for p in holders[:LIVE_RUNS_LISTED])
        more = f" and {len(holders) - LIVE_RUNS_LISTED} more" if len(holders) > LIVE_RUNS_LISTED else ""
        return Verdict(
            LIVE_RUN,
            f"held by a live run: created {precise(info.created)}, after a live terraform run of "
            f"this user here started ({named}{more}): it may be that run's",
            holders,
        )
    alive = "" if live else " (none is alive)"
    return Verdict(
        None,
        f"this machine's dead run's: created {precise(info.created)}, before every live terraform run "
        f"of this user here started{alive}",
    )


def where(lock: ObservedLock) -> dict[str, Any]:
    """The lock's place, as the JSON names it: ``table``, or ``lockfile`` (the ``.tflock`` key)."""
    doc: dict[str, Any] = {"bucket": lock.bucket, "key": lock.key, "source": lock.source}
    if lock.source == LOCKFILE:
        doc["lockfile"] = lock.key + LOCKFILE_SUFFIX
    else:
        doc["table"] = lock.table
    return doc


@dataclass
class Kept:
    lock: ObservedLock
    verdict: Verdict

    @property
    def code(self) -> str:
        return str(self.verdict.code)  # never None: a kept lock has a reason

    def to_dict(self, now: datetime) -> dict[str, Any]:
        doc = {**self.lock.describe(now), **where(self.lock), "reason": self.verdict.reason, "reason_code": self.code}
        if self.verdict.holders:
            doc["live_runs"] = [p.to_dict() for p in self.verdict.holders[:LIVE_RUNS_LISTED]]
        return doc


@dataclass
class MineReport:
    region: str
    scope: dict[str, Any]
    since: datetime | None
    dry_run: bool
    now: datetime
    who: str | None = None
    live: list[Process] = field(default_factory=list)
    released: list[ReleaseResult] = field(default_factory=list)
    would_release: list[tuple[ObservedLock, Verdict]] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    looked: int = 0  # locks read

    @property
    def complete(self) -> bool:
        return not self.errors

    @property
    def changed(self) -> list[Kept]:
        return [k for k in self.kept if k.code == CHANGED]

    @property
    def exit_code(self) -> int:
        """0: nothing of this machine's dead runs is left locked; 1: one could not be released (it changed since it
        was read); 2: it could not complete (nothing is known of what it could not read)."""
        if self.errors:
            return 2
        return 1 if self.changed else 0

    def error(self, check: str, target: str | None, exc: AwsError | MachineError) -> None:
        code = exc.code if isinstance(exc, AwsError) else "MachineError"
        self.errors.append({"check": check, "target": target, "code": code, "message": str(exc)})

    def message(self) -> str:
        verb = "would release" if self.dry_run else "released"
        done = len(self.would_release) if self.dry_run else len(self.released)
        mine_kept = [k for k in self.kept if k.code != OTHER_MACHINE]
        if done:
            parts = [f"{verb.capitalize()} {done} lock{'s' if done != 1 else ''} of this machine's dead runs"]
        elif self.errors or self.changed:
            parts = [f"{verb.capitalize()} nothing"]
        else:
            parts = ["No lock of this machine's dead runs: nothing to release"]
        if mine_kept:
            codes = ", ".join(sorted({k.code for k in mine_kept}))
            parts.append(f"kept {len(mine_kept)} of this machine's lock{'s' if len(mine_kept) != 1 else ''} ({codes})")
        others = len(self.kept) - len(mine_kept)
        if others:
            parts.append(f"kept {others} {'lock of another machine' if others == 1 else 'locks of other machines'}")
        if self.errors:
            parts.append(f"{len(self.errors)} error{'s' if len(self.errors) != 1 else ''}: could not complete")
        return "; ".join(parts) + "."

    def to_dict(self) -> dict[str, Any]:
        now = self.now
        counts = Counter(k.code for k in self.kept)
        listed: list[Kept] = []
        others = 0
        for kept in self.kept:
            if kept.code == OTHER_MACHINE:
                others += 1
                if others > OTHER_MACHINES_LISTED:
                    continue
            listed.append(kept)
        doc: dict[str, Any] = {
            "command": "unlock --mine",
            "complete": self.complete,
            "dry_run": self.dry_run,
            "who": self.who,
            "since": precise(self.since) if self.since else None,
            "region": self.region,
            "scope": self.scope,
            "live_runs": [p.to_dict() for p in self.live[:LIVE_RUNS_LISTED]],
            "live_runs_total": len(self.live),
            "locks_read": self.looked,
            "released": [{**r.to_dict(now), **where(r.lock)} for r in self.released],
            "kept": [k.to_dict(now) for k in listed],
            "kept_counts": {code: counts[code] for code in REASON_CODES if counts[code]},
            "kept_not_listed": len(self.kept) - len(listed),
            "errors": self.errors,
            "notes": self.notes,
            "exit_code": self.exit_code,
            "message": self.message(),
        }
        if self.dry_run:
            doc["would_release"] = [
                {**lock.describe(now), **where(lock), "reason": verdict.reason} for lock, verdict in self.would_release
            ]
        return doc


# -- reading the locks -----------------------------------------------------------------------------------------


def _table_locks(aws: AwsSession, region: str, table: str) -> list[ObservedLock]:
    """Every valid lock item of a table (digests and items Terraform could not have written are not locks)."""
    found: list[ObservedLock] = []

    def take(raw: dict[str, Any]) -> None:
        item = classify_item(raw)
        if isinstance(item, LockItem):
            found.append(ObservedLock(DYNAMODB, item.bucket, item.key, item.lock.raw, item.lock, table=table))

    LockTable(aws, region, table).read(take)
    return found


def _bucket_locks(aws: AwsSession, writer: LockWriter, region: str, spec: BucketSpec) -> list[ObservedLock]:
    """Every ``.tflock`` under the prefix, each read for its body and ETag."""
    keys = [
        entry.key
        for page, _ in Bucket(aws, region, spec.name).list_pages(prefix=spec.prefix)
        for entry in page
        if entry.key.endswith(LOCKFILE_SUFFIX) and len(entry.key) > len(LOCKFILE_SUFFIX)
    ]

    def read(key: str) -> ObservedLock | None:
        got = writer.read_lockfile(spec.name, key)
        if got is None:
            return None  # released since it was listed
        body, etag = got
        raw = body.decode("utf-8", errors="replace")
        return ObservedLock(LOCKFILE, spec.name, key[: -len(LOCKFILE_SUFFIX)], raw, lock_info_or_none(raw), etag=normalize_etag(etag))

    return [lock for lock in aws.in_parallel(read, keys) if lock is not None]


def _read(
    aws: AwsSession, writer: LockWriter, region: str, scope: StateScope | StoreScope, who: str, report: MineReport
) -> list[ObservedLock]:
    observed: list[ObservedLock] = []
    if isinstance(scope, StateScope):
        state = f"{scope.bucket}/{scope.key}"
        if scope.table:
            try:
                observed += observe(writer, scope.bucket, scope.key, scope.table, lockfile=False)
            except AwsError as exc:
                report.error("read_lock_item", f"{state} in {scope.table}", exc)
        if scope.lockfile:
            try:
                observed += observe(writer, scope.bucket, scope.key, None, lockfile=True)
            except AwsError as exc:
                report.error("read_lockfile", f"s3://{state}{LOCKFILE_SUFFIX}", exc)
        return observed
    if scope.table:
        try:
            observed += _table_locks(aws, region, scope.table)
        except AwsError as exc:
            report.error("scan_table", scope.table, exc)
    if scope.bucket:
        try:
            observed += _bucket_locks(aws, writer, region, scope.bucket)
        except AwsError as exc:
            report.error("list_bucket", str(scope.bucket), exc)
    # Terraform with dynamodb_table and use_lockfile holds both locks (same ID): a lock item of this machine's
    # has its .tflock looked for by name, unless the bucket listing already covered it.
    have = {(lock.bucket, lock.key) for lock in observed if lock.source == LOCKFILE}
    for lock in [lock for lock in observed if lock.source == DYNAMODB and lock.lock and lock.lock.who == who]:
        if (lock.bucket, lock.key) in have:
            continue
        try:
            observed += observe(writer, lock.bucket, lock.key, None, lockfile=True)
        except AwsError as exc:
            report.notes.append(
                f"could not look for s3://{lock.bucket}/{lock.key}{LOCKFILE_SUFFIX} ({exc.code}): only its DynamoDB lock is considered"
            )
        have.add((lock.bucket, lock.key))
    return observed


def release_mine(
    aws: AwsSession,
    region: str,
    machine: Machine,
    scope: StateScope | StoreScope,
    since: datetime | None,
    dry_run: bool = False,
    now: datetime | None = None,
    writer: LockWriter | None = None,
) -> MineReport:
    """Read the locks, then the live runs, judge each lock, and release (or, dry, list) those that may go."""
    report = MineReport(region=region, scope=scope.describe(), since=since, dry_run=dry_run, now=now or datetime.now(timezone.utc))
    writer = writer or LockWriter(aws, region)
    try:
        who = report.who = machine.who()
    except MachineError as exc:
        report.error("who", "this machine", exc)
        return report
    observed = _read(aws, writer, region, scope, who, report)  # first the locks ...
    report.looked = len(observed)
    try:
        live = report.live = machine.terraform_processes()  # ... then the runs (see the module's docstring)
    except MachineError as exc:
        report.error("processes", "this machine", exc)
        return report
    # A state's locks one after the other, the DynamoDB item first (Terraform takes it last).
    for lock in sorted(observed, key=lambda o: (o.bucket, o.key, o.source != DYNAMODB)):
        verdict = judge(lock, who, live, since)
        if not verdict.release:
            report.kept.append(Kept(lock, verdict))
        elif dry_run:
            report.would_release.append((lock, verdict))
        else:
            try:
                result = release(writer, lock)
            except AwsError as exc:
                report.error("release", f"{lock.bucket}/{lock.key} ({lock.source})", exc)
                continue
            if result.released:
                report.released.append(result)
            else:
                detail = result.reason.removeprefix("not released: ").removesuffix("; nothing was deleted")
                report.kept.append(Kept(lock, Verdict(CHANGED, f"changed since read: {detail}; nothing was deleted")))
    return report
