"""Scheduled sweeper: read the lock tables and state buckets, publish metrics, log findings."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from tfjanitor.adapters import AwsSession
from tfjanitor.engine import Sweeper, SweepRequest
from tfjanitor.observability import logger, metrics, tracer
from tfjanitor.settings import sweeper_settings
from tfjanitor.telemetry import publish_sweep


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = sweeper_settings()
    request = SweepRequest(
        region=settings.region,
        tables=settings.lock_tables,
        buckets=settings.extra_buckets,
        policy=settings.policy,
    )
    result = Sweeper(AwsSession()).sweep(request)
    publish_sweep(result, metrics, logger)
    return {
        "complete": result.complete,
        "findings": len(result.findings),
        "errors": len(result.errors),
        "exit_code": result.exit_code,
    }
