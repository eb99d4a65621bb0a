"""Region, topology and posture audit of the lock tables: judge what the reads showed, build findings (pure code).

The audit's other rules are next door: the state buckets' posture in ``checks/bucket_rules.py``, how each
state locks (lockfile migration, split brain across regions) in ``checks/state_rules.py``.

Inputs are plain facts (model.TableFacts, a table's backup setting); outputs are Findings whose ``commands``
are the exact AWS CLI commands (argument lists) and whose ``fix`` says which Terraform setting to change. No
AWS call happens here (scan/auditor.py reads through aws/posture.py, the adapter). Nothing here sees a state's contents.

Severities are chosen for a platform engineer's exit code and inbox: ``critical`` when
Terraform cannot lock or two runs can write one state at once; ``warning`` when a setting
can lose state or lock data, or silently blinds the stack; ``info`` for hardening and
housekeeping notes (never an exit code 1, never an email).
"""

from __future__ import annotations

from typing import Any

from tfjanitor.checks.fixes import Argv, create_lock_table_command, dynamodb, with_fix
from tfjanitor.commands import json_arg
from tfjanitor.model import Finding, Kind, Severity, TableFacts

LOCK_KEY_SCHEMA = (("LockID", "HASH", "S"),)


def _table_finding(
    kind: Kind,
    severity: Severity,
    region: str,
    table: str,
    message: str,
    details: dict[str, Any],
    fix: list[str],
    commands: list[Argv],
) -> Finding:
    return with_fix(Finding(kind, severity, region, table, None, None, None, message, details, fix), ("", commands))


# -- lock tables ------------------------------------------------------------------------------


def lock_table_missing(region: str, table: str, profile: str | None = None) -> Finding:
    return _table_finding(
        Kind.LOCK_TABLE_SCHEMA,
        Severity.CRITICAL,
        region,
        table,
        f"Lock table {table} does not exist in {region}: every terraform run whose backend names "
        f'dynamodb_table = "{table}" in this region fails to lock (ResourceNotFoundException), so it cannot '
        "plan or apply at all.",
        {"problem": "missing", "expected_key_schema": "LockID (HASH, String)"},
        [
            "Create it (the command below).",
            f"Or, if its states now lock with use_lockfile only, remove dynamodb_table from their backend blocks "
            f"and stop sweeping {table} (tfjanitor --table / the stack's LockTableNames).",
        ],
        [create_lock_table_command(region, table, profile)],
    )


def lock_table_schema(facts: TableFacts, profile: str | None = None) -> Finding | None:
    """None when the key is exactly LockID (HASH, String): what Terraform writes."""
    if facts.key_schema == LOCK_KEY_SCHEMA:
        return None
    keys = ", ".join(f"{name} ({kind}, {kind_type})" for name, kind, kind_type in facts.key_schema) or "none"
    hash_keys = [k for k in facts.key_schema if k[1] == "HASH"]
    if hash_keys and hash_keys[0][0] == "LockID" and hash_keys[0][2] != "S":
        why = f"its partition key LockID is of type {hash_keys[0][2]}, but Terraform writes LockID as a String"
    elif hash_keys and hash_keys[0][0] != "LockID":
        why = f"its partition key is {hash_keys[0][0]}, but Terraform's items are keyed by LockID"
    else:
        why = "it has a sort key, but Terraform's items carry only LockID"
    other = f"{facts.name}-terraform-lock"
    return _table_finding(
        Kind.LOCK_TABLE_SCHEMA,
        Severity.CRITICAL,
        facts.region,
        facts.name,
        f"Lock table {facts.name} in {facts.region} cannot hold Terraform locks: {why} (key schema: {keys}). "
        "Every terraform run that uses it fails to lock with a ValidationException.",
        {"problem": "key_schema", "key_schema": [list(k) for k in facts.key_schema], "expected_key_schema": "LockID (HASH, String)"},
        [
            f"A key schema cannot be changed. Create a table with the right key, {other} (the command below).",
            f'Then set dynamodb_table = "{other}" in every backend that names {facts.name} and run '
            "terraform init -reconfigure (or set use_lockfile = true on Terraform >= 1.10 and drop dynamodb_table).",
        ],
        [create_lock_table_command(facts.region, other, profile)],
    )


