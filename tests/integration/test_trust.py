"""Alerts that never lie (issue 9): a locked state is judged, not skipped; decisions stand on the time
of their evidence; a run keeps its own deadline. Against moto server, with the stack's real findings table."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.integration.conftest import kinds, session, sweep
from tests.support.builders import lock_info, md5, put_lock, put_state, state_body
from tfjanitor.aws.session import AwsSession
from tfjanitor.cli.output import to_table
from tfjanitor.durations import Deadline
from tfjanitor.model import Kind
from tfjanitor.runtime.settings import SweeperSettings
from tfjanitor.runtime.wiring import sweep_and_alert

KEY = "dev/terraform.tfstate"
FINDINGS = "tfjanitor-findings"


def drifted(s3, ddb, key: str = KEY) -> None:
    put_state(s3, ddb, BUCKET, key, state_body(1))
    s3.put_object(Bucket=BUCKET, Key=key, Body=state_body(2))  # edited by hand, digest left behind


def test_drift_older_than_the_lock_over_it_is_drift_and_says_who_holds_the_lock(backend, s3, ddb) -> None:
    """A killed plan on a drifted state: the object predates the lock, so the mismatch predates the run."""
    drifted(s3, ddb)
    # The lock was taken 10 minutes after the object was written (beyond the 5-minute skew margin).
    later = datetime.now(timezone.utc) + timedelta(minutes=10)
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", now=later, lock_id="plan-1", operation="OperationTypePlan"))
    result = sweep(backend)
    assert kinds(result) == ["digest_drift"] and result.unverified == []
    drift = result.findings[0]
    assert drift.details["locked_by"]["id"] == "plan-1" and drift.details["locked_by"]["who"] == "ci@runner-7"
    assert "also locked" in drift.message and result.exit_code == 1


def test_mismatch_on_an_object_written_under_the_lock_is_unverified_not_healthy(backend, s3, ddb) -> None:
    put_state(s3, ddb, BUCKET, KEY, state_body(1))
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", lock_id="apply-1"))
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=state_body(2))  # Terraform's write in flight
    put_state(s3, ddb, BUCKET, "ok/terraform.tfstate", state_body(3))
    result = sweep(backend)
    assert kinds(result) == [] and result.complete and result.exit_code == 0
    assert [(u.bucket, u.key, u.table) for u in result.unverified] == [(BUCKET, KEY, TABLE)]
    assert "apply-1" in result.unverified[0].reason and "between its state and digest writes" in result.unverified[0].reason
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["unverified"] == [{"bucket": BUCKET, "key": KEY, "table": TABLE, "reason": result.unverified[0].reason}]
    text = to_table(result)
    assert "every digest matches" not in text and "1 digest was NOT verified" in text


def test_lockfile_lock_taken_after_the_object_is_unverified(backend, s3, ddb) -> None:
    put_state(s3, ddb, BUCKET, KEY, state_body(1))
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=state_body(2))
    s3.put_object(Bucket=BUCKET, Key=KEY + ".tflock", Body=lock_info(f"{BUCKET}/{KEY}").encode())
    result = sweep(backend)
    assert kinds(result) == [] and [u.key for u in result.unverified] == [KEY]
    assert "a lock file" in result.unverified[0].reason


# -- the alert lifecycle, with the real findings table -------------------------------------------


def alerts(backend) -> dict[str, str]:
    items = client("dynamodb", backend).scan(TableName=FINDINGS)["Items"]
    return {json.loads(i["Finding"]["S"])["kind"]: i["Status"]["S"] for i in items if "Finding" in i}


def events(delivery) -> list[tuple[str, str]]:
    """The notices a run sent."""
    return [(n.event, n.finding["kind"]) for n in delivery.sent]


@pytest.mark.parametrize("operation", ["OperationTypeApply", "OperationTypePlan"])
def test_drift_alert_stays_open_while_a_run_holds_the_lock_and_resolves_only_once_verified(
    backend, s3, ddb, alerting, operation: str
) -> None:
    """Issue 9.1: a run holding the lock on a drifted state used to resolve the drift alert. Under an
    apply that may be writing, the state is unverified; under a plan (never writes), still drift."""
    aws, t0 = AwsSession(session(), endpoint_url=backend.url), datetime.now(timezone.utc)
    settings = SweeperSettings(**alerting)
    drifted(s3, ddb)
    _, notices = sweep_and_alert(settings, aws, t0)
    assert events(notices) == [("opened", "digest_drift")]
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", lock_id="run-1", operation=operation))
    for i in range(1, 6):  # five sweeps while the lock is held: nothing resolved, nothing re-sent
        result, notices = sweep_and_alert(settings, aws, t0 + timedelta(minutes=i))
        assert events(notices) == []
        if operation == "OperationTypePlan":
            assert "digest_drift" in kinds(result) and result.unverified == []
        else:
            assert [u.key for u in result.unverified] == [KEY]
        assert alerts(backend) == {"digest_drift": "open"}
    ddb.delete_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}"}})
    _, notices = sweep_and_alert(settings, aws, t0 + timedelta(minutes=7))
    assert events(notices) == []  # verified again, still drifted: still open, no new email
    ddb.put_item(TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/{KEY}-md5"}, "Digest": {"S": md5(state_body(2))}})
    _, notices = sweep_and_alert(settings, aws, t0 + timedelta(minutes=8))
    assert events(notices) == [("resolved", "digest_drift")]


def test_a_sweep_never_resolves_an_alert_opened_after_its_first_read(backend, s3, ddb, alerting) -> None:
    """Issue 9.2: the stream monitor opens a drift after the sweep read the table: the sweep leaves it."""
    from tfjanitor.alerts.lifecycle import open_one
    from tfjanitor.alerts.store import DynamoAlertStore
    from tfjanitor.checks.findings import digest_drift

    aws, t0 = AwsSession(session(), endpoint_url=backend.url), datetime.now(timezone.utc)
    settings = SweeperSettings(**alerting)
    put_state(s3, ddb, BUCKET, KEY, state_body(1))
    store = DynamoAlertStore(aws, REGION, FINDINGS)

    def stream_opens_drift(**_: object) -> None:  # while the sweep lists the bucket, the stream sees drift
        if not alerts(backend):
            finding = digest_drift(REGION, TABLE, BUCKET, KEY, "a" * 32, "b" * 32, "", 10)
            assert open_one(store, finding, t0 + timedelta(seconds=30), evidence=t0 + timedelta(seconds=30))

    aws.s3(REGION).meta.events.register("after-call.s3.ListObjectsV2", stream_opens_drift)
    _, notices = sweep_and_alert(settings, aws, t0 + timedelta(seconds=10))  # read at 10 s, wrote after 30 s
    # It sends what is pending (the stream monitor's "opened"), and resolves nothing.
    assert events(notices) == [("opened", "digest_drift")] and alerts(backend) == {"digest_drift": "open"}
    _, notices = sweep_and_alert(settings, AwsSession(session(), endpoint_url=backend.url), t0 + timedelta(minutes=5))
    assert events(notices) == [("resolved", "digest_drift")]  # a sweep that read after it may judge it


def test_a_sweep_that_read_a_lock_before_its_release_never_reopens_it(backend, s3, ddb, alerting) -> None:
    """Issue 9.2: the stream saw the release (at the record's time) before the slow sweep wrote its verdict."""
    from tfjanitor.alerts.lifecycle import fingerprint, resolve_if_open
    from tfjanitor.alerts.store import DynamoAlertStore

    # Two hours after the state was written (the lock's last sign of life): the lock is stale.
    aws, t0 = AwsSession(session(), endpoint_url=backend.url), datetime.now(timezone.utc) + timedelta(hours=2)
    settings = SweeperSettings(**alerting)
    put_state(s3, ddb, BUCKET, KEY, state_body(1))
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", age=timedelta(hours=3), lock_id="dead-1"))
    store = DynamoAlertStore(aws, REGION, FINDINGS)
    fp = fingerprint(Kind.STALE_LOCK, REGION, TABLE, BUCKET, KEY, "dead-1")

    def released_meanwhile(**_: object) -> None:  # after the Scan read the lock, before the sweep alerts
        ddb.delete_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}"}})
        resolve_if_open(store, fp, t0 + timedelta(seconds=20), "lock released", evidence=t0 + timedelta(seconds=20), tombstone=True)

    aws.dynamodb(REGION).meta.events.register("after-call.dynamodb.Scan", released_meanwhile, unique_id="once")
    _, notices = sweep_and_alert(settings, aws, t0 + timedelta(seconds=10))
    assert events(notices) == []  # no "opened" email for a lock that no longer exists
    record = store.get(fp)
    assert record is not None and record.status == "closed"


