"""Scheduled sweeper: read the lock tables and state buckets, alert, publish metrics, log findings."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from tfjanitor.durations import Deadline
from tfjanitor.runtime.execution import aws_session
from tfjanitor.runtime.observability import logger, metrics
from tfjanitor.runtime.settings import sweeper_settings
from tfjanitor.runtime.telemetry import publish_delivery, publish_sweep
from tfjanitor.runtime.wiring import sweep_and_alert


@logger.inject_lambda_context
@metrics.log_metrics  # no cold-start metric: no dashboard or alarm reads it, and each costs money
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deadline = Deadline.of_lambda(context)
    result, delivery = sweep_and_alert(sweeper_settings(), aws_session(deadline), sweep_id=context.aws_request_id, deadline=deadline)
    publish_sweep(result, metrics, logger)
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
