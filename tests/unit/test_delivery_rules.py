"""Delivery's rules with in-memory fakes (issue 18.2, 18.3): it stops at the run's deadline, gives a refused
notice up loudly after one compact try and never retries it, sends one alert's notices in order on every
destination, and a dead sender's claim holds the alert up only until that run is surely over."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.fakes import FakeAlertStore, FlakySender
from tfjanitor.alerts.delivery import CLAIM_LEASE, CLAIM_MARGIN, claim_until, deliver
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


def open_then_resolve(store: FakeAlertStore, key: str = "a") -> list[Notice]:
    opened = process_findings([stale(key)], SCOPE, store, T0)
    resolved = process_findings([], SCOPE, store, T0 + timedelta(minutes=5))
    return opened + resolved


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


def test_a_claim_lasts_until_the_claiming_run_is_surely_over() -> None:
    assert claim_until(T0, None) == T0 + CLAIM_LEASE
    lambda_deadline = fixed(40.0, reserve=30.0)  # 40 s to the deadline, 30 s of reserve before the timeout
    assert claim_until(T0, lambda_deadline) == T0 + timedelta(seconds=70) + CLAIM_MARGIN
    assert claim_until(T0, lambda_deadline.later(25.0)) == claim_until(T0, lambda_deadline)  # the same end
    assert claim_until(T0, fixed(-5.0)) == T0 + CLAIM_MARGIN


def test_a_dead_senders_claim_blocks_only_until_its_run_is_over() -> None:
    store, sender = FakeAlertStore(), Sender()
    [notice] = process_findings([stale("a")], SCOPE, store, T0)
    until = claim_until(T0, fixed(60.0, reserve=30.0))
    assert store.claim_notice(notice.id, "dead-run", until, T0) is not None  # claimed; the run was killed
    assert deliver(store, sender, until - timedelta(seconds=1)).sent == []  # it may still be sending
    assert [n.id for n in deliver(store, sender, until + timedelta(seconds=1)).sent] == [notice.id]
    assert until - T0 < timedelta(minutes=4) < CLAIM_LEASE


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
    assert (gave_up.notice_id, gave_up.alert, gave_up.event, gave_up.destination) == (notice.id, notice.fingerprint, "opened", BUS)
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


def test_a_notice_given_up_no_longer_holds_up_the_later_ones() -> None:
    store, sender = FakeAlertStore(), Sender()
    sender.refusing[BUS] = 2
    opened = process_findings([stale("a")], SCOPE, store, T0)
    deliver(store, sender, T0)
    sender.refusing = {}
    resolved = process_findings([], SCOPE, store, T0 + timedelta(minutes=5))
    done = deliver(store, sender, T0 + timedelta(minutes=5))
    assert [n.id for n in done.sent] == [resolved[0].id] and done.waiting == []
    assert sender.to(BUS) == [(opened[0].fingerprint, "resolved")]


# -- order -----------------------------------------------------------------------------------------------


def test_a_later_notice_waits_for_the_destinations_an_earlier_one_has_not_reached() -> None:
    store, sender = FakeAlertStore(), Sender()
    sender.failing = {BUS}
    opened, resolved = open_then_resolve(store)
    first = deliver(store, sender, T0 + timedelta(minutes=5))
    # The email of each went (in order); the bus has neither: resolved waits for opened there.
    assert sender.to(TOPIC) == [(opened.fingerprint, "opened"), (opened.fingerprint, "resolved")]
    assert sender.to(BUS) == [] and first.sent == [] and len(first.failed) == 1 and len(first.waiting) == 1
    sender.failing = set()
    second = deliver(store, sender, T0 + timedelta(minutes=10))
    assert [n.event for n in second.sent] == ["opened", "resolved"]
    assert sender.to(BUS) == [(opened.fingerprint, "opened"), (opened.fingerprint, "resolved")]
    assert sender.to(TOPIC) == [(opened.fingerprint, "opened"), (opened.fingerprint, "resolved")]  # never twice


def test_a_killed_sender_then_a_resolve_the_bus_sees_opened_before_resolved() -> None:
    """Issue 18.3: killed between SNS Publish and PutEvents, "opened" is claimed; the next run resolves."""
    store, sender = FakeAlertStore(), Sender()
    [opened] = process_findings([stale("a")], SCOPE, store, T0)
    until = claim_until(T0, fixed(60.0, reserve=30.0))
    store.claim_notice(opened.id, "killed", until, T0)
    store.notice_reached(opened.id, "killed", TOPIC, "id-dead")  # SNS had it; the bus never did
    [resolved] = process_findings([], SCOPE, store, T0 + timedelta(minutes=1))
    during = deliver(store, sender, T0 + timedelta(minutes=1))
    assert sender.to(BUS) == [] and sender.to(TOPIC) == [(opened.fingerprint, "resolved")]  # the email may go
    assert during.sent == [] and store.outbox[resolved.id].claim is None
    after = deliver(store, sender, until + timedelta(seconds=1))
    assert [n.event for n in after.sent] == ["opened", "resolved"]
    assert sender.to(BUS) == [(opened.fingerprint, "opened"), (opened.fingerprint, "resolved")]


def test_other_alerts_are_never_held_up() -> None:
    store, sender = FakeAlertStore(), Sender()
    [a] = process_findings([stale("a")], SCOPE, store, T0)
    store.claim_notice(a.id, "killed", T0 + CLAIM_LEASE, T0)
    process_findings([stale("a"), stale("b")], SCOPE, store, T0 + timedelta(minutes=1))
    done = deliver(store, sender, T0 + timedelta(minutes=1))
    assert [n.finding["key"] for n in done.sent] == ["b"]


@pytest.mark.parametrize("seed", range(4))
def test_with_flaky_destinations_and_racing_runs_each_alerts_notices_arrive_in_order(seed: int) -> None:
    """Sweeps open, escalate, remind and resolve while several runs deliver at once, destinations fail a share
    of the time and runs run out of time: each destination gets each alert's notices in the order they were
    made, each once."""
    rng = random.Random(seed)
    store = FakeAlertStore()
    sender = FlakySender(failure_rate=0.4, seed=seed, arns=("own", "paging", "bus"))
    keys = [f"s{i}" for i in range(5)]
    now = T0
    for _ in range(25):
        seen = [stale(k, rng.choice([Severity.WARNING, Severity.CRITICAL])) for k in keys if rng.random() < 0.5]
        now += timedelta(hours=rng.choice([0.1, 1, 25]))
        runs = [threading.Thread(target=process_findings, args=(seen, SCOPE, store, now, timedelta(hours=24)))]
        for _ in range(3):
            budget = rng.choice([None, fixed(-1.0), fixed(30.0)])
            runs.append(threading.Thread(target=deliver, args=(store, sender, now), kwargs={"deadline": budget}))
        for run in runs:
            run.start()
        for run in runs:
            run.join(timeout=10)
    for _ in range(60):
        now += timedelta(minutes=20)  # past any claim
        deliver(store, sender, now)
    assert sender.failures > 10 and store.pending_notices() == []
    made = sorted(store.outbox.values(), key=lambda q: q.notice.id)
    assert {q.notice.event for q in made} >= {"opened", "resolved", "reminder"}
    arrived: dict[tuple[str, str], list[str]] = defaultdict(list)
    for arn, notice, _ in sender.published:
        arrived[(arn, notice.fingerprint)].append(notice.id)
    for (arn, fp), ids in arrived.items():
        assert ids == sorted(ids) and len(ids) == len(set(ids)), (arn, fp)
        assert ids == [q.notice.id for q in made if q.notice.fingerprint == fp]  # all of them, once
