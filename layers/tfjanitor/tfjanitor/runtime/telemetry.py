"""What a sweep tells CloudWatch: EMF metrics per lock table, one log line per finding.

Dimensions are a fixed, small set (service, Table): never a state key, user or
lock ID. Those go to the structured log lines instead.
"""

from __future__ import annotations

from collections import Counter

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from tfjanitor.alerts.delivery import Delivery
from tfjanitor.model import Kind, ScanResult, Severity
from tfjanitor.scan.stream import BatchSummary

TABLE_DIMENSION = "Table"

# Metric name -> unit, emitted once per lock table on every sweep (zeros included,
# so a dashboard line drops to 0 instead of vanishing when a problem is fixed).
TABLE_METRICS: dict[str, MetricUnit] = {
    "ActiveLocks": MetricUnit.Count,
    "StaleLocks": MetricUnit.Count,
    "OldestLockAgeSeconds": MetricUnit.Seconds,
    "DigestDrift": MetricUnit.Count,
    "OrphanDigests": MetricUnit.Count,
    "CrossRegionBuckets": MetricUnit.Count,
    "MalformedItems": MetricUnit.Count,
    "SweepErrors": MetricUnit.Count,
    "SweepsCompleted": MetricUnit.Count,
}
# Emitted once per sweep with the service dimension only (what the alarms watch).
SWEEP_METRICS: dict[str, MetricUnit] = {
    "StaleLocks": MetricUnit.Count,
    "DigestDrift": MetricUnit.Count,
    "OrphanDigests": MetricUnit.Count,
    "CrossRegionBuckets": MetricUnit.Count,
    "StaleLockfiles": MetricUnit.Count,
    "SweepErrors": MetricUnit.Count,
    "SweepsCompleted": MetricUnit.Count,
    "StatesChecked": MetricUnit.Count,
    "StateBytesDownloaded": MetricUnit.Bytes,
    "OpenFindings": MetricUnit.Count,
    "LocksAutoReleased": MetricUnit.Count,
}

_KIND_METRIC = {
    Kind.STALE_LOCK: "StaleLocks",
    Kind.DIGEST_DRIFT: "DigestDrift",
    Kind.ORPHAN_DIGEST: "OrphanDigests",
    Kind.CROSS_REGION_BUCKET: "CrossRegionBuckets",
    Kind.MALFORMED_ITEM: "MalformedItems",
}


def table_metric_values(result: ScanResult) -> dict[str, dict[str, float]]:
    """{table: {metric: value}} for every table the sweep was asked to read."""
    values: dict[str, dict[str, float]] = {}
    for table in result.tables:
        per = result.stats.tables.get(table)
        counts = Counter(_KIND_METRIC[f.kind] for f in result.findings if f.table == table and f.kind in _KIND_METRIC)
        errors = len(result.table_errors(table))
        values[table] = {
            "ActiveLocks": per.active_locks if per else 0,
            "OldestLockAgeSeconds": round(per.oldest_lock_age_seconds) if per else 0,
            **{name: counts.get(name, 0) for name in _KIND_METRIC.values()},
            "SweepErrors": errors,
            "SweepsCompleted": 0 if errors else 1,
        }
    return values


def publish_sweep(result: ScanResult, metrics: Metrics, logger: Logger) -> None:
    """Add this sweep's metrics (flushed by the handler's decorator) and log each finding."""
    for table, values in table_metric_values(result).items():
        per_table = EphemeralMetrics()
        per_table.add_dimension(TABLE_DIMENSION, table)
        for name, value in values.items():
            per_table.add_metric(name=name, unit=TABLE_METRICS[name], value=value)
        per_table.flush_metrics()
    kinds = Counter(f.kind for f in result.findings)
    sweep_values = {
        "StaleLocks": kinds[Kind.STALE_LOCK],
        "DigestDrift": kinds[Kind.DIGEST_DRIFT],
        "OrphanDigests": kinds[Kind.ORPHAN_DIGEST],
        "CrossRegionBuckets": kinds[Kind.CROSS_REGION_BUCKET],
        "StaleLockfiles": kinds[Kind.STALE_LOCKFILE],
        "SweepErrors": len(result.errors),
        "SweepsCompleted": 1 if result.complete else 0,
        "StatesChecked": result.stats.states,
        "StateBytesDownloaded": result.stats.bytes_downloaded,
        "OpenFindings": sum(1 for f in result.findings if f.severity.rank >= Severity.WARNING.rank),
        "LocksAutoReleased": sum(1 for r in result.releases if r.get("released")),
    }
    for name, value in sweep_values.items():
        metrics.add_metric(name=name, unit=SWEEP_METRICS[name], value=value)

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
        "sweep finished",
        extra={"complete": result.complete, "findings": len(result.findings), "stats": result.stats.to_dict()},
    )


