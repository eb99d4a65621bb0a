"""Build findings: the human sentence, the explanation, and the exact fix for each kind (pure code).

Fix commands are argument lists (``Finding.commands`` / ``alternatives``), turned into shell text only
by ``commands.shell_line``: keys, lock IDs and names from a lock table are hostile input, and a command
line pasted at 3 a.m. must run exactly what it says. Every write a fix makes is conditional on the value
the sweep saw (a digest, a lock's exact ``Info``, a ``.tflock``'s ETag). Nothing here ever sees state
contents.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from tfjanitor.checks.fixes import (
    Argv,
    create_lock_table_command,
    delete_item_exactly,
    digest_delete,
    digest_put,
    dynamodb,
    force_unlock_command,
    item_key,
    list_versions,
    restore_version,
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
from tfjanitor.model import DriftHistory, Finding, Kind, ObjectVersion, Severity
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


def _version(v: Any) -> dict[str, Any]:
    return {"version_id": v.version_id, "last_modified": format_time(v.last_modified), "size": v.size}


def _forensics(history: DriftHistory | None, bucket: str, key: str) -> tuple[str, dict[str, Any]]:
    """The sentence and details a bucket's versions add to a drift finding."""
    if history is None:
        return "", {}
    match = history.matching
    details: dict[str, Any] = {
        "matching_version": _version(match) if match else None,
        "overwritten_at": format_time(history.overwritten_at) if history.overwritten_at else None,
    }
    if history.note:
        return f" The object's history is not known: {history.note}.", details
    if match is None:
        said = (
            "no version of it holds the content of the stored digest"
            if history.versioned
            else "the bucket is not versioned, so no older version can be restored"
        )
        return f" Its versions were searched: {said}.", details
    when = f"at {format_time(history.overwritten_at)}" if history.overwritten_at else "later"
    return (
        f" Terraform's last write is version {match.version_id} of s3://{bucket}/{key} from "
        f"{format_time(match.last_modified)}; the object was overwritten {when} outside Terraform."
    ), details


def _ways_out(
    region: str, profile: str | None, bucket: str, key: str, stored: str, actual: str, etag: str, match: ObjectVersion | None
) -> tuple[list[str], tuple[str, list[Argv]]]:
    """A drift's fix steps before the leftover-digest one, and its restore option: with Terraform's last write
    found in the bucket's versions (``match``), or without."""
    if match is not None:
        choose = [
            "Two ways out. If the overwrite was intended (a state pushed or edited on purpose), accept the current "
            f"object: the command below stores its MD5 ({actual}) as the digest, only if the digest is still {stored}.",
            f"If it was not, restore Terraform's last write (the alternative): it copies version {match.version_id} "
            f"over the object, only if the object is still the one seen (ETag {etag}: CopyObject If-Match), and the "
            "stored digest then matches again. Do it while no terraform run holds the lock.",
            "If in doubt, compare the two versions first (aws s3api get-object --version-id on each, then diff them "
            "locally: both are state files and may hold secrets).",
        ]
        restore = (
            f"If the overwrite was not intended, restore Terraform's last write, version {match.version_id} "
            f"from {format_time(match.last_modified)} (only if the object is still the one seen)",
            [restore_version(region, profile, bucket, key, match.version_id, etag)],
        )
    else:
        choose = [
            "Find out which is right: the object (edited by hand, pushed with -lock=false) or the digest "
            "(a failed upload); the object's versions show its history.",
            "If the object in S3 is the state you want, store its digest (what Terraform's own error suggests): "
            f"the command below sets the digest to {actual}, only if it still holds {stored}.",
            f"If the object is wrong, restore the version whose MD5 is the stored digest ({stored}) with "
            "aws s3api copy-object, under a terraform lock.",
        ]
        restore = (
            f"If the object is wrong, list its versions, then restore the one whose ETag is {stored.lower()} "
            "(aws s3api copy-object, under a terraform lock)",
            [list_versions(region, profile, bucket, key)],
        )
    return choose, restore


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
    profile: str | None = None,
    history: DriftHistory | None = None,
) -> Finding:
    """``history``: what the bucket's versions show (scan/forensics.py), if they were searched. ``actual`` is the
    checksum Terraform calculates (``terraform.state_checksum``): empty for a 0-byte object."""
    digest_id = f"{bucket}/{key}{DIGEST_SUFFIX}"
    if not actual:
        return _empty_state_drift(region, table, bucket, key, stored, etag, has_lockfile_history, locked_by, profile, history)
    also_locked = (
        f" The state is also locked (lock {locked_by.get('id')}, {locked_by.get('operation') or 'unknown operation'} "
        f"by {locked_by.get('who') or 'unknown'} since {locked_by.get('created')}), but the object is older than "
        "that lock: the mismatch predates the run holding it, which is not writing it now."
        if locked_by
        else ""
    )
    found, forensics = _forensics(history, bucket, key)
    choose, restore = _ways_out(region, profile, bucket, key, stored, actual, etag, history.matching if history else None)
    finding = Finding(
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
            '(dynamodb_table) will fail with "state data in S3 does not have the expected content".' + found + also_locked
        ),
        details={
            "stored_md5": stored,
            "actual_md5": actual,
            "etag": etag,
            "size": size,
            "digest_lock_id": digest_id,
            "lockfile_present": has_lockfile_history,
            "locked_by": locked_by,
            **forensics,
        },
        fix=[
            *choose,
            "If this state now locks with use_lockfile only (no dynamodb_table), the digest is a leftover of "
            "that migration and nothing reads it: delete it.",
        ],
    )
    return with_fix(
        finding,
        ("If the object is the state you want, store its digest", [digest_put(region, profile, table, digest_id, actual, stored)]),
        restore,
        (
            "If the state now locks with use_lockfile only, delete the leftover digest (only if unchanged)",
            [digest_delete(region, profile, table, digest_id, stored)],
        ),
    )


