"""What each run tells CloudWatch: EMF metrics, and one log line per finding.

Every metric costs money in every region a user deploys to ($0.30 a month for each name and
dimension set, prorated by the hours it is published), so each one is declared in
:data:`METRIC_PLAN` with when it is published:

- ``always``: every run, zeros included. Only the two that carry the heartbeat (``SweepsCompleted``:
  missing data breaches its alarm) and the oldest lock's age.
- ``nonzero``: only while there is something to count (a problem, a failure, an alert sent). Alarms
  on them treat missing data as not breaching, and a missing point on the dashboard means zero. The
  metrics that count finding kinds are named in each kind's entry of ``tfjanitor.catalog``.
- ``activity``: per lock activity (the stream monitor), one series per operation class.
- ``daily``: once per audit.

Dimensions are a fixed small set (``service``, and ``OperationClass`` with three values): never a
table, state key, user or lock ID, whose values multiply with the fleet. Those go to the log lines.
``make cost`` reads this plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from tfjanitor import catalog
from tfjanitor.alerts.delivery import Delivery
from tfjanitor.catalog import Check
from tfjanitor.model import ScanResult, Severity
from tfjanitor.scan.stream import BatchSummary

OPERATION_DIMENSION = "OperationClass"
OPERATION_CLASSES = ("apply", "plan", "other")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    unit: MetricUnit
    when: str  # always | nonzero | activity | daily
    series: int = 1  # dimension sets it is published with
    why: str = ""


def _counting(check: Check) -> tuple[MetricSpec, ...]:
    """The metrics that count ``check``'s finding kinds: the catalog says which counts which."""
    return tuple(MetricSpec(m.name, MetricUnit.Count, "nonzero", why=m.why) for m in catalog.metrics(check))


METRIC_PLAN: tuple[MetricSpec, ...] = (
    MetricSpec("SweepsCompleted", MetricUnit.Count, "always", why="heartbeat: 1 per complete sweep, 0 otherwise"),
    MetricSpec("OldestLockAgeSeconds", MetricUnit.Seconds, "always", why="how long the oldest held lock has been held"),
    *_counting(Check.SWEEP),  # StaleLocks, StaleLockfiles, DigestDrift, ... InterruptedWrites
    MetricSpec("UnverifiedStates", MetricUnit.Count, "nonzero"),
    MetricSpec("SweepErrors", MetricUnit.Count, "nonzero"),
    MetricSpec("OpenFindings", MetricUnit.Count, "nonzero"),
    MetricSpec("LocksAutoReleased", MetricUnit.Count, "nonzero"),
    MetricSpec(
        "RunsSkipped",
        MetricUnit.Count,
        "nonzero",
        why="a run found the previous one still running (its lease) and stopped: runs longer than their interval",
    ),
    MetricSpec("AlertsSent", MetricUnit.Count, "nonzero"),
    MetricSpec("NotificationsFailed", MetricUnit.Count, "nonzero"),
    MetricSpec(
        "NotificationsGivenUp",
        MetricUnit.Count,
        "nonzero",
        why="destinations that refused a notice for good, its compact form too: that notice never arrives "
        "there, so it alarms at once (NotificationsFailed heals by itself and alarms on two intervals); "
        "published only in the hour it happens, so it costs cents",
    ),
    MetricSpec(
        "LockHoldSeconds",
        MetricUnit.Seconds,
        "activity",
        series=len(OPERATION_CLASSES),
        why="hold time of each released lock, per operation class (percentiles on the dashboard)",
    ),
    MetricSpec("DriftDetected", MetricUnit.Count, "nonzero"),
    MetricSpec("MalformedRecords", MetricUnit.Count, "nonzero"),
    MetricSpec("ForeignRecords", MetricUnit.Count, "nonzero"),
    MetricSpec("AuditsCompleted", MetricUnit.Count, "daily"),
    MetricSpec("AuditErrors", MetricUnit.Count, "nonzero"),
    *_counting(Check.AUDIT),  # SplitBrainLocks, LockTableProblems, TablePostureFindings, ... LeftoverDigests
)
_PLAN = {m.name: m for m in METRIC_PLAN}


def _publish(metrics: Metrics, values: Mapping[str, float]) -> None:
    """Add each value as its plan says: problem and failure counts only while non-zero."""
    for name, value in values.items():
        spec = _PLAN[name]
        if value or spec.when in ("always", "daily"):
            metrics.add_metric(name=name, unit=spec.unit, value=value)


