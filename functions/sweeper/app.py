"""Scheduled sweeper: read the lock tables and state buckets, alert, publish metrics, log findings."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from tfjanitor.adapters import AwsSession
from tfjanitor.observability import logger, metrics, tracer
from tfjanitor.service import sweep_and_alert
from tfjanitor.settings import sweeper_settings
from tfjanitor.telemetry import publish_sweep


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result, notices = sweep_and_alert(sweeper_settings(), AwsSession(), sweep_id=context.aws_request_id)
    publish_sweep(result, metrics, logger, alerts_sent=len(notices))
    return {
        "complete": result.complete,
        "findings": len(result.findings),
        "errors": len(result.errors),
        "alerts_sent": len(notices),
        "exit_code": result.exit_code,
    }
