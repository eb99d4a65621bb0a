"""Clocks and wording (issue 18.4): a lock whose Created is ahead of the clock is silent since tfjanitor first saw
it; an all-clear names only what was checked."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.integration.conftest import session
from tests.support.builders import lock_info, put_lock, put_state, state_body
from tfjanitor.aws.session import AwsSession
from tfjanitor.local.emulator import MotoServer
from tfjanitor.model import ScanResult
from tfjanitor.runtime.settings import SweeperSettings
from tfjanitor.runtime.telemetry import publish_sweep
from tfjanitor.runtime.wiring import sweep_and_alert

KEY = "future/terraform.tfstate"


def test_a_lock_from_a_clock_ahead_is_stale_once_silent_since_first_seen(backend: MotoServer, alerting) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_state(s3, ddb, BUCKET, KEY, state_body())
    t0 = datetime.now(timezone.utc)
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", age=timedelta(hours=-3), lock_id="ahead-1"))
    settings = SweeperSettings(**alerting)
    aws = AwsSession(session(), endpoint_url=backend.url)

    first, _ = sweep_and_alert(settings, aws, t0)
    [held] = first.locks
    assert first.findings == [] and held.verdict == "alive" and held.clock_ahead_seconds > 2 * 3600
    assert held.last_sign_of_life["what"] == "first_seen"

    later, delivery = sweep_and_alert(settings, aws, t0 + timedelta(hours=2))  # silent for 2 hours since first seen
    [stale] = later.findings
    assert stale.kind.value == "stale_lock" and "ahead of this clock" in stale.message
    assert stale.details["quiet_seconds"] >= 7200 - 5 and [n.event for n in delivery.sent] == ["opened"]
    assert later.stats.tables[TABLE].oldest_lock_age_seconds >= 7200 - 5  # OldestLockAgeSeconds counts from first sight


def test_the_oldest_lock_metric_counts_a_clock_ahead_lock_from_first_sight(backend: MotoServer, alerting, capsys) -> None:
    from aws_lambda_powertools import Logger, Metrics

    ddb = client("dynamodb", backend)
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", age=timedelta(hours=-3), lock_id="ahead-2"))
    settings, aws = SweeperSettings(**alerting), AwsSession(session(), endpoint_url=backend.url)
    t0 = datetime.now(timezone.utc)
    sweep_and_alert(settings, aws, t0)
    result: ScanResult = sweep_and_alert(settings, aws, t0 + timedelta(minutes=30))[0]
    metrics = Metrics(namespace="TfJanitor", service="tfjanitor")
    publish_sweep(result, metrics, Logger(service="tfjanitor"))
    metrics.flush_metrics()
    blob = next(json.loads(line) for line in capsys.readouterr().out.splitlines() if "OldestLockAgeSeconds" in line)
    assert blob["OldestLockAgeSeconds"][0] >= 1800 - 5


def test_a_lock_file_from_a_clock_ahead_counts_from_its_object(backend: MotoServer) -> None:
    s3 = client("s3", backend)
    s3.put_object(Bucket=BUCKET, Key=KEY + ".tflock", Body=lock_info(f"{BUCKET}/{KEY}", age=timedelta(hours=-3)).encode())
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfjanitor",
            "locks",
            "--region",
            REGION,
            "--table",
            TABLE,
            "--bucket",
            BUCKET,
            "--endpoint-url",
            backend.url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "CLOCK AHEAD" in proc.stdout and "lock taken" not in proc.stdout.split("CLOCK AHEAD")[0].splitlines()[-1]


def test_skip_audit_says_what_it_did_not_check(backend: MotoServer) -> None:
    put_state(client("s3", backend), client("dynamodb", backend), BUCKET, "dev/terraform.tfstate", state_body())
    base = [sys.executable, "-m", "tfjanitor", "scan", "--region", REGION, "--table", TABLE, "--endpoint-url", backend.url]
    skipped = subprocess.run([*base, "--skip-audit"], capture_output=True, text=True, timeout=60, check=False)
    assert skipped.returncode == 0, skipped.stdout
    assert "set up as recommended" not in skipped.stdout and "was not checked: --skip-audit" in skipped.stdout
