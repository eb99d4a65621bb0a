"""Deciding with the time of the evidence: may a digest mismatch under a lock be judged?

Terraform writes the state object, then the digest, while it holds the lock. So only an object
written after the lock was taken can be the holder's write in flight, and only if the holder writes
state at all: a plan never does, so a mismatch under a plan's lock is judged whatever the times. An object older than the
lock (by more than the clock-skew margin: ``Created`` comes from the holder's clock, S3's
``LastModified`` from AWS's) was there before that run started: a mismatch on it is drift.
Anything else is unverified: not drift, not healthy.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from tfjanitor.durations import human_duration
from tfjanitor.terraform import LockInfo, format_time
from tfjanitor.untrusted import cap

CLOCK_SKEW = timedelta(minutes=5)


def lock_taken_at(locks: Iterable[LockInfo], lockfile_written: datetime | None = None) -> datetime | None:
    """When the earliest lock that may write the state was taken: each writing DynamoDB lock's
    ``Created``, the ``.tflock`` object's ``LastModified`` (its operation is not read). None when no
    lock that may write the state is held."""
    times = [lock.created for lock in locks if may_write(lock)]
    if lockfile_written is not None:
        times.append(lockfile_written)
    return min(times, default=None)


def may_write(lock: LockInfo) -> bool:
    """Whether the lock's holder may be writing the state (every operation but a plan)."""
    return not lock.read_only


def predates_lock(object_written: datetime, taken: datetime) -> bool:
    """Whether the object was written before the lock was taken (with the skew margin)."""
    return object_written < taken - CLOCK_SKEW


def locked_reason(lock: LockInfo | None, taken: datetime, object_written: datetime) -> str:
    who = (
        f"lock {cap(lock.id, 80)} ({cap(lock.operation, 80) or 'unknown operation'} by {cap(lock.who, 200) or 'unknown'})"
        if lock
        else "a lock file"
    )
    gap = (object_written - taken).total_seconds()
    when = (
        "as the lock was taken"
        if abs(gap) < 1
        else f"{human_duration(gap)} after the lock was taken"
        if gap > 0
        else f"{human_duration(-gap)} before the lock was taken, within the {human_duration(CLOCK_SKEW.total_seconds())} "
        "clock-skew margin"
    )
    return (
        f"locked by {who} since {format_time(taken)}; the state object was written at {format_time(object_written)}, "
        f"{when}: Terraform may be between its state and digest writes"
    )
