"""Delivering queued notices to every destination: at least once, never silently.

The destinations are the alert topics (an email, and a chat card for AWS Chatbot) and the event bus
(an EventBridge event). Every transition queues its notice in the findings table in the same write
that records it (:mod:`tfjanitor.alerts.lifecycle`). :func:`deliver` then sends every pending notice,
its own run's and any an earlier run could not send, each on its own and to each destination on its
own: a destination counts as reached only after it accepted the message (SNS ``Publish`` returned a
``MessageId``; EventBridge ``PutEvents`` an ``EventId`` for the entry, not an ``ErrorCode``), and a
notice is delivered once every destination was reached. One that fails stays pending for the next run
of any function, which sends it only to the destinations it has not reached; the failure is counted
(``NotificationsFailed``) and logged. A sender claims a notice before sending it, so two runs never
send it together. Each message stays within its byte budget (``alerts.budgets``): see :func:`topic_message`.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Protocol

from tfjanitor.alerts import events
from tfjanitor.alerts.budgets import COMPACT, QUEUE_BUDGET, SNS_BUDGET, SNS_ENVELOPE, utf8
from tfjanitor.alerts.chat import card_json
from tfjanitor.alerts.emails import SUBJECT_LIMIT, Origin, render
from tfjanitor.alerts.lifecycle import Notice
from tfjanitor.aws import topic as sns
from tfjanitor.aws.bus import EventBus
from tfjanitor.aws.session import AwsError
from tfjanitor.aws.topic import Topic

# A claim outlives any run that could hold it (Lambda runs at most 15 minutes): a notice whose sender
# died mid-send is sent again after this, and never while that sender may still be sending it.
CLAIM_LEASE = timedelta(minutes=15)


def sns_subject(subject: str) -> str:
    """SNS subjects must be ASCII, without control characters, under 100 characters."""
    ascii_text = unicodedata.normalize("NFKD", subject).encode("ascii", "replace").decode("ascii")
    cleaned = "".join(c if c.isprintable() else " " for c in ascii_text)
    return cleaned[: SUBJECT_LIMIT - 1]


@dataclass(frozen=True)
class TopicMessage:
    """What one ``Publish`` carries (``plain`` None: left out of the queue's text to fit)."""

    subject: str
    email: str
    plain: str | None
    chat: str

    def sizes(self) -> tuple[int, int]:
        """Bytes as SNS counts them (the message and its subject), and as the queue gets its text (escaped once
        more in SNS's envelope, every non-ASCII character as a \\u escape to be safe)."""
        text = sns.queue_text(self.subject, self.email, self.plain, self.chat)
        queued = len(json.dumps(text, ensure_ascii=True)) + SNS_ENVELOPE
        return utf8(sns.message(self.subject, self.email, self.plain, self.chat)) + utf8(self.subject), queued

    def fits(self) -> bool:
        size, queued = self.sizes()
        return size <= SNS_BUDGET and queued <= QUEUE_BUDGET


def topic_message(notice: Notice, origin: Origin, compact: bool = False) -> TopicMessage:
    """The notice as one SNS message within ``budgets.SNS_BUDGET``: the email and card as rendered (each within
    its own budget), then without the link-free copy in the queue's text, then with less prose, down to the
    compact form (which always fits)."""
    level = COMPACT if compact else 0
    while True:
        email = render(notice, origin, level)
        chat = card_json(notice, origin, compact=email.compact)
        for plain in (email.plain, None):
            message = TopicMessage(sns_subject(email.subject), email.body, plain, chat)
            if message.fits() or (email.compact and plain is None):
                return message
        level = email.level + 1


class Notifier:
    """The destinations of every notice: the alert topics (the stack's own and/or the one AlertTopicArn
    names) and the event bus (the account's default one, or EventBusArn's).

    ``origin``: the stack sending (its account, alias, name), named in every email, card and event; its
    account is set on a finding that does not name one (a notice queued before findings carried it)."""

    def __init__(self, topics: Sequence[Topic], bus: EventBus | None = None, origin: Origin | None = None):
        self._topics = {topic.arn: topic for topic in topics}
        self._bus = bus
        self._origin = origin or Origin()

    @property
    def arns(self) -> list[str]:
        return [*self._topics, *([self._bus.arn] if self._bus else [])]

    def send(self, notice: Notice, arn: str) -> str:
        """Send the notice to one destination; the id it returned (SNS MessageId, EventBridge EventId)."""
        if self._origin.account and not notice.finding.get("account"):
            notice = replace(notice, finding={**notice.finding, "account": self._origin.account})
        if self._bus is not None and arn == self._bus.arn:
            return self._bus.put(events.entry(notice, self._origin))
        message = topic_message(notice, self._origin)
        return self._topics[arn].publish(message.subject, message.email, message.plain, message.chat)


class Sender(Protocol):
    @property
    def arns(self) -> list[str]: ...
    def send(self, notice: Notice, arn: str) -> str: ...


class Outbox(Protocol):
    """Pending notices (the findings table); each write returns False when its condition did not hold."""

    def pending_notices(self) -> list[Notice]: ...
    def claim_notice(self, notice_id: str, token: str, until: datetime, now: datetime) -> frozenset[str] | None:
        """Take a pending notice to send it: the destinations it has reached already, or None if another run holds it."""
    def notice_reached(self, notice_id: str, token: str, arn: str, message_id: str) -> bool: ...
    def notice_delivered(self, notice_id: str, token: str, now: datetime) -> bool: ...
    def notice_failed(self, notice_id: str, token: str, error: str) -> bool: ...


@dataclass
class Delivery:
    """What one run delivered: the notices every destination accepted, and one line per notice it could not send."""

    sent: list[Notice] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _publish(outbox: Outbox, sender: Sender, notice: Notice, reached: frozenset[str], token: str) -> list[str]:
    """Send to every destination not yet reached, each on its own; what went wrong."""
    errors: list[str] = []
    for arn in sender.arns:
        if arn in reached:
            continue
        try:
            message_id = sender.send(notice, arn)
            if not message_id:
                raise AwsError("Publish", "NoMessageId", "SNS returned no MessageId")
        except Exception as exc:  # noqa: BLE001 - whatever stops this destination must not stop the others
            errors.append(f"{arn}: {exc}")
            continue
        try:
            outbox.notice_reached(notice.id, token, arn, message_id)
        except AwsError as exc:  # SNS has it: once the claim runs out it is sent there again (at least once)
            errors.append(f"{arn}: sent as {message_id} but not recorded: {exc}")
    return errors


def deliver(outbox: Outbox, sender: Sender, now: datetime | None = None) -> Delivery:
    """Send every pending notice, oldest first, each on its own; never raises."""
    now = now or datetime.now(timezone.utc)
    done = Delivery()
    try:
        pending = outbox.pending_notices()
    except AwsError as exc:
        done.failed.append(f"could not list pending notices: {exc}")
        return done
    for notice in pending:
        token = secrets.token_hex(8)
        what = f"{notice.event} notice {notice.id} of alert {notice.fingerprint}"
        try:
            reached = outbox.claim_notice(notice.id, token, now + CLAIM_LEASE, now)
            if reached is None:
                continue  # another run is sending it, or has just sent it
            errors = _publish(outbox, sender, notice, reached, token)
            if not errors:
                if outbox.notice_delivered(notice.id, token, now):
                    done.sent.append(notice)
                continue
        except AwsError as exc:  # the findings table itself: the claim runs out, then it is retried
            errors = [str(exc)]
        done.failed.append(f"{what}: " + "; ".join(errors))
        with contextlib.suppress(AwsError):  # else its claim runs out: then it is retried
            outbox.notice_failed(notice.id, token, "; ".join(errors))
    return done
