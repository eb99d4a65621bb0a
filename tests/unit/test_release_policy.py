"""The sweeper's release rules: staged, unchanged twice, not protected, allowed operation classes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.support.builders import lock_info
from tests.support.fakes import FakeAlertStore
from tfjanitor.alerts.lifecycle import process_findings
from tfjanitor.checks import findings as build
from tfjanitor.release.auto import ReleasePolicy, auto_release, decide, observed_from_finding
from tfjanitor.terraform import parse_lock_info

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
ON = ReleasePolicy(enabled=True, grace=timedelta(minutes=30), protected=("prod/**",),
                   operations=frozenset({"plan", "other"}))


def stale(key: str = "dev/terraform.tfstate", operation: str = "OperationTypePlan", now: datetime = NOW):  # type: ignore[no-untyped-def]
    lock = parse_lock_info(lock_info(f"b/{key}", age=timedelta(hours=2), operation=operation, lock_id="L-1", now=NOW))
    return build.stale_lock("ap-northeast-2", "t", "b", key, lock, now, timedelta(hours=1))


@pytest.mark.parametrize(
    ("policy", "key", "operation", "opened", "sightings", "release", "why"),
    [
        (ReleasePolicy(), "dev/s", "OperationTypePlan", NOW - timedelta(hours=1), 5, False, "off"),
        (ON, "dev/s", "OperationTypePlan", None, 5, False, "not yet reported"),
        (ON, "dev/s", "OperationTypePlan", NOW - timedelta(minutes=10), 5, False, "grace period: 20m00s left"),
        (ON, "dev/s", "OperationTypePlan", NOW - timedelta(hours=1), 1, False, "1 of 2 sweeps"),
        (ON, "prod/network/s", "OperationTypePlan", NOW - timedelta(hours=1), 5, False, "protected pattern 'prod/**'"),
        (ON, "prod", "OperationTypePlan", NOW - timedelta(hours=1), 5, False, "protected"),
        (ON, "dev/s", "OperationTypeApply", NOW - timedelta(hours=1), 5, False, "apply locks are not allowed"),
        (ON, "dev/s", "OperationTypePlan", NOW - timedelta(hours=1), 2, True, "unchanged in 2 sweeps"),
        (ON, "dev/s", "state-mv", NOW - timedelta(hours=1), 2, True, "operation class other allowed"),
        (ReleasePolicy(enabled=True, grace=timedelta(0), operations=frozenset({"apply"})), "prod/s",
         "OperationTypeApply", NOW, 2, True, "apply allowed"),
    ],
)
def test_decide(policy, key, operation, opened, sightings, release, why) -> None:  # type: ignore[no-untyped-def]
    finding = stale(key, operation)
    decision = decide(policy, finding, observed_from_finding(finding), opened, sightings, NOW)
    assert decision.release is release
    assert why in decision.rule


class RecordingWriter:
    """Stands in for LockWriter: records what would be deleted (conditional semantics tested elsewhere)."""

    def __init__(self) -> None:
        self.deleted: list[tuple[str, str, str]] = []

    def delete_lock_item(self, table: str, lock_id: str, info: str) -> None:
        self.deleted.append((table, lock_id, info))


def test_staged_release_over_sweeps_is_recorded_once() -> None:
    store, writer = FakeAlertStore(), RecordingWriter()
    policy = ReleasePolicy(enabled=True, grace=timedelta(minutes=30), operations=frozenset({"plan"}))
    timeline = [NOW, NOW + timedelta(minutes=5), NOW + timedelta(minutes=31), NOW + timedelta(minutes=36)]
    released_at = []
    for t in timeline:
        finding = stale(now=t)
        process_findings([finding], {"table:ap-northeast-2:t"}, store, t)
        notices, _ = auto_release([finding], store, writer, policy, t, sweep_id=f"s-{t:%M}")  # type: ignore[arg-type]
        released_at += [(t, n) for n in notices]
    assert [(t, n.event) for t, n in released_at] == [(NOW + timedelta(minutes=31), "released")]
    [(table, lock_id, info)] = writer.deleted
    assert (table, lock_id) == ("t", "b/dev/terraform.tfstate") and '"ID":"L-1"' in info
    [record] = store.releases.values()
    assert record["original_info"] == info and "grace 30m" in record["rule"] and record["sweep"] == "s-31"
