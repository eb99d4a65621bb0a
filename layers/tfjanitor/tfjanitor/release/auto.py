"""Automatic release by the sweeper (opt-in): staged, conditional, recorded."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from tfjanitor.alerts.lifecycle import OPEN, AlertStore, Notice, Sighting, finding_fingerprint
from tfjanitor.aws.backend import LockWriter
from tfjanitor.durations import human_duration
from tfjanitor.model import Finding, Kind
from tfjanitor.release.locks import ObservedLock, observe, release
from tfjanitor.terraform import raw_sha256
from tfjanitor.untrusted import cap


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` any run of characters within one segment, ``**`` any run across segments (``a/**`` also
    matches ``a``; ``a/**/b`` also ``a/b``), ``?`` one character other than ``/``; everything else,
    ``[`` included, is literal."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("(?:/.*)?")
            break
        if pattern.startswith("**", i):
            if (i == 0 or pattern[i - 1] == "/") and pattern.startswith("/", i + 2):
                out.append("(?:.*/)?")  # a whole-segment "**/": zero or more segments
                i += 3
            else:
                out.append(".*")
                i += 2
            continue
        ch = pattern[i]
        out.append("[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _seconds(value: Any) -> float | None:
    """A positive number of seconds from a finding's details, or None (missing, not a number, zero or less)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        return None
    return float(value)


def glob_match(pattern: str, key: str) -> bool:
    return _glob(pattern).fullmatch(key) is not None


def configured_keys(key: str) -> list[str]:
    """Every state key (the backend's ``key``) that an object key can be the state of.

    The default workspace stores ``<key>``; workspace W stores ``<workspace_key_prefix>/W/<key>``
    (``env:/W/<key>`` by default; a custom prefix may itself contain ``/``, and an empty prefix gives
    ``W/<key>``). The prefix and the workspace cannot be told apart from the key alone, so every
    suffix that starts after a ``/`` may be the configured key: protection errs toward protecting.
    """
    parts = key.split("/")
    return [suffix for suffix in ("/".join(parts[i:]) for i in range(len(parts))) if suffix]


@dataclass(frozen=True)
class ReleasePolicy:
    enabled: bool = False
    grace: timedelta = timedelta(minutes=30)  # after the stale alert, before any release
    min_sightings: int = 2  # sweeps that saw the lock byte-for-byte unchanged
    protected: tuple[str, ...] = ()  # globs on the state key, e.g. "prod/**" (see glob_match)
    operations: frozenset[str] = frozenset({"plan", "other"})  # apply only when allowed explicitly

    def protected_by(self, key: str) -> str | None:
        """The first pattern matching the key as stored or as configured inside any workspace prefix."""
        candidates = configured_keys(key)
        for pattern in self.protected:
            if any(glob_match(pattern, candidate) for candidate in candidates):
                return pattern
        return None


@dataclass
class Decision:
    finding: Finding
    observed: ObservedLock
    release: bool
    rule: str  # why it may or may not be released
    details: dict[str, Any] = field(default_factory=dict)


