"""An EventBridge event bus: the account's default one, or a central account's (``EventBusArn``)."""

from __future__ import annotations

from typing import Any

from tfjanitor.aws.session import CALL_ERRORS, AwsError, AwsSession, _translate


class EventBus:
    """Puts one event at a time on the bus ``arn``, in the bus's own region."""

    def __init__(self, aws: AwsSession, arn: str):
        self._aws = aws
        self.arn = arn
        self._region = arn.split(":")[3]

    def put(self, entry: dict[str, Any]) -> str:
        """The event's id once EventBridge accepted it. A refused entry (``PutEvents`` answers with a
        ``FailedEntryCount``, not an error) raises :class:`AwsError` with the entry's ``ErrorCode``."""
        try:
            resp = self._aws.client("events", self._region).put_events(Entries=[{**entry, "EventBusName": self.arn}])
        except CALL_ERRORS as exc:
            raise _translate("PutEvents", exc) from exc
        [result] = resp.get("Entries") or [{}]
        if resp.get("FailedEntryCount") or result.get("ErrorCode") or not result.get("EventId"):
            raise AwsError("PutEvents", str(result.get("ErrorCode") or "FailedEntry"),
                           str(result.get("ErrorMessage") or "the entry was not accepted"))
        return str(result["EventId"])
