"""The whole stack, locally: template.yaml's functions, real Terraform, the lock table's stream, emails.

A killed apply and a hand-edited state each get exactly one 'opened' email; the fixes
(force-unlock, the digest the finding names) each get exactly one 'resolved' email.
"""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.support.builders import md5
from tfjanitor.local.runner import FINDINGS_TABLE, LocalStack

ROOT = Path(__file__).resolve().parents[2]


def wait_for(stack: LocalStack, predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.step()
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out; emails so far: {[e.subject for e in stack.emails]}")


@pytest.fixture
def stack(backend, tmp_path) -> LocalStack:
    params = {
        "StaleAfter": "3s",
        "ReadOnlyStaleAfter": "3s",
        "StateBucketNames": BUCKET,
        "AlertEmail": "oncall@example.com",
        "ExtraBucketNames": BUCKET,
        "SweepIntervalMinutes": "5",
        "AccountAlias": "sandbox",
    }
    local = LocalStack(
        ROOT / "template.yaml", backend.url, REGION, params, time_scale=300, emails_dir=tmp_path / "emails", echo=lambda _: None
    )
    return local


def subjects(stack: LocalStack) -> list[str]:
    return [e.subject for e in stack.emails]


def test_story_opens_and_resolves_each_alert_once(terraform, backend, stack) -> None:
    tf = terraform()
    tf.init()
    stack.setup()  # after init: the lock table exists, the runner enables its stream
    assert {f.name for f in stack.functions} == {"SweeperFunction", "StreamMonitorFunction", "AuditorFunction"}

    tf.apply("v1")  # healthy: lock acquired, digest written, lock released
    wait_for(stack, lambda: any(m.name == "LockHoldSeconds" for m in stack.metrics))
    assert subjects(stack) == []
    # The auditor ran too (daily: once here) and, the backend being well configured, alerted nothing;
    # its one finding is the info note on TLS, which the plain-HTTP emulator cannot enforce.
    [audit] = [response for name, response in stack.invocations if name == "AuditorFunction"]
    assert audit == {
        "complete": True,
        "findings": 1,
        "errors": 0,
        "alerts_sent": 0,
        "notifications_failed": 0,
        "exit_code": 0,
        "skipped": False,
    }
    holds = [m for m in stack.metrics if m.name == "LockHoldSeconds"]
    assert holds and holds[0].dimensions["OperationClass"] == "apply"

    killed = tf.start_apply_and_kill("v2")
    lock_id = killed.lock["ID"]
    wait_for(stack, lambda: len(stack.emails) >= 1)
    [opened_lock] = stack.emails
    assert opened_lock.subject.startswith(f"[tfjanitor] WARNING Stale lock: {BUCKET}/dev/terraform.tfstate (held ")
    assert f"    terraform force-unlock -force -- {lock_id}" in opened_lock.body.splitlines()
    # As template.yaml deploys it: the account (and AccountAlias) and the stack named, then the sections in order.
    lines = opened_lock.body.splitlines()
    assert lines[1] == f"Account 123456789012 (sandbox), stack tfjanitor, region {REGION}"
    sections = ["What is wrong", "Why it matters", "What to do", "How to check it worked", "Where to look"]
    assert [line for line in lines if line in sections] == sections
    assert f"#dashboards:name=tfjanitor-{REGION}" in opened_lock.body and "/kinds/#stale_lock" in opened_lock.body

    # Hand edit while the stale lock still stands, then release it: the drift is judged after release.
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    terraforms = s3.head_object(Bucket=BUCKET, Key="dev/terraform.tfstate")["VersionId"]  # its last write (v1)
    body = s3.get_object(Bucket=BUCKET, Key="dev/terraform.tfstate")["Body"].read()
    doc = json.loads(body)
    doc["serial"] += 7
    doc["outputs"] = {"db_password": {"value": "never-in-an-email-7f3a", "type": "string", "sensitive": True}}
    edited = json.dumps(doc).encode()
    s3.put_object(Bucket=BUCKET, Key="dev/terraform.tfstate", Body=edited)
    tf.force_unlock(lock_id)
    wait_for(stack, lambda: len(stack.emails) >= 3)
    # Both follow from the one release record, in either order (the queued notices of one instant).
    resolved, drift = sorted(stack.emails[1:3], key=lambda e: "Digest drift" in e.subject)
    assert resolved.subject.startswith(f"[tfjanitor] RESOLVED Stale lock: {BUCKET}/dev/terraform.tfstate after ")
    assert drift.subject == f"[tfjanitor] CRITICAL Digest drift: {BUCKET}/dev/terraform.tfstate"
    assert "Actual MD5:  " + md5(edited) in drift.body
    # The bucket is versioned: the email names the version Terraform wrote, and how to restore it.
    assert f"Terraform's last write is version {terraforms} of s3://{BUCKET}/dev/terraform.tfstate" in drift.body
    assert f'"VersionId":"{terraforms}"' in drift.body  # the restore (copy-object --cli-input-json)
    assert "never-in-an-email-7f3a" not in "".join(e.body + e.plain for e in stack.emails)  # no state contents

    # The fix the drift email names; the stream monitor sees the digest write and resolves.
    ddb.put_item(TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/dev/terraform.tfstate-md5"}, "Digest": {"S": md5(edited)}})
    wait_for(stack, lambda: len(stack.emails) >= 4)
    assert subjects(stack)[3].startswith(f"[tfjanitor] RESOLVED Digest drift: {BUCKET}/dev/terraform.tfstate")

    # More sweeps and redeliveries change nothing: no duplicates.
    stack.run(3.0)
    assert len(stack.emails) == 4, subjects(stack)
    assert tf.plan().ok
    emls = sorted((stack.emails_dir or Path()).glob("*.eml"))
    assert len(emls) == 4
    first = email.message_from_bytes(emls[0].read_bytes(), policy=email.policy.default)
    assert first["Subject"].startswith("[tfjanitor] WARNING Stale lock")
    plain = first.get_body(("plain",))
    assert plain is not None and plain.get_content() == stack.emails[0].plain


def test_partial_batch_failure_retries_only_from_the_failed_record(terraform, backend, stack) -> None:
    """Real Terraform records, one made to fail: only it (and what follows) is redelivered."""
    tf = terraform()
    tf.init()
    arn = stack.ensure_stream(TABLE)
    assert arn
    streams = client("dynamodbstreams", backend)
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    tf.apply("v1")
    tf.apply("v2")
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    from tfjanitor.local.runner import lambda_record

    records = [lambda_record(r, arn) for r in streams.get_records(ShardIterator=iterator)["Records"]]
    kinds = [(r["eventName"], "Info" in (r["dynamodb"].get("NewImage") or r["dynamodb"].get("OldImage"))) for r in records]
    assert ("INSERT", True) in kinds and ("REMOVE", True) in kinds and ("MODIFY", False) in kinds

    stack.setup()
    fn = next(f for f in stack.functions if f.name == "StreamMonitorFunction")
    broken = json.loads(json.dumps(records))
    digest_at = next(i for i, r in enumerate(broken) if r["eventName"] == "MODIFY")
    broken[digest_at]["eventSourceARN"] = arn.replace(f"table/{TABLE}/", "table/missing-table/")  # the check fails
    broken.append({"eventName": "INSERT", "dynamodb": {"SequenceNumber": "junk"}})  # malformed: not a poison pill
    response = stack.invoke(fn, {"Records": broken})
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert failed == [broken[digest_at]["dynamodb"]["SequenceNumber"]]
    malformed = [m for m in stack.metrics if m.name == "MalformedRecords"]
    assert malformed and malformed[-1].values == [1.0]
    # Redelivery from the failed record on (as Lambda does), now healthy: succeeds, sends nothing.
    redelivered = records[digest_at:]
    assert stack.invoke(fn, {"Records": redelivered}) == {"batchItemFailures": []}
    assert stack.invoke(fn, {"Records": redelivered}) == {"batchItemFailures": []}  # idempotent
    stack.drain_emails()
    assert stack.emails == []


def test_a_killed_plan_on_a_drifted_state_never_resolves_the_drift(terraform, backend, stack) -> None:
    """Issue 9: a state edited by hand, then a plan killed while it holds the lock (retrying its checksum):
    through five more sweeps the drift alert stays open, and `tfjanitor scan` still reports the drift."""
    tf = terraform()
    tf.init()
    stack.setup()
    tf.apply("v1")
    s3 = client("s3", backend)
    doc = json.loads(s3.get_object(Bucket=BUCKET, Key="dev/terraform.tfstate")["Body"].read())
    doc["serial"] += 3
    s3.put_object(Bucket=BUCKET, Key="dev/terraform.tfstate", Body=json.dumps(doc).encode())
    wait_for(stack, lambda: any("Digest drift" in s for s in subjects(stack)))
    killed = tf.start_plan_and_kill()
    assert killed.lock["Operation"] == "OperationTypePlan" and tf.lock_item() is not None

    def sweeps() -> int:
        return sum(1 for name, _ in stack.invocations if name == "SweeperFunction")

    done = sweeps()
    wait_for(stack, lambda: sweeps() >= done + 5, timeout=60)
    drift_mails = [s for s in subjects(stack) if "Digest drift" in s]
    assert len(drift_mails) == 1 and drift_mails[0].startswith("[tfjanitor] CRITICAL Digest drift"), subjects(stack)
    items = client("dynamodb", backend).scan(TableName=FINDINGS_TABLE)["Items"]
    # (the table also holds the stream monitor's per-state records: they have no Status)
    assert "digest_drift" in {json.loads(i["Finding"]["S"])["kind"] for i in items if i.get("Status", {}).get("S") == "open"}

    scan = subprocess.run(
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
            "--format",
            "json",
            "--endpoint-url",
            backend.url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = json.loads(scan.stdout)
    [drift] = [f for f in found["findings"] if f["kind"] == "digest_drift"]
    assert drift["details"]["locked_by"]["id"] == killed.lock["ID"] and scan.returncode == 1