def decide(
    policy: ReleasePolicy, finding: Finding, observed: ObservedLock, opened_at: datetime | None, sighting: Sighting, now: datetime
) -> Decision:
    """Whether the sweeper may release this stale lock now, and the rule that says so.

    Staleness is measured from when tfjanitor first saw this exact lock (``sighting.first_seen``), not
    from its ``Created``: that comes from the holder's clock and predates any ``-lock-timeout`` wait.
    """
    sightings = sighting.count
    lock = observed.lock
    if not policy.enabled:
        return Decision(finding, observed, False, "auto-release is off")
    if lock is None:
        return Decision(finding, observed, False, "not a valid Terraform lock: left for a person")
    if opened_at is None:
        return Decision(finding, observed, False, "not yet reported stale (alert first)")
    if now - opened_at < policy.grace:
        left = human_duration((policy.grace - (now - opened_at)).total_seconds())
        return Decision(finding, observed, False, f"grace period: {left} left after the stale alert")
    if sightings < policy.min_sightings:
        return Decision(finding, observed, False, f"seen unchanged in {sightings} of {policy.min_sightings} sweeps")
    # Learned thresholds make the alert earlier, never the release: the fixed threshold (StaleAfter or
    # ReadOnlyStaleAfter) must have passed by tfjanitor's own clock, and with no sign of life. A finding that does
    # not say its threshold (or its silence) is released by no one: fail closed.
    fixed = _seconds(
        finding.details.get("threshold", {}).get("fixed_seconds") if isinstance(finding.details.get("threshold"), dict) else None
    )
    if fixed is None:
        fixed = _seconds(finding.details.get("threshold_seconds"))
    quiet_seen = _seconds(finding.details.get("quiet_seconds"))
    if fixed is None or quiet_seen is None:
        return Decision(finding, observed, False, "the finding does not say its threshold and silence: not released")
    threshold = timedelta(seconds=fixed)
    held = now - sighting.first_seen if sighting.first_seen is not None else timedelta(0)
    if sighting.first_seen is None or held < threshold:
        return Decision(
            finding,
            observed,
            False,
            f"first seen by tfjanitor {human_duration(held.total_seconds())} ago: not yet held for the "
            f"{human_duration(threshold.total_seconds())} threshold by tfjanitor's own clock",
        )
    quiet = quiet_seen
    if quiet <= threshold.total_seconds():
        return Decision(
            finding,
            observed,
            False,
            f"no sign of life for {human_duration(quiet)}: the alert used a learned threshold, a release "
            f"waits for the fixed {human_duration(threshold.total_seconds())}",
        )
    pattern = policy.protected_by(observed.key)
    if pattern:
        return Decision(finding, observed, False, f"state key matches protected pattern {pattern!r}")
    if lock.operation_class not in policy.operations:
        return Decision(finding, observed, False, f"{lock.operation_class} locks are not allowed for auto-release")
    rule = (
        f"held for {human_duration(held.total_seconds())} since tfjanitor first saw it, no sign of life for "
        f"{human_duration(quiet)} (fixed threshold {human_duration(threshold.total_seconds())}; Created says "
        f"{human_duration(lock.age_seconds(now))}), alerted {human_duration((now - opened_at).total_seconds())} "
        f"ago (grace {human_duration(policy.grace.total_seconds())}), unchanged in {sightings} sweeps, "
        f"operation class {lock.operation_class} allowed, key not protected"
    )
    return Decision(finding, observed, True, rule)


def observed_now(writer: LockWriter, finding: Finding) -> ObservedLock | None:
    """The lock a stale finding saw, read again now: only if it is still byte-for-byte that lock.

    A finding keeps a capped copy of the lock's value and its SHA-256 (the value is untrusted and
    unbounded); the conditional release needs the whole value, so it is read again and matched by hash.
    """
    want = finding.details.get("raw_sha256")
    if not want or finding.bucket is None or finding.key is None:
        return None
    if finding.kind is Kind.STALE_LOCK:
        found = observe(writer, finding.bucket, finding.key, finding.table, lockfile=False)
    elif finding.kind is Kind.STALE_LOCKFILE:
        found = observe(writer, finding.bucket, finding.key, None, lockfile=True)
    else:
        return None
    return next((lock for lock in found if raw_sha256(lock.raw) == want), None)


def auto_release(
    findings: list[Finding], store: AlertStore, writer: LockWriter, policy: ReleasePolicy, now: datetime, sweep_id: str
) -> tuple[list[Notice], list[Decision]]:
    """The sweeper's opt-in hands: staged, conditional, recorded releases of stale locks."""
    notices: list[Notice] = []
    decisions: list[Decision] = []
    for finding in findings:
        if finding.kind not in (Kind.STALE_LOCK, Kind.STALE_LOCKFILE):
            continue
        observed = observed_now(writer, finding)
        if observed is None:
            continue  # released or changed since the sweep read it: the next sweep judges it again
        fp = finding_fingerprint(finding)
        record = store.get(fp)
        opened_at = record.opened_at if record is not None and record.status == OPEN else None
        sighting = store.sight(fp, observed.fingerprint, now) if opened_at is not None else Sighting(0, None)
        decision = decide(policy, finding, observed, opened_at, sighting, now)
        decisions.append(decision)
        if not decision.release:
            continue
        outcome = release(writer, observed)
        decision.details = {"released": outcome.released, "reason": outcome.reason}
        if not outcome.released:
            continue
        lock = observed.lock
        assert lock is not None
        entry = {
            "released_at": now.isoformat(),
            "sweep": sweep_id,
            "rule": decision.rule,
            "source": observed.source,
            "table": observed.table,
            "bucket": observed.bucket,
            "key": observed.key,
            "etag": observed.etag,
            "original_info": cap(observed.raw),
            "original_info_sha256": raw_sha256(observed.raw),
            "first_seen_at": sighting.first_seen.isoformat() if sighting.first_seen else None,
        }
        notice = Notice(
            "released",
            finding.to_dict(),
            fp,
            now,
            opened_at or now,
            "released by tfjanitor",
            extra={"rule": decision.rule, "sweep": sweep_id},
        )
        if store.record_release(fp, entry, now, notice):
            notices.append(notice)
    return notices, decisions
