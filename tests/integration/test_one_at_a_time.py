"""As deployed (issue 19.1): overlapping runs take turns through a lease, not reserved concurrency; discovery that
cannot describe one table leaves only that table unknown."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.conftest import BUCKET, REGION, TABLE, client, create_lock_table
from tests.integration.conftest import session
from tests.support.builders import lock_info, put_lock
from tests.support.faults import deny
from tfjanitor.aws.session import AwsSession
from tfjanitor.durations import Deadline
from tfjanitor.local.emulator import MotoServer
from tfjanitor.runtime.lease import Lease
from tfjanitor.runtime.settings import AuditorSettings, SweeperSettings
from tfjanitor.runtime.wiring import audit_and_alert, sweep_and_alert
from tfjanitor.scan.fleet import FleetRequest, scan_region


def test_a_sweep_that_finds_the_last_one_still_running_is_skipped(backend: MotoServer, alerting) -> None:
    aws, now = AwsSession(session(), endpoint_url=backend.url), datetime.now(timezone.utc)
    put_lock(
        client("dynamodb", backend),
        BUCKET,
        "ci/terraform.tfstate",
        lock_info(f"{BUCKET}/ci/terraform.tfstate", age=timedelta(hours=3)),
    )
    running = Lease.of(aws, REGION, alerting["findings_table"], "sweeper")
    assert running.take(now, now + timedelta(minutes=4))  # a sweep in progress, until its timeout

    result, delivery = sweep_and_alert(SweeperSettings(**alerting), aws, now + timedelta(minutes=2))
    assert result.skipped and result.findings == [] and delivery.sent == []
    assert result.stats.api_calls == {}  # it read nothing of Terraform's

    running.give_back()  # the running sweep ends: the next one runs
    result, delivery = sweep_and_alert(SweeperSettings(**alerting), aws, now + timedelta(minutes=3))
    assert not result.skipped and [f.kind.value for f in result.findings] == ["stale_lock"] and delivery.sent


def test_a_lease_whose_run_died_runs_out_with_that_runs_timeout(backend: MotoServer, alerting) -> None:
    aws, now = AwsSession(session(), endpoint_url=backend.url), datetime.now(timezone.utc)
    dead = Lease.of(aws, REGION, alerting["findings_table"], "auditor")
    assert dead.take(now, now + timedelta(minutes=4))  # killed: never given back
    settings = AuditorSettings(**alerting)
    assert audit_and_alert(settings, aws, now + timedelta(minutes=1))[0].skipped
    later = now + timedelta(minutes=5)
    result, _ = audit_and_alert(settings, aws, later, deadline=Deadline(lambda: 200.0, "a test budget", 30))
    assert not result.skipped
    # The sweeper's lease is its own: an audit in progress never skips a sweep.
    assert not sweep_and_alert(SweeperSettings(**alerting), aws, later)[0].skipped


def test_the_sweeper_function_reports_a_skipped_run_and_its_metric(backend: MotoServer, alerting, monkeypatch, capsys) -> None:
    import json

    from tests.support.lambdas import load_function

    aws, now = AwsSession(session(), endpoint_url=backend.url), datetime.now(timezone.utc)
    assert Lease.of(aws, REGION, alerting["findings_table"], "sweeper").take(now, now + timedelta(minutes=4))
    for name, value in {
        "AWS_REGION": REGION,
        "LOCK_TABLES": TABLE,
        "FINDINGS_TABLE": alerting["findings_table"],
        "ALERT_TOPIC_ARN": alerting["alert_topic_arns"][0],
        "POWERTOOLS_METRICS_NAMESPACE": "TfJanitor",
        "POWERTOOLS_SERVICE_NAME": "tfjanitor",
    }.items():
        monkeypatch.setenv(name, value)
    from tfjanitor.runtime.settings import sweeper_settings

    sweeper_settings.cache_clear()

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "sweeper", 128, "req-1"
        invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:sweeper"

        def get_remaining_time_in_millis(self) -> int:
            return 200_000

    response = load_function("sweeper").lambda_handler({}, Context())
    assert response["skipped"] is True and response["complete"] is False
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(doc.get("RunsSkipped") == [1.0] and doc.get("SweepsCompleted") == [0.0] for doc in emf), emf
    sweeper_settings.cache_clear()


def test_discovery_that_cannot_describe_one_table_still_sweeps_the_named_ones(backend: MotoServer) -> None:
    create_lock_table(backend, "found-by-schema")
    create_lock_table(backend, "secret-table")
    ddb = client("dynamodb", backend)
    put_lock(ddb, BUCKET, "ci/terraform.tfstate", lock_info(f"{BUCKET}/ci/terraform.tfstate", age=timedelta(hours=3)))
    put_lock(
        ddb,
        BUCKET,
        "app/terraform.tfstate",
        lock_info(f"{BUCKET}/app/terraform.tfstate", age=timedelta(hours=3)),
        table="found-by-schema",
    )
    aws = AwsSession(session(), endpoint_url=backend.url, max_attempts=1)
    aws.dynamodb(REGION).meta.events.register(
        "before-send.dynamodb.DescribeTable",
        deny("AccessDeniedException", when=lambda request: b"secret-table" in (request.body or b"")),
    )
    result = scan_region(aws, REGION, FleetRequest(regions=[REGION], tables=[TABLE], discover_tables=True, audit=False))
    assert sorted((f.kind.value, f.table) for f in result.findings) == [("stale_lock", "found-by-schema"), ("stale_lock", TABLE)]
    assert [(e.check, e.target, e.code) for e in result.errors] == [("discover_tables", "secret-table", "AccessDeniedException")]
    assert "whether it is a lock table is unknown" in result.errors[0].message
