"""Build findings: the human sentence, the explanation, and the exact fix for each kind (pure code).

Fix commands are argument lists (``Finding.commands`` / ``alternatives``), turned into shell text only
by ``commands.shell_line``: keys, lock IDs and names from a lock table are hostile input, and a command
line pasted at 3 a.m. must run exactly what it says. Every write a fix makes is conditional on the value
the sweep saw (a digest, a lock's exact ``Info``, a ``.tflock``'s ETag). Nothing here ever sees state
contents.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

# The digest's findings are built in checks/drift_findings.py, and found here with every other kind's builder
# (an explicit re-export: mypy's no_implicit_reexport).
from tfjanitor.checks.drift_findings import digest_drift as digest_drift  # noqa: PLC0414
from tfjanitor.checks.drift_findings import interrupted_write as interrupted_write  # noqa: PLC0414
from tfjanitor.checks.fixes import (
    Argv,
    create_lock_table_command,
    delete_item_exactly,
    digest_delete,
    dynamodb,
    force_unlock_command,
    item_key,
    list_versions,
    select_workspace,
    tools,
    with_fix,
    working_dir,
)
from tfjanitor.checks.liveness import FIRST_SEEN, SignOfLife, Threshold, clock_ahead, explain, last_sign_of_life
from tfjanitor.checks.regions import cross_region_cost
from tfjanitor.checks.runners import CI_CLEANUP, looks_like_ci_runner
from tfjanitor.commands import json_arg, s3api_objects, unlock_command
from tfjanitor.durations import human_duration
from tfjanitor.model import Finding, Kind, Severity
from tfjanitor.terraform import DIGEST_SUFFIX, LOCKFILE_SUFFIX, LockInfo, format_time, raw_sha256
from tfjanitor.untrusted import FIELD_LIMIT, cap

VALUE_IN_COMMAND_LIMIT = 4 * FIELD_LIMIT  # characters of lock-table values one command may carry


# Labels are our prose only (chat cards show them as prose): the state's place is in the fix text.
FORCE_UNLOCK_LABEL = (
    "With Terraform's own release (OpenTofu: tofu force-unlock), run from the state's working directory, its workspace selected"
)


def _threshold(threshold: Threshold | timedelta, lock: LockInfo) -> Threshold:
    """A bare duration is a fixed threshold (how callers gave it before thresholds were learned)."""
    if isinstance(threshold, Threshold):
        return threshold
    return Threshold(threshold.total_seconds(), False, threshold.total_seconds(), lock.operation_class)


def held_for(lock: LockInfo, sign: SignOfLife, now: datetime) -> float:
    """How long the lock has been held, as far as is known: since its Created, or, when that is ahead of this clock,
    at least since tfjanitor first saw it."""
    return sign.quiet_seconds(now) if sign.what == FIRST_SEEN else lock.age_seconds(now)


def _ahead(lock: LockInfo, now: datetime) -> str:
    """What a finding says of a lock whose Created is ahead of this clock (nothing for any other)."""
    ahead = clock_ahead(lock.created, now)
    if not ahead:
        return ""
    return (
        f" Its Created ({format_time(lock.created)}) is {human_duration(ahead)} ahead of this clock: the clock of "
        f"the machine that took it is wrong, so its silence is counted from when tfjanitor first saw it."
    )


def _lock_details(lock: LockInfo, now: datetime, threshold: Threshold, sign: SignOfLife) -> dict[str, Any]:
    return {
        **lock.summary(),
        "operation_class": lock.operation_class,
        "age_seconds": int(held_for(lock, sign, now)),
        "clock_ahead_seconds": int(clock_ahead(lock.created, now)),
        "threshold_seconds": int(threshold.seconds),
        "threshold": threshold.to_dict(),
        "last_sign_of_life": sign.to_dict(),
        "quiet_seconds": int(sign.quiet_seconds(now)),
        # The lock as stored (Terraform's LockInfo JSON: no state contents), capped: anyone can write a
        # lock item of any size. A release reads the lock again and deletes it only if its SHA-256 is
        # this one, conditionally on exactly the bytes it read.
        "raw": cap(lock.raw),
        "raw_sha256": raw_sha256(lock.raw),
    }


def _pasteable(*values: str) -> bool:
    """Whether lock-table values are short enough to carry in a command. Terraform writes a few hundred
    bytes (about 2 KB with the longest key); anything longer is not its own, could not be pasted, and would
    swell every email: such a command is not offered."""
    return sum(len(v) for v in values) <= VALUE_IN_COMMAND_LIMIT


def _release(finding: Finding, lock: LockInfo, unlock: Argv, what: str, without: Argv | None) -> Finding:
    """A stale lock's fix: ``tfjanitor unlock``, the AWS CLI's delete of exactly ``what``, or Terraform's own."""
    bucket, key = str(finding.bucket), str(finding.key)
    finding.fix = [
        f"Check that no terraform run by {lock.who or 'the holder'} is still alive (Who is <os user>@<hostname>): "
        "releasing the lock of a live run lets another run write the same state.",
        f"Then release it (no working directory needed): tfjanitor unlock shows the lock, asks, and deletes {what}.",
        f"Or with {tools(lock.version)}'s own release (force-unlock), run from {working_dir(bucket, key)}.",
    ] + ([CI_CLEANUP] if looks_like_ci_runner(lock.who) else [])
    return with_fix(
        finding,
        ("Release it with tfjanitor", [unlock]),
        (f"Without tfjanitor, delete {what}", [without] if without else []),
        (FORCE_UNLOCK_LABEL, [*select_workspace(key), force_unlock_command(lock.id)]),
    )


