"""Delivering queued notices to every destination: at least once, in order, never silently, never forever.

The destinations are the alert topics (an email, and a chat card for AWS Chatbot) and the event bus
(an EventBridge event). Every transition queues its notice in the findings table in the same write
that records it (:mod:`tfjanitor.alerts.lifecycle`). :func:`deliver` then sends every pending notice,
its own run's and any an earlier run could not send, oldest first, each on its own and to each
destination on its own: a destination counts as reached only after it accepted the message (SNS
``Publish`` returned a ``MessageId``; EventBridge ``PutEvents`` an ``EventId`` for the entry, not an
``ErrorCode``), and a notice is delivered once every destination was reached.

- **Failures.** A notice a destination could not take for a reason that can pass (throttling, 5xx, KMS,
  access, a missing topic) stays pending for the next run of any function, which sends it only to the
  destinations it has not reached; it is counted (``NotificationsFailed``) and logged.
- **Refusals.** A destination that refuses the message itself (``MessageRefused``: too large, malformed)
  gets it once more in the compact form (``budgets.COMPACT``); refused again, that destination is given up
  for good (``GaveUp``): never sent again, counted (``NotificationsGivenUp``, alarmed) and logged with the
  alert and the destination. A notice whose every destination was reached or given up, and one at least
  given up, is ``undeliverable``: no longer pending, never retried.
- **Order.** One alert's notices reach each destination in the order they were made: a later notice is not
  sent to a destination an earlier notice of the same alert has neither reached nor been given up on (it
  is pending, or another run holds it). The earlier one's sender sends the later ones after it.
- **Time.** :func:`deliver` stops at the run's deadline and leaves the rest pending for the next run.
- **Claims.** A sender claims a notice before sending it, so two runs never send it together. A claim
  lasts until the claiming run is over for sure (its deadline and reserve: a Lambda's timeout) and a
  margin, or :data:`CLAIM_LEASE` without a deadline: a sender that died mid-send holds up the alert's later
  notices for minutes, not a quarter of an hour.
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
from tfjanitor.aws.session import AwsError, MessageRefused
from tfjanitor.aws.topic import Topic
from tfjanitor.durations import Deadline

# Without a deadline, a claim outlives any run that could hold it (Lambda runs at most 15 minutes).
CLAIM_LEASE = timedelta(minutes=15)
# With one, it lasts until the claiming run is over for sure, and this much more: the clocks of two runs may
# differ a little, and a call started just before the end may still be answered (a Lambda run is stopped at
# its timeout; anything else finishes the call it is in: botocore's 30 s read timeout and a retry).
CLAIM_MARGIN = timedelta(minutes=2)


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

    def send(self, notice: Notice, arn: str, compact: bool = False) -> str:
        """Send the notice to one destination (``compact``: its compact form); the id it returned (SNS
        MessageId, EventBridge EventId). Raises ``MessageRefused`` if the destination refused the message itself."""
        if self._origin.account and not notice.finding.get("account"):
            notice = replace(notice, finding={**notice.finding, "account": self._origin.account})
        if self._bus is not None and arn == self._bus.arn:
            return self._bus.put(events.entry(notice, self._origin, compact))
        message = topic_message(notice, self._origin, compact)
        return self._topics[arn].publish(message.subject, message.email, message.plain, message.chat)


class Sender(Protocol):
    @property
    def arns(self) -> list[str]: ...
    def send(self, notice: Notice, arn: str, compact: bool = False) -> str: ...


@dataclass(frozen=True)
class Progress:
    """Where a queued notice has got to: the destinations that accepted it, and those given up for good."""

    reached: frozenset[str] = frozenset()
    gave_up: frozenset[str] = frozenset()

    @property
    def done(self) -> frozenset[str]:
        return self.reached | self.gave_up


class Outbox(Protocol):
    """Queued notices (the findings table); each write returns False when its condition did not hold."""

    def pending_notices(self) -> list[Notice]: ...
    def queued_notices(self) -> list[tuple[Notice, Progress]]:
        """Every pending notice, oldest first, with where it had got to when listed."""

    def claim_notice(self, notice_id: str, token: str, until: datetime, now: datetime) -> Progress | None:
        """Take a pending notice to send it: where it has got to, or None if another run holds it."""

    def notice_reached(self, notice_id: str, token: str, arn: str, message_id: str) -> bool: ...
    def notice_gave_up(self, notice_id: str, token: str, arn: str, error: str) -> bool:
        """``arn`` refused it for good: never send it there again."""

    def notice_delivered(self, notice_id: str, token: str, now: datetime) -> bool: ...
    def notice_undeliverable(self, notice_id: str, token: str, now: datetime) -> bool:
        """Every destination was reached or given up, one at least given up: no longer pending."""

    def notice_failed(self, notice_id: str, token: str, error: str) -> bool:
        """Give the claim back (the next run of any function goes on with it) and say why."""


@dataclass(frozen=True)
class GaveUp:
    """One destination that refused a notice for good (its compact form too)."""

    notice_id: str
    alert: str
    event: str
    destination: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return {
            "notice_id": self.notice_id,
            "alert": self.alert,
            "event": self.event,
            "destination": self.destination,
            "error": self.error,
        }


@dataclass
class Delivery:
    """What one run delivered: the notices every destination accepted, one line per notice it could not send
    (it stays pending), the destinations given up for good, and what it left for the next run: notices
    waiting for an earlier notice of their alert, and how many it had no time for."""

    sent: list[Notice] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    gave_up: list[GaveUp] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    left: int = 0


def _spent(deadline: Deadline | None) -> bool:
    return deadline is not None and deadline.left() <= 0


def claim_until(now: datetime, deadline: Deadline | None) -> datetime:
    """Until when a run claiming a notice at ``now`` may still be sending it."""
    if deadline is None:
        return now + CLAIM_LEASE
    return now + timedelta(seconds=deadline.ends_in()) + CLAIM_MARGIN


@dataclass
class _Attempt:
    """What one run did with one claimed notice."""

    reached: set[str] = field(default_factory=set)
    gave_up: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    out_of_time: list[str] = field(default_factory=list)


def _publish(
    outbox: Outbox,
    sender: Sender,
    notice: Notice,
    progress: Progress,
    token: str,
    blocked: set[str],
    deadline: Deadline | None,
    done: Delivery,
) -> _Attempt:
    """Send to every destination not yet reached nor given up, each on its own, but those an earlier notice of
    the alert still has to reach (``blocked``); a refused message once more in its compact form."""
    attempt = _Attempt()
    for arn in sender.arns:
        if arn in progress.done:
            continue
        if arn in blocked:
            attempt.waiting.append(arn)
            continue
        if _spent(deadline):
            attempt.out_of_time.append(arn)
            continue
        try:
            try:
                message_id = sender.send(notice, arn)
            except MessageRefused as refused:
                try:
                    message_id = sender.send(notice, arn, compact=True)
                except MessageRefused as again:
                    why = f"refused ({refused}), and its compact form too ({again})"
                    if outbox.notice_gave_up(notice.id, token, arn, why):
                        attempt.gave_up.add(arn)
                        done.gave_up.append(GaveUp(notice.id, notice.fingerprint, notice.event, arn, why))
                    else:
                        attempt.errors.append(f"{arn}: {why}; not recorded: another run holds the notice now")
                    continue
            if not message_id:
                raise AwsError("Publish", "NoMessageId", "SNS returned no MessageId")
        except Exception as exc:  # noqa: BLE001 - whatever stops this destination must not stop the others
            if isinstance(exc, AwsError) and exc.run_ending:
                attempt.out_of_time.append(arn)
            else:
                attempt.errors.append(f"{arn}: {exc}")
            continue
        attempt.reached.add(arn)
        try:
            outbox.notice_reached(notice.id, token, arn, message_id)
        except AwsError as exc:  # the destination has it: once the claim runs out it is sent there again (at least once)
            attempt.errors.append(f"{arn}: sent as {message_id} but not recorded: {exc}")
    return attempt


def deliver(outbox: Outbox, sender: Sender, now: datetime | None = None, deadline: Deadline | None = None) -> Delivery:
    """Send every pending notice, oldest first, each on its own and each alert's in order, until ``deadline``;
    never raises. ``now``: a fixed clock (tests); else the time is read at each claim."""
    done = Delivery()
    if _spent(deadline):
        return done  # not even the listing: the next run has the time
    try:
        queued = outbox.queued_notices()
    except AwsError as exc:
        if not exc.run_ending:  # else the run's time is up: the next run lists them
            done.failed.append(f"could not list pending notices: {exc}")
        return done
    # Per alert, the destinations an earlier pending notice has neither reached nor been given up on.
    owed: dict[str, set[str]] = {}
    for position, (notice, listed) in enumerate(queued):
        earlier = owed.setdefault(notice.fingerprint, set())
        what = f"{notice.event} notice {notice.id} of alert {notice.fingerprint}"
        if _spent(deadline):
            done.left = len(queued) - position
            break
        todo = {arn for arn in sender.arns if arn not in listed.done}
        if todo and todo <= earlier:  # nothing it may be sent to yet: leave it unclaimed
            done.waiting.append(f"{what}: waits for an earlier notice of its alert")
            earlier |= todo
            continue
        token = secrets.token_hex(8)
        current = now or datetime.now(timezone.utc)
        try:
            progress = outbox.claim_notice(notice.id, token, claim_until(current, deadline), current)
        except AwsError as exc:  # the findings table itself: retried by the next run
            if exc.run_ending:
                done.left = len(queued) - position
                break
            done.failed.append(f"{what}: {exc}")
            earlier |= todo
            continue
        if progress is None:  # another run is sending it (or has just sent it): what it reached is unknown here
            earlier |= todo
            continue
        try:
            attempt = _publish(outbox, sender, notice, progress, token, earlier, deadline, done)
        except AwsError as exc:  # recording a refusal failed: the claim back (else it runs out), then it is retried
            done.failed.append(f"{what}: {exc}")
            earlier |= todo
            with contextlib.suppress(AwsError):
                outbox.notice_failed(notice.id, token, str(exc))
            continue
        left = {arn for arn in sender.arns if arn not in progress.done | attempt.reached | attempt.gave_up}
        earlier |= left
        try:
            if not left:
                if progress.gave_up or attempt.gave_up:
                    outbox.notice_undeliverable(notice.id, token, current)
                elif outbox.notice_delivered(notice.id, token, current):
                    done.sent.append(notice)
                continue
            why = [
                *attempt.errors,
                *(f"{arn}: waits for an earlier notice of its alert" for arn in attempt.waiting),
                *(f"{arn}: out of time" for arn in attempt.out_of_time),
            ]
            outbox.notice_failed(notice.id, token, "; ".join(why))  # the claim back: the next run goes on with it
        except AwsError as exc:  # the claim runs out, then it is retried
            if not exc.run_ending:
                attempt.errors.append(f"findings table: {exc}")
        if attempt.errors:
            done.failed.append(f"{what}: " + "; ".join(attempt.errors))
        elif attempt.waiting:
            done.waiting.append(f"{what}: waits for an earlier notice of its alert on " + ", ".join(attempt.waiting))
        if attempt.out_of_time:
            done.left += 1
    return done
