"""Notices are sent before they count as sent: every transition reaches SNS once, whatever Publish does."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.fakes import FakeAlertStore, FlakySender
from tfjanitor.alerts.delivery import CLAIM_LEASE, deliver
from tfjanitor.alerts.lifecycle import Notice, process_findings
from tfjanitor.model import Finding, Kind, Severity

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
REGION, TABLE = "ap-northeast-2", "terraform-state-lock"
SCOPE = {f"table:{REGION}:{TABLE}"}


def stale(key: str, severity: Severity = Severity.WARNING) -> Finding:
    return Finding(Kind.STALE_LOCK, severity, REGION, TABLE, "tfstate-demo", key, f"L-{key}", f"{key} is stale")


class FailsFor(FlakySender):
    """Publish fails for the notices of these states only (on every topic, or on the one named)."""

    def __init__(self, *keys: str, arn: str | None = None, arns: tuple[str, ...] = ("topic",)) -> None:
        super().__init__(arns=arns)
        self.keys, self.arn = set(keys), arn

    def send(self, notice: Notice, arn: str, compact: bool = False) -> str:
        if notice.finding["key"] in self.keys and self.arn in (None, arn):
            self.failures += 1
            raise RuntimeError("KMSThrottlingException")
        return super().send(notice, arn, compact)


def test_a_failed_publish_neither_loses_its_notice_nor_blocks_the_others() -> None:
    store = FakeAlertStore()
    queued = process_findings([stale("a"), stale("b"), stale("c")], SCOPE, store, T0)
    assert [n.event for n in queued] == ["opened"] * 3

    first = deliver(store, FailsFor("a"), T0)
    assert sorted(n.finding["key"] for n in first.sent) == ["b", "c"]  # the one before them failed
    assert len(first.failed) == 1 and "KMSThrottlingException" in first.failed[0]
    assert [n.finding["key"] for n in store.pending_notices()] == ["a"]  # not counted as sent

    # Later runs (any function) retry it; nothing already sent is sent again.
    sender = FlakySender()
    assert [n.finding["key"] for n in deliver(store, sender, T0 + timedelta(minutes=5)).sent] == ["a"]
    assert deliver(store, sender, T0 + timedelta(minutes=10)).sent == []
    assert store.pending_notices() == []


def test_a_topic_that_failed_gets_the_notice_later_and_the_others_never_twice() -> None:
    store, topics = FakeAlertStore(), ("own", "paging")
    process_findings([stale("a"), stale("b")], SCOPE, store, T0)
    first = FailsFor("a", arn="paging", arns=topics)
    assert [n.finding["key"] for n in deliver(store, first, T0).sent] == ["b"]
    assert [(arn, n.finding["key"]) for arn, n, _ in first.published] == [("own", "a"), ("own", "b"), ("paging", "b")]

    later = FlakySender(arns=topics)
    assert [n.finding["key"] for n in deliver(store, later, T0 + timedelta(minutes=5)).sent] == ["a"]
    assert [(arn, n.finding["key"]) for arn, n, _ in later.published] == [("paging", "a")]


def test_a_sender_that_died_mid_send_is_replaced_only_after_its_claim_runs_out() -> None:
    store = FakeAlertStore()
    [notice] = process_findings([stale("a")], SCOPE, store, T0)
    assert store.claim_notice(notice.id, "dead-run", T0 + CLAIM_LEASE, T0) is not None  # claimed; the run died

    sender = FlakySender()
    assert deliver(store, sender, T0 + CLAIM_LEASE - timedelta(seconds=1)).sent == []  # it may still be sending
    assert [n.id for n in deliver(store, sender, T0 + CLAIM_LEASE + timedelta(seconds=1)).sent] == [notice.id]


@pytest.mark.parametrize("seed", range(6))
def test_with_flaky_publish_every_transition_is_delivered_exactly_once(seed: int) -> None:
    """Sweeps open, escalate, remind and resolve alerts while runs of several functions deliver at the
    same time and Publish fails a share of the time: in the end each transition went out exactly once."""
    rng = random.Random(seed)
    store, sender = FakeAlertStore(), FlakySender(failure_rate=0.4, seed=seed, arns=("own", "paging"))
    keys = [f"s{i}" for i in range(8)]
    now = T0
    for _ in range(30):  # the world changes between sweeps
        seen = [stale(k, rng.choice([Severity.WARNING, Severity.CRITICAL])) for k in keys if rng.random() < 0.6]
        now += timedelta(hours=rng.choice([0.1, 1, 25]))
        runs = [threading.Thread(target=process_findings, args=(seen, SCOPE, store, now, timedelta(hours=24)))]
        runs += [threading.Thread(target=deliver, args=(store, sender, now)) for _ in range(3)]
        for run in runs:
            run.start()
        for run in runs:
            run.join(timeout=10)
    assert sender.failures > 10  # the failures really happened
    for _ in range(40):  # the world is quiet: later runs send what is left
        now += timedelta(minutes=5)
        deliver(store, sender, now)
    queued = store.outbox
    assert {event for q in queued.values() for event in [q.notice.event]} >= {"opened", "resolved", "reminder"}
    published = Counter((arn, n.id) for arn, n, _ in sender.published)
    assert set(published) == {(arn, nid) for arn in sender.arns for nid in queued} and max(published.values()) == 1
    assert all(q.delivered for q in queued.values()) and store.pending_notices() == []
