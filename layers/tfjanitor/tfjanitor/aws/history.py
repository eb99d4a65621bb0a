"""What the stream monitor remembers of each state, in the stack's own table: signs of life and hold times.

One item per state (``Fingerprint`` = ``life:`` + a hash of region, lock table, bucket and key), next to
the alert records but never mistaken for one (it has no ``Status``):

- ``DigestWrittenAt`` (N, epoch seconds): the latest digest write the stream showed; only moves forward.
- ``Holds_apply`` / ``Holds_plan`` / ``Holds_other`` (S): the last :data:`MAX_HOLDS` hold times of that
  operation class, oldest first, as ``tag:seconds`` words (``tag``: 8 hex digits of the lock ID's
  SHA-256, so a redelivered release is recorded once). 50 holds take about 700 bytes.
- ``AheadLock`` (S, a lock's tag) and ``AheadSeenAt`` (N, epoch seconds): when a sweep first saw the held lock whose
  ``Created`` is ahead of its clock (a holder's clock that is wrong): its silence is counted from then.
- ``ExpiresAt`` (N, the table's TTL): :data:`HISTORY_TTL` after the last write; a state nobody runs
  any more forgets its history.

Every write is conditional on what was read (a lost race is retried), so redelivery and concurrent
batches never record a hold twice nor move a time backwards. Never holds state contents.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from tfjanitor.aws.items import ItemTable
from tfjanitor.aws.session import AwsError, AwsSession
from tfjanitor.untrusted import cap

MAX_HOLDS = 50
HISTORY_TTL = timedelta(days=90)
PREFIX = "life:"
CLASSES = ("apply", "plan", "other")
_RETRIES = 3


def life_key(region: str, table: str, bucket: str, key: str) -> str:
    """The item of one state as one lock table sees it (bounded length, whatever the key)."""
    raw = json.dumps([region, table, bucket, key], ensure_ascii=False)
    return PREFIX + hashlib.sha256(raw.encode()).hexdigest()[:32]


def hold_tag(lock_id: str) -> str:
    return hashlib.sha256(lock_id.encode()).hexdigest()[:8]


def decode_holds(text: str | None) -> list[tuple[str, int]]:
    """``tag:seconds`` words, oldest first (anything unreadable is skipped)."""
    entries: list[tuple[str, int]] = []
    for word in (text or "").split():
        tag, sep, seconds = word.partition(":")
        if sep and tag and seconds.isdigit():
            entries.append((tag, int(seconds)))
    return entries


def encode_holds(entries: list[tuple[str, int]]) -> str:
    return " ".join(f"{tag}:{seconds}" for tag, seconds in entries[-MAX_HOLDS:])


def with_hold(entries: list[tuple[str, int]], lock_id: str, seconds: float) -> list[tuple[str, int]] | None:
    """``entries`` plus this lock's hold, keeping the last :data:`MAX_HOLDS`; None if already recorded."""
    tag = hold_tag(lock_id)
    if any(t == tag for t, _ in entries):
        return None
    return [*entries, (tag, max(0, round(seconds)))][-MAX_HOLDS:]


@dataclass(frozen=True)
class StateLife:
    """One state's record: its latest digest write seen on the stream, and its holds by class."""

    digest_written: datetime | None = None
    holds: dict[str, list[float]] = field(default_factory=dict)  # class -> seconds, oldest first
    ahead_lock: str | None = None  # the tag (hold_tag) of the lock whose Created is ahead, first seen at ...
    ahead_seen: datetime | None = None

    def first_seen(self, lock_id: str) -> datetime | None:
        """When a sweep first saw this lock, if it is the one on record (its Created ahead of the sweep's clock)."""
        return self.ahead_seen if self.ahead_lock == hold_tag(lock_id) else None


def _attr(klass: str) -> str:
    return f"Holds_{klass}"