def _empty_state_drift(
    region: str,
    table: str,
    bucket: str,
    key: str,
    stored: str,
    etag: str,
    has_lockfile_history: bool,
    locked_by: dict[str, Any] | None,
    profile: str | None,
    history: DriftHistory | None,
) -> Finding:
    """A 0-byte state object under a digest: no state at all to Terraform, whose calculated checksum is then empty,
    so no stored digest matches (not even the MD5 of nothing). Terraform's way out is to remove the digest; unless
    the state is meant to be empty, restoring the last write it made is the better one."""
    digest_id = f"{bucket}/{key}{DIGEST_SUFFIX}"
    found, forensics = _forensics(history, bucket, key)
    match = history.matching if history else None
    remove = (
        "If the state is meant to be empty (it manages nothing), remove the digest (only if unchanged): "
        "Terraform then reads the empty object as an empty state",
        [digest_delete(region, profile, table, digest_id, stored)],
    )
    fix = [
        "An empty state object is no state to Terraform: the next plan would create everything the state managed, "
        "again. Find out how it was emptied before anything runs on it."
    ]
    if match is not None:
        fix.append(
            f"Restore Terraform's last write (the command below): it copies version {match.version_id} from "
            f"{format_time(match.last_modified)} over the empty object, only if the object is still the one "
            f"seen (ETag {etag}), and the stored digest then matches again. Do it while no terraform run holds "
            "the lock."
        )
        options: list[tuple[str, list[Argv]]] = [
            (
                f"Restore Terraform's last write, version {match.version_id}",
                [restore_version(region, profile, bucket, key, match.version_id, etag)],
            ),
            remove,
        ]
    else:
        fix.append(
            "If an earlier version of the object holds the state (a versioned bucket), restore it (list its "
            "versions: the alternative); the digest stored is the MD5 of the last state Terraform wrote."
        )
        fix.append(
            "If the state is meant to be empty, remove the digest (the command below, only if unchanged): a "
            "digest of the empty object (the MD5 of nothing) would not help, Terraform compares no checksum "
            "with it."
        )
        options = [
            remove,
            (
                "If the state should not be empty, list its versions, then restore the one whose ETag is "
                f"{stored.lower()} (aws s3api copy-object, under a terraform lock)",
                [list_versions(region, profile, bucket, key)],
            ),
        ]
    also_locked = (
        f" The state is also locked (lock {locked_by.get('id')} by {locked_by.get('who') or 'unknown'}), "
        "but the object is older than that lock."
        if locked_by
        else ""
    )
    finding = Finding(
        Kind.DIGEST_DRIFT,
        Severity.CRITICAL,
        region,
        table,
        bucket,
        key,
        None,
        f"The state object s3://{bucket}/{key} is empty (0 bytes): Terraform reads an empty object as no state at all, "
        f"so the digest stored in {table} ({stored}) can never match it, and the next terraform run that locks it "
        'with this table (dynamodb_table) fails with "state data in S3 does not have the expected content".' + found + also_locked,
        {
            "stored_md5": stored,
            "actual_md5": "",
            "empty_object": True,
            "etag": etag,
            "size": 0,
            "digest_lock_id": digest_id,
            "lockfile_present": has_lockfile_history,
            "locked_by": locked_by,
            **forensics,
        },
        fix,
    )
    return with_fix(finding, *options)


