"""Scheduled auditor (daily by default): region, topology and backend posture; alerts and metrics.

Read-only and cheap: one call per table or bucket setting, one Scan per peer region, one version
listing per versioned bucket. It never reads a state object (the sweeper does that, every few minutes).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from tfjanitor.durations import Deadline
from tfjanitor.runtime.execution import aws_session
from tfjanitor.runtime.observability import logger, metrics
from tfjanitor.runtime.settings import auditor_settings
from tfjanitor.runtime.telemetry import publish_audit, publish_delivery
from tfjanitor.runtime.wiring import audit_and_alert


@logger.inject_lambda_context
@metrics.log_metrics  # no cold-start metric: no dashboard or alarm reads it, and each costs money
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deadline = Deadline.of_lambda(context)
    result, delivery = audit_and_alert(auditor_settings(), aws_session(deadline), deadline=deadline)
    publish_audit(result, metrics, logger)
    publish_delivery(delivery, metrics, logger)
    return {
        "complete": result.complete and not result.skipped,
        "skipped": bool(result.skipped),
        "findings": len(result.findings),
        "errors": len(result.errors),
        "alerts_sent": len(delivery.sent),
        "notifications_failed": len(delivery.failed),
        "exit_code": result.exit_code,
    }