# -- time budgets --------------------------------------------------------------------------------


def ticking(budget_calls: int) -> Deadline:
    """A deadline that runs out after ``budget_calls`` looks at the clock (a fake clock: no sleeping)."""
    looks = [0]

    def left() -> float:
        looks[0] += 1
        return 1.0 if looks[0] <= budget_calls else -1.0

    return Deadline(left, "a test budget")


def test_a_sweep_out_of_time_is_incomplete_resolves_nothing_and_still_alerts(backend, s3, ddb, alerting) -> None:
    aws, t0 = AwsSession(session(), endpoint_url=backend.url), datetime.now(timezone.utc)
    settings = SweeperSettings(**alerting)
    drifted(s3, ddb, "old/terraform.tfstate")
    _, notices = sweep_and_alert(settings, aws, t0)
    assert events(notices) == [("opened", "digest_drift")]
    for i in range(30):
        put_state(s3, ddb, BUCKET, f"s{i}/terraform.tfstate", state_body(i))
    put_lock(ddb, BUCKET, "s1/terraform.tfstate", lock_info(f"{BUCKET}/s1/terraform.tfstate", age=timedelta(hours=2)))
    # Enough clock looks for the table scan and part of the listing, not for the rest.
    result, notices = sweep_and_alert(settings, aws, t0 + timedelta(minutes=5), deadline=ticking(40))
    assert not result.complete and result.exit_code == 2
    assert [e.check for e in result.errors] == ["time_budget"] and "a test budget" in result.errors[0].message
    assert "resolved" not in [e for e, _ in events(notices)]
    assert alerts(backend)["digest_drift"] == "open"


def test_cli_time_budget_reports_an_incomplete_scan(backend, s3, ddb) -> None:
    for i in range(5):
        put_state(s3, ddb, BUCKET, f"s{i}/terraform.tfstate", state_body(i))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfjanitor",
            "scan",
            "--region",
            REGION,
            "--table",
            TABLE,
            "--skip-audit",
            "--time-budget",
            "0.001s",
            "--format",
            "json",
            "--endpoint-url",
            backend.url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    doc = json.loads(proc.stdout)
    assert proc.returncode == 2 and doc["complete"] is False
    assert [e["check"] for e in doc["errors"]] == ["time_budget"]
    assert "--time-budget" in doc["errors"][0]["message"]


def test_a_plan_never_writes_state_so_drift_under_its_lock_is_drift_whatever_the_times(backend, s3, ddb) -> None:
    """A plan killed while retrying its checksum on a drifted state: its lock cannot hide the drift."""
    drifted(s3, ddb)
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", lock_id="plan-2", operation="OperationTypePlan"))
    result = sweep(backend)
    assert kinds(result) == ["digest_drift"] and result.unverified == []
    assert result.findings[0].details["locked_by"]["operation"] == "OperationTypePlan"
