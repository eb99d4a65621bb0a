"""Build findings: the human sentence and the exact fix for each kind (pure code).

Every fix is a command a user can paste: arguments are shell-quoted, so keys
with spaces, quotes or unicode survive. Nothing here ever sees state contents.
"""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timedelta
from typing import Any

from tfjanitor.checks.regions import cross_region_cost
from tfjanitor.durations import human_duration
from tfjanitor.model import Finding, Kind, Severity
from tfjanitor.terraform import DIGEST_SUFFIX, LOCKFILE_SUFFIX, LockInfo, format_time


def _q(value: str) -> str:
    return shlex.quote(value)


def _key_json(lock_id: str) -> str:
    return json.dumps({"LockID": {"S": lock_id}}, ensure_ascii=False)


def _lock_details(lock: LockInfo, now: datetime, threshold: timedelta) -> dict[str, Any]:
    return {
        **lock.summary(),
        "operation_class": lock.operation_class,
        "age_seconds": int(lock.age_seconds(now)),
        "threshold_seconds": int(threshold.total_seconds()),
        # The lock exactly as stored (Terraform's LockInfo JSON: no state contents). A release is
        # conditional on these bytes, and the record of a release keeps them.
        "raw": lock.raw,
    }


def stale_lock(
    region: str, table: str, bucket: str, key: str, lock: LockInfo, now: datetime, threshold: timedelta
) -> Finding:
    age = human_duration(lock.age_seconds(now))
    lock_id_key = f"{bucket}/{key}"
    return Finding(
        kind=Kind.STALE_LOCK,
        severity=Severity.WARNING,
        region=region,
        table=table,
        bucket=bucket,
        key=key,
        lock_id=lock.id,
        message=(
            f"State {lock_id_key} has been locked for {age} by {lock.who or 'unknown'} "
            f"({lock.operation or 'unknown operation'}, Terraform {lock.version or '?'}), "
            f"longer than the {human_duration(threshold.total_seconds())} threshold: "
            "the run that took it has probably died."
        ),
        details=_lock_details(lock, now, threshold),
        fix=[
            f"Check that no terraform run by {lock.who or 'the holder'} is still alive, then, from the "
            f"working directory of that configuration: terraform force-unlock -force {lock.id}",
            "Or without a working directory (deletes the item only if it still holds this lock): "
            f"aws dynamodb delete-item --region {_q(region)} --table-name {_q(table)} "
            f"--key {_q(_key_json(lock_id_key))} --condition-expression 'contains(Info, :id)' "
            f"--expression-attribute-values {_q(json.dumps({':id': {'S': lock.id}}))}",
        ],
    )


def stale_lockfile(
    region: str, bucket: str, key: str, etag: str, lock: LockInfo, now: datetime, threshold: timedelta
) -> Finding:
    age = human_duration(lock.age_seconds(now))
    return Finding(
        kind=Kind.STALE_LOCKFILE,
        severity=Severity.WARNING,
        region=region,
        table=None,
        bucket=bucket,
        key=key,
        lock_id=lock.id,
        message=(
            f"State s3://{bucket}/{key} has been locked by s3://{bucket}/{key}{LOCKFILE_SUFFIX} for {age} "
            f"by {lock.who or 'unknown'} ({lock.operation or 'unknown operation'}), longer than the "
            f"{human_duration(threshold.total_seconds())} threshold: the run that took it has probably died."
        ),
        details={**_lock_details(lock, now, threshold), "lockfile": f"{key}{LOCKFILE_SUFFIX}", "etag": etag},
        fix=[
            f"Check that no terraform run by {lock.who or 'the holder'} is still alive, then, from the "
            f"working directory of that configuration: terraform force-unlock -force {lock.id}",
            "Or without a working directory (deletes the lock object only if it is unchanged): "
            f"aws s3api delete-object --region {_q(region)} --bucket {_q(bucket)} "
            f"--key {_q(key + LOCKFILE_SUFFIX)} --if-match {_q(etag)}",
        ],
    )


