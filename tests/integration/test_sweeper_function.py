"""The sweeper Lambda handler, run in-process against moto server; metrics read from its EMF output."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import BUCKET, REGION, TABLE
from tests.support.builders import lock_info, put_lock, put_state, state_body
from tests.support.lambdas import load_function
from tfjanitor.local.runner import FakeContext

ROOT = Path(__file__).resolve().parents[2]
EVENT = json.loads((ROOT / "events" / "schedule.json").read_text())


def context() -> FakeContext:
    """A Lambda context, as the local runner builds it."""
    return FakeContext("tfjanitor-SweeperFunction", REGION)


@pytest.fixture
def handler(backend, monkeypatch):
    """Load functions/sweeper/app.py the way Lambda does, with the template's environment.

    EMF metrics are read from captured stdout; log records through caplog.
    """
    env = {
        "AWS_REGION": REGION,
        "LOCK_TABLES": f"{TABLE},missing-table",
        "EXTRA_BUCKETS": "",
        "STALE_AFTER": "1h",
        "READ_ONLY_STALE_AFTER": "15m",
        "POWERTOOLS_SERVICE_NAME": "tfjanitor",
        "POWERTOOLS_METRICS_NAMESPACE": "TfJanitor",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from tfjanitor.runtime import settings

    settings.sweeper_settings.cache_clear()
    module = load_function("sweeper")
    # Powertools reuses the named logger across reloads: another test (the local runner) may have
    # left it at ERROR.
    module.logger.setLevel("INFO")
    yield module.lambda_handler
    settings.sweeper_settings.cache_clear()


def emf_blobs(stdout: str) -> list[dict]:
    blobs = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


def test_scheduled_sweep_emits_per_table_metrics_and_logs_findings(handler, backend, capsys, caplog) -> None:
    from tests.conftest import client

    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_state(s3, ddb, BUCKET, "dev/terraform.tfstate", state_body(1, secret="never-log-me"))
    put_state(s3, ddb, BUCKET, "prod/terraform.tfstate", state_body(2))
    s3.put_object(Bucket=BUCKET, Key="dev/terraform.tfstate", Body=state_body(3, secret="never-log-me"))
    put_lock(ddb, BUCKET, "stuck/terraform.tfstate", lock_info("p", age=timedelta(hours=5)))  # no state written since

    response = handler(EVENT, context())
    out = capsys.readouterr().out

    assert response == {
        "complete": False,
        "findings": 2,
        "errors": 1,
        "alerts_sent": 0,
        "notifications_failed": 0,
        "exit_code": 2,
        "skipped": False,
    }
    blobs = emf_blobs(out)
    assert not [b for b in blobs if "Table" in b]  # no dimension that grows with the fleet: tables go to the logs
    [sweep] = [b for b in blobs if "SweepsCompleted" in b]
    assert sweep["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "TfJanitor"
    assert sweep["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert sweep["SweepsCompleted"] == [0.0] and sweep["SweepErrors"] == [1.0]  # incomplete: the heartbeat sees it
    assert sweep["StaleLocks"] == [1.0] and sweep["DigestDrift"] == [1.0]
    assert sweep["OldestLockAgeSeconds"][0] >= 5 * 3600 - 5
    assert "OrphanDigests" not in sweep and "CrossRegionBuckets" not in sweep  # zeros are not published (cost)
    finished = next(r for r in caplog.records if r.getMessage() == "sweep finished")
    assert finished.stats["tables"][TABLE]["active_locks"] == 1  # the per-table figures, in the log line

    # Structured log records (Powertools puts `extra` keys at the top of each JSON line).
    findings = [r.finding for r in caplog.records if hasattr(r, "finding")]
    assert sorted(f["kind"] for f in findings) == ["digest_drift", "stale_lock"]
    assert [r.sweep_error["target"] for r in caplog.records if hasattr(r, "sweep_error")] == ["missing-table"]
    logged = out + "".join(json.dumps(vars(r), default=str) for r in caplog.records)
    assert "never-log-me" not in logged  # state contents never reach the logs


def test_bad_environment_fails_loudly_naming_the_variable(handler, monkeypatch) -> None:
    from tfjanitor.runtime import settings

    monkeypatch.setenv("STALE_AFTER", "an hour")
    settings.sweeper_settings.cache_clear()
    with pytest.raises(settings.SettingsError, match="STALE_AFTER"):
        handler(EVENT, context())


def test_a_sweep_near_the_lambda_timeout_stops_in_time_reports_incomplete_and_publishes(handler, backend, capsys) -> None:
    """Issue 9.5: with less time left than the reserve for alerts and metrics, nothing is read, and the
    result still says so (complete: false) and the metrics still go out."""
    from tests.conftest import client

    put_state(client("s3", backend), client("dynamodb", backend), BUCKET, "dev/terraform.tfstate", state_body(1))
    response = handler(EVENT, FakeContext("tfjanitor-SweeperFunction", REGION, timeout=20))  # 20 s < 30 s reserve
    assert response["complete"] is False and response["exit_code"] == 2
    names = {m["Name"] for blob in emf_blobs(capsys.readouterr().out) for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert "SweepErrors" in names and "SweepsCompleted" in names


def test_stream_records_beyond_the_time_budget_are_batch_failures_not_lost(backend, monkeypatch) -> None:
    """Issue 9.5: the stream monitor reports records it cannot reach in time as batch item failures."""
    for name, value in {
        "AWS_REGION": REGION,
        "POWERTOOLS_SERVICE_NAME": "tfjanitor",
        "POWERTOOLS_METRICS_NAMESPACE": "TfJanitor",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    from tfjanitor.runtime import settings

    settings.stream_settings.cache_clear()
    module = load_function("stream_monitor")
    arn = f"arn:aws:dynamodb:{REGION}:123456789012:table/{TABLE}/stream/2026-11-25T00:00:00.000"
    records = [
        {
            "eventID": str(i),
            "eventName": "INSERT",
            "eventSource": "aws:dynamodb",
            "eventSourceARN": arn,
            "dynamodb": {
                "SequenceNumber": f"{100 + i}",
                "ApproximateCreationDateTime": 1764000000 + i,
                "NewImage": {"LockID": {"S": f"{BUCKET}/s{i}.tfstate"}, "Info": {"S": lock_info(f"{BUCKET}/s{i}.tfstate")}},
            },
        }
        for i in range(3)
    ]
    plenty = module.lambda_handler({"Records": records}, FakeContext("stream", REGION, timeout=60))
    assert plenty == {"batchItemFailures": []}
    late = module.lambda_handler({"Records": records}, FakeContext("stream", REGION, timeout=5))  # < 10 s reserve
    assert [f["itemIdentifier"] for f in late["batchItemFailures"]] == ["100", "101", "102"]
    settings.stream_settings.cache_clear()


def test_a_notice_sns_refused_is_counted_and_sent_by_the_next_run(handler, backend, alerting, monkeypatch, capsys) -> None:
    from tests.conftest import client
    from tests.integration.conftest import captured
    from tfjanitor.runtime import settings

    topic = alerting["alert_topic_arns"][0].replace("tfjanitor-alerts", "tfjanitor-alerts-not-yet")  # Publish: NotFound
    for name, value in {"LOCK_TABLES": TABLE, "FINDINGS_TABLE": alerting["findings_table"], "ALERT_TOPIC_ARN": topic}.items():
        monkeypatch.setenv(name, value)
    settings.sweeper_settings.cache_clear()
    put_lock(client("dynamodb", backend), BUCKET, "ci/terraform.tfstate", lock_info("ci", age=timedelta(hours=2)))

    first = handler(EVENT, context())
    [sweep] = [b for b in emf_blobs(capsys.readouterr().out) if "NotificationsFailed" in b]
    assert (first["alerts_sent"], first["notifications_failed"]) == (0, 1)
    assert sweep["NotificationsFailed"] == [1.0] and "AlertsSent" not in sweep  # what the alarm watches; no zeros

    sns, sqs = client("sns", backend), client("sqs", backend)
    assert sns.create_topic(Name="tfjanitor-alerts-not-yet")["TopicArn"] == topic
    queue = sqs.get_queue_url(QueueName="tfjanitor-captured-alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    second = handler(EVENT, context())  # the same sweep finds nothing new: it sends what is pending
    [sweep] = [b for b in emf_blobs(capsys.readouterr().out) if "AlertsSent" in b]
    assert (second["alerts_sent"], second["notifications_failed"]) == (1, 0)
    assert sweep["AlertsSent"] == [1.0] and "NotificationsFailed" not in sweep
    [email] = captured(backend)
    assert email["subject"].startswith("[tfjanitor] WARNING Stale lock: tfstate-demo/ci/terraform.tfstate")
    assert handler(EVENT, context())["alerts_sent"] == 0 and captured(backend) == []  # sent once
