"""Dead or slow (issue 11) against moto server: signs of life, learned thresholds read in bulk, the interrupted
write, drift forensics on versioned buckets, the stream's records, and `tfjanitor locks`.

Moto cannot backdate an object, so a lock "killed two hours ago" is read by a sweep whose clock is set two
hours ahead (``Sweeper(now=...)``): every time is relative to the writes the test just made.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import BUCKET, REGION, TABLE, client, create_bucket
from tests.integration.conftest import kinds, session
from tests.support.builders import lock_info, md5, put_lock, put_state, state_body
from tfjanitor.alerts.lifecycle import fingerprint, open_one
from tfjanitor.alerts.store import DynamoAlertStore
from tfjanitor.aws.history import HISTORY_TTL, MAX_HOLDS, History, life_key
from tfjanitor.aws.session import AwsSession
from tfjanitor.checks import findings as build
from tfjanitor.model import Kind, ScanResult, StalePolicy
from tfjanitor.scan.stream import DIGEST_WRITTEN, LOCK_RELEASED, StreamEvent, StreamMonitor
from tfjanitor.scan.sweeper import Sweeper, SweepRequest
from tfjanitor.terraform import parse_lock_info

KEY = "dev/terraform.tfstate"
FINDINGS = "tfjanitor-findings"


@pytest.fixture
def history(backend):
    """The stack's own table (the findings table), where the stream monitor keeps signs of life and holds."""
    client("dynamodb", backend).create_table(
        TableName=FINDINGS,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "Fingerprint", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Fingerprint", "AttributeType": "S"}],
    )
    return History(AwsSession(session(), endpoint_url=backend.url), REGION, FINDINGS)


def sweep_at(
    server, now: datetime, findings_table: str | None = None, policy: StalePolicy | None = None, all_lockfiles: bool = False
) -> ScanResult:
    request = SweepRequest(
        REGION, [TABLE], [BUCKET], policy or StalePolicy(), findings_table=findings_table, all_lockfiles=all_lockfiles
    )
    return Sweeper(AwsSession(session(), endpoint_url=server.url), now=now).sweep(request)