def kind_counts(result: ScanResult, check: Check) -> dict[str, int]:
    """The value of each metric that counts ``check``'s kinds in ``result`` (zeros included): one per finding,
    or one per entry of the details list its catalog entry names."""
    values = {m.name: 0 for m in catalog.metrics(check)}
    for finding in result.findings:
        about = catalog.entry(finding.kind)
        if about is None or about.check is not check or about.metric is None:
            continue
        metric = about.metric
        values[metric.name] += len(finding.details.get(metric.per) or []) if metric.per else 1
    return values


def publish_sweep(result: ScanResult, metrics: Metrics, logger: Logger) -> None:
    """Add this sweep's metrics (flushed by the handler's decorator) and log each finding; the per-table
    figures go to the "sweep finished" log line (stats.tables), not to metrics."""
    if result.skipped:
        _publish(metrics, {"SweepsCompleted": 0, "RunsSkipped": 1})
        logger.warning("sweep skipped", extra={"skipped": result.skipped})
        return
    oldest = max((s.oldest_lock_age_seconds for s in result.stats.tables.values()), default=0.0)
    _publish(
        metrics,
        {
            "SweepsCompleted": 1 if result.complete else 0,
            "OldestLockAgeSeconds": round(oldest),
            **kind_counts(result, Check.SWEEP),
            "UnverifiedStates": len(result.unverified),
            "SweepErrors": len(result.errors),
            "OpenFindings": sum(1 for f in result.findings if f.severity.rank >= Severity.WARNING.rank),
            "LocksAutoReleased": sum(1 for r in result.releases if r.get("released")),
        },
    )

    for finding in result.findings:
        doc = finding.to_dict()
        log = logger.warning if finding.severity.rank else logger.info
        log(finding.message, extra={"finding": doc})
    for decision in result.releases:
        if decision.get("release"):
            logger.warning("auto-release of a stale lock", extra={"auto_release": decision})
        else:
            logger.info("stale lock kept", extra={"auto_release": decision})
    for error in result.errors:
        logger.error(error.message, extra={"sweep_error": error.to_dict()})
    logger.info(
        "sweep finished", extra={"complete": result.complete, "findings": len(result.findings), "stats": result.stats.to_dict()}
    )


def publish_audit(result: ScanResult, metrics: Metrics, logger: Logger) -> None:
    """Add this audit's metrics (flushed by the handler's decorator) and log each finding and error."""
    if result.skipped:
        _publish(metrics, {"RunsSkipped": 1})
        logger.warning("audit skipped", extra={"skipped": result.skipped})
        return
    values = {**kind_counts(result, Check.AUDIT), "AuditErrors": len(result.errors), "AuditsCompleted": 1 if result.complete else 0}
    _publish(metrics, values)
    for finding in result.findings:
        log = logger.warning if finding.severity.rank else logger.info
        log(finding.message, extra={"finding": finding.to_dict()})
    for error in result.errors:
        logger.error(error.message, extra={"audit_error": error.to_dict()})
    logger.info(
        "audit finished", extra={"complete": result.complete, "findings": len(result.findings), "stats": result.stats.to_dict()}
    )


def publish_delivery(delivery: Delivery, metrics: Metrics, logger: Logger) -> None:
    """Count what this run sent, could not send and gave up (only when there is any), and log each."""
    _publish(
        metrics,
        {"AlertsSent": len(delivery.sent), "NotificationsFailed": len(delivery.failed), "NotificationsGivenUp": len(delivery.gave_up)},
    )
    for failure in delivery.failed:
        logger.error("alert notice not delivered (it stays pending: the next run retries it)", extra={"notice_error": failure})
    for gave_up in delivery.gave_up:
        logger.error(
            "alert notice given up on a destination: it refused the notice and its compact form, for what "
            "they hold (never sent there again)",
            extra={"notice_given_up": gave_up.to_dict()},
        )
    if delivery.waiting or delivery.left:
        logger.info(
            "alert notices left pending for the next run",
            extra={"waiting_for_earlier": delivery.waiting, "out_of_time": delivery.left},
        )


def publish_stream_batch(summary: BatchSummary, metrics: Metrics) -> None:
    """Hold times by operation class (a fixed set of three; their count is the number of releases),
    plus batch-wide counts while non-zero."""
    for klass in OPERATION_CLASSES:
        holds = summary.hold_seconds.get(klass, [])
        if not holds:
            continue
        per_class = EphemeralMetrics()
        per_class.add_dimension(OPERATION_DIMENSION, klass)
        for seconds in holds:
            per_class.add_metric(name="LockHoldSeconds", unit=_PLAN["LockHoldSeconds"].unit, value=seconds)
        per_class.flush_metrics()
    _publish(
        metrics, {"DriftDetected": summary.drift_detected, "MalformedRecords": summary.malformed, "ForeignRecords": summary.foreign}
    )