def interrupted_write(
    stale: Finding, lock: LockInfo, stored: str, actual: str, written: datetime, profile: str | None = None
) -> Finding:
    """A stale lock whose holder wrote the state object and died before writing its digest (``stale`` is the
    lock's stale_lock finding: its sign of life and threshold)."""
    assert stale.table and stale.bucket and stale.key
    region, table, bucket, key = stale.region, stale.table, stale.bucket, stale.key
    digest_id = f"{bucket}/{key}{DIGEST_SUFFIX}"
    after = human_duration(max(0.0, (written - lock.created).total_seconds()))
    # A 0-byte object is no state to Terraform: no digest matches it, so the digest is removed instead of stored.
    store_text = "store the object's MD5 as the digest" if actual else "remove the digest (the object is empty)"
    holder = f"lock {lock.id} ({lock.operation or 'unknown operation'} by {lock.who or 'unknown'}, since {format_time(lock.created)})"
    quiet = human_duration(stale.details.get("quiet_seconds", 0))
    finding = replace(  # the same lock, the same state: another kind of finding
        stale,
        kind=Kind.INTERRUPTED_WRITE,
        severity=Severity.CRITICAL,
        message=(
            f"A terraform run died between writing the state of {bucket}/{key} and writing its digest: {holder} has "
            f"shown no sign of life for {quiet}, its state object was written at {format_time(written)} ({after} after "
            f"the lock was taken) and no longer matches the digest stored in {table}. The state holds what the dead "
            "run had applied so far. Releasing the lock alone (terraform force-unlock) makes the next run fail its "
            "checksum check: release it, store the object's MD5 as the digest, then run terraform plan."
        ),
        details={
            **stale.details,
            "lock": {"id": lock.id, "who": lock.who, "operation": lock.operation, "since": format_time(lock.created)},
            "state_written_at": format_time(written),
            "stored_md5": stored,
            "actual_md5": actual,
            "digest_lock_id": digest_id,
        },
        fix=[
            f"Check that no terraform run by {lock.who or 'the holder'} is still alive (Who is <os user>@<hostname>).",
            "Then run the commands in order: release exactly this lock (tfjanitor unlock asks, and deletes it only "
            f"if it is still this lock); {store_text} (only if the digest is still {stored}); run {tools(lock.version)} "
            f"plan from {working_dir(bucket, key)} to confirm.",
            "The plan shows what the dead run had not applied yet: apply again to finish it.",
        ],
        commands=[],
        alternatives=[],
    )
    return with_fix(
        finding,
        (
            "Release the lock, store the object's digest, confirm with a plan",
            [
                unlock_command(region, profile, bucket, key, lock.id, table),
                digest_put(region, profile, table, digest_id, actual, stored)
                if actual
                else digest_delete(region, profile, table, digest_id, stored),
                *select_workspace(key),
                ["terraform", "plan"],
            ],
        ),
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
