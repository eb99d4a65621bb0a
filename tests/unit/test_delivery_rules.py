"""Delivery's rules with in-memory fakes (issue 18.2): it stops at the run's deadline, and gives a refused
notice up loudly after one compact try and never retries it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.support.fakes import FakeAlertStore, FlakySender
from tfjanitor.alerts.delivery import deliver
from tfjanitor.alerts.lifecycle import Notice, process_findings
from tfjanitor.aws.session import AwsError, MessageRefused
from tfjanitor.durations import Deadline
from tfjanitor.model import Finding, Kind, Severity

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
REGION, TABLE = "ap-northeast-2", "terraform-state-lock"
SCOPE = {f"table:{REGION}:{TABLE}"}
TOPIC, BUS = "topic", "bus"


def stale(key: str, severity: Severity = Severity.WARNING) -> Finding:
    return Finding(Kind.STALE_LOCK, severity, REGION, TABLE, "tfstate-demo", key, f"L-{key}", f"{key} is stale")


def fixed(seconds: float, reserve: float = 0.0) -> Deadline:
    return Deadline(lambda: seconds, "a test budget", reserve)


class Sender(FlakySender):
    """Records every send (destination, notice, compact); fails or refuses where told."""

    def __init__(self, arns: tuple[str, ...] = (TOPIC, BUS)) -> None:
        super().__init__(arns=arns)
        self.sends: list[tuple[str, Notice, bool]] = []
        self.failing: set[str] = set()  # destinations that fail (throttled) for now
        self.refusing: dict[str, int] = {}  # destination -> how many forms it refuses (1: the full one, 2: both)
        self.on_send = lambda arn, notice: None

    def send(self, notice: Notice, arn: str, compact: bool = False) -> str:
        self.on_send(arn, notice)
        if arn in self.failing:
            raise AwsError("PutEvents" if arn == BUS else "Publish", "ThrottlingException", "Rate exceeded")
        if self.refusing.get(arn, 0) > compact:
            raise MessageRefused("Publish", "InvalidParameter", "Invalid parameter: Message too long")
        self.sends.append((arn, notice, compact))
        return f"id-{len(self.sends)}"

    def to(self, arn: str) -> list[tuple[str, str]]:
        return [(n.fingerprint, n.event) for a, n, _ in self.sends if a == arn]


# -- time ----------------------------------------------------------------------------------------------------


def test_a_run_whose_deadline_is_spent_sends_nothing_and_leaves_every_notice_pending() -> None:
    store, sender = FakeAlertStore(), Sender()
    process_findings([stale("a"), stale("b")], SCOPE, store, T0)
    done = deliver(store, sender, T0, deadline=fixed(-1.0))
    assert done.sent == [] and done.failed == [] and sender.sends == []
    assert len(store.pending_notices()) == 2 and all(q.claim is None and q.attempts == 0 for q in store.outbox.values())
    assert len(deliver(store, sender, T0, deadline=fixed(60.0)).sent) == 2  # the next run, with time, sends them


def test_delivery_stops_at_the_deadline_and_the_next_run_goes_on() -> None:
    store, sender = FakeAlertStore(), Sender()
    process_findings([stale(k) for k in "abcd"], SCOPE, store, T0)
    clock = {"left": 10.0}
    deadline = Deadline(lambda: clock["left"], "a test budget")

    def slow(arn: str, notice: Notice) -> None:
        clock["left"] -= 3.0  # each send takes 3 of the 10 seconds

    sender.on_send = slow
    first = deliver(store, sender, T0, deadline=deadline)
    # Four sends fit: two notices on both destinations; the third is left at the deadline, unsent, unclaimed.
    assert len(first.sent) == 2 and first.failed == [] and first.left == 2
    assert [q.claim for q in store.outbox.values()] == [None] * 4
    clock["left"] = 100.0
    second = deliver(store, sender, T0, deadline=deadline)
    assert len(second.sent) == 2 and store.pending_notices() == []
    assert len(sender.sends) == 8  # every notice once on each destination


# -- refusals --------------------------------------------------------------------------------------------


def test_a_refused_notice_goes_once_in_its_compact_form() -> None:
    store, sender = FakeAlertStore(), Sender()
    sender.refusing[TOPIC] = 1
    [notice] = process_findings([stale("a")], SCOPE, store, T0)
    done = deliver(store, sender, T0)
    assert [n.id for n in done.sent] == [notice.id] and done.gave_up == []
    assert [(a, compact) for a, _, compact in sender.sends] == [(TOPIC, True), (BUS, False)]


def test_a_notice_refused_for_good_is_given_up_loudly_and_never_retried() -> None:
    store, sender = FakeAlertStore(), Sender()
    sender.refusing[BUS] = 2  # the full entry and the compact one
    [notice] = process_findings([stale("a")], SCOPE, store, T0)
    done = deliver(store, sender, T0)
    [gave_up] = done.gave_up
    assert (gave_up.notice_id, gave_up.alert, gave_up.event, gave_up.destination) == (
        notice.id, notice.fingerprint, "opened", BUS)
    assert "compact form too" in gave_up.error and done.sent == [] and done.failed == []
    queued = store.outbox[notice.id]
    assert queued.undeliverable and not queued.delivered and set(queued.gave_up) == {BUS}
    assert store.pending_notices() == []  # never retried
    for minutes in (5, 10, 60):
        again = deliver(store, sender, T0 + timedelta(minutes=minutes))
        assert again.sent == again.gave_up == again.failed == []
    assert sender.to(TOPIC) == [(notice.fingerprint, "opened")] and sender.to(BUS) == []


def test_a_destination_given_up_is_not_retried_while_another_still_fails() -> None:
    store, sender = FakeAlertStore(), Sender(arns=(TOPIC, "paging", BUS))
    sender.refusing[BUS], sender.failing = 2, {"paging"}
    [notice] = process_findings([stale("a")], SCOPE, store, T0)
    first = deliver(store, sender, T0)
    assert len(first.gave_up) == 1 and len(first.failed) == 1 and "paging" in first.failed[0]
    assert [n.id for n in store.pending_notices()] == [notice.id]  # paging may still take it
    sender.failing = set()
    second = deliver(store, sender, T0 + timedelta(minutes=5))
    assert second.gave_up == [] and second.sent == []  # reached everywhere it can be: undeliverable, not "sent"
    assert store.outbox[notice.id].undeliverable and store.pending_notices() == []
    assert [a for a, _, _ in sender.sends] == [TOPIC, "paging"]  # the bus was never tried again
