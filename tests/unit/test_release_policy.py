"""The sweeper's release rules: staged, unchanged twice, not protected, allowed operation classes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.support.builders import lock_info
from tests.support.fakes import FakeAlertStore
from tfjanitor.alerts.lifecycle import Sighting, process_findings
from tfjanitor.aws.backend import LockWriter
from tfjanitor.checks import findings as build
from tfjanitor.release.auto import ReleasePolicy, auto_release, decide
from tfjanitor.release.locks import DYNAMODB, ObservedLock
from tfjanitor.terraform import parse_lock_info

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
ON = ReleasePolicy(enabled=True, grace=timedelta(minutes=30), protected=("prod/**",), operations=frozenset({"plan", "other"}))


def stale(key: str = "dev/terraform.tfstate", operation: str = "OperationTypePlan", now: datetime = NOW):
    lock = parse_lock_info(lock_info(f"b/{key}", age=timedelta(hours=2), operation=operation, lock_id="L-1", now=NOW))
    return build.stale_lock("ap-northeast-2", "t", "b", key, lock, now, timedelta(hours=1)), lock


def held(key: str, lock):
    """The lock as auto-release reads it again from table t."""
    return ObservedLock(DYNAMODB, "b", key, lock.raw, lock, table="t")


SEEN_LONG_AGO = NOW - timedelta(hours=1)  # tfjanitor has seen the lock for the whole 1h threshold


@pytest.mark.parametrize(
    ("policy", "key", "operation", "opened", "sightings", "release", "why"),
    [
        (ReleasePolicy(), "dev/s", "OperationTypePlan", NOW - timedelta(hours=1), 5, False, "off"),
        (ON, "dev/s", "OperationTypePlan", None, 5, False, "not yet reported"),
        (ON, "dev/s", "OperationTypePlan", NOW - timedelta(minutes=10), 5, False, "grace period: 20m00s left"),
        (ON, "dev/s", "OperationTypePlan", NOW - timedelta(hours=1), 1, False, "1 of 2 sweeps"),
        (ON, "prod/network/s", "OperationTypePlan", NOW - timedelta(hours=1), 5, False, "protected pattern 'prod/**'"),
        (ON, "prod", "OperationTypePlan", NOW - timedelta(hours=1), 5, False, "protected"),
        (ON, "env:/staging/prod/s", "OperationTypePlan", NOW - timedelta(hours=1), 5, False, "protected pattern"),
        (ON, "dev/s", "OperationTypeApply", NOW - timedelta(hours=1), 5, False, "apply locks are not allowed"),
        (ON, "dev/s", "OperationTypePlan", NOW - timedelta(hours=1), 2, True, "unchanged in 2 sweeps"),
        (ON, "dev/s", "migration source state", NOW - timedelta(hours=1), 2, True, "operation class other allowed"),
        # Writers are apply-class: not released by the default classes.
        (ON, "dev/s", "state-mv", NOW - timedelta(hours=1), 2, False, "apply locks are not allowed"),
        (ON, "dev/s", "OperationTypeRefresh", NOW - timedelta(hours=1), 2, False, "apply locks are not allowed"),
        (ON, "dev/s", "OperationTypeFromTheFuture", NOW - timedelta(hours=1), 2, False, "apply locks are not allowed"),
        (
            ReleasePolicy(enabled=True, grace=timedelta(0), operations=frozenset({"apply"})),
            "prod/s",
            "OperationTypeApply",
            NOW,
            2,
            True,
            "apply allowed",
        ),
    ],
)
def test_decide(policy, key, operation, opened, sightings, release, why) -> None:
    finding, lock = stale(key, operation)
    decision = decide(policy, finding, held(key, lock), opened, Sighting(sightings, SEEN_LONG_AGO), NOW)
    assert decision.release is release
    assert why in decision.rule


def test_staleness_for_release_is_measured_from_first_sight_not_from_created() -> None:
    """Created says 2h (the holder's clock, or a long -lock-timeout wait), but tfjanitor first saw the
    lock 40 minutes ago: a 1h threshold is not yet met, whatever Created says."""
    finding, lock = stale()
    observed = held("dev/terraform.tfstate", lock)
    opened = NOW - timedelta(minutes=40)
    early = decide(ON, finding, observed, opened, Sighting(5, NOW - timedelta(minutes=40)), NOW)
    assert early.release is False and "first seen by tfjanitor 40m" in early.rule
    assert decide(ON, finding, observed, opened, Sighting(5, None), NOW).release is False
    later = decide(ON, finding, observed, opened, Sighting(9, NOW - timedelta(minutes=61)), NOW)
    assert later.release is True and "held for 1h01m since tfjanitor first saw it" in later.rule


@pytest.mark.parametrize(
    ("pattern", "key", "protected"),
    [
        ("prod/**", "prod/app.tfstate", True),
        ("prod/**", "prod", True),
        ("prod/**", "production/app.tfstate", False),
        ("prod/**", "dev/app.tfstate", False),
        # The prod/app.tfstate state in workspace staging, default and custom workspace_key_prefix.
        ("prod/**", "env:/staging/prod/app.tfstate", True),
        ("prod/**", "workspaces/staging/prod/app.tfstate", True),
        ("prod/**", "team/workspaces/staging/prod/net/app.tfstate", True),  # a prefix with "/" in it
        ("prod/**", "staging/prod/app.tfstate", True),  # workspace_key_prefix = "" gives <workspace>/<key>
        # app.tfstate in workspace prod: its key inside the prefix is prod/app.tfstate too.
        ("prod/**", "env:/prod/app.tfstate", True),
        ("env:/prod/**", "env:/prod/app.tfstate", True),  # a pattern may name the workspace path itself
        ("env:/prod/**", "prod/app.tfstate", False),  # ... which the default workspace's key is not
        ("*/terraform.tfstate", "env:/staging/dev/terraform.tfstate", True),
        ("dev/*.tfstate", "dev/a/b.tfstate", False),  # "*" stays within a segment
        ("dev/**.tfstate", "dev/a/b.tfstate", True),  # "**" crosses segments
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("app-?.tfstate", "app-1.tfstate", True),
        ("app-?.tfstate", "app-12.tfstate", False),
        # "[" is literal, never a character class.
        ("svc[1]/**", "svc[1]/terraform.tfstate", True),
        ("svc[1]/**", "svc1/terraform.tfstate", False),
        ("svc[!x]/**", "svca/terraform.tfstate", False),
        ("a.b", "axb", False),  # regex characters are literal too
    ],
)
def test_protected_key_patterns(pattern: str, key: str, protected: bool) -> None:
    assert (ReleasePolicy(protected=(pattern,)).protected_by(key) == pattern) is protected


class RecordingWriter(LockWriter):
    """Stands in for LockWriter: reads the lock items it holds, records what would be deleted
    (conditional semantics tested elsewhere); no AWS behind it (``LockWriter.__init__`` is not run)."""

    def __init__(self, items: dict[tuple[str, str], str] | None = None) -> None:
        self.items = items or {}
        self.deleted: list[tuple[str, str, str]] = []

    def read_lock_item(self, table: str, lock_id: str) -> str | None:
        return self.items.get((table, lock_id))

    def delete_lock_item(self, table: str, lock_id: str, info: str) -> None:
        self.deleted.append((table, lock_id, info))


def test_staged_release_over_sweeps_is_recorded_once() -> None:
    _, lock = stale()
    store, writer = FakeAlertStore(), RecordingWriter({("t", "b/dev/terraform.tfstate"): lock.raw})
    policy = ReleasePolicy(enabled=True, grace=timedelta(minutes=30), operations=frozenset({"plan"}))
    # Grace ends at +30m, but tfjanitor first saw the lock at NOW: the 1h threshold by its own clock ends at +60m.
    timeline = [NOW + timedelta(minutes=m) for m in (0, 5, 31, 36, 61, 66)]
    released_at = []
    for t in timeline:
        finding, _ = stale(now=t)
        process_findings([finding], {"table:ap-northeast-2:t"}, store, t)
        notices, _ = auto_release([finding], store, writer, policy, t, sweep_id=f"s-{t:%M}")
        released_at += [(t, n) for n in notices]
    assert [(t, n.event) for t, n in released_at] == [(NOW + timedelta(minutes=61), "released")]
    [(table, lock_id, info)] = writer.deleted
    assert (table, lock_id) == ("t", "b/dev/terraform.tfstate") and '"ID":"L-1"' in info
    [record] = store.releases.values()
    assert record["original_info"] == info and "grace 30m" in record["rule"] and record["sweep"] == "s-01"
    assert record["first_seen_at"] == NOW.isoformat()


@pytest.mark.parametrize(
    "drop", [("threshold", "threshold_seconds"), ("quiet_seconds", "age_seconds"), ("threshold", "threshold_seconds", "quiet_seconds")]
)
def test_a_finding_that_does_not_say_its_threshold_or_silence_is_never_released(drop: tuple[str, ...]) -> None:
    """Fail closed (issue 18.4): a missing threshold is not a threshold of 0."""
    finding, lock = stale()
    for name in drop:
        finding.details.pop(name, None)
    decision = decide(ON, finding, held("dev/terraform.tfstate", lock), NOW - timedelta(hours=1), Sighting(5, SEEN_LONG_AGO), NOW)
    assert decision.release is False and "does not say" in decision.rule


def test_a_lock_whose_created_is_ahead_of_the_clock_is_silent_since_first_seen() -> None:
    """Created three hours in the future (a holder's clock that is wrong): nothing says how long it is held; its
    silence counts from tfjanitor's first sighting, and the finding says its clock is ahead."""
    from tfjanitor.checks.liveness import FIRST_SEEN, last_sign_of_life

    lock = parse_lock_info(lock_info("b/k", age=timedelta(hours=-3), lock_id="L-ahead", now=NOW))
    assert last_sign_of_life(lock.created, now=NOW).what == FIRST_SEEN
    sign = last_sign_of_life(lock.created, now=NOW, first_seen=NOW - timedelta(hours=2))
    assert sign.quiet_seconds(NOW) == 7200
    finding = build.stale_lock("ap-northeast-2", "t", "b", "k", lock, NOW, timedelta(hours=1), sign=sign)
    assert "at least 2h00m" in finding.message and "3h00m ahead of this clock" in finding.message
    assert finding.details["clock_ahead_seconds"] == 3 * 3600 and finding.details["age_seconds"] == 7200
    # A few minutes ahead is clock skew, not a wrong clock: judged from Created as ever.
    near = parse_lock_info(lock_info("b/k", age=timedelta(minutes=-2), now=NOW))
    assert last_sign_of_life(near.created, now=NOW).what == "created"