def later(**delta: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(**delta)


# -- signs of life -----------------------------------------------------------------------------------


def test_a_state_written_under_the_lock_is_a_sign_of_life(backend, s3, ddb) -> None:
    """A lock taken two hours ago whose run just persisted its state is alive, not stale; silent for two
    hours after that write, it is stale and says since when."""
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", age=timedelta(hours=2), lock_id="slow-1"))
    put_state(s3, ddb, BUCKET, KEY, state_body(1))  # the run's snapshot (object, then digest)
    now = sweep_at(backend, later())
    assert kinds(now) == [] and now.unverified == []
    [held] = now.locks
    assert (held.verdict, held.last_sign_of_life["what"]) == ("alive", "state_written")

    silent = sweep_at(backend, later(hours=2))
    [stale] = silent.findings
    assert stale.kind is Kind.STALE_LOCK and stale.details["last_sign_of_life"]["what"] == "state_written"
    assert "no sign of life for 2h00m (since its state object was written at " in stale.message
    assert stale.details["age_seconds"] > 4 * 3600 - 60 and stale.details["quiet_seconds"] < 2 * 3600 + 60


def test_a_digest_write_seen_on_the_stream_is_a_sign_of_life_read_in_one_batch(backend, ddb, history) -> None:
    keys = [f"s{i}/terraform.tfstate" for i in range(3)]
    for key in keys:
        put_lock(ddb, BUCKET, key, lock_info(f"{BUCKET}/{key}", age=timedelta(hours=2)))
    history.digest_written(life_key(REGION, TABLE, BUCKET, keys[0]), f"{BUCKET}/{keys[0]}", later(minutes=-1))
    result = sweep_at(backend, later(), findings_table=FINDINGS)
    assert sorted(f.key or "" for f in result.findings) == keys[1:]  # keys[0] wrote its digest a minute ago
    assert {h.key: h.last_sign_of_life["what"] for h in result.locks}[keys[0]] == "digest_written"
    assert result.stats.api_calls["BatchGetItem"] == 1  # every held lock's record in one read
    assert kinds(sweep_at(backend, later())) == ["stale_lock"] * 3  # without the stack's table: no such evidence


# -- thresholds learned from the state's own history -----------------------------------------------------


def test_a_learned_threshold_alerts_long_before_stale_after_and_explains_itself(backend, ddb, history) -> None:
    key = life_key(REGION, TABLE, BUCKET, KEY)
    for i in range(5):
        assert history.record_hold(key, f"{BUCKET}/{KEY}", "apply", f"run-{i}", 40 + i, later())
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", age=timedelta(minutes=12), lock_id="dead-2"))
    assert kinds(sweep_at(backend, later())) == []  # the fixed 1h: not yet
    result = sweep_at(backend, later(), findings_table=FINDINGS)
    [stale] = result.findings
    assert stale.kind is Kind.STALE_LOCK and stale.details["threshold"]["learned"] is True
    assert stale.details["threshold_seconds"] == 600  # 3 x 44 s, raised to MinStaleAfter
    assert "this state's applies finish within 44s (p95 of 5 runs); this one has shown no sign of life for 12m" in stale.message
    # With learning off, the fixed threshold again.
    assert sweep_at(backend, later(), findings_table=FINDINGS, policy=StalePolicy(adaptive=False)).findings == []


def test_the_history_is_bounded_idempotent_and_expires(backend, history) -> None:
    key, now = life_key(REGION, TABLE, BUCKET, KEY), later()
    assert history.record_hold(key, f"{BUCKET}/{KEY}", "apply", "lock-a", 30, now)
    assert not history.record_hold(key, f"{BUCKET}/{KEY}", "apply", "lock-a", 30, now)  # redelivered: once
    for i in range(60):
        history.record_hold(key, f"{BUCKET}/{KEY}", "plan" if i % 2 else "apply", f"lock-{i}", i, now)
    life = history.read([key])[key]
    assert len(life.holds["apply"]) == 31 and len(life.holds["plan"]) == 30
    for i in range(60, 100):
        history.record_hold(key, f"{BUCKET}/{KEY}", "apply", f"lock-{i}", i, now)
    expected = [30.0] + [float(i) for i in range(0, 60, 2)] + [float(i) for i in range(60, 100)]
    assert history.read([key])[key].holds["apply"] == expected[-MAX_HOLDS:]  # the newest 50
    history.digest_written(key, f"{BUCKET}/{KEY}", now)
    history.digest_written(key, f"{BUCKET}/{KEY}", now - timedelta(minutes=5))  # an older record, redelivered
    assert history.read([key])[key].digest_written == now.replace(microsecond=0)
    item = client("dynamodb", backend).get_item(TableName=FINDINGS, Key={"Fingerprint": {"S": key}})["Item"]
    assert abs(int(item["ExpiresAt"]["N"]) - (now + HISTORY_TTL).timestamp()) < 5
    assert len(item["Holds_apply"]["S"]) < 700 and "Status" not in item  # never read as an alert


def test_the_stream_monitor_records_holds_and_digest_writes_once(backend, ddb, history) -> None:
    lock = parse_lock_info(lock_info(f"{BUCKET}/{KEY}", age=timedelta(seconds=95), lock_id="run-7"))
    aws = AwsSession(session(), endpoint_url=backend.url)
    store = DynamoAlertStore(aws, REGION, FINDINGS)
    stale = build.stale_lock(REGION, TABLE, BUCKET, KEY, lock, later(hours=2), timedelta(hours=1))
    interrupted = build.interrupted_write(stale, lock, "a" * 32, "b" * 32, later())
    assert open_one(store, interrupted, later(), later(seconds=-30)) is not None
    monitor = StreamMonitor(checker=Sweeper(aws), store=store, life=history)
    released = StreamEvent(LOCK_RELEASED, REGION, TABLE, BUCKET, KEY, lock, later())
    for _ in range(2):  # Lambda redelivers
        monitor.handle(released)
    monitor.handle(StreamEvent(DIGEST_WRITTEN, REGION, TABLE, BUCKET, KEY, at=later(seconds=-2)))
    key = life_key(REGION, TABLE, BUCKET, KEY)
    life = history.read([key])[key]
    [held] = life.holds["apply"]  # 95 s after the lock was taken, give or take the seconds a loaded machine adds
    assert list(life.holds) == ["apply"] and 95 <= held <= 100 and life.digest_written is not None
    fp = fingerprint(Kind.INTERRUPTED_WRITE, REGION, TABLE, BUCKET, KEY, "run-7")
    record = store.get(fp)
    assert record is not None and record.status == "closed"  # its lock is gone: what is left is drift


# -- the interrupted write ----------------------------------------------------------------------------------


def test_a_dead_run_between_its_state_and_digest_writes_is_an_interrupted_write(backend, s3, ddb) -> None:
    put_state(s3, ddb, BUCKET, KEY, state_body(1))
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", age=timedelta(seconds=30), lock_id="died-3", who="ci@runner-9"))
    written = state_body(2, secret="never-shown")
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=written)  # the run's state write; its digest write never came
    assert [(u.key, "died-3" in u.reason) for u in sweep_at(backend, later()).unverified] == [(KEY, True)]  # alive

    result = sweep_at(backend, later(hours=2))
    assert kinds(result) == ["interrupted_write"] and result.unverified == []  # instead of stale_lock
    [finding] = result.findings
    d = finding.to_dict()["details"]  # as JSON and emails show it: the commands as shell lines
    assert finding.severity.value == "critical" and finding.lock_id == "died-3"
    assert (d["stored_md5"], d["actual_md5"]) == (md5(state_body(1)), md5(written))
    assert d["lock"]["who"] == "ci@runner-9" and d["lock"]["id"] == "died-3" and d["state_written_at"]
    assert "The state holds what the dead run had applied so far" in finding.message
    release, digest, plan = d["commands"]
    assert release == f"tfjanitor unlock --region {REGION} --id died-3 --table {TABLE} -- {BUCKET}/{KEY}"
    assert digest.startswith("aws dynamodb put-item") and "Digest = :d" in digest and md5(written) in digest
    assert md5(state_body(1)) in digest and plan == "terraform plan"
    assert "never-shown" not in json.dumps(result.to_dict())
    assert [h.interrupted_write for h in result.locks] == [True]