def _life(item: dict[str, Any]) -> StateLife:
    stamp = item.get("DigestWrittenAt", {}).get("N")
    written = datetime.fromtimestamp(float(stamp), timezone.utc) if stamp else None
    holds = {k: [float(s) for _, s in decode_holds(item.get(_attr(k), {}).get("S"))] for k in CLASSES}
    seen = item.get("AheadSeenAt", {}).get("N")
    return StateLife(
        written,
        {k: v for k, v in holds.items() if v},
        item.get("AheadLock", {}).get("S"),
        datetime.fromtimestamp(float(seen), timezone.utc) if seen else None,
    )


class History:
    """Signs of life and hold history on the stack's table (the findings table)."""

    def __init__(self, aws: AwsSession, region: str, table: str):
        self._items = ItemTable(aws, region, table)
        self.name = table

    def read(self, keys: list[str]) -> dict[str, StateLife]:
        """The records of these states (BatchGetItem, 100 a call); states without one are left out."""
        return {k: _life(item) for k, item in self._items.get_many(keys).items()}

    def digest_written(self, key: str, state: str, at: datetime) -> None:
        """Record a digest write at ``at`` (only if later than the one on record)."""
        self._items.write_if(
            "update_item",
            Key={"Fingerprint": {"S": key}},
            UpdateExpression="SET DigestWrittenAt = :at, #st = :state, ExpiresAt = :ttl",
            ConditionExpression="attribute_not_exists(DigestWrittenAt) OR DigestWrittenAt < :at",
            ExpressionAttributeNames={"#st": "State"},
            ExpressionAttributeValues={":at": {"N": str(int(at.timestamp()))}, ":state": {"S": cap(state)}, ":ttl": {"N": _ttl(at)}},
        )

    def saw_ahead(self, key: str, state: str, lock_id: str, now: datetime) -> None:
        """Record that a sweep first saw this lock (its Created ahead of the clock) at ``now``, unless it is on record."""
        self._items.write_if(
            "update_item",
            Key={"Fingerprint": {"S": key}},
            UpdateExpression="SET AheadLock = :tag, AheadSeenAt = :now, #st = :state, ExpiresAt = :ttl",
            ConditionExpression="attribute_not_exists(AheadLock) OR AheadLock <> :tag",
            ExpressionAttributeNames={"#st": "State"},
            ExpressionAttributeValues={
                ":tag": {"S": hold_tag(lock_id)},
                ":now": {"N": str(int(now.timestamp()))},
                ":state": {"S": cap(state)},
                ":ttl": {"N": _ttl(now)},
            },
        )

    def record_hold(self, key: str, state: str, klass: str, lock_id: str, seconds: float, now: datetime) -> bool:
        """Append one finished hold to its class's history; False if this lock's hold is already there."""
        if klass not in CLASSES:
            raise ValueError(f"unknown operation class {klass!r}")
        attr = _attr(klass)
        for _ in range(_RETRIES):
            item = self._items.get({"Fingerprint": {"S": key}}) or {}
            seen = item.get(attr, {}).get("S")
            entries = with_hold(decode_holds(seen), lock_id, seconds)
            if entries is None:
                return False  # a redelivered release: recorded already
            condition = "attribute_not_exists(#h)" if seen is None else "#h = :seen"
            values: dict[str, Any] = {":holds": {"S": encode_holds(entries)}, ":state": {"S": cap(state)}, ":ttl": {"N": _ttl(now)}}
            if seen is not None:
                values[":seen"] = {"S": seen}
            if (
                self._items.write_if(
                    "update_item",
                    Key={"Fingerprint": {"S": key}},
                    UpdateExpression="SET #h = :holds, #st = :state, ExpiresAt = :ttl",
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#h": attr, "#st": "State"},
                    ExpressionAttributeValues=values,
                )
                is not None
            ):
                return True
        # Lost the race every time: fail the record, so the stream redelivers it (the tag keeps it once).
        raise AwsError("UpdateItem", "ConditionalCheckFailedException", f"history of {cap(state, 200)} kept changing")


def _ttl(at: datetime) -> str:
    return str(int((at + HISTORY_TTL).timestamp()))
