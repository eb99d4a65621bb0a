"""Automatic release by the sweeper (opt-in): staged, conditional, recorded."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tfjanitor.alerts.lifecycle import OPEN, AlertStore, Notice, finding_fingerprint
from tfjanitor.aws.backend import LockWriter
from tfjanitor.durations import human_duration
from tfjanitor.model import Finding, Kind
from tfjanitor.release.locks import DYNAMODB, LOCKFILE, ObservedLock, lock_info_or_none, release
from tfjanitor.terraform import normalize_etag


@dataclass(frozen=True)
class ReleasePolicy:
    enabled: bool = False
    grace: timedelta = timedelta(minutes=30)  # after the stale alert, before any release
    min_sightings: int = 2  # sweeps that saw the lock byte-for-byte unchanged
    protected: tuple[str, ...] = ()  # globs on the state key, e.g. "prod/**"
    operations: frozenset[str] = frozenset({"plan", "other"})  # apply only when allowed explicitly

    def protected_by(self, key: str) -> str | None:
        for pattern in self.protected:
            # "**" crosses "/" like "*" does in fnmatch; "prod/**" also covers "prod" itself.
            if fnmatch.fnmatchcase(key, pattern) or fnmatch.fnmatchcase(key, pattern.replace("/**", "*")):
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
    policy: ReleasePolicy, finding: Finding, observed: ObservedLock, opened_at: datetime | None,
    sightings: int, now: datetime,
) -> Decision:
    """Whether the sweeper may release this stale lock now, and the rule that says so."""
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
    pattern = policy.protected_by(observed.key)
    if pattern:
        return Decision(finding, observed, False, f"state key matches protected pattern {pattern!r}")
    if lock.operation_class not in policy.operations:
        return Decision(finding, observed, False,
                        f"{lock.operation_class} locks are not allowed for auto-release")
    rule = (
        f"stale for {human_duration(lock.age_seconds(now))} (threshold "
        f"{human_duration(finding.details.get('threshold_seconds', 0))}), alerted {human_duration((now - opened_at).total_seconds())} "
        f"ago (grace {human_duration(policy.grace.total_seconds())}), unchanged in {sightings} sweeps, "
        f"operation class {lock.operation_class} allowed, key not protected"
    )
    return Decision(finding, observed, True, rule)


def observed_from_finding(finding: Finding) -> ObservedLock | None:
    """The lock a stale finding saw, exactly (the engine keeps the raw Info / body and ETag)."""
    raw = finding.details.get("raw")
    if not isinstance(raw, str) or finding.bucket is None or finding.key is None:
        return None
    if finding.kind is Kind.STALE_LOCK:
        return ObservedLock(DYNAMODB, finding.bucket, finding.key, raw, lock_info_or_none(raw), table=finding.table)
    if finding.kind is Kind.STALE_LOCKFILE:
        return ObservedLock(LOCKFILE, finding.bucket, finding.key, raw, lock_info_or_none(raw),
                            etag=normalize_etag(finding.details.get("etag")))
    return None


def auto_release(
    findings: list[Finding], store: AlertStore, writer: LockWriter, policy: ReleasePolicy, now: datetime,
    sweep_id: str,
) -> tuple[list[Notice], list[Decision]]:
    """The sweeper's opt-in hands: staged, conditional, recorded releases of stale locks."""
    notices: list[Notice] = []
    decisions: list[Decision] = []
    for finding in findings:
        if finding.kind not in (Kind.STALE_LOCK, Kind.STALE_LOCKFILE):
            continue
        observed = observed_from_finding(finding)
        if observed is None:
            continue
        fp = finding_fingerprint(finding)
        record = store.get(fp)
        opened_at = record.opened_at if record is not None and record.status == OPEN else None
        sightings = store.sight(fp, observed.fingerprint, now) if opened_at is not None else 0
        decision = decide(policy, finding, observed, opened_at, sightings, now)
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
            "released_at": now.isoformat(), "sweep": sweep_id, "rule": decision.rule, "source": observed.source,
            "table": observed.table, "bucket": observed.bucket, "key": observed.key, "etag": observed.etag,
            "original_info": observed.raw,
        }
        if store.record_release(fp, entry, now):
            doc = finding.to_dict()
            notices.append(Notice("released", doc, fp, now, opened_at or now, "released by tfjanitor",
                                  extra={"rule": decision.rule, "sweep": sweep_id}))
    return notices, decisions


