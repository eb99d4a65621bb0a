"""The findings about a state's digest (pure code): ``digest_drift`` (the digest Terraform keeps no longer matches
the state object; an empty object is its own case) and ``interrupted_write`` (a run killed between its state
write and its digest write), with what a versioned bucket's history shows and the ways out of each. Nothing
here ever sees state contents."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from tfjanitor.checks.fixes import (
    Argv,
    digest_delete,
    digest_put,
    list_versions,
    restore_version,
    select_workspace,
    tools,
    with_fix,
    working_dir,
)
from tfjanitor.commands import unlock_command
from tfjanitor.durations import human_duration
from tfjanitor.model import DriftHistory, Finding, Kind, ObjectVersion, Severity
from tfjanitor.terraform import DIGEST_SUFFIX, LockInfo, format_time


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


def _empty_state_ways_out(
    region: str, profile: str | None, table: str, bucket: str, key: str, stored: str, etag: str, history: DriftHistory | None
) -> tuple[list[str], list[tuple[str, list[Argv]]]]:
    """What to do about an empty state object: restore Terraform's last write if its history shows it (else list
    the versions), or remove the digest if the state is meant to be empty."""
    digest_id = f"{bucket}/{key}{DIGEST_SUFFIX}"
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
    return fix, options


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
    fix, options = _empty_state_ways_out(region, profile, table, bucket, key, stored, etag, history)
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