def replicated_lock_table(facts: TableFacts, profile: str | None = None) -> Finding | None:
    others = sorted({r for r, _ in facts.replicas if r != facts.region})
    if not others:
        return None
    strong = (facts.multi_region_consistency or "").upper() == "STRONG"
    mode = "MRSC" if strong else "MREC"
    regions = ", ".join(others)
    if strong:
        why = (
            "Under multi-region strong consistency (MRSC) a conditional write is checked across regions, so two "
            "runs cannot both take the lock; but every lock and digest write waits for synchronous replication, "
            "and a region cut off from its quorum rejects writes: Terraform cannot lock there until it is back."
        )
    else:
        why = (
            "Under multi-region eventual consistency (MREC) Terraform's lock (a PutItem with "
            "attribute_not_exists(LockID)) is checked only against the replica that receives it, and replication "
            "is asynchronous: two runs writing through different regions can both 'acquire' the lock within the "
            "replication lag, and conflicting writes are resolved last-writer-wins. It is safe only if every "
            "writer uses one region."
        )
    fix = [
        f"Keep the lock table out of replication: remove each replica ({regions}) once no backend locks through "
        "its region (the commands below, one per replica).",
        "Or lock with the state bucket instead: use_lockfile = true (Terraform >= 1.10; S3 conditional writes "
        "are strongly consistent), then drop dynamodb_table.",
    ]
    if not strong:
        fix.append(
            "If the table must span regions, recreate it with --multi-region-consistency STRONG (MRSC); "
            "an existing table's mode cannot be changed."
        )
    return _table_finding(
        Kind.REPLICATED_LOCK_TABLE,
        Severity.WARNING,
        facts.region,
        facts.name,
        f"Lock table {facts.name} in {facts.region} is a global table with replicas in {regions} ({mode}). {why}",
        {
            "consistency_mode": mode,
            "multi_region_consistency": facts.multi_region_consistency or "EVENTUAL",
            "replica_regions": others,
            "replicas": [list(r) for r in facts.replicas],
            "global_table_version": facts.global_table_version,
        },
        fix,
        [
            dynamodb("update-table", facts.region, profile, facts.name, "--replica-updates", json_arg([{"Delete": {"RegionName": r}}]))
            for r in others
        ],
    )


def deletion_protection_disabled(facts: TableFacts, profile: str | None = None) -> Finding | None:
    if facts.deletion_protection:
        return None
    return _table_finding(
        Kind.TABLE_DELETION_PROTECTION_DISABLED,
        Severity.WARNING,
        facts.region,
        facts.name,
        f"Lock table {facts.name} in {facts.region} has no deletion protection. Lock tables look idle to cleanup "
        "tools and get deleted; then every terraform run fails to lock and every stored digest is gone.",
        {"deletion_protection": False},
        ["Turn deletion protection on (the command below)."],
        [dynamodb("update-table", facts.region, profile, facts.name, "--deletion-protection-enabled")],
    )


def pitr_disabled(region: str, table: str, status: str, profile: str | None = None) -> Finding | None:
    if status.upper() == "ENABLED":
        return None
    return _table_finding(
        Kind.TABLE_PITR_DISABLED,
        Severity.INFO,
        region,
        table,
        f"Lock table {table} in {region} has point-in-time recovery off: a bad write or delete of its digest "
        "items cannot be undone (a restore goes to a new table, for the last 35 days).",
        {"point_in_time_recovery": status},
        ["Turn point-in-time recovery on (the command below)."],
        [
            dynamodb(
                "update-continuous-backups",
                region,
                profile,
                table,
                "--point-in-time-recovery-specification",
                json_arg({"PointInTimeRecoveryEnabled": True}),
            )
        ],
    )


def stream_disabled(facts: TableFacts, expected_arn: str, profile: str | None = None) -> Finding | None:
    """The stack's stream monitor reads ``expected_arn``: is that still this table's live stream?"""
    problems = []
    if not facts.stream_enabled:
        problems.append("the table's stream is disabled")
    elif facts.stream_view_type != "NEW_AND_OLD_IMAGES":
        problems.append(f"the stream's view type is {facts.stream_view_type}, not NEW_AND_OLD_IMAGES")
    if facts.stream_enabled and facts.latest_stream_arn and facts.latest_stream_arn != expected_arn:
        problems.append(f"the table's stream is now {facts.latest_stream_arn} (the stream was re-created)")
    if not problems:
        return None

    def stream(spec: dict[str, Any]) -> Argv:
        return dynamodb("update-table", facts.region, profile, facts.name, "--stream-specification", json_arg(spec))

    enable = stream({"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    fix, commands = [], []
    if facts.stream_enabled and facts.stream_view_type != "NEW_AND_OLD_IMAGES":
        fix.append(
            "A view type cannot be changed in place: disable the stream, then enable it with "
            "NEW_AND_OLD_IMAGES (the first two commands)."
        )
        commands += [stream({"StreamEnabled": False}), enable]
    elif not facts.stream_enabled:
        fix.append("Enable the stream with NEW_AND_OLD_IMAGES (the first command).")
        commands.append(enable)
    fix.append(
        "Then point the stack at the table's current stream: the last command prints its ARN; deploy the stack "
        "with the parameter LockTableStreamArn set to it (sam deploy --parameter-overrides LockTableStreamArn=ARN)."
    )
    commands.append(
        dynamodb("describe-table", facts.region, profile, facts.name, "--query", "Table.LatestStreamArn", "--output", "text")
    )
    return _table_finding(
        Kind.TABLE_STREAM_DISABLED,
        Severity.WARNING,
        facts.region,
        facts.name,
        f"The stream monitor is configured for {expected_arn}, but {'; '.join(problems)}: it receives nothing, "
        "so lock metrics stop and digest drift waits for the next scheduled sweep.",
        {
            "configured_stream_arn": expected_arn,
            "stream_enabled": facts.stream_enabled,
            "stream_view_type": facts.stream_view_type,
            "latest_stream_arn": facts.latest_stream_arn,
        },
        fix,
        commands,
    )
