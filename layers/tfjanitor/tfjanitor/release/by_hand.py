"""`tfjanitor unlock`: release one state's lock by hand, conditionally on exactly what was shown.

This room reads the state's locks, chooses which go (:func:`choose`) and releases them; what is shown at a
terminal, the prompt and the JSON are the CLI's (``cli/unlock.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tfjanitor.aws.backend import LockWriter
from tfjanitor.aws.session import AwsError
from tfjanitor.release.locks import DYNAMODB, LOCKFILE, ObservedLock, ReleaseResult, observe, release

EXIT_OK, EXIT_NOT_RELEASED, EXIT_INCOMPLETE = 0, 1, 2


@dataclass(frozen=True)
class UnlockRequest:
    """Which lock to release: the state's DynamoDB item (``table``) and/or its ``.tflock`` (``lockfile``), only if
    its ID is ``want_id`` when given."""

    bucket: str
    key: str
    table: str | None = None
    lockfile: bool = False
    want_id: str | None = None

    @property
    def state(self) -> str:
        return f"{self.bucket}/{self.key}"


@dataclass
class Unlock:
    """What one unlock saw and did."""

    request: UnlockRequest
    locks: list[ObservedLock] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    results: list[ReleaseResult] = field(default_factory=list)

    def error(self, check: str, target: str | None, exc: AwsError) -> None:
        self.errors.append({"check": check, "target": target, "code": exc.code, "message": str(exc)})

    def to_dict(self, region: str, now: datetime) -> dict[str, Any]:
        return {
            "region": region,
            "state": self.request.state,
            "complete": not self.errors,
            "locks": [lock.describe(now) for lock in self.locks],
            "released": [r.to_dict(now) for r in self.results if r.released],
            "not_released": [r.to_dict(now) for r in self.results if not r.released],
            "errors": self.errors,
        }


def read_locks(writer: LockWriter, request: UnlockRequest) -> Unlock:
    """The locks the state holds now (its DynamoDB item when a table is given, its .tflock when it exists)."""
    unlock = Unlock(request)
    state = request.state
    if request.table:
        try:
            unlock.locks = observe(writer, request.bucket, request.key, request.table, lockfile=False)
        except AwsError as exc:
            unlock.error("read_lock_item", request.table, exc)
            return unlock
    try:
        unlock.locks += observe(writer, request.bucket, request.key, None, lockfile=True)
    except AwsError as exc:
        if request.lockfile:
            unlock.error("read_lockfile", state, exc)
        else:
            unlock.notes.append(f"could not look for s3://{state}.tflock ({exc.code}); only the DynamoDB lock is considered")
    return unlock


def choose(unlock: Unlock) -> tuple[list[ObservedLock], str]:
    """Which of the observed locks to release, or why none."""
    locks, request = unlock.locks, unlock.request
    if request.want_id is not None:
        chosen = [lock for lock in locks if lock.lock_id == request.want_id]
        if not chosen:
            held = ", ".join(sorted({lock.lock_id or "unreadable" for lock in locks}))
            return [], f"refusing: the lock ID is {held}, not {request.want_id}"
        return chosen, ""
    requested = [
        lock for lock in locks if (lock.source == DYNAMODB and request.table) or (lock.source == LOCKFILE and request.lockfile)
    ]
    if not requested:
        return [], "no lock of the requested kind"
    ids = {lock.lock_id for lock in requested if lock.lock_id}
    # With both dynamodb_table and use_lockfile, Terraform holds both locks with the same ID: release both.
    companions = [lock for lock in locks if lock not in requested and lock.lock_id and lock.lock_id in ids]
    return requested + companions, ""


def release_all(writer: LockWriter, unlock: Unlock, chosen: list[ObservedLock]) -> int:
    """Release each chosen lock (exactly as observed, or not at all); the exit code."""
    for lock in chosen:
        try:
            unlock.results.append(release(writer, lock))
        except AwsError as exc:
            unlock.error("release", lock.source, exc)
    if unlock.errors:
        return EXIT_INCOMPLETE
    return EXIT_OK if all(r.released for r in unlock.results) else EXIT_NOT_RELEASED
