"""Decisions stand on the time of their evidence (issue 9.2): every interleaving of two sweeps, the
stream monitor and the auditor, on a fake clock. A step at index i happens at T0 + 10 s x i."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.fakes import FakeAlertStore
from tfjanitor.alerts.lifecycle import Notice, fingerprint, open_one, process_findings, resolve_if_open
from tfjanitor.catalog import Check, found_by
from tfjanitor.model import Finding, Kind, Severity

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
REGION, TABLE, BUCKET, KEY = "ap-northeast-2", "terraform-state-lock", "tfstate-demo", "ci/terraform.tfstate"
SCOPE = {f"table:{REGION}:{TABLE}", f"bucket:{REGION}:{BUCKET}"}
STALE = Finding(Kind.STALE_LOCK, Severity.WARNING, REGION, TABLE, BUCKET, KEY, "L1", "stale", {})
DRIFT = Finding(Kind.DIGEST_DRIFT, Severity.CRITICAL, REGION, TABLE, BUCKET, KEY, None, "drift", {})


def at(i: int) -> datetime:
    return T0 + timedelta(seconds=10 * i)


def orders(steps: list[str], before: list[tuple[str, str]]) -> list[tuple[str, ...]]:
    """Every order of ``steps`` in which each (a, b) of ``before`` has a before b."""
    return [o for o in itertools.permutations(steps) if all(o.index(a) < o.index(b) for a, b in before)]


def sweep_write(store: FakeAlertStore, findings: list[Finding], read: datetime, now: datetime) -> list[Notice]:
    return process_findings(findings, SCOPE, store, now, resolvable_kinds=set(found_by(Check.SWEEP)), evidence_at=read)


def audit(store: FakeAlertStore, now: datetime) -> list[Notice]:
    return process_findings([], SCOPE, store, now, resolvable_kinds=set(found_by(Check.AUDIT)), evidence_at=now)


LOCK_ORDERS = orders(
    ["readA", "writeA", "readB", "writeB", "release", "stream", "audit"],
    [("readA", "writeA"), ("readB", "writeB"), ("release", "stream")],
)


@pytest.mark.parametrize("order", LOCK_ORDERS, ids=["-".join(o) for o in LOCK_ORDERS])
def test_a_released_lock_is_never_reopened_and_every_opened_alert_is_resolved(order: tuple[str, ...]) -> None:
    store, fp = FakeAlertStore(), fingerprint(Kind.STALE_LOCK, REGION, TABLE, BUCKET, KEY, "L1")
    released = order.index("release")
    sent: list[tuple[int, str]] = []
    reads: dict[str, int] = {}
    for i, step in enumerate(order):
        if step.startswith("read"):
            reads[step[-1]] = i
        elif step.startswith("write"):
            read = reads[step[-1]]
            seen = [STALE] if read < released else []  # the sweep judged what its read showed
            sent += [(i, n.event) for n in sweep_write(store, seen, at(read), at(i))]
        elif step == "stream":  # the release record carries the release's own time
            notice = resolve_if_open(store, fp, at(i), "lock released", evidence=at(released), tombstone=True)
            sent += [(i, notice.event)] if notice else []
        elif step == "audit":
            sent += [(i, n.event) for n in audit(store, at(i))]
    final = len(order)  # a later sweep reads after everything
    sent += [(final, n.event) for n in sweep_write(store, [], at(final), at(final))]

    events = [e for _, e in sent]
    assert events.count("opened") <= 1 and events.count("opened") == events.count("resolved"), sent
    if "opened" in events:
        assert events.index("opened") < events.index("resolved"), sent
        opened_at = sent[events.index("opened")][0]
        assert opened_at < order.index("stream"), f"opened after the stream saw the release: {sent}"
    record = store.get(fp)
    assert record is None or record.status == "closed"


DRIFT_ORDERS = orders(
    ["readA", "writeA", "drift", "check", "readB", "writeB", "audit"], [("readA", "writeA"), ("readB", "writeB"), ("drift", "check")]
)


@pytest.mark.parametrize("order", DRIFT_ORDERS[::3], ids=["-".join(o) for o in DRIFT_ORDERS[::3]])
def test_drift_opened_by_the_stream_is_never_resolved_by_an_older_read(order: tuple[str, ...]) -> None:
    """The drift appears and stays: no interleaving may resolve it, and it is opened once."""
    store = FakeAlertStore()
    appeared = order.index("drift")
    sent: list[str] = []
    reads: dict[str, int] = {}
    for i, step in enumerate(order):
        if step.startswith("read"):
            reads[step[-1]] = i
        elif step.startswith("write"):
            read = reads[step[-1]]
            sent += [n.event for n in sweep_write(store, [DRIFT] if read > appeared else [], at(read), at(i))]
        elif step == "check":  # the stream monitor's drift check reads at its own time
            notice = open_one(store, DRIFT, at(i), evidence=at(i))
            sent += [notice.event] if notice else []
        elif step == "audit":
            sent += [n.event for n in audit(store, at(i))]
    assert sent == ["opened"], order


def test_reopening_on_newer_evidence_still_works() -> None:
    """A lock released and then a *new* stale sighting after it (same lock ID read again later) opens again."""
    store, fp = FakeAlertStore(), fingerprint(Kind.STALE_LOCK, REGION, TABLE, BUCKET, KEY, "L1")
    assert [n.event for n in sweep_write(store, [STALE], at(0), at(1))] == ["opened"]
    assert resolve_if_open(store, fp, at(2), "lock released", evidence=at(2), tombstone=True) is not None
    assert sweep_write(store, [STALE], at(1), at(3)) == []  # read before the release: stays closed
    assert [n.event for n in sweep_write(store, [STALE], at(4), at(5))] == ["opened"]  # read after: real news
