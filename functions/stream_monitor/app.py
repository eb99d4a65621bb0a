"""Lock-table stream monitor: lock activity metrics, and an immediate drift check on every digest write."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from tfjanitor.durations import Deadline, in_time
from tfjanitor.runtime.execution import aws_session
from tfjanitor.runtime.observability import logger, metrics
from tfjanitor.runtime.settings import stream_settings
from tfjanitor.runtime.telemetry import publish_delivery, publish_stream_batch
from tfjanitor.runtime.wiring import AFTER_DELIVERY, deliver_notices, stream_monitor
from tfjanitor.scan.stream import StreamMonitor, event_from_record

# A batch whose every record failed (e.g. out of time) is reported as failures like any other: Lambda
# redelivers from the first, and this invocation still publishes its metrics.
processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context
@metrics.log_metrics  # no cold-start metric: no dashboard or alarm reads it, and each costs money
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # The batch stops 10 s before what delivering its notices keeps (a call in flight, the metrics).
    deadline = Deadline.of_lambda(context, reserve=timedelta(seconds=AFTER_DELIVERY + 10))
    settings, aws = stream_settings(), aws_session(deadline)
    monitor: StreamMonitor = stream_monitor(settings, aws, log=logger)

    def record_handler(record: DynamoDBRecord) -> None:
        in_time(deadline)  # out of time: this record is a batch item failure, redelivered, not lost
        monitor.handle(event_from_record(record))

    try:
        return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    finally:
        publish_stream_batch(monitor.summary, metrics)
        # This batch's notices, and any an earlier run could not send (a failure stays pending).
        publish_delivery(deliver_notices(settings, aws, deadline), metrics, logger)