def digest_drift(
    region: str,
    table: str,
    bucket: str,
    key: str,
    stored: str,
    actual: str,
    etag: str,
    size: int,
    has_lockfile_history: bool = False,
    locked_by: dict[str, Any] | None = None,
) -> Finding:
    digest_id = f"{bucket}/{key}{DIGEST_SUFFIX}"
    also_locked = (
        f" The state is also locked (lock {locked_by.get('id')}, {locked_by.get('operation') or 'unknown operation'} "
        f"by {locked_by.get('who') or 'unknown'} since {locked_by.get('created')}), but the object is older than "
        "that lock: the mismatch predates the run holding it, which is not writing it now."
        if locked_by else ""
    )
    item = {"LockID": {"S": digest_id}, "Digest": {"S": actual}}
    return Finding(
        kind=Kind.DIGEST_DRIFT,
        severity=Severity.CRITICAL,
        region=region,
        table=table,
        bucket=bucket,
        key=key,
        lock_id=None,
        message=(
            f"The digest stored in {table} for {bucket}/{key} does not match the state object in S3: "
            "the next terraform run that locks it with this table "
            '(dynamodb_table) will fail with "state data in S3 does not have the expected content".'
            + also_locked
        ),
        details={
            "stored_md5": stored,
            "actual_md5": actual,
            "etag": etag,
            "size": size,
            "digest_lock_id": digest_id,
            "lockfile_present": has_lockfile_history,
            "locked_by": locked_by,
        },
        fix=[
            f"Find out which is right: the object (edited by hand, pushed with -lock=false) or the digest "
            f"(a failed upload). Versions: aws s3api list-object-versions --region {_q(region)} "
            f"--bucket {_q(bucket)} --prefix {_q(key)}",
            "If the object in S3 is the state you want, store its digest (what Terraform's own error "
            f"suggests): aws dynamodb put-item --region {_q(region)} --table-name {_q(table)} "
            f"--item {_q(json.dumps(item, ensure_ascii=False))}",
            "If the object is wrong, restore the version whose MD5 is the stored digest "
            f"({stored}) with aws s3api copy-object --copy-source, under a terraform lock.",
            "If this state now locks with use_lockfile only (no dynamodb_table), the digest is a leftover "
            f"of that migration and nothing reads it: delete it with aws dynamodb delete-item --region {_q(region)} "
            f"--table-name {_q(table)} --key {_q(_key_json(digest_id))}",
        ],
    )


def orphan_digest(
    region: str, table: str, bucket: str, key: str, stored: str, bucket_missing: bool = False
) -> Finding:
    digest_id = f"{bucket}/{key}{DIGEST_SUFFIX}"
    where = f"bucket {bucket} does not exist" if bucket_missing else f"s3://{bucket}/{key} does not exist"
    return Finding(
        kind=Kind.ORPHAN_DIGEST,
        severity=Severity.WARNING,
        region=region,
        table=table,
        bucket=bucket,
        key=key,
        lock_id=None,
        message=(
            f"{table} holds a digest for {bucket}/{key} but {where}: terraform init or plan on that "
            "state will fail its checksum check until the digest is removed or the object restored."
        ),
        details={"stored_md5": stored, "digest_lock_id": digest_id, "bucket_missing": bucket_missing},
        fix=[
            "If the state was deleted on purpose, remove its digest: "
            f"aws dynamodb delete-item --region {_q(region)} --table-name {_q(table)} "
            f"--key {_q(_key_json(digest_id))}",
            "If it was deleted by mistake and the bucket is versioned, restore the latest version: "
            f"aws s3api list-object-versions --region {_q(region)} --bucket {_q(bucket)} --prefix {_q(key)}",
        ],
    )


def create_lock_table_command(region: str, table: str) -> str:
    """The one command that makes a Terraform lock table (key LockID, String), protected from deletion."""
    attributes = json.dumps([{"AttributeName": "LockID", "AttributeType": "S"}], separators=(",", ":"))
    key_schema = json.dumps([{"AttributeName": "LockID", "KeyType": "HASH"}], separators=(",", ":"))
    return (
        f"aws dynamodb create-table --region {_q(region)} --table-name {_q(table)} "
        f"--attribute-definitions {_q(attributes)} --key-schema {_q(key_schema)} "
        "--billing-mode PAY_PER_REQUEST --deletion-protection-enabled"
    )


