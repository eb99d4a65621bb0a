"""The audit against moto server over HTTP, in two regions: CLI, adapters, auditor function, alerts.

Items are written in Terraform's exact formats (tests/support/builders.py); the e2e level has the
same stories made by the real terraform binary. Global tables are not in moto: their DescribeTable
is pinned with a botocore Stubber (the response shape AWS documents for MREC and MRSC tables).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from tests.conftest import BUCKET, REGION, TABLE, client, create_bucket, create_lock_table
from tests.integration.conftest import session
from tests.support.builders import lock_info, md5, put_lock, put_state, state_body
from tests.support.faults import deny
from tests.support.lambdas import load_function
from tests.support.posture import enforce_tls, harden_bucket, harden_table
from tfjanitor.alerts.lifecycle import covered_scopes
from tfjanitor.aws.session import AwsSession
from tfjanitor.local.runner import FakeContext
from tfjanitor.model import Kind, ScanResult, Severity
from tfjanitor.runtime.settings import AuditorSettings, SweeperSettings
from tfjanitor.runtime.wiring import audit_and_alert, sweep_and_alert
from tfjanitor.scan.auditor import Auditor, AuditRequest
from tfjanitor.scan.sweeper import Sweeper, SweepRequest

ROOT = Path(__file__).resolve().parents[2]
PEER = "us-east-1"
KEY = "dev/terraform.tfstate"


def aws_for(server) -> AwsSession:
    return AwsSession(session(), endpoint_url=server.url)


def scan_and_audit(server, tables=None, buckets=None, peers=(), aws=None) -> ScanResult:
    """What `tfjanitor scan` does, in-process."""
    aws = aws or aws_for(server)
    tables = tables or [TABLE]
    result = Sweeper(aws).sweep(SweepRequest(REGION, tables, buckets or [], for_audit=True))
    return Auditor(aws).audit(AuditRequest(REGION, tables, list(peers)), result)


def kinds(result: ScanResult) -> list[str]:
    return sorted(f.kind.value for f in result.findings)


def cli(server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | server.env() | {"AWS_REGION": REGION}
    return subprocess.run(
        [sys.executable, "-m", "tfjanitor", "scan", "--format", "json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


# -- split brain, two regions ------------------------------------------------------------------------


def test_split_brain_is_found_only_with_the_peer_region_and_says_who_holds_what(backend) -> None:
    create_lock_table(backend, TABLE, PEER)
    s3, seoul, virginia = client("s3", backend), client("dynamodb", backend), client("dynamodb", backend, PEER)
    old, new = state_body(1), state_body(2)
    put_state(s3, seoul, BUCKET, KEY, old)  # the Seoul configuration's apply ...
    put_state(s3, virginia, BUCKET, KEY, new)  # ... then the Virginia one's: its digest matches the object
    put_lock(virginia, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", who="dev@laptop", lock_id="v-lock"))
    put_state(s3, seoul, BUCKET, "other/terraform.tfstate", state_body(3))  # Seoul only: not split
    # (No TLS-only policy here: the drift below must be hashed, and moto would refuse the GetObject.)

    alone = cli(backend, "--table", TABLE)
    assert "split_brain_lock" not in alone.stdout  # one region cannot see it

    proc = cli(backend, "--table", TABLE, "--peer-region", PEER, "--peer-region", PEER)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["complete"] is True, proc.stdout
    split = [f for f in doc["findings"] if f["kind"] == "split_brain_lock"]
    assert len(split) == 1
    [finding] = split
    assert finding["severity"] == "critical" and (finding["bucket"], finding["key"]) == (BUCKET, KEY)
    regions = finding["details"]["regions"]
    assert regions[REGION] == {"lock": None, "digest": md5(old), "digest_matches_object": False}
    assert regions[PEER]["digest"] == md5(new) and regions[PEER]["digest_matches_object"] is True
    assert regions[PEER]["lock"]["who"] == "dev@laptop" and regions[PEER]["lock"]["id"] == "v-lock"
    assert finding["details"]["regions_to_fix"] == [PEER] and finding["details"]["keep_region"] == REGION
    # The Seoul table's digest is stale: the sweep also reports the drift the next Seoul run will hit.
    assert sorted(f["kind"] for f in doc["findings"]) == ["bucket_tls_not_enforced", "digest_drift", "split_brain_lock"]
    # One Scan per region and table; the peer region counted like the rest.
    assert doc["stats"]["api_calls"]["Scan"] == 2


def test_no_table_in_the_peer_region_is_no_split_and_no_error(backend) -> None:
    put_state(client("s3", backend), client("dynamodb", backend), BUCKET, KEY, state_body())
    result = scan_and_audit(backend, peers=[PEER])
    assert result.complete and kinds(result) == ["bucket_tls_not_enforced"]


def test_unreadable_peer_table_is_an_incomplete_check_not_a_pass(backend) -> None:
    create_lock_table(backend, TABLE, PEER)
    put_state(client("s3", backend), client("dynamodb", backend), BUCKET, KEY, state_body())
    aws = aws_for(backend)
    aws.dynamodb(PEER).meta.events.register("before-send.dynamodb.Scan", deny("AccessDeniedException"))
    result = scan_and_audit(backend, peers=[PEER], aws=aws)
    assert not result.complete and result.exit_code == 2
    [error] = result.errors
    assert (error.check, error.target, error.code) == ("scan_peer_table", TABLE, "AccessDeniedException")
    assert PEER in error.message
    assert f"table:{REGION}:{TABLE}" not in covered_scopes(result)  # its split-brain alerts stay as they are


# -- posture ----------------------------------------------------------------------------------------------


def test_unconfigured_backend_reports_each_posture_finding_and_hardening_clears_them(backend) -> None:
    create_lock_table(backend, "plain-lock")
    create_bucket(backend, "plain-state")
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_state(s3, ddb, "plain-state", KEY, state_body(), table="plain-lock")
    result = scan_and_audit(backend, tables=["plain-lock"])
    assert result.complete
    severities = {f.kind.value: f.severity for f in result.findings}
    assert severities == {
        "bucket_versioning_disabled": Severity.WARNING,
        "bucket_public_access_open": Severity.WARNING,
        "table_deletion_protection_disabled": Severity.WARNING,
        "bucket_tls_not_enforced": Severity.INFO,
        "table_pitr_disabled": Severity.INFO,
    }
    assert result.exit_code == 1
    for f in result.findings:
        assert f.command_lines() and f.command_lines()[0].startswith("aws "), f.kind  # the command that fixes it

    harden_table(backend.url, "plain-lock", REGION)
    harden_bucket(backend.url, "plain-state", REGION)
    enforce_tls(backend.url, "plain-state", REGION)
    clean = scan_and_audit(backend, tables=["plain-lock"])
    assert clean.complete and clean.findings == [] and clean.exit_code == 0


def test_posture_calls_are_made_once_per_table_and_bucket_per_run(backend) -> None:
    create_lock_table(backend, "second-lock")
    harden_table(backend.url, "second-lock", REGION)
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_state(s3, ddb, BUCKET, "a.tfstate", state_body(1))
    put_state(s3, ddb, BUCKET, "b.tfstate", state_body(2), table="second-lock")  # both tables name the bucket
    enforce_tls(backend.url, BUCKET, REGION)
    result = scan_and_audit(backend, tables=[TABLE, "second-lock", TABLE])
    assert result.complete and result.findings == []
    calls = result.stats.api_calls
    assert calls["DescribeTable"] == 2 and calls["DescribeContinuousBackups"] == 2  # per table
    for op in (
        "GetBucketVersioning",
        "GetPublicAccessBlock",
        "GetBucketPolicy",
        "GetBucketLifecycleConfiguration",
        "ListObjectVersions",
        "GetBucketLocation",
    ):
        assert calls[op] == 1, op  # per bucket, however many tables name it


def test_a_posture_check_that_cannot_run_is_an_error_never_a_silent_pass(backend) -> None:
    put_state(client("s3", backend), client("dynamodb", backend), BUCKET, KEY, state_body())
    aws = aws_for(backend)
    aws.s3(REGION).meta.events.register("before-send.s3.GetBucketPolicy", deny("AccessDenied"))
    aws.dynamodb(REGION).meta.events.register("before-send.dynamodb.DescribeContinuousBackups", deny("AccessDeniedException"))
    result = scan_and_audit(backend, aws=aws)
    assert not result.complete and result.exit_code == 2
    assert sorted((e.check, e.target, e.code) for e in result.errors) == [
        ("bucket_policy", BUCKET, "AccessDenied"),
        ("continuous_backups", TABLE, "AccessDeniedException"),
    ]
    assert "access denied" in result.errors[0].message
    assert kinds(result) == []  # neither "TLS not enforced" nor "TLS fine": not known
    scopes = covered_scopes(result)
    assert f"bucket:{REGION}:{BUCKET}" not in scopes and f"table:{REGION}:{TABLE}" not in scopes


def test_missing_table_is_a_critical_finding_and_an_incomplete_scan(backend) -> None:
    proc = cli(backend, "--table", "no-such-table")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 2 and doc["complete"] is False
    assert [(e["check"], e["code"]) for e in doc["errors"]] == [("scan_table", "ResourceNotFoundException")]
    [finding] = doc["findings"]
    assert (finding["kind"], finding["severity"], finding["table"]) == ("lock_table_schema", "critical", "no-such-table")
    assert finding["details"]["problem"] == "missing"
    assert finding["details"]["commands"][0].startswith(
        "aws dynamodb create-table --region ap-northeast-2 --table-name no-such-table "
    )


def test_wrong_key_schema_is_critical(backend) -> None:
    client("dynamodb", backend).create_table(
        TableName="numeric-lock",
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
        DeletionProtectionEnabled=True,
    )
    result = scan_and_audit(backend, tables=["numeric-lock"])
    [schema] = [f for f in result.findings if f.kind is Kind.LOCK_TABLE_SCHEMA]
    assert schema.severity is Severity.CRITICAL and schema.details["key_schema"] == [["LockID", "HASH", "N"]]


# -- global tables: pinned DescribeTable responses ------------------------------------------------------


def pinned_global_table(consistency: str | None) -> dict:
    """DescribeTable of a version 2019.11.21 global table seen from Seoul, as AWS returns it."""
    table = {
        "AttributeDefinitions": [{"AttributeName": "LockID", "AttributeType": "S"}],
        "TableName": TABLE,
        "KeySchema": [{"AttributeName": "LockID", "KeyType": "HASH"}],
        "TableStatus": "ACTIVE",
        "CreationDateTime": datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc),
        "TableSizeBytes": 1843,
        "ItemCount": 12,
        "TableArn": f"arn:aws:dynamodb:{REGION}:123456789012:table/{TABLE}",
        "TableId": "4f2c7e0a-8d3b-4a51-9c6e-2b7d1e0f3a94",
        "BillingModeSummary": {
            "BillingMode": "PAY_PER_REQUEST",
            "LastUpdateToPayPerRequestDateTime": datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc),
        },
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        "LatestStreamLabel": "2026-01-05T08:00:00.000",
        "LatestStreamArn": f"arn:aws:dynamodb:{REGION}:123456789012:table/{TABLE}/stream/2026-01-05T08:00:00.000",
        "GlobalTableVersion": "2019.11.21",
        "Replicas": [{"RegionName": "us-east-1", "ReplicaStatus": "ACTIVE"}, {"RegionName": "us-west-2", "ReplicaStatus": "ACTIVE"}],
        "DeletionProtectionEnabled": True,
        "TableClassSummary": {"TableClass": "STANDARD"},
    }
    if consistency:
        table["MultiRegionConsistency"] = consistency
    return {"Table": table}


@pytest.mark.parametrize(("consistency", "mode"), [(None, "MREC"), ("EVENTUAL", "MREC"), ("STRONG", "MRSC")])
def test_global_table_replicas_are_reported_with_their_consistency_mode(consistency, mode) -> None:
    aws = AwsSession(boto3.session.Session(aws_access_key_id="t", aws_secret_access_key="t", region_name=REGION))
    ddb = aws.dynamodb(REGION)
    with Stubber(ddb) as stub:
        stub.add_response("describe_table", copy.deepcopy(pinned_global_table(consistency)), {"TableName": TABLE})
        stub.add_response(
            "describe_continuous_backups",
            {
                "ContinuousBackupsDescription": {
                    "ContinuousBackupsStatus": "ENABLED",
                    "PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "ENABLED"},
                }
            },
            {"TableName": TABLE},
        )
        result = Auditor(aws).audit(AuditRequest(REGION, [TABLE]), ScanResult(REGION, [TABLE], []))
        stub.assert_no_pending_responses()  # exactly the two calls, with exactly these parameters
    [finding] = result.findings
    assert finding.kind is Kind.REPLICATED_LOCK_TABLE and finding.severity is Severity.WARNING
    assert finding.details["consistency_mode"] == mode
    assert finding.details["replica_regions"] == ["us-east-1", "us-west-2"]
    assert ("attribute_not_exists(LockID)" in finding.message) is (mode == "MREC")


# -- the auditor function and the shared alert lifecycle ---------------------------------------------------


def open_alerts(backend) -> set[str]:
    items = client("dynamodb", backend).scan(TableName="tfjanitor-findings")["Items"]
    return {json.loads(i["Finding"]["S"])["kind"] for i in items if i["Status"]["S"] == "open"}


def test_sweeper_and_auditor_share_the_lifecycle_and_never_close_each_others_alerts(backend, alerting) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_state(s3, ddb, BUCKET, KEY, state_body())
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", age=timedelta(hours=3), lock_id="stale-1"))
    ddb.update_table(TableName=TABLE, DeletionProtectionEnabled=False)  # an auditor warning
    # Each run a minute after the last, two hours after the state was last written (its last sign of life).
    aws, now = aws_for(backend), datetime.now(timezone.utc) + timedelta(hours=2)
    sweeper, auditor = SweeperSettings(**alerting), AuditorSettings(**alerting)

    notices = sweep_and_alert(sweeper, aws, now + timedelta(minutes=1))[1].sent
    assert [(n.event, n.finding["kind"]) for n in notices] == [("opened", "stale_lock")]
    notices = audit_and_alert(auditor, aws, now + timedelta(minutes=2))[1].sent
    assert [(n.event, n.finding["kind"]) for n in notices] == [("opened", "table_deletion_protection_disabled")]
    assert open_alerts(backend) == {"stale_lock", "table_deletion_protection_disabled"}  # the audit closed nothing
    notices = sweep_and_alert(sweeper, aws, now + timedelta(minutes=3))[1].sent
    assert notices == [] and open_alerts(backend) == {"stale_lock", "table_deletion_protection_disabled"}

    ddb.update_table(TableName=TABLE, DeletionProtectionEnabled=True)
    notices = audit_and_alert(auditor, aws, now + timedelta(minutes=4))[1].sent
    assert [(n.event, n.finding["kind"]) for n in notices] == [("resolved", "table_deletion_protection_disabled")]
    ddb.delete_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}"}})
    notices = sweep_and_alert(sweeper, aws, now + timedelta(minutes=5))[1].sent
    assert [(n.event, n.finding["kind"]) for n in notices] == [("resolved", "stale_lock")]
    assert open_alerts(backend) == set()


def context() -> FakeContext:
    """A Lambda context, as the local runner builds it."""
    return FakeContext("tfjanitor-AuditorFunction", REGION)


def test_auditor_function_reads_no_state_emits_metrics_and_checks_the_monitors_stream(
    backend, alerting, monkeypatch, capsys, caplog
) -> None:
    ddb = client("dynamodb", backend)
    old_arn = ddb.update_table(TableName=TABLE, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})[
        "TableDescription"
    ]["LatestStreamArn"]
    create_lock_table(backend, TABLE, PEER)
    put_state(client("s3", backend), ddb, BUCKET, KEY, state_body(secret="never-log-me"))
    put_state(client("s3", backend), client("dynamodb", backend, PEER), BUCKET, KEY, state_body(secret="never-log-me"))
    # The monitor is now blind. (Last: moto answers 500 to a PutItem on a table whose stream was disabled.)
    ddb.update_table(TableName=TABLE, StreamSpecification={"StreamEnabled": False})
    env = {
        "AWS_REGION": REGION,
        "LOCK_TABLES": TABLE,
        "PEER_REGIONS": PEER,
        "LOCK_TABLE_STREAM_ARN": old_arn,
        "FINDINGS_TABLE": alerting["findings_table"],
        "ALERT_TOPIC_ARN": alerting["alert_topic_arns"][0],
        "POWERTOOLS_SERVICE_NAME": "tfjanitor",
        "POWERTOOLS_METRICS_NAMESPACE": "TfJanitor",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from tfjanitor.runtime import settings

    settings.auditor_settings.cache_clear()
    module = load_function("auditor")
    # Powertools configures the "tfjanitor" logger once per process (an earlier local-stack test may have
    # set it to ERROR): this test wants the INFO records.
    caplog.set_level(logging.INFO, logger="tfjanitor")
    try:
        response = module.lambda_handler(json.loads((ROOT / "events/schedule.json").read_text()), context())
    finally:
        settings.auditor_settings.cache_clear()
    out = capsys.readouterr().out

    # split brain (critical) + stream (warning) alert; the TLS note (info) is logged, not emailed.
    assert response == {
        "complete": True,
        "findings": 3,
        "errors": 0,
        "alerts_sent": 2,
        "notifications_failed": 0,
        "exit_code": 1,
        "skipped": False,
    }
    [blob] = [json.loads(line) for line in out.splitlines() if '"_aws"' in line and "SplitBrainLocks" in line]
    assert blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert (blob["SplitBrainLocks"], blob["TablePostureFindings"], blob["BucketPostureFindings"]) == ([1.0],) * 3
    assert (blob["AuditsCompleted"], blob["AlertsSent"]) == ([1.0], [2.0])
    assert "AuditErrors" not in blob  # a zero is not published: each metric costs money per region
    logged = [r.finding["kind"] for r in caplog.records if hasattr(r, "finding")]
    assert sorted(logged) == ["bucket_tls_not_enforced", "split_brain_lock", "table_stream_disabled"]
    # It never read a state object (its IAM has no s3:GetObject), and never logged one.
    stats = next(r.stats for r in caplog.records if getattr(r, "msg", "") == "audit finished")
    assert "GetObject" not in stats["api_calls"] and stats["downloads"] == 0
    assert "never-log-me" not in out + "".join(json.dumps(vars(r), default=str) for r in caplog.records)