# Emitted once per audit (the auditor function) with the service dimension only.
AUDIT_METRICS: dict[str, MetricUnit] = {
    "SplitBrainLocks": MetricUnit.Count,
    "LockTableProblems": MetricUnit.Count,
    "TablePostureFindings": MetricUnit.Count,
    "BucketPostureFindings": MetricUnit.Count,
    "LeftoverDigests": MetricUnit.Count,
    "AuditErrors": MetricUnit.Count,
    "AuditsCompleted": MetricUnit.Count,
}
_AUDIT_GROUPS = {
    "LockTableProblems": {Kind.LOCK_TABLE_SCHEMA, Kind.REPLICATED_LOCK_TABLE},
    "TablePostureFindings": {
        Kind.TABLE_PITR_DISABLED, Kind.TABLE_DELETION_PROTECTION_DISABLED, Kind.TABLE_STREAM_DISABLED,
    },
    "BucketPostureFindings": {
        Kind.BUCKET_VERSIONING_DISABLED, Kind.BUCKET_PUBLIC_ACCESS_OPEN, Kind.BUCKET_TLS_NOT_ENFORCED,
        Kind.LOCKFILE_VERSIONS_ACCUMULATING,
    },
}


def publish_audit(result: ScanResult, metrics: Metrics, logger: Logger) -> None:
    """Add this audit's metrics (flushed by the handler's decorator) and log each finding and error."""
    values = {
        "SplitBrainLocks": sum(1 for f in result.findings if f.kind is Kind.SPLIT_BRAIN_LOCK),
        **{name: sum(1 for f in result.findings if f.kind in kinds) for name, kinds in _AUDIT_GROUPS.items()},
        "LeftoverDigests": sum(
            len(f.details.get("leftover_digests", [])) for f in result.findings if f.kind is Kind.LOCKFILE_MIGRATION
        ),
        "AuditErrors": len(result.errors),
        "AuditsCompleted": 1 if result.complete else 0,
    }
    for name, value in values.items():
        metrics.add_metric(name=name, unit=AUDIT_METRICS[name], value=value)
    for finding in result.findings:
        log = logger.warning if finding.severity.rank else logger.info
        log(finding.message, extra={"finding": finding.to_dict()})
    for error in result.errors:
        logger.error(error.message, extra={"audit_error": error.to_dict()})
    logger.info(
        "audit finished",
        extra={"complete": result.complete, "findings": len(result.findings), "stats": result.stats.to_dict()},
    )


# Emitted by every function after it sends pending notices (service dimension only).
DELIVERY_METRICS: dict[str, MetricUnit] = {
    "AlertsSent": MetricUnit.Count,  # notices SNS accepted in this run
    "NotificationsFailed": MetricUnit.Count,  # notices this run could not send (still pending: retried)
}


def publish_delivery(delivery: Delivery, metrics: Metrics, logger: Logger) -> None:
    """Count what this run sent and could not send (zeros included), and log each failure."""
    metrics.add_metric(name="AlertsSent", unit=DELIVERY_METRICS["AlertsSent"], value=len(delivery.sent))
    metrics.add_metric(name="NotificationsFailed", unit=DELIVERY_METRICS["NotificationsFailed"],
                       value=len(delivery.failed))
    for failure in delivery.failed:
        logger.error("alert notice not delivered (it stays pending: the next run retries it)",
                     extra={"notice_error": failure})


OPERATION_DIMENSION = "OperationClass"
OPERATION_CLASSES = ("apply", "plan", "other")
STREAM_CLASS_METRICS: dict[str, MetricUnit] = {
    "LocksAcquired": MetricUnit.Count,
    "LocksReleased": MetricUnit.Count,
    "LockHoldSeconds": MetricUnit.Seconds,
}
STREAM_METRICS: dict[str, MetricUnit] = {
    "DriftDetected": MetricUnit.Count,
    "MalformedRecords": MetricUnit.Count,
    "ForeignRecords": MetricUnit.Count,
}


def publish_stream_batch(summary: BatchSummary, metrics: Metrics) -> None:
    """Lock activity by operation class (a fixed set of three), plus batch-wide counts."""
    for klass in OPERATION_CLASSES:
        acquired, released = summary.acquired.get(klass, 0), summary.released.get(klass, 0)
        holds = summary.hold_seconds.get(klass, [])
        if not (acquired or released or holds):
            continue
        per_class = EphemeralMetrics()
        per_class.add_dimension(OPERATION_DIMENSION, klass)
        per_class.add_metric(name="LocksAcquired", unit=STREAM_CLASS_METRICS["LocksAcquired"], value=acquired)
        per_class.add_metric(name="LocksReleased", unit=STREAM_CLASS_METRICS["LocksReleased"], value=released)
        for seconds in holds:
            per_class.add_metric(name="LockHoldSeconds", unit=STREAM_CLASS_METRICS["LockHoldSeconds"], value=seconds)
        per_class.flush_metrics()
    metrics.add_metric(name="DriftDetected", unit=STREAM_METRICS["DriftDetected"], value=summary.drift_detected)
    metrics.add_metric(name="MalformedRecords", unit=STREAM_METRICS["MalformedRecords"], value=summary.malformed)
    metrics.add_metric(name="ForeignRecords", unit=STREAM_METRICS["ForeignRecords"], value=summary.foreign)
