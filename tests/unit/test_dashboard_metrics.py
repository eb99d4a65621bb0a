"""Every metric and dimension the dashboard and alarms name is one the code really emits.

The emitted set is read from the EMF the telemetry functions print, not from a list kept
by hand, so a typo on either side makes a widget or an alarm fail this test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest
from cfnlint.decode import decode_str

from tests.support.cfn import Rendered
from tfjanitor.model import Finding, Kind, ScanError, ScanResult, Severity, TableStats, Unverified
from tfjanitor.scan.stream import BatchSummary

if TYPE_CHECKING:  # pragma: no cover
    from tfjanitor.alerts.lifecycle import Notice

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "TfJanitor"
SERVICE = "tfjanitor"


@pytest.fixture(scope="module")
def template() -> dict:
    doc, problems = decode_str((ROOT / "template.yaml").read_text())
    assert not problems
    return doc


@pytest.fixture
def emitted(monkeypatch, capsys) -> set[tuple[str, frozenset[tuple[str, str | None]]]]:
    """(metric, {(dimension, value)}) pairs from one sweep and one stream batch's EMF output."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    from aws_lambda_powertools import Logger, Metrics

    from tfjanitor.alerts.delivery import Delivery, GaveUp
    from tfjanitor.runtime.telemetry import publish_audit, publish_delivery, publish_stream_batch, publish_sweep

    # A sweep, a delivery, a stream batch and an audit with something of everything: problem metrics
    # are published only while non-zero, so each must be non-zero once here.
    result = ScanResult(region="ap-northeast-2", tables=["terraform-state-lock"], buckets=["b"])
    result.stats.tables["terraform-state-lock"] = TableStats(items=3, active_locks=1, buckets=["b"])
    for kind in (
        Kind.STALE_LOCK,
        Kind.STALE_LOCKFILE,
        Kind.DIGEST_DRIFT,
        Kind.ORPHAN_DIGEST,
        Kind.CROSS_REGION_BUCKET,
        Kind.MALFORMED_ITEM,
        Kind.INTERRUPTED_WRITE,
    ):
        result.findings.append(Finding(kind, Severity.WARNING, "ap-northeast-2", "terraform-state-lock", "b", "k", "id", "m"))
    result.errors.append(ScanError("scan_table", "terraform-state-lock", "AccessDenied", "m"))
    result.unverified.append(Unverified("b", "k2", "terraform-state-lock", "locked"))
    result.releases.append({"released": True})
    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    publish_sweep(result, metrics, Logger(service=SERVICE))
    gave_up = GaveUp("n1", "fp1", "opened", "arn:aws:sns:ap-northeast-2:123456789012:alerts", "refused")
    sent = cast("list[Notice]", [object()])  # a stand-in: only how many were sent is published
    publish_delivery(Delivery(sent=sent, failed=["x"], gave_up=[gave_up]), metrics, Logger(service=SERVICE))
    summary = BatchSummary(drift_detected=1, foreign=1, malformed=1)
    for klass in ("apply", "plan", "other"):
        summary.acquired[klass] += 1
        summary.released[klass] += 1
        summary.hold_seconds[klass].append(12.0)
    publish_stream_batch(summary, metrics)
    metrics.flush_metrics()  # the auditor is another function: its metrics are another EMF blob
    audit = ScanResult(region="ap-northeast-2", tables=["terraform-state-lock"], buckets=["b"])
    for kind in (Kind.SPLIT_BRAIN_LOCK, Kind.LOCK_TABLE_SCHEMA, Kind.TABLE_PITR_DISABLED, Kind.BUCKET_VERSIONING_DISABLED):
        audit.findings.append(Finding(kind, Severity.CRITICAL, "ap-northeast-2", "terraform-state-lock", "b", "k", None, "m"))
    audit.findings.append(
        Finding(
            Kind.LOCKFILE_MIGRATION, Severity.INFO, "ap-northeast-2", None, "b", None, None, "m", {"leftover_digests": ["b/k-md5"]}
        )
    )
    audit.errors.append(ScanError("describe_table", "t", "AccessDenied", "m"))
    publish_audit(audit, metrics, Logger(service=SERVICE))
    metrics.flush_metrics()
    pairs = set()
    for line in capsys.readouterr().out.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == NAMESPACE
            for dims in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    pairs.add((metric["Name"], frozenset((d, blob[d] if d != "Table" else None) for d in dims)))
    return pairs