def stale_lock(
    region: str,
    table: str,
    bucket: str,
    key: str,
    lock: LockInfo,
    now: datetime,
    threshold: Threshold | timedelta,
    profile: str | None = None,
    *,
    sign: SignOfLife | None = None,
) -> Finding:
    """``sign``: the lock's last sign of life (default: its ``Created``)."""
    sign, threshold = sign or last_sign_of_life(lock.created, now=now), _threshold(threshold, lock)
    age = ("at least " if sign.what == FIRST_SEEN else "") + human_duration(held_for(lock, sign, now))
    lock_id_key = f"{bucket}/{key}"
    finding = Finding(
        kind=Kind.STALE_LOCK,
        severity=Severity.WARNING,
        region=region,
        table=table,
        bucket=bucket,
        key=key,
        lock_id=lock.id,
        message=(
            f"State {lock_id_key} has been locked for {age} by {lock.who or 'unknown'} "
            f"({lock.operation or 'unknown operation'}, Terraform {lock.version or '?'}): "
            f"{explain(sign, threshold, now)}: the run that took it has probably died.{_ahead(lock, now)}"
        ),
        details=_lock_details(lock, now, threshold, sign),
    )
    return _release(
        finding,
        lock,
        unlock_command(region, profile, bucket, key, lock.id, table),
        "the item only if it still holds exactly this lock (Info unchanged)",
        dynamodb(
            "delete-item",
            region,
            profile,
            table,
            "--key",
            item_key(lock_id_key),
            "--condition-expression",
            "Info = :info",
            "--expression-attribute-values",
            json_arg({":info": {"S": lock.raw}}),
        )
        if _pasteable(lock.raw)
        else None,
    )


def stale_lockfile(
    region: str,
    bucket: str,
    key: str,
    etag: str,
    lock: LockInfo,
    now: datetime,
    threshold: Threshold | timedelta,
    profile: str | None = None,
    *,
    sign: SignOfLife | None = None,
) -> Finding:
    sign, threshold = sign or last_sign_of_life(lock.created, now=now), _threshold(threshold, lock)
    age = ("at least " if sign.what == FIRST_SEEN else "") + human_duration(held_for(lock, sign, now))
    finding = Finding(
        kind=Kind.STALE_LOCKFILE,
        severity=Severity.WARNING,
        region=region,
        table=None,
        bucket=bucket,
        key=key,
        lock_id=lock.id,
        message=(
            f"State s3://{bucket}/{key} has been locked by s3://{bucket}/{key}{LOCKFILE_SUFFIX} for {age} "
            f"by {lock.who or 'unknown'} ({lock.operation or 'unknown operation'}): "
            f"{explain(sign, threshold, now)}: the run that took it has probably died.{_ahead(lock, now)}"
        ),
        details={**_lock_details(lock, now, threshold, sign), "lockfile": f"{key}{LOCKFILE_SUFFIX}", "etag": etag},
    )
    return _release(
        finding,
        lock,
        unlock_command(region, profile, bucket, key, lock.id, None),
        "the lock object only if it is unchanged (If-Match its ETag)",
        s3api_objects("delete-object", region, profile, {"Bucket": bucket, "Key": key + LOCKFILE_SUFFIX, "IfMatch": f'"{etag}"'}),
    )


