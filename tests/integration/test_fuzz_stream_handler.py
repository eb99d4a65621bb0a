"""Property test of the stream monitor Lambda as deployed (functions/stream_monitor/app.py, a fake Lambda
context): whatever a batch holds, the handler returns, fails no record that is merely malformed, and counts
every malformed record in its MalformedRecords metric."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REGION
from tests.support.hostile import stream_records
from tests.support.lambdas import load_function
from tfjanitor.local.runner import FakeContext
from tfjanitor.scan.stream import MALFORMED, event_from_record


@pytest.fixture
def handler(backend, monkeypatch):
    for name, value in {
        "AWS_REGION": REGION,
        "POWERTOOLS_SERVICE_NAME": "tfjanitor",
        "POWERTOOLS_METRICS_NAMESPACE": "TfJanitor",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }.items():
        monkeypatch.setenv(name, value)
    from tfjanitor.runtime import settings as function_settings

    function_settings.stream_settings.cache_clear()
    yield load_function("stream_monitor").lambda_handler
    function_settings.stream_settings.cache_clear()


@st.composite
def batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    return [draw(stream_records(sequence=str(100 + i))) for i in range(draw(st.integers(1, 6)))]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches())
def test_the_stream_handler_never_raises_and_counts_malformed_records(handler, batch) -> None:
    malformed = sum(event_from_record(DynamoDBRecord(r)).kind == MALFORMED for r in batch)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        response = handler({"Records": batch}, FakeContext("tfjanitor-StreamMonitorFunction", REGION))
    # Terraform's records are checked against the emulator's real lock table and bucket; nothing here can
    # fail a check, so no record is handed back for a retry.
    assert response == {"batchItemFailures": []}
    blobs = [json.loads(line) for line in out.getvalue().splitlines() if '"_aws"' in line]
    counted = [b["MalformedRecords"] for b in blobs if "MalformedRecords" in b]
    assert counted == [float(malformed)] or counted == [[float(malformed)]]