def _dashboard(template: dict, regions: str = "us-east-1,eu-west-1") -> dict:
    """The dashboard body as CloudFormation renders it (DashboardRegions listing ``regions``)."""
    rendered = Rendered(
        template, {"StateBucketNames": "b", "AlertEmail": "a@example.com", "DashboardRegions": regions, "LockTableStreamArn": STREAM}
    )
    text = rendered.value(template["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
    return json.loads(re.sub(r'"\{\'Ref\': \'\w+\'\}"|\{\'Ref\': \'\w+\'\}', "X", text) if not isinstance(text, str) else text)


regions_seen: set[str] = set()
STREAM = "arn:aws:dynamodb:ap-northeast-2:123456789012:table/terraform-state-lock/stream/2026-01-01T00:00:00.000"


def dashboard_references(template: dict) -> list[tuple[str, frozenset[tuple[str, str | None]]]]:
    refs = []
    for widget in _dashboard(template)["widgets"]:
        previous: list = []
        for entry in widget["properties"]["metrics"]:
            head = entry[0]
            if isinstance(head, dict):  # a SEARCH expression
                match = re.search(r"SEARCH\('\{([^}]*)\} MetricName=\\?\"(\w+)\\?\"", head["expression"])
                assert match, head["expression"]
                namespace, *dims = match[1].split(",")
                assert namespace == NAMESPACE
                refs.append((match[2], frozenset((d, SERVICE if d == "service" else None) for d in dims)))
                continue
            parts = [p for p in entry if not isinstance(p, dict)]
            options = next((p for p in entry if isinstance(p, dict)), {})
            if "region" in options:
                regions_seen.add(options["region"])
            if parts == ["..."]:
                parts = previous
            previous = parts
            namespace, name, *flat = parts
            if namespace != NAMESPACE:
                continue  # AWS/Lambda, AWS/SQS: emitted by AWS
            dims = frozenset((flat[i], flat[i + 1] if flat[i] != "Table" else None) for i in range(0, len(flat), 2))
            refs.append((name, dims))
    return refs


def alarm_references(template: dict) -> list[tuple[str, str, frozenset[tuple[str, str | None]]]]:
    refs = []
    for name, res in template["Resources"].items():
        if res["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = res["Properties"]
        if props["Namespace"] != {"Ref": "MetricsNamespace"}:
            continue
        dims = frozenset((d["Name"], d["Value"]) for d in props.get("Dimensions", []))
        refs.append((name, props["MetricName"], dims))
    return refs


def test_every_dashboard_metric_is_emitted(template, emitted) -> None:
    refs = dashboard_references(template)
    assert len(refs) >= 15
    missing = [r for r in refs if r not in emitted]
    assert missing == []


def test_every_alarm_metric_is_emitted(template, emitted) -> None:
    refs = alarm_references(template)
    assert {name for name, *_ in refs} >= {"SweeperHeartbeatAlarm", "NotificationsFailedAlarm", "NotificationsGivenUpAlarm"}
    missing = [r for r in refs if (r[1], r[2]) not in emitted]
    assert missing == []


def test_heartbeat_alarm_breaches_on_missing_data(template) -> None:
    alarm = template["Resources"]["SweeperHeartbeatAlarm"]["Properties"]
    assert alarm["TreatMissingData"] == "breaching" and alarm["EvaluationPeriods"] == 3


def test_service_dimension_matches_the_template(template) -> None:
    assert template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == SERVICE
    assert template["Parameters"]["MetricsNamespace"]["Default"] == NAMESPACE


def test_one_dashboard_shows_every_dashboard_region(template) -> None:
    """Issue 12.5: a line per DashboardRegions region in each tfjanitor widget; this region by default."""
    regions_seen.clear()
    dashboard_references(template)
    assert regions_seen == {"us-east-1", "eu-west-1"}
    regions_seen.clear()
    for widget in _dashboard(template, regions="")["widgets"]:
        for entry in widget["properties"]["metrics"]:
            options = next((p for p in entry if isinstance(p, dict)), {})
            regions_seen.add(options.get("region", "-"))
    assert regions_seen <= {"ap-northeast-2", "-"}
    dashboard = template["Resources"]["Dashboard"]
    assert dashboard["Condition"] == "CreateDashboard"


def test_problem_metrics_are_published_only_while_nonzero(monkeypatch, capsys) -> None:
    """Issue 13.1: a healthy sweep publishes only the always-on metrics (each costs money per region)."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    from aws_lambda_powertools import Logger, Metrics

    from tfjanitor.alerts.delivery import Delivery
    from tfjanitor.runtime.telemetry import METRIC_PLAN, publish_delivery, publish_sweep

    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    publish_sweep(ScanResult(region="ap-northeast-2", tables=["t"], buckets=["b"]), metrics, Logger(service=SERVICE))
    publish_delivery(Delivery(), metrics, Logger(service=SERVICE))
    metrics.flush_metrics()
    names = {
        m["Name"]
        for line in capsys.readouterr().out.splitlines()
        if '"_aws"' in line
        for d in json.loads(line)["_aws"]["CloudWatchMetrics"]
        for m in d["Metrics"]
    }
    assert names == {m.name for m in METRIC_PLAN if m.when == "always"} == {"SweepsCompleted", "OldestLockAgeSeconds"}


def test_no_metric_has_a_dimension_that_grows_with_the_fleet(emitted) -> None:
    dims = {d for _, pairs in emitted for d, _ in pairs}
    assert dims <= {"service", "OperationClass"}
