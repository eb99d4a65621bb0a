"""Alert records on the stack's findings table (the store behind :mod:`tfjanitor.alerts.lifecycle`).

Never Terraform's lock table: a table of the stack's own, keyed by ``Fingerprint``,
with TTL (``ExpiresAt``) set on closed alerts.

Notices live there too, one item per transition (``Fingerprint`` = ``notice#<id>``), written in the
same transaction as the transition itself: ``Status`` ``pending`` until every destination accepted the
message (``Reached``, ``MessageIds``), then ``delivered`` (the message itself is dropped, the item expires
with TTL). A destination that refused it for good is kept in ``GaveUp``; once every destination was
reached or given up, one at least given up, the status is ``undeliverable`` (never retried; the message
is kept, for whoever looks into it, until the TTL removes the item).
A sender claims a pending notice for a while (``ClaimedUntil``) so two runs never send it together.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from tfjanitor.alerts.delivery import Progress
from tfjanitor.alerts.lifecycle import CLOSED, CLOSED_TTL, OPEN, AlertRecord, Notice, Sighting
from tfjanitor.aws.items import ItemTable
from tfjanitor.aws.session import AwsSession


def _iso(value: datetime) -> str:
    return value.isoformat()


def _epoch_us(value: datetime) -> str:
    """Evidence times as a number (microseconds since the epoch), so conditions compare them exactly."""
    return str(int(value.timestamp() * 1_000_000))


def _record(item: dict[str, Any]) -> AlertRecord:
    s = {k: v.get("S") for k, v in item.items() if "S" in v}
    changed = item.get("ChangedAt", {}).get("N")
    changed_at = datetime.fromtimestamp(int(changed) / 1_000_000, timezone.utc) if changed else None
    if "OpenedAt" not in s:  # a tombstone: the problem was seen gone, no alert was ever open
        s["OpenedAt"] = s["LastNotifiedAt"] = (changed_at or datetime.fromtimestamp(0, timezone.utc)).isoformat()
    return AlertRecord(
        fingerprint=s["Fingerprint"],
        status=s.get("Status", OPEN),
        severity=s.get("Severity", "warning"),
        notified_severity=s.get("NotifiedSeverity", s.get("Severity", "warning")),
        scope=s.get("Scope", ""),
        finding=json.loads(s.get("Finding") or "{}"),
        opened_at=datetime.fromisoformat(s["OpenedAt"]),
        last_notified_at=datetime.fromisoformat(s["LastNotifiedAt"]),
        closed_at=datetime.fromisoformat(s["ClosedAt"]) if s.get("ClosedAt") else None,
        resolution=s.get("Resolution", ""),
        changed_at=changed_at,
    )


# A write that opens an alert, or records that its problem is gone, stands only on evidence newer than
# the record's last open/close: a run that read before the stream saw a lock go never reopens it.
_CLOSED_BEFORE = "attribute_not_exists(Fingerprint) OR (#s = :closed AND (attribute_not_exists(ChangedAt) OR ChangedAt < :ev))"


PENDING, DELIVERED, UNDELIVERABLE = "pending", "delivered", "undeliverable"
NOTICE_PREFIX = "notice#"


def _notice_item(notice: Notice) -> dict[str, Any]:
    doc = {
        "event": notice.event,
        "finding": notice.finding,
        "fingerprint": notice.fingerprint,
        "at": _iso(notice.at),
        "opened_at": _iso(notice.opened_at),
        "resolution": notice.resolution,
        "extra": notice.extra,
    }
    return {
        "Fingerprint": {"S": NOTICE_PREFIX + notice.id},
        "Status": {"S": PENDING},
        "Alert": {"S": notice.fingerprint},
        "Event": {"S": notice.event},
        "Notice": {"S": json.dumps(doc, ensure_ascii=False)},
        "Attempts": {"N": "0"},
    }


def _notice(item: dict[str, Any]) -> Notice:
    doc = json.loads(item["Notice"]["S"])
    return Notice(
        doc["event"],
        doc["finding"],
        doc["fingerprint"],
        datetime.fromisoformat(doc["at"]),
        datetime.fromisoformat(doc["opened_at"]),
        doc.get("resolution", ""),
        doc.get("extra", {}),
        id=item["Fingerprint"]["S"].removeprefix(NOTICE_PREFIX),
    )


def _progress(item: dict[str, Any]) -> Progress:
    return Progress(frozenset(item.get("Reached", {}).get("SS", [])), frozenset(item.get("GaveUp", {}).get("SS", [])))


def _notice_key(notice_id: str) -> dict[str, Any]:
    return {"Fingerprint": {"S": NOTICE_PREFIX + notice_id}}


class DynamoAlertStore:
    """:class:`~tfjanitor.alerts.lifecycle.AlertStore` and :class:`~tfjanitor.alerts.delivery.Outbox`
    on the stack's findings table."""

    def __init__(self, aws: AwsSession, region: str, table: str):
        self._items = ItemTable(aws, region, table)
        self.table = table

    def _conditional(self, op: str, notice: Notice | None = None, **kwargs: Any) -> bool:
        """One conditional write; with ``notice``, the same write queues it (a transaction: both or neither)."""
        if notice is None:
            return self._items.write_if(op, **kwargs) is not None
        queue = {"Item": _notice_item(notice), "ConditionExpression": "attribute_not_exists(Fingerprint)"}
        return self._items.write_both_if((op, kwargs), ("put_item", queue), token=notice.id)

    def list_open(self) -> list[AlertRecord]:
        items = self._items.scan(
            FilterExpression="#s = :open", ExpressionAttributeNames={"#s": "Status"}, ExpressionAttributeValues={":open": {"S": OPEN}}
        )
        return [_record(i) for i in items]

    def get(self, fp: str) -> AlertRecord | None:
        item = self._items.get({"Fingerprint": {"S": fp}})
        return _record(item) if item is not None else None

    def open(self, record: AlertRecord, notice: Notice) -> bool:
        item = {
            "Fingerprint": {"S": record.fingerprint},
            "Status": {"S": OPEN},
            "Severity": {"S": record.severity},
            "NotifiedSeverity": {"S": record.notified_severity},
            "Scope": {"S": record.scope},
            "Kind": {"S": str(record.finding.get("kind", ""))},
            "Finding": {"S": json.dumps(record.finding, ensure_ascii=False)},
            "OpenedAt": {"S": _iso(record.opened_at)},
            "LastNotifiedAt": {"S": _iso(record.last_notified_at)},
            "ChangedAt": {"N": _epoch_us(record.changed_at or record.opened_at)},
        }
        return self._conditional(
            "put_item",
            notice,
            Item=item,
            ConditionExpression=_CLOSED_BEFORE,
            ExpressionAttributeNames={"#s": "Status"},
            ExpressionAttributeValues={":closed": {"S": CLOSED}, ":ev": item["ChangedAt"]},
        )

    def tombstone(self, fp: str, evidence: datetime) -> bool:
        # An update, not a put: a closed alert keeps its record (the finding, a release record).
        return self._conditional(
            "update_item",
            Key={"Fingerprint": {"S": fp}},
            UpdateExpression="SET #s = :closed, ChangedAt = :ev, ExpiresAt = if_not_exists(ExpiresAt, :ttl)",
            ConditionExpression=_CLOSED_BEFORE,
            ExpressionAttributeNames={"#s": "Status"},
            ExpressionAttributeValues={
                ":closed": {"S": CLOSED},
                ":ev": {"N": _epoch_us(evidence)},
                ":ttl": {"N": str(int((evidence + CLOSED_TTL).timestamp()))},
            },
        )

    def escalate(self, fp: str, seen_notified: str, severity: str, finding: dict[str, Any], now: datetime, notice: Notice) -> bool:
        return self._conditional(
            "update_item",
            notice,
            Key={"Fingerprint": {"S": fp}},
            UpdateExpression="SET NotifiedSeverity = :sev, Severity = :sev, Finding = :f, LastNotifiedAt = :now",
            ConditionExpression="#s = :open AND NotifiedSeverity = :seen",
            ExpressionAttributeNames={"#s": "Status"},
            ExpressionAttributeValues={
                ":sev": {"S": severity},
                ":f": {"S": json.dumps(finding, ensure_ascii=False)},
                ":now": {"S": _iso(now)},
                ":open": {"S": OPEN},
                ":seen": {"S": seen_notified},
            },
        )

    def remind(self, fp: str, seen_last: datetime, now: datetime, notice: Notice) -> bool:
        return self._conditional(
            "update_item",
            notice,
            Key={"Fingerprint": {"S": fp}},
            UpdateExpression="SET LastNotifiedAt = :now",
            ConditionExpression="#s = :open AND LastNotifiedAt = :seen",
            ExpressionAttributeNames={"#s": "Status"},
            ExpressionAttributeValues={":now": {"S": _iso(now)}, ":open": {"S": OPEN}, ":seen": {"S": _iso(seen_last)}},
        )

    def resolve(self, fp: str, now: datetime, resolution: str, notice: Notice, evidence: datetime | None = None) -> bool:
        return self._conditional(
            "update_item",
            notice,
            Key={"Fingerprint": {"S": fp}},
            UpdateExpression="SET #s = :closed, ClosedAt = :now, Resolution = :r, ExpiresAt = :ttl, ChangedAt = :ev",
            ConditionExpression="#s = :open AND (attribute_not_exists(ChangedAt) OR ChangedAt < :ev)",
            ExpressionAttributeNames={"#s": "Status"},
            ExpressionAttributeValues={
                ":closed": {"S": CLOSED},
                ":open": {"S": OPEN},
                ":now": {"S": _iso(now)},
                ":r": {"S": resolution},
                ":ttl": {"N": str(int((now + CLOSED_TTL).timestamp()))},
                ":ev": {"N": _epoch_us(evidence or now)},
            },
        )

    def sight(self, fp: str, observed: str, now: datetime) -> Sighting:
        """Count the sweeps that saw this alert's lock byte-for-byte unchanged, and keep when the first did
        (``FirstSeenAt``: the sweep's own time, never the lock's ``Created``)."""
        resp = self._items.write_if(
            "update_item",
            Key={"Fingerprint": {"S": fp}},
            UpdateExpression="SET Sightings = Sightings + :one, LastSeenAt = :now, FirstSeenAt = if_not_exists(FirstSeenAt, :now)",
            ConditionExpression="#s = :open AND Observed = :obs",
            ExpressionAttributeNames={"#s": "Status"},
            ExpressionAttributeValues={":one": {"N": "1"}, ":now": {"S": _iso(now)}, ":open": {"S": OPEN}, ":obs": {"S": observed}},
            ReturnValues="ALL_NEW",
        )
        if resp is not None:
            attributes = resp["Attributes"]
            return Sighting(int(attributes["Sightings"]["N"]), datetime.fromisoformat(attributes["FirstSeenAt"]["S"]))
        # First sighting, or the lock's bytes changed: a new lock, seen first now.
        if self._conditional(
            "update_item",
            Key={"Fingerprint": {"S": fp}},
            UpdateExpression="SET Sightings = :one, Observed = :obs, LastSeenAt = :now, FirstSeenAt = :now",
            ConditionExpression="#s = :open",
            ExpressionAttributeNames={"#s": "Status"},
            ExpressionAttributeValues={":one": {"N": "1"}, ":obs": {"S": observed}, ":now": {"S": _iso(now)}, ":open": {"S": OPEN}},
        ):
            return Sighting(1, now)
        return Sighting(0, None)

    def record_release(self, fp: str, record: dict[str, Any], now: datetime, notice: Notice) -> bool:
        """Close the alert as released by tfjanitor, keeping the record of what was deleted and why."""
        return self._conditional(
            "update_item",
            notice,
            Key={"Fingerprint": {"S": fp}},
            UpdateExpression=(
                "SET #s = :closed, ClosedAt = :now, Resolution = :r, ExpiresAt = :ttl, ReleasedAt = :now, "
                "ReleaseRecord = :rec, ChangedAt = :ev"
            ),
            ConditionExpression="#s = :open",
            ExpressionAttributeNames={"#s": "Status"},
            ExpressionAttributeValues={
                ":closed": {"S": CLOSED},
                ":open": {"S": OPEN},
                ":now": {"S": _iso(now)},
                ":r": {"S": "released by tfjanitor"},
                ":ttl": {"N": str(int((now + CLOSED_TTL).timestamp()))},
                ":rec": {"S": json.dumps(record, ensure_ascii=False)},
                ":ev": {"N": _epoch_us(now)},
            },
        )

    # -- the outbox: notices queued by transitions, until SNS accepted them ---------------------------

    def pending_notices(self) -> list[Notice]:
        """Every notice not yet delivered to every destination (nor given up), oldest first."""
        return [notice for notice, _ in self.queued_notices()]

    def queued_notices(self) -> list[tuple[Notice, Progress]]:
        """Every pending notice, oldest first, with the destinations it had reached or given up when listed."""
        items = self._items.scan(
            FilterExpression="#s = :pending",
            ExpressionAttributeNames={"#s": "Status"},
            ExpressionAttributeValues={":pending": {"S": PENDING}},
        )
        return sorted(((_notice(i), _progress(i)) for i in items), key=lambda queued: queued[0].id)

    def claim_notice(self, notice_id: str, token: str, until: datetime, now: datetime) -> Progress | None:
        """Take a pending notice to send it, unless another sender holds an unexpired claim: the destinations
        it has reached or given up (read in the same write, so never from an older listing), or None."""
        resp = self._items.write_if(
            "update_item",
            Key=_notice_key(notice_id),
            UpdateExpression="SET Claim = :token, ClaimedUntil = :until, Attempts = Attempts + :one",
            ConditionExpression="#s = :pending AND (attribute_not_exists(ClaimedUntil) OR ClaimedUntil < :now)",
            ExpressionAttributeNames={"#s": "Status"},
            ExpressionAttributeValues={
                ":token": {"S": token},
                ":until": {"N": _epoch_us(until)},
                ":one": {"N": "1"},
                ":pending": {"S": PENDING},
                ":now": {"N": _epoch_us(now)},
            },
            ReturnValues="ALL_NEW",
        )
        return None if resp is None else _progress(resp["Attributes"])

    def notice_reached(self, notice_id: str, token: str, arn: str, message_id: str) -> bool:
        """SNS accepted it on one topic (``MessageIds`` keeps ``<topic ARN> <MessageId>``)."""
        return self._conditional(
            "update_item",
            Key=_notice_key(notice_id),
            UpdateExpression="ADD Reached :arn, MessageIds :mid",
            ConditionExpression="Claim = :token",
            ExpressionAttributeValues={":arn": {"SS": [arn]}, ":mid": {"SS": [f"{arn} {message_id}"]}, ":token": {"S": token}},
        )

    def notice_delivered(self, notice_id: str, token: str, now: datetime) -> bool:
        """Every topic has it: keep only that fact (the message ids) until the TTL removes it."""
        return self._conditional(
            "update_item",
            Key=_notice_key(notice_id),
            UpdateExpression=(
                "SET #s = :delivered, DeliveredAt = :now, ExpiresAt = :ttl REMOVE Notice, Claim, ClaimedUntil, LastError"
            ),
            ConditionExpression="Claim = :token",
            ExpressionAttributeNames={"#s": "Status"},
            ExpressionAttributeValues={
                ":delivered": {"S": DELIVERED},
                ":now": {"S": _iso(now)},
                ":ttl": {"N": str(int((now + CLOSED_TTL).timestamp()))},
                ":token": {"S": token},
            },
        )

    def notice_gave_up(self, notice_id: str, token: str, arn: str, error: str) -> bool:
        """``arn`` refused it for good (its compact form too): never sent there again."""
        return self._conditional(
            "update_item",
            Key=_notice_key(notice_id),
            UpdateExpression="ADD GaveUp :arn SET LastError = :e",
            ConditionExpression="Claim = :token",
            ExpressionAttributeValues={":arn": {"SS": [arn]}, ":e": {"S": error[:1000]}, ":token": {"S": token}},
        )

    def notice_undeliverable(self, notice_id: str, token: str, now: datetime) -> bool:
        """Every destination was reached or gave it up: no longer pending (kept, with its message and why,
        until the TTL removes it)."""
        return self._conditional(
            "update_item",
            Key=_notice_key(notice_id),
            UpdateExpression="SET #s = :undeliverable, GivenUpAt = :now, ExpiresAt = :ttl REMOVE Claim, ClaimedUntil",
            ConditionExpression="Claim = :token",
            ExpressionAttributeNames={"#s": "Status"},
            ExpressionAttributeValues={
                ":undeliverable": {"S": UNDELIVERABLE},
                ":now": {"S": _iso(now)},
                ":ttl": {"N": str(int((now + CLOSED_TTL).timestamp()))},
                ":token": {"S": token},
            },
        )

    def notice_failed(self, notice_id: str, token: str, error: str) -> bool:
        """Give the claim back, saying why (a failure, waiting for an earlier notice of the alert, out of
        time): the next run of any function goes on with it."""
        return self._conditional(
            "update_item",
            Key=_notice_key(notice_id),
            UpdateExpression="SET LastError = :e REMOVE Claim, ClaimedUntil",
            ConditionExpression="Claim = :token",
            ExpressionAttributeValues={":e": {"S": error[:1000]}, ":token": {"S": token}},
        )