def orphan_digest(
    region: str, table: str, bucket: str, key: str, stored: str, bucket_missing: bool = False, profile: str | None = None
) -> Finding:
    digest_id = f"{bucket}/{key}{DIGEST_SUFFIX}"
    where = f"bucket {bucket} does not exist" if bucket_missing else f"s3://{bucket}/{key} does not exist"
    finding = Finding(
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
            "If the state was deleted on purpose, remove its digest (the command below: only if unchanged).",
            "If it was deleted by mistake and the bucket is versioned, restore the latest version (remove the "
            "delete marker the listing shows).",
        ],
    )
    restore = [] if bucket_missing else [list_versions(region, profile, bucket, key)]
    return with_fix(
        finding,
        ("If the state was deleted on purpose, remove its digest", [digest_delete(region, profile, table, digest_id, stored)]),
        ("If it was deleted by mistake, list its versions, then delete the delete marker on top", restore),
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
    profile: str | None = None,
) -> Finding:
    cost = cross_region_cost(region, bucket_region, list(state_sizes or []), applies_per_month, rate_source)
    if cost.extra_ms_per_lock_operation is not None and cost.extra_ms_per_apply is not None:  # both or neither
        slower = (
            f" (~{cost.extra_ms_per_lock_operation} ms more per lock operation, ~"
            f"{cost.extra_ms_per_apply / 1000:.1f} s per apply: estimated)"
        )
    else:
        slower = ""
    finding = Finding(
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
            f"1. Create a lock table in {bucket_region} (the command below).",
            f'2. In every configuration using s3://{bucket}, set region = "{bucket_region}" in the backend block '
            "(and drop any endpoints.dynamodb / dynamodb_endpoint override pointing elsewhere), then run "
            "terraform init -migrate-state while no run holds a lock: the next state write stores its digest "
            "in the new table.",
            f"3. Then remove the old digests from {table} in {region}: they are never updated again "
            "(a delete of each <bucket>/<key>-md5 item, conditional on its Digest).",
            "Or, on Terraform >= 1.10, lock with the bucket itself: set use_lockfile = true in the backend "
            "block, keep dynamodb_table until every configuration has it, then remove dynamodb_table.",
        ],
    )
    return with_fix(finding, ("Create the lock table", [create_lock_table_command(bucket_region, table, profile)]))


def malformed_item(
    region: str,
    table: str,
    lock_id: str | None,
    reason: str,
    foreign: bool,
    values: dict[str, str] | None = None,
    profile: str | None = None,
    *,
    attributes: dict[str, Any] | None = None,
    slot: bool = False,
) -> Finding:
    """``values``: the item's Info / Digest strings as read (a delete is conditional on them). ``slot``: an item with
    neither attribute whose LockID is a known state's lock slot (``attributes``: its other attributes as read)."""
    bucket: str | None = None
    key: str | None = None
    if lock_id and "/" in lock_id:
        bucket, _, key = lock_id.partition("/")
    if slot:
        message = (
            f"Item {lock_id!r} in {table} sits where Terraform keeps the lock of state {bucket}/{key}, but holds "
            "neither Info (a lock) nor Digest: every terraform run of that state fails to lock (its conditional "
            'PutItem finds the item), and terraform force-unlock fails ("unexpected end of JSON input").'
        )
        fix = [
            "If no terraform run wrote it, delete it: the delete below happens only if the item is still exactly "
            "what the sweep saw (no Info, no Digest, the same other attributes)."
        ]
    elif foreign:
        message = f"Item {lock_id!r} in {table} is not a Terraform lock or digest: {reason}."
        fix = ["Keep other workloads out of the lock table: give them a table of their own."]
    else:
        message = f"Item {lock_id!r} in {table} is not a Terraform lock or digest: {reason}."
        fix = [
            "If no terraform run wrote it, delete it: the delete below happens only if the item still holds "
            "exactly what the sweep saw (terraform force-unlock cannot: it fails to parse a broken Info)."
        ]
    finding = Finding(
        kind=Kind.MALFORMED_ITEM,
        severity=Severity.INFO if foreign else Severity.WARNING,
        region=region,
        table=table,
        bucket=bucket,
        key=key,
        lock_id=None,
        message=message if lock_id is not None else f"An item of {table} has no LockID: {reason}.",
        details={"item_lock_id": lock_id, "reason": reason, "foreign": foreign, "source": "dynamodb", "state_lock_slot": slot},
        fix=["Inspect it first (the first command only reads).", *fix],
    )
    if lock_id is None:
        return with_fix(finding, ("Find it", [dynamodb("scan", region, profile, table)]))
    commands = [dynamodb("get-item", region, profile, table, "--key", item_key(lock_id))]
    if slot and attributes is not None:
        commands.append(delete_item_exactly(region, profile, table, lock_id, attributes))
    elif not foreign and not slot and values and _pasteable(*values.values()):
        names = sorted(values)
        commands.append(
            dynamodb(
                "delete-item",
                region,
                profile,
                table,
                "--key",
                item_key(lock_id),
                "--condition-expression",
                " AND ".join(f"{name} = :v{i}" for i, name in enumerate(names)),
                "--expression-attribute-values",
                json_arg({f":v{i}": {"S": values[name]} for i, name in enumerate(names)}),
            )
        )
    return with_fix(finding, ("Inspect it, then delete it", commands))


def malformed_lockfile(
    region: str, bucket: str, key: str, reason: str, last_modified: datetime, etag: str, profile: str | None = None
) -> Finding:
    finding = Finding(
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
        details={"reason": reason, "source": "lockfile", "last_modified": format_time(last_modified), "etag": etag},
        fix=["Inspect it, then delete it: the command below deletes it only if it is unchanged (If-Match its ETag)."],
    )
    return with_fix(
        finding,
        (
            "Delete it, only if unchanged",
            [
                s3api_objects(
                    "delete-object", region, profile, {"Bucket": bucket, "Key": key + LOCKFILE_SUFFIX, "IfMatch": f'"{etag}"'}
                )
            ],
        ),
    )
