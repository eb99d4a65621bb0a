"""The sweep against a real HTTP emulator: each finding kind, and never a false all-clear."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import boto3
from botocore.awsrequest import AWSResponse

from tests.conftest import create_bucket, create_lock_table
from tests.integration.conftest import BUCKET, REGION, TABLE, kinds, session, sweep
from tests.support.builders import lock_info, md5, put_lock, put_state, state_body
from tests.support.faults import http_headers
from tfjanitor.aws.session import AwsSession
from tfjanitor.model import Kind, Severity, StalePolicy


def test_healthy_backend_is_clean_and_proven_by_etag_without_downloads(backend, s3, ddb) -> None:
    for i in range(5):
        put_state(s3, ddb, BUCKET, f"team{i}/terraform.tfstate", state_body(i))
    result = sweep(backend)
    assert result.findings == [] and result.errors == []
    assert result.complete and result.exit_code == 0
    assert result.stats.states == 5 and result.stats.etag_proven == 5
    assert result.stats.downloads == 0 and result.stats.bytes_downloaded == 0
    # Bulk reads only: one Scan, one listing, one location call.
    assert result.stats.api_calls == {"Scan": 1, "ListObjectsV2": 1, "GetBucketLocation": 1}


def test_stale_lock_uses_the_operation_threshold(backend, s3, ddb) -> None:
    # Runs that died before their first state write (no object written since: no other sign of life).
    apply_id = "0a1b2c3d-0000-1111-2222-333344445555"
    put_lock(ddb, BUCKET, "apply/terraform.tfstate", lock_info("x", age=timedelta(hours=2), lock_id=apply_id))
    put_lock(ddb, BUCKET, "plan/terraform.tfstate", lock_info("x", age=timedelta(minutes=20), operation="OperationTypePlan"))
    put_lock(ddb, BUCKET, "fresh/terraform.tfstate", lock_info("x", age=timedelta(minutes=20)))
    result = sweep(backend)
    stale = {f.key: f for f in result.findings if f.kind is Kind.STALE_LOCK}
    assert set(stale) == {"apply/terraform.tfstate", "plan/terraform.tfstate"}
    finding = stale["apply/terraform.tfstate"]
    assert finding.lock_id == apply_id and finding.severity is Severity.WARNING
    assert finding.details["operation"] == "OperationTypeApply" and finding.details["who"] == "ci@runner-7"
    assert 7190 < finding.details["age_seconds"] < 7300
    assert finding.command_lines() == [
        f"tfjanitor unlock --region {REGION} --id {apply_id} --table {TABLE} -- {BUCKET}/apply/terraform.tfstate"
    ]
    assert finding.alternative_lines()[-1]["commands"] == [f"terraform force-unlock -force -- {apply_id}"]
    assert result.exit_code == 1
    assert result.stats.tables[TABLE].active_locks == 3
    # Raising both thresholds quiets them.
    calm = sweep(backend, policy=StalePolicy(default=timedelta(hours=3), read_only=timedelta(hours=1)))
    assert kinds(calm) == []


def test_digest_drift_is_reported_with_both_digests_and_no_state_contents(backend, s3, ddb) -> None:
    original = state_body(1, secret="hunter2-original")
    put_state(s3, ddb, BUCKET, "dev/terraform.tfstate", original)
    edited = state_body(2, secret="hunter2-edited")
    s3.put_object(Bucket=BUCKET, Key="dev/terraform.tfstate", Body=edited)  # hand edit, digest left behind
    result = sweep(backend)
    assert kinds(result) == ["digest_drift"]
    drift = result.findings[0]
    assert drift.severity is Severity.CRITICAL
    assert drift.details["stored_md5"] == md5(original)
    assert drift.details["actual_md5"] == md5(edited)
    assert (drift.bucket, drift.key, drift.table, drift.region) == (BUCKET, "dev/terraform.tfstate", TABLE, REGION)
    assert result.stats.downloads == 1 and result.stats.bytes_downloaded == len(edited)
    dumped = json.dumps(result.to_dict())
    assert "hunter2" not in dumped
    # The fix the finding gives makes the next sweep clean.
    ddb.put_item(
        TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/dev/terraform.tfstate-md5"}, "Digest": {"S": drift.details["actual_md5"]}}
    )
    assert kinds(sweep(backend)) == []


def test_mismatch_while_locked_is_not_drift(backend, s3, ddb) -> None:
    """Terraform writes the object before the digest, under the lock: not drift yet."""
    put_state(s3, ddb, BUCKET, "dev/terraform.tfstate", state_body(1))
    put_lock(ddb, BUCKET, "dev/terraform.tfstate", lock_info("x"))
    s3.put_object(Bucket=BUCKET, Key="dev/terraform.tfstate", Body=state_body(2))
    result = sweep(backend)
    assert kinds(result) == [] and result.complete
    assert result.stats.skipped_locked == 1 and result.stats.downloads == 0


def test_mismatch_while_lockfile_held_is_not_drift(backend, s3, ddb) -> None:
    put_state(s3, ddb, BUCKET, "dev/terraform.tfstate", state_body(1))
    s3.put_object(Bucket=BUCKET, Key="dev/terraform.tfstate.tflock", Body=lock_info("x").encode())
    s3.put_object(Bucket=BUCKET, Key="dev/terraform.tfstate", Body=state_body(2))
    assert kinds(sweep(backend)) == []


def _race(server, hook_event: str, action) -> AwsSession:
    """Run ``action`` once, as another writer would, when the sweep reaches ``hook_event``."""
    aws = AwsSession(session(), endpoint_url=server.url)
    fired: list[bool] = []

    def hook(**_: object) -> None:
        if not fired:
            fired.append(True)
            action()

    aws.s3(REGION).meta.events.register(hook_event, hook)
    return aws


def test_apply_that_finishes_between_download_and_confirmation_is_not_drift(backend, s3, ddb) -> None:
    put_state(s3, ddb, BUCKET, "dev/terraform.tfstate", state_body(1))
    s3.put_object(Bucket=BUCKET, Key="dev/terraform.tfstate", Body=state_body(2))  # object written...

    def digest_written() -> None:  # ...and the digest follows while we download
        ddb.put_item(
            TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/dev/terraform.tfstate-md5"}, "Digest": {"S": md5(state_body(2))}}
        )

    aws = _race(backend, "after-call.s3.GetObject", digest_written)
    result = sweep(backend, aws=aws)
    assert kinds(result) == [] and result.complete


def test_lock_taken_between_download_and_confirmation_is_not_drift(backend, s3, ddb) -> None:
    put_state(s3, ddb, BUCKET, "dev/terraform.tfstate", state_body(1))
    s3.put_object(Bucket=BUCKET, Key="dev/terraform.tfstate", Body=state_body(2))
    aws = _race(backend, "after-call.s3.GetObject", lambda: put_lock(ddb, BUCKET, "dev/terraform.tfstate", lock_info("x")))
    result = sweep(backend, aws=aws)
    assert kinds(result) == [] and result.stats.skipped_locked == 1


def test_multipart_etag_is_proven_by_hashing_the_body(backend, s3, ddb) -> None:
    """Bodies over 5 MiB are multipart uploads: their ETag is not an MD5."""
    part1, part2 = b"a" * (5 * 1024 * 1024), b'{"serial": 1}'
    body = part1 + part2
    key = "big/terraform.tfstate"
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key)
    etags = [
        s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload["UploadId"], PartNumber=n, Body=part)["ETag"]
        for n, part in ((1, part1), (2, part2))
    ]
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(etags, 1)]},
    )
    assert s3.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"').endswith("-2")
    ddb.put_item(TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/{key}-md5"}, "Digest": {"S": md5(body)}})
    result = sweep(backend)
    assert kinds(result) == []
    assert result.stats.downloads == 1 and result.stats.bytes_downloaded == len(body)
    # ...and a real drift behind a multipart ETag is still caught.
    ddb.put_item(TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/{key}-md5"}, "Digest": {"S": md5(b"other")}})
    drift = sweep(backend)
    assert kinds(drift) == ["digest_drift"] and drift.findings[0].details["etag"].endswith("-2")


def test_orphan_digest_and_missing_bucket(backend, s3, ddb) -> None:
    ddb.put_item(TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/gone/terraform.tfstate-md5"}, "Digest": {"S": md5(b"x")}})
    ddb.put_item(TableName=TABLE, Item={"LockID": {"S": "no-such-bucket/a.tfstate-md5"}, "Digest": {"S": md5(b"y")}})
    result = sweep(backend)
    orphans = {(f.bucket, f.key): f for f in result.findings if f.kind is Kind.ORPHAN_DIGEST}
    assert set(orphans) == {(BUCKET, "gone/terraform.tfstate"), ("no-such-bucket", "a.tfstate")}
    assert orphans[("no-such-bucket", "a.tfstate")].details["bucket_missing"] is True
    assert result.complete


def test_cross_region_bucket(backend, s3, ddb) -> None:
    create_bucket(backend, "tfstate-virginia", "us-east-1")
    create_bucket(backend, "tfstate-frankfurt", "eu-central-1")
    east = boto3.client("s3", region_name="us-east-1", endpoint_url=backend.url, aws_access_key_id="t", aws_secret_access_key="t")
    put_state(east, ddb, "tfstate-virginia", "a.tfstate", state_body())
    put_state(east, ddb, "tfstate-virginia", "b.tfstate", state_body(2))
    put_state(s3, ddb, BUCKET, "c.tfstate", state_body(3))
    result = sweep(backend, buckets=["tfstate-frankfurt"])  # explicit buckets are not named by the table
    assert kinds(result) == ["cross_region_bucket"]
    finding = result.findings[0]
    assert finding.bucket == "tfstate-virginia" and finding.details["bucket_region"] == "us-east-1"
    assert finding.details["states"] == 2 and finding.details["table_region"] == REGION


def test_garbage_items_are_reported_and_the_rest_still_checked(backend, s3, ddb) -> None:
    ddb.put_item(TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/broken.tfstate"}, "Info": {"S": "{"}})
    ddb.put_item(TableName=TABLE, Item={"LockID": {"S": "app-cache-entry"}, "Value": {"N": "3"}})
    ddb.put_item(TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/x.tfstate-md5"}, "Digest": {"N": "1"}})
    put_state(s3, ddb, BUCKET, "ok.tfstate", state_body())
    s3.put_object(Bucket=BUCKET, Key="ok.tfstate", Body=state_body(9))  # drift in the same table
    result = sweep(backend)
    assert kinds(result) == ["digest_drift", "malformed_item", "malformed_item", "malformed_item"]
    by_id = {f.details.get("item_lock_id"): f for f in result.findings if f.kind is Kind.MALFORMED_ITEM}
    assert by_id["app-cache-entry"].severity is Severity.INFO
    assert by_id[f"{BUCKET}/broken.tfstate"].severity is Severity.WARNING
    assert result.complete and result.stats.malformed_items == 3


def test_missing_table_makes_the_sweep_incomplete_never_healthy(backend, s3, ddb) -> None:
    put_state(s3, ddb, BUCKET, "ok.tfstate", state_body())
    result = sweep(backend, tables=[TABLE, "no-such-table"])
    assert not result.complete and result.exit_code == 2
    assert [(e.check, e.target, e.code) for e in result.errors] == [("scan_table", "no-such-table", "ResourceNotFoundException")]
    assert "does not exist" in result.errors[0].message
    assert result.stats.etag_proven == 1  # the other table was still checked


def test_unreadable_bucket_is_an_error_not_an_all_clear(backend, s3, ddb) -> None:
    create_bucket(backend, "locked-down")
    put_state(s3, ddb, "locked-down", "secret.tfstate", state_body())
    s3.put_object(Bucket="locked-down", Key="secret.tfstate", Body=state_body(5))  # would be drift
    put_state(s3, ddb, BUCKET, "ok.tfstate", state_body())
    s3.put_bucket_policy(
        Bucket="locked-down",
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                # moto enforces this one (see field notes): every request to the bucket is denied
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": ["arn:aws:s3:::locked-down", "arn:aws:s3:::locked-down/*"],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            }
        ),
    )
    result = sweep(backend)
    assert not result.complete and result.exit_code == 2
    # moto denies the GetObject (real S3 would deny the listing first): either way it is an error
    assert [(e.check, e.code) for e in result.errors] == [("read_state", "AccessDenied")]
    assert result.errors[0].target == "locked-down/secret.tfstate"
    assert "access denied" in result.errors[0].message
    assert kinds(result) == []  # not reported as drift, not reported as healthy either
    assert result.stats.etag_proven == 1


class _Raw:
    """The bit of a urllib3 response botocore reads."""

    def __init__(self, data: bytes):
        self._data = data

    def stream(self, *_: object, **__: object):
        yield self._data


def test_throttling_past_retries_is_recorded(backend, s3, ddb) -> None:
    put_state(s3, ddb, BUCKET, "ok.tfstate", state_body())
    aws = AwsSession(session(), endpoint_url=backend.url, max_attempts=2)  # keep the test quick

    def throttle(request, **_: object):
        body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException", "message": "Rate exceeded"})
        return AWSResponse(request.url, 400, http_headers({"Content-Type": "application/x-amz-json-1.0"}), _Raw(body.encode()))

    client = aws.dynamodb(REGION)
    client.meta.events.register("before-send.dynamodb.Scan", throttle)
    result = sweep(backend, aws=aws)
    assert not result.complete
    assert result.errors[0].code == "ThrottlingException"
    assert "throttled" in result.errors[0].message
    assert result.stats.retries >= 1


def test_stale_and_malformed_lockfiles(backend, s3) -> None:
    stale_id = "11112222-3333-4444-5555-666677778888"
    s3.put_object(Bucket=BUCKET, Key="lf/terraform.tfstate", Body=state_body())
    s3.put_object(
        Bucket=BUCKET,
        Key="lf/terraform.tfstate.tflock",
        Body=lock_info(f"{BUCKET}/lf/terraform.tfstate", age=timedelta(hours=3), lock_id=stale_id).encode(),
    )
    s3.put_object(Bucket=BUCKET, Key="junk/terraform.tfstate.tflock", Body=b"\x00garbage")
    policy = StalePolicy(default=timedelta(seconds=0.001), read_only=timedelta(seconds=0.001))
    result = sweep(backend, tables=[TABLE], buckets=[BUCKET], policy=policy)
    by_kind = {f.kind: f for f in result.findings}
    assert set(by_kind) == {Kind.STALE_LOCKFILE, Kind.MALFORMED_ITEM}
    stale = by_kind[Kind.STALE_LOCKFILE]
    assert stale.lock_id == stale_id and stale.key == "lf/terraform.tfstate" and stale.table is None
    assert stale.command_lines() == [
        f"tfjanitor unlock --region {REGION} --id {stale_id} --bucket {BUCKET} --lockfile -- lf/terraform.tfstate"
    ]
    assert '"IfMatch":' in stale.alternative_lines()[0]["commands"][0]  # without tfjanitor: only if unchanged
    junk = by_kind[Kind.MALFORMED_ITEM]
    assert junk.details["source"] == "lockfile" and '"IfMatch":' in junk.command_lines()[0]
    assert result.stats.lockfiles == 2


def test_unicode_and_md5_suffixed_keys_round_trip(backend, s3, ddb) -> None:
    for key in ("팀 상태/dev terraform.tfstate", "apps/cache-md5", "env:/staging/dev/terraform.tfstate"):
        put_state(s3, ddb, BUCKET, key, state_body())
        s3.put_object(Bucket=BUCKET, Key=key, Body=state_body(7))
    result = sweep(backend)
    assert sorted(f.key or "" for f in result.findings) == sorted(  # a keyless finding ("") would match none
        ["팀 상태/dev terraform.tfstate", "apps/cache-md5", "env:/staging/dev/terraform.tfstate"]
    )
    assert all(f.kind is Kind.DIGEST_DRIFT for f in result.findings)


def test_two_tables_in_one_sweep(backend, s3, ddb) -> None:
    create_lock_table(backend, "other-lock-table")
    put_state(s3, ddb, BUCKET, "a.tfstate", state_body(), table="other-lock-table", digest=hashlib.md5(b"z").hexdigest())
    result = sweep(backend, tables=[TABLE, "other-lock-table"])
    assert [(f.kind.value, f.table) for f in result.findings] == [("digest_drift", "other-lock-table")]
