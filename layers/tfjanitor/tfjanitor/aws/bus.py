"""An EventBridge event bus: the account's default one, or a central account's (``EventBusArn``)."""

from __future__ import annotations

from typing import Any

from tfjanitor.aws.session import CALL_ERRORS, AwsError, AwsSession, MessageRefused, _translate

# What EventBridge answers for an entry it will never take as it is. For one entry (HTTP 200, its ErrorCode),
# PutEventsResultEntry lists as not retryable: InvalidArgument and MalformedDetail (the entry itself), and
# AccessDeniedException, InvalidAccountIdException, NotAuthorizedFor{Source,DetailType}Exception and
# RedactionFailure, which a policy fix or a later try can pass: those stay pending, like InternalFailure and
# ThrottlingException (retryable). For the whole request: ValidationException (an entry over 256 KB: "Total
# size of the entries in the request is over the limit"), or a bare HTTP 413. A message that names the bus is
# about EventBusArn (a setting, fixed once for every notice), never the entry.
_REFUSED_ENTRY = {"InvalidArgument", "MalformedDetail"}
_REFUSED_REQUEST = {"ValidationException", "413", "ParamValidationError"}


def _about_the_bus(message: str) -> bool:
    return "bus" in message.lower()


class EventBus:
    """Puts one event at a time on the bus ``arn``, in the bus's own region."""

    def __init__(self, aws: AwsSession, arn: str):
        self._aws = aws
        self.arn = arn
        self._region = arn.split(":")[3]

    def put(self, entry: dict[str, Any]) -> str:
        """The event's id once EventBridge accepted it. A refused entry (``PutEvents`` answers with a
        ``FailedEntryCount``, not an error) raises :class:`AwsError` with the entry's ``ErrorCode``,
        :class:`MessageRefused` when the entry itself can never pass."""
        try:
            resp = self._aws.client("events", self._region).put_events(Entries=[{**entry, "EventBusName": self.arn}])
        except CALL_ERRORS as exc:
            error = _translate("PutEvents", exc)
            if error.code in _REFUSED_REQUEST and not _about_the_bus(error.message):
                raise MessageRefused(error.operation, error.code, error.message) from exc
            raise error from exc
        [result] = resp.get("Entries") or [{}]
        if resp.get("FailedEntryCount") or result.get("ErrorCode") or not result.get("EventId"):
            code = str(result.get("ErrorCode") or "FailedEntry")
            message = str(result.get("ErrorMessage") or "the entry was not accepted")
            if code in _REFUSED_ENTRY and not _about_the_bus(message):
                raise MessageRefused("PutEvents", code, message)
            raise AwsError("PutEvents", code, message)
        return str(result["EventId"])
