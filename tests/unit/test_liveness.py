"""Dead or slow (issue 11): signs of life, thresholds learned from a state's own holds, the history's bounds.

Pure code on a fake clock: every time below is T0 plus a few seconds or minutes.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.builders import lock_info
from tfjanitor.alerts.lifecycle import AlertStore, Sighting
from tfjanitor.aws.backend import LockWriter
from tfjanitor.aws.history import MAX_HOLDS, decode_holds, encode_holds, with_hold
from tfjanitor.checks import findings as build
from tfjanitor.checks.liveness import ALIVE, QUIET, STALE, last_sign_of_life, percentile, stale_threshold, verdict
from tfjanitor.model import Kind, StalePolicy
from tfjanitor.release.auto import ReleasePolicy, auto_release, decide
from tfjanitor.release.locks import DYNAMODB, ObservedLock
from tfjanitor.terraform import parse_lock_info

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
POLICY = StalePolicy(
    default=timedelta(hours=1), read_only=timedelta(minutes=15), min_stale_after=timedelta(minutes=10), multiplier=3, min_history=5
)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


# -- signs of life --------------------------------------------------------------------------------


def test_the_latest_write_after_the_lock_was_taken_is_the_last_sign_of_life() -> None:
    sign = last_sign_of_life(T0, state_written=T0 + minutes(3), digest_written=T0 + minutes(3.1))
    assert (sign.at, sign.what) == (T0 + minutes(3.1), "digest_written")
    sign = last_sign_of_life(T0, state_written=T0 + minutes(4), digest_written=T0 + minutes(1))
    assert (sign.at, sign.what) == (T0 + minutes(4), "state_written")
    assert sign.to_dict() == {"at": "2026-11-25T10:04:00Z", "what": "state_written"}


def test_writes_from_before_the_lock_prove_nothing() -> None:
    """The previous run's final write (or a hand edit) before this lock was taken is not this run's life."""
    sign = last_sign_of_life(T0, state_written=T0 - minutes(30), digest_written=T0 - minutes(30))
    assert (sign.at, sign.what) == (T0, "created")
    assert sign.quiet_seconds(T0 + minutes(14)) == 14 * 60
    assert sign.describe(T0 + minutes(14)).startswith("no sign of life for 14m00s (since the lock was taken at ")


def test_verdicts_on_a_fake_clock() -> None:
    threshold = stale_threshold(POLICY, False, "apply", [100.0] * 10)  # learned: 3 x 100 s -> the 10m floor
    assert threshold.seconds == 600 and threshold.learned
    sign = last_sign_of_life(T0, state_written=T0 + minutes(2))
    assert verdict(sign.quiet_seconds(T0 + minutes(2)), threshold, POLICY.multiplier) == ALIVE
    assert verdict(sign.quiet_seconds(T0 + minutes(5.3)), threshold, POLICY.multiplier) == ALIVE  # 3m20s = 10m / 3
    assert verdict(sign.quiet_seconds(T0 + minutes(5.4)), threshold, POLICY.multiplier) == QUIET
    assert verdict(sign.quiet_seconds(T0 + minutes(12)), threshold, POLICY.multiplier) == QUIET  # exactly 10m
    assert verdict(sign.quiet_seconds(T0 + minutes(12.1)), threshold, POLICY.multiplier) == STALE


# -- thresholds -------------------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    assert percentile([5.0], 95) == 5.0
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([1, 2, 3, 4, 100], 95) == 100  # with few runs, p95 is the longest: errs toward waiting
    assert percentile([10] * 48 + [5000, 9000], 95) == 10  # two killed-and-forced holds in 50 do not move it


@pytest.mark.parametrize(
    ("holds", "read_only", "seconds", "learned"),
    [
        (None, False, 3600, False),  # no history table: the fixed threshold
        ([40.0] * 4, False, 3600, False),  # 4 of the 5 holds needed
        ([40.0] * 5, False, 600, True),  # 3 x 40 s = 2 min: raised to MinStaleAfter
        ([300.0] * 5, False, 900, True),  # 3 x 5 min
        ([1800.0] * 37, False, 3600, True),  # 3 x 30 min: capped at StaleAfter
        ([300.0] * 5, True, 900, True),  # plans: 15 min, capped by ReadOnlyStaleAfter
        ([1000.0] * 5, True, 900, True),
    ],
)
def test_learned_threshold_is_clamped_between_min_stale_after_and_the_fixed_one(holds, read_only, seconds, learned) -> None:
    threshold = stale_threshold(POLICY, read_only, "plan" if read_only else "apply", holds)
    assert (threshold.seconds, threshold.learned) == (seconds, learned)
    assert threshold.fixed_seconds == (900 if read_only else 3600)


def test_a_min_stale_after_above_the_ceiling_never_lifts_the_ceiling() -> None:
    policy = StalePolicy(read_only=timedelta(minutes=5), min_stale_after=timedelta(minutes=10))
    assert stale_threshold(policy, True, "plan", [1.0] * 9).seconds == 300


def test_learning_off_keeps_the_fixed_threshold() -> None:
    off = StalePolicy(adaptive=False)
    threshold = stale_threshold(off, False, "apply", [10.0] * 50)
    assert threshold.seconds == 3600 and not threshold.learned and "learning is off" in threshold.why


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=10 * 86400), max_size=60), st.booleans())
def test_a_threshold_never_exceeds_the_fixed_one_nor_undercuts_the_floor(holds, read_only) -> None:
    threshold = stale_threshold(POLICY, read_only, "apply", holds)
    fixed = POLICY.threshold(read_only).total_seconds()
    assert threshold.seconds <= fixed
    assert threshold.seconds >= min(fixed, POLICY.min_stale_after.total_seconds())
    assert threshold.learned == (len(holds) >= POLICY.min_history)


def test_the_finding_explains_a_learned_threshold() -> None:
    lock = parse_lock_info(lock_info("b/k", lock_id="L-9", now=T0))
    threshold = stale_threshold(POLICY, False, "apply", [60.0] * 30 + [120.0] * 7)
    sign = last_sign_of_life(lock.created)
    finding = build.stale_lock("ap-northeast-2", "t", "b", "k", lock, T0 + minutes(10.5), threshold, sign=sign)
    assert (
        "this state's applies finish within 2m00s (p95 of 37 runs); this one has shown no sign of life for 10m30s" in finding.message
    )
    assert finding.details["last_sign_of_life"] == {"at": "2026-11-25T10:00:00Z", "what": "created"}
    assert finding.details["threshold_seconds"] == 600 and finding.details["threshold"]["learned"] is True
    assert finding.details["threshold"]["fixed_seconds"] == 3600


# -- auto-release never acts on a learned threshold ----------------------------------------------------


def test_auto_release_waits_for_the_fixed_threshold_whatever_was_learned() -> None:
    """A plan lock taken an hour ago (first seen then), its state written since: the learned 10 min threshold
    alerts once it has been silent 10 min, the release still waits until it has been silent 15 min."""
    lock = parse_lock_info(lock_info("b/dev/s", operation="OperationTypePlan", lock_id="L-1", now=T0 - minutes(60)))
    on = ReleasePolicy(enabled=True, grace=timedelta(0), operations=frozenset({"plan"}))
    learned = stale_threshold(POLICY, True, "plan", [20.0] * 10)  # 10 min
    seen = Sighting(2, T0 - minutes(60))
    for quiet, released in ((minutes(11), False), (minutes(14), False), (minutes(16), True)):
        sign = last_sign_of_life(lock.created, state_written=T0)
        finding = build.stale_lock("r", "t", "b", "dev/s", lock, T0 + quiet, learned, sign=sign)
        observed = ObservedLock(DYNAMODB, "b", "dev/s", lock.raw, lock, table="t")  # read again: unchanged
        decision = decide(on, finding, observed, T0, seen, T0 + quiet)
        assert decision.release is released, decision.rule
        if not released:
            assert "a release waits for the fixed 15m00s" in decision.rule


def test_auto_release_never_releases_an_interrupted_write() -> None:
    lock = parse_lock_info(lock_info("b/k", lock_id="L-2", now=T0))
    stale = build.stale_lock("r", "t", "b", "k", lock, T0 + timedelta(hours=3), timedelta(hours=1))
    interrupted = build.interrupted_write(stale, lock, "a" * 32, "b" * 32, T0 + minutes(1))
    assert interrupted.kind is Kind.INTERRUPTED_WRITE and interrupted.severity.value == "critical"

    class Store:  # every release rule satisfied, were it a stale lock
        def get(self, fp):
            raise AssertionError("an interrupted write is never considered for release")

    # Neither may be used: the store's one read fails the test, and there is no writer.
    store, writer = cast(AlertStore, Store()), cast(LockWriter, None)
    notices, decisions = auto_release(
        [interrupted],
        store,
        writer,
        ReleasePolicy(enabled=True, grace=timedelta(0), operations=frozenset({"apply"})),
        T0 + timedelta(hours=3),
        "s",
    )
    assert notices == [] and decisions == []


# -- the history's bounds -----------------------------------------------------------------------------


def test_history_keeps_the_last_50_holds_compactly_and_each_lock_once() -> None:
    entries: list[tuple[str, int]] = []
    for i in range(80):
        entries = with_hold(entries, f"lock-{i}", 60 + i) or entries
    assert len(entries) == MAX_HOLDS
    assert [s for _, s in entries] == list(range(90, 140))  # the oldest 30 dropped
    text = encode_holds(entries)
    assert len(text) < 700 and decode_holds(text) == entries
    assert with_hold(entries, "lock-79", 999) is None  # a redelivered release is recorded once
    assert decode_holds("garbage 12ab:x :5 beef:7") == [("beef", 7)]