# -- drift forensics ----------------------------------------------------------------------------------------


def test_drift_in_a_versioned_bucket_names_terraforms_last_write(backend, s3, ddb) -> None:
    put_state(s3, ddb, BUCKET, KEY, state_body(1))  # Terraform's first write: a plain single-part upload
    ours = state_body(2, size=6 * 1024 * 1024)  # Terraform's last write: over 5 MiB, multipart (ETag "-2")
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=KEY)
    parts = [
        s3.upload_part(Bucket=BUCKET, Key=KEY, UploadId=upload["UploadId"], PartNumber=n, Body=chunk)["ETag"]
        for n, chunk in ((1, ours[: 5 * 1024 * 1024]), (2, ours[5 * 1024 * 1024 :]))
    ]
    mine = s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key=KEY,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(parts, 1)]},
    )["VersionId"]
    ddb.put_item(TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/{KEY}-md5"}, "Digest": {"S": md5(ours)}})
    by_hand = s3.put_object(Bucket=BUCKET, Key=KEY, Body=state_body(3))
    overwritten = s3.head_object(Bucket=BUCKET, Key=KEY)["LastModified"]

    result = sweep_at(backend, later())
    [drift] = result.findings
    assert drift.kind is Kind.DIGEST_DRIFT
    assert drift.details["matching_version"] == {
        "version_id": mine,
        "size": len(ours),
        "last_modified": drift.details["matching_version"]["last_modified"],
    }
    assert drift.details["overwritten_at"] == overwritten.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"Terraform's last write is version {mine}" in drift.message and "outside Terraform" in drift.message
    assert result.stats.downloads == 2  # the current object, and the multipart version (its ETag is no MD5)
    shown = drift.to_dict()["details"]
    [accept] = shown["commands"]
    assert accept.startswith("aws dynamodb put-item") and "Digest = :d" in accept
    restore, _leftover = shown["alternatives"]
    assert f"restore Terraform's last write, version {mine}" in restore["label"]
    [copy] = restore["commands"]
    params = json.loads(copy.split("--cli-input-json ", 1)[1].strip("'"))
    assert params == {
        "Bucket": BUCKET,
        "Key": KEY,
        "CopySource": {"Bucket": BUCKET, "Key": KEY, "VersionId": mine},
        "IfMatch": by_hand["ETag"],
    }
    # The restore, as printed (moto ignores If-Match on CopyObject; AWS enforces it), makes the state whole.
    s3.copy_object(**params)
    assert kinds(sweep_at(backend, later())) == []


def test_drift_in_an_unversioned_bucket_has_no_version_to_restore(emulator) -> None:
    create_bucket(emulator, "plain-state")
    s3, ddb = client("s3", emulator), client("dynamodb", emulator)
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    put_state(s3, ddb, "plain-state", KEY, state_body(1))
    s3.put_object(Bucket="plain-state", Key=KEY, Body=state_body(2))
    request = SweepRequest(REGION, [TABLE])
    [drift] = Sweeper(AwsSession(session(), endpoint_url=emulator.url)).sweep(request).findings
    assert drift.details["matching_version"] is None and "the bucket is not versioned" in drift.message
    assert (
        Sweeper(AwsSession(session(), endpoint_url=emulator.url)).sweep(request).stats.api_calls.get("ListObjectVersions") is None
    )  # never versioned: nothing to list


# -- tfjanitor locks -------------------------------------------------------------------------------------------


def locks(server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
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
            server.url,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_locks_lists_every_lock_with_its_verdict(backend, s3, ddb) -> None:
    put_lock(ddb, BUCKET, "dead/terraform.tfstate", lock_info("x", age=timedelta(hours=2), lock_id="dead-4"))
    put_lock(ddb, BUCKET, "live/terraform.tfstate", lock_info("x", age=timedelta(seconds=5), lock_id="live-4"))
    s3.put_object(
        Bucket=BUCKET,
        Key="file/terraform.tfstate.tflock",
        Body=lock_info("x", age=timedelta(minutes=30), lock_id="quiet-4", operation="OperationTypePlan").encode(),
    )
    proc = locks(backend, "--format", "json")
    assert proc.returncode == 0, proc.stderr  # stale locks alone: it lists, scan judges
    doc = json.loads(proc.stdout)
    assert set(doc) >= {"region", "complete", "locks", "errors"} and doc["complete"] is True
    rows = {row["lock_id"]: row for row in doc["locks"]}
    assert {k: rows[k]["verdict"] for k in rows} == {"dead-4": "stale", "live-4": "alive", "quiet-4": "stale"}
    assert set(rows["dead-4"]) >= {
        "bucket",
        "key",
        "table",
        "lock_id",
        "operation",
        "who",
        "created",
        "last_sign_of_life",
        "threshold_seconds",
        "verdict",
    }
    assert rows["quiet-4"]["table"] is None and rows["quiet-4"]["threshold_seconds"] == 900  # a plan's lock file
    assert rows["live-4"]["last_sign_of_life"]["what"] == "created" and rows["dead-4"]["threshold_seconds"] == 3600
    table = locks(backend, "--stale-after", "3h")
    assert table.returncode == 0
    # Silent for 2h of 3h: quiet (past a third of its threshold); the plan's .tflock: its ceiling is 15m.
    assert "3 locks held (1 stale, 1 quiet, 1 alive)" in table.stdout
    assert "VERDICT" in table.stdout and "dead-4" in table.stdout and "fixed: 3h00m" in table.stdout
    missing = locks(backend, "--history-table", "no-such-table", "--format", "json")
    assert missing.returncode == 2 and json.loads(missing.stdout)["errors"][0]["check"] == "read_history"
