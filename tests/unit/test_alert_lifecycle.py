"""Alert lifecycle: one email per transition, never a duplicate, never a false all-clear."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from tests.support.fakes import FakeAlertStore
from tfjanitor.alerts.lifecycle import Coverage, covered_scopes, finding_fingerprint, process_findings
from tfjanitor.model import Finding, Kind, LockfileCoverage, ScanError, ScanResult, Severity

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
REGION, TABLE = "ap-northeast-2", "terraform-state-lock"
SCOPE = {f"table:{REGION}:{TABLE}"}


def stale(lock_id: str = "L1", severity: Severity = Severity.WARNING, key: str = "ci/terraform.tfstate") -> Finding:
    return Finding(Kind.STALE_LOCK, severity, REGION, TABLE, "tfstate-demo", key, lock_id, "stale", {"age_seconds": 7200})


def events(notices) -> list[str]:
    return [n.event for n in notices]


def test_open_once_remind_after_interval_then_resolve() -> None:
    store = FakeAlertStore()
    assert events(process_findings([stale()], SCOPE, store, T0)) == ["opened"]
    assert events(process_findings([stale()], SCOPE, store, T0 + timedelta(minutes=5))) == []
    assert events(process_findings([stale()], SCOPE, store, T0 + timedelta(hours=24))) == ["reminder"]
    assert events(process_findings([stale()], SCOPE, store, T0 + timedelta(hours=25))) == []
    resolved = process_findings([], SCOPE, store, T0 + timedelta(hours=26))
    assert events(resolved) == ["resolved"] and resolved[0].opened_at == T0
    assert events(process_findings([], SCOPE, store, T0 + timedelta(hours=27))) == []


def test_getting_worse_is_one_more_email() -> None:
    store = FakeAlertStore()
    drift = Finding(Kind.DIGEST_DRIFT, Severity.WARNING, REGION, TABLE, "b", "k", None, "m")
    process_findings([drift], SCOPE, store, T0)
    drift.severity = Severity.CRITICAL
    notices = process_findings([drift], SCOPE, store, T0 + timedelta(minutes=5))
    assert events(notices) == ["worse"] and notices[0].extra["was"] == "warning"
    assert events(process_findings([drift], SCOPE, store, T0 + timedelta(minutes=10))) == []


def test_a_new_lock_on_the_same_state_is_a_new_alert() -> None:
    store = FakeAlertStore()
    process_findings([stale("L1")], SCOPE, store, T0)
    notices = process_findings([stale("L2")], SCOPE, store, T0 + timedelta(hours=2))
    assert sorted(events(notices)) == ["opened", "resolved"]


def test_incomplete_sweep_never_resolves_what_it_did_not_read() -> None:
    store = FakeAlertStore()
    process_findings([stale()], SCOPE, store, T0)
    result = ScanResult(REGION, [TABLE], [])
    result.errors.append(ScanError("scan_table", TABLE, "ThrottlingException", "throttled"))
    assert covered_scopes(result) == set()
    assert events(process_findings([], covered_scopes(result), store, T0 + timedelta(hours=1))) == []
    assert store.list_open()


def test_info_findings_are_not_emailed() -> None:
    foreign = Finding(Kind.MALFORMED_ITEM, Severity.INFO, REGION, TABLE, None, None, None, "foreign item")
    assert process_findings([foreign], SCOPE, FakeAlertStore(), T0) == []


def test_concurrent_sweeps_send_each_notice_once() -> None:
    store = FakeAlertStore()
    findings = [stale(f"L{i}", key=f"s{i}") for i in range(20)]
    sent: list[str] = []
    barrier = threading.Barrier(8)

    def sweep(now: datetime, seen: list) -> None:
        barrier.wait()
        sent.extend(f"{n.event}:{n.fingerprint}" for n in process_findings(seen, SCOPE, store, now))

    for seen, now in ((findings, T0), (findings, T0 + timedelta(hours=24)), ([], T0 + timedelta(hours=25))):
        sent.clear()
        threads = [threading.Thread(target=sweep, args=(now, seen)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        assert len(sent) == 20 and len(set(sent)) == 20, sent  # each alert once, by one sweeper


def test_fingerprints_are_stable_and_distinct() -> None:
    assert finding_fingerprint(stale()) == finding_fingerprint(stale())
    assert finding_fingerprint(stale("L1")) != finding_fingerprint(stale("L2"))


def test_a_lock_file_alert_outside_what_was_read_is_neither_resolved_nor_dropped() -> None:
    """A bucket read in part (scan/buckets.py): only lock files it looked at may resolve; the others come back to
    the caller, which looks at them by name."""
    store = FakeAlertStore()
    bucket_scope = f"bucket:{REGION}:tfstate-demo"

    def lockfile(key: str) -> Finding:
        return Finding(Kind.STALE_LOCKFILE, Severity.WARNING, REGION, None, "tfstate-demo", key, "L", "stale", {})

    process_findings([lockfile("ci/a/terraform.tfstate"), lockfile("other/terraform.tfstate")], {bucket_scope}, store, T0)
    partial = Coverage([bucket_scope, f"history:{REGION}"], {bucket_scope: LockfileCoverage(prefixes=["ci/"])})
    missed: list = []
    notices = process_findings([], partial, store, T0 + timedelta(minutes=5), not_looked_at=missed)
    assert [n.finding["key"] for n in notices] == ["ci/a/terraform.tfstate"]  # looked at, gone: resolved
    assert [r.finding["key"] for r in missed] == ["other/terraform.tfstate"]  # not looked at: stays open
    assert [r.finding["key"] for r in store.list_open()] == ["other/terraform.tfstate"]
    assert covered_scopes(ScanResult(REGION, [], ["tfstate-demo"])) == set()  # coverage is positive: nothing recorded
    read = ScanResult(REGION, [], ["tfstate-demo"])
    read.finished({bucket_scope})
    assert covered_scopes(read) == {bucket_scope}  # a plain set still compares


def test_only_this_checks_kinds_come_back_to_be_looked_at() -> None:
    """An audit alert on the same bucket (no key) is neither resolved nor handed back by the sweeper."""
    store = FakeAlertStore()
    bucket_scope = f"bucket:{REGION}:tfstate-demo"
    audit = Finding(Kind.BUCKET_VERSIONING_DISABLED, Severity.WARNING, REGION, None, "tfstate-demo", None, None, "x", {})
    process_findings([audit], {bucket_scope}, store, T0)
    missed: list = []
    partial = Coverage([bucket_scope], {bucket_scope: LockfileCoverage(prefixes=["ci/"])})
    assert (
        process_findings([], partial, store, T0 + timedelta(minutes=5), resolvable_kinds={Kind.STALE_LOCKFILE}, not_looked_at=missed)
        == []
    )
    assert missed == [] and len(store.list_open()) == 1


def test_past_its_deadline_a_run_makes_no_more_transitions() -> None:
    """Many new findings at once: the transitions stop at the deadline, and the next run makes the rest."""
    from tfjanitor.durations import Deadline

    store = FakeAlertStore()
    findings = [stale(f"L{i}", key=f"s{i}") for i in range(10)]
    looks = [0]

    def left() -> float:
        looks[0] += 1
        return 1.0 if looks[0] <= 4 else -1.0

    first = process_findings(findings, SCOPE, store, T0, deadline=Deadline(left, "a test budget"))
    assert events(first) == ["opened"] * 4
    rest = process_findings(findings, SCOPE, store, T0 + timedelta(minutes=5))
    assert events(rest) == ["opened"] * 6 and len(store.list_open()) == 10
