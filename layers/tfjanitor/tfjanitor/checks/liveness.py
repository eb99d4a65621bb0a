"""Dead or slow? A held lock's last sign of life, and the stale threshold in force for it (pure).

Terraform never heartbeats a lock, but a live run leaves traces: the lock's ``Created``; a write of
its state object after the lock was taken (``apply`` persists a snapshot when a resource completes and
20 s have passed since the last one, then again at the end); a digest write for the state, seen on the
lock table's stream. A lock is stale once it has shown no sign of life for longer than its threshold.

The threshold is the fixed one (``StaleAfter``, or ``ReadOnlyStaleAfter`` for plans) unless the state
has at least ``min_history`` finished holds of the lock's operation class on record: then
``clamp(multiplier x p95 of those holds, min_stale_after, fixed)``. The fixed threshold stays the
ceiling: learning only ever makes an alert earlier, never later, and never makes a release earlier.

Clock skew: ``Created`` comes from the holder's clock, ``LastModified`` and stream times from AWS's. A
write counts only if it is later than ``Created``, and only the latest sign counts, so a write made
before the lock was taken never moves it, and skew shifts the quiet time by at most the skew itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tfjanitor.checks.evidence import CLOCK_SKEW
from tfjanitor.durations import human_duration
from tfjanitor.model import StalePolicy
from tfjanitor.terraform import format_time

CREATED, STATE_WRITTEN, DIGEST_WRITTEN = "created", "state_written", "digest_written"
FIRST_SEEN = "first_seen"  # a lock whose Created is ahead of this clock: silent since tfjanitor first saw it
ALIVE, QUIET, STALE = "alive", "quiet", "stale"
_SIGN_WORDS = {
    CREATED: "since the lock was taken",
    STATE_WRITTEN: "since its state object was written",
    DIGEST_WRITTEN: "since its digest was written",
    FIRST_SEEN: "since tfjanitor first saw it, its Created being ahead of this clock",
}
_CLASS_RUNS = {"apply": "applies", "plan": "plans", "other": "runs of this kind"}


@dataclass(frozen=True)
class SignOfLife:
    at: datetime
    what: str  # created | state_written | digest_written

    def to_dict(self) -> dict[str, str]:
        return {"at": format_time(self.at), "what": self.what}

    def quiet_seconds(self, now: datetime) -> float:
        return max(0.0, (now - self.at).total_seconds())

    def describe(self, now: datetime) -> str:
        """``no sign of life for 14m02s (since its state object was written at 10:02:11Z)``."""
        return (
            f"no sign of life for {human_duration(self.quiet_seconds(now))} "
            f"({_SIGN_WORDS.get(self.what, self.what)} at {format_time(self.at)})"
        )


def clock_ahead(created: datetime, now: datetime) -> float:
    """Seconds by which a lock's ``Created`` is ahead of ``now``, beyond the clock-skew margin (0 when it is not):
    the holder's clock is wrong, and ``Created`` says nothing of how long the lock has been held."""
    ahead = (created - now).total_seconds()
    return ahead if ahead > CLOCK_SKEW.total_seconds() else 0.0


def last_sign_of_life(
    created: datetime,
    state_written: datetime | None = None,
    digest_written: datetime | None = None,
    *,
    now: datetime | None = None,
    first_seen: datetime | None = None,
) -> SignOfLife:
    """The latest evidence that the lock's holder was alive. A write counts only after ``Created``. A ``Created``
    ahead of ``now`` (:func:`clock_ahead`) is no evidence: the lock is silent since tfjanitor first saw it
    (``first_seen``, default ``now``), and a write counts after that."""
    best = SignOfLife(created, CREATED)
    if now is not None and clock_ahead(created, now):
        best = SignOfLife(min(first_seen or now, now), FIRST_SEEN)
    for at, what in ((state_written, STATE_WRITTEN), (digest_written, DIGEST_WRITTEN)):
        if at is not None and at > best.at:
            best = SignOfLife(at, what)
    return best


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sequence: always one of the values."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Threshold:
    """The stale threshold in force for one lock, and why."""

    seconds: float
    learned: bool
    fixed_seconds: float  # the fixed threshold: the ceiling, and what auto-release waits for
    klass: str  # apply | plan | other
    runs: int = 0  # finished holds of this class on record
    p95_seconds: float | None = None
    unlearned: str = ""  # why the fixed threshold applies

    @property
    def why(self) -> str:
        """One sentence: where the number comes from."""
        if self.learned:
            return (
                f"learned: this state's {_CLASS_RUNS.get(self.klass, self.klass)} finish within "
                f"{human_duration(math.ceil(self.p95_seconds or 0))} (p95 of {self.runs} runs); the threshold is "
                f"{human_duration(self.seconds)}, within the {human_duration(self.fixed_seconds)} ceiling"
            )
        return f"fixed: {human_duration(self.fixed_seconds)} ({self.unlearned})"

    def to_dict(self) -> dict[str, object]:
        return {
            "seconds": int(self.seconds),
            "learned": self.learned,
            "why": self.why,
            "fixed_seconds": int(self.fixed_seconds),
            "runs": self.runs,
            "p95_seconds": None if self.p95_seconds is None else round(self.p95_seconds, 1),
        }


def stale_threshold(policy: StalePolicy, read_only: bool, klass: str, holds: Sequence[float] | None) -> Threshold:
    """``clamp(multiplier x p95, min_stale_after, fixed)`` once enough holds of this class are on record.

    ``holds`` None: no history was read (no history table): the fixed threshold, learning not mentioned.
    """
    fixed = policy.threshold(read_only).total_seconds()
    if not policy.adaptive:
        return Threshold(fixed, False, fixed, klass, unlearned="learning is off")
    if holds is None:
        return Threshold(fixed, False, fixed, klass, unlearned="no hold history was read")
    runs = len(holds)
    if runs < policy.min_history:
        return Threshold(
            fixed,
            False,
            fixed,
            klass,
            runs,
            unlearned=(
                f"{runs} of the {policy.min_history} finished {_CLASS_RUNS.get(klass, klass)} needed to learn one are on record"
            ),
        )
    p95 = percentile(holds, 95)
    floor = min(policy.min_stale_after.total_seconds(), fixed)
    learned = min(fixed, max(floor, policy.multiplier * p95))
    return Threshold(learned, True, fixed, klass, runs, p95)


def verdict(quiet_seconds: float, threshold: Threshold, multiplier: float) -> str:
    """``stale`` past the threshold; ``alive`` while quiet for at most threshold / multiplier (one typical
    run when learned); ``quiet`` in between: silent for longer than usual, not yet stale."""
    if quiet_seconds > threshold.seconds:
        return STALE
    return ALIVE if quiet_seconds <= threshold.seconds / max(multiplier, 1.0) else QUIET


def explain(sign: SignOfLife, threshold: Threshold, now: datetime) -> str:
    """The sentence a finding gives: the threshold's basis, then how long the lock has been silent."""
    quiet = human_duration(sign.quiet_seconds(now))
    since = f"{_SIGN_WORDS.get(sign.what, sign.what)} at {format_time(sign.at)}"
    if threshold.learned:
        return (
            f"this state's {_CLASS_RUNS.get(threshold.klass, threshold.klass)} finish within "
            f"{human_duration(math.ceil(threshold.p95_seconds or 0))} (p95 of {threshold.runs} runs); this one has "
            f"shown no sign of life for {quiet} ({since}), past the learned {human_duration(threshold.seconds)} "
            "threshold"
        )
    return f"no sign of life for {quiet} ({since}), longer than the {human_duration(threshold.seconds)} threshold"