def cross_region_bucket(
    region: str,
    table: str,
    bucket: str,
    bucket_region: str,
    states: int,
    state_sizes: list[int] | None = None,
    applies_per_month: float | None = None,
    rate_source: str = "",
) -> Finding:
    cost = cross_region_cost(region, bucket_region, list(state_sizes or []), applies_per_month, rate_source)
    if cost.extra_ms_per_lock_operation is not None:
        slower = (
            f" (~{cost.extra_ms_per_lock_operation} ms more per lock operation, ~"
            f"{cost.extra_ms_per_apply / 1000:.1f} s per apply: estimated)"  # type: ignore[operator]
        )
    else:
        slower = ""
    return Finding(
        kind=Kind.CROSS_REGION_BUCKET,
        severity=Severity.WARNING,
        region=region,
        table=table,
        bucket=bucket,
        key=None,
        lock_id=None,
        message=(
            f"Lock table {table} is in {region} but bucket {bucket} (named by {states} of its items) "
            f"is in {bucket_region}: every lock and digest operation crosses regions{slower}."
        ),
        details={"table_region": region, "bucket_region": bucket_region, "states": states, **cost.to_dict()},
        fix=[
            f"1. Create a lock table in {bucket_region}: {create_lock_table_command(bucket_region, table)}",
            f'2. In every configuration using s3://{bucket}, set region = "{bucket_region}" in the backend block '
            "(and drop any endpoints.dynamodb / dynamodb_endpoint override pointing elsewhere), then run "
            "terraform init -migrate-state while no run holds a lock: the next state write stores its digest "
            "in the new table.",
            f"3. Then remove the old digests from {table} in {region}: they are never updated again "
            "(aws dynamodb delete-item per <bucket>/<key>-md5 item).",
            "Or, on Terraform >= 1.10, lock with the bucket itself: set use_lockfile = true in the backend "
            "block, keep dynamodb_table until every configuration has it, then remove dynamodb_table.",
        ],
    )


def malformed_item(region: str, table: str, lock_id: str | None, reason: str, foreign: bool) -> Finding:
    bucket: str | None = None
    key: str | None = None
    if lock_id and "/" in lock_id:
        bucket, _, key = lock_id.partition("/")
    fix = (
        [
            f"Inspect it: aws dynamodb get-item --region {_q(region)} --table-name {_q(table)} "
            f"--key {_q(_key_json(lock_id))}"
        ]
        if lock_id
        else [f"Find it with aws dynamodb scan --region {_q(region)} --table-name {_q(table)}"]
    )
    if foreign:
        fix.append("Keep other workloads out of the lock table: give them a table of their own.")
    else:
        fix.append(
            "If no terraform run wrote it, delete it with aws dynamodb delete-item (terraform force-unlock "
            "cannot: it fails to parse a broken Info)."
        )
    return Finding(
        kind=Kind.MALFORMED_ITEM,
        severity=Severity.INFO if foreign else Severity.WARNING,
        region=region,
        table=table,
        bucket=bucket,
        key=key,
        lock_id=None,
        message=f"Item {lock_id!r} in {table} is not a Terraform lock or digest: {reason}.",
        details={"item_lock_id": lock_id, "reason": reason, "foreign": foreign, "source": "dynamodb"},
        fix=fix,
    )


def malformed_lockfile(region: str, bucket: str, key: str, reason: str, last_modified: datetime) -> Finding:
    return Finding(
        kind=Kind.MALFORMED_ITEM,
        severity=Severity.WARNING,
        region=region,
        table=None,
        bucket=bucket,
        key=key,
        lock_id=None,
        message=(
            f"Lock object s3://{bucket}/{key}{LOCKFILE_SUFFIX} is not a Terraform lock ({reason}); "
            "while it exists every terraform run on that state fails to lock."
        ),
        details={"reason": reason, "source": "lockfile", "last_modified": format_time(last_modified)},
        fix=[
            f"Inspect, then delete it: aws s3api delete-object --region {_q(region)} --bucket {_q(bucket)} "
            f"--key {_q(key + LOCKFILE_SUFFIX)}"
        ],
    )
