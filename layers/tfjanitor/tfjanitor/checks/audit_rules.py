"""Region, topology and posture audit: judge what the reads showed, build findings (pure code).

Inputs are plain facts (model.TableFacts, model.BucketPosture, object versions, the sweep's
Inventory, a peer table's raw items); outputs are Findings whose ``commands`` are the exact
AWS CLI commands (argument lists) and whose ``fix`` says which Terraform setting to change. No AWS call happens here
(auditor.py reads through posture.py, the adapter). Nothing here sees a state's contents.

Severities are chosen for a platform engineer's exit code and inbox: ``critical`` when
Terraform cannot lock or two runs can write one state at once; ``warning`` when a setting
can lose state or lock data, or silently blinds the stack; ``info`` for hardening and
housekeeping notes (never an exit code 1, never an email).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from tfjanitor.checks.findings import (
    Argv,
    create_lock_table_command,
    digest_delete,
    digest_put,
    dynamodb,
    list_versions,
    with_fix,
)
from tfjanitor.commands import aws, json_arg, option, representable, shell_line
from tfjanitor.model import Finding, Kind, ObjectFacts, ObjectVersion, Severity, TableFacts
from tfjanitor.terraform import DIGEST_SUFFIX, LOCKFILE_SUFFIX, DigestItem, LockItem, classify_item

LOCK_KEY_SCHEMA = (("LockID", "HASH", "S"),)
PUBLIC_ACCESS_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
TLS_SID = "DenyInsecureTransport"
LIFECYCLE_RULE_ID = "tfjanitor-expire-old-lock-versions"
NONCURRENT_DAYS = 30  # the fix's rule: noncurrent versions older than this ...
KEEP_NEWER_NONCURRENT = 20  # ... beyond the 20 newest of each key (state history stays recoverable)
WRITE_RATE_WINDOW = timedelta(days=30)


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _table_finding(kind: Kind, severity: Severity, region: str, table: str, message: str,
                   details: dict[str, Any], fix: list[str], commands: list[Argv]) -> Finding:
    return with_fix(Finding(kind, severity, region, table, None, None, None, message, details, fix), ("", commands))


def _bucket_finding(kind: Kind, severity: Severity, region: str, bucket: str, bucket_region: str, message: str,
                    details: dict[str, Any], fix: list[str], commands: list[Argv]) -> Finding:
    return with_fix(Finding(kind, severity, region, None, bucket, None, None, message,
                            {"bucket_region": bucket_region, **details}, fix), ("", commands))


def s3api_bucket(operation: str, region: str, profile: str | None, bucket: str, *args: str) -> Argv:
    """``aws s3api OPERATION`` on one bucket's configuration (a bucket name, never an object key)."""
    return aws("s3api", operation, region, profile, *option("--bucket", bucket), *args)


# -- lock tables ------------------------------------------------------------------------------


def lock_table_missing(region: str, table: str, profile: str | None = None) -> Finding:
    return _table_finding(
        Kind.LOCK_TABLE_SCHEMA, Severity.CRITICAL, region, table,
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
        Kind.LOCK_TABLE_SCHEMA, Severity.CRITICAL, facts.region, facts.name,
        f"Lock table {facts.name} in {facts.region} cannot hold Terraform locks: {why} (key schema: {keys}). "
        "Every terraform run that uses it fails to lock with a ValidationException.",
        {"problem": "key_schema", "key_schema": [list(k) for k in facts.key_schema],
         "expected_key_schema": "LockID (HASH, String)"},
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
        fix.append("If the table must span regions, recreate it with --multi-region-consistency STRONG (MRSC); "
                   "an existing table's mode cannot be changed.")
    return _table_finding(
        Kind.REPLICATED_LOCK_TABLE, Severity.WARNING, facts.region, facts.name,
        f"Lock table {facts.name} in {facts.region} is a global table with replicas in {regions} ({mode}). {why}",
        {"consistency_mode": mode, "multi_region_consistency": facts.multi_region_consistency or "EVENTUAL",
         "replica_regions": others, "replicas": [list(r) for r in facts.replicas],
         "global_table_version": facts.global_table_version},
        fix,
        [dynamodb("update-table", facts.region, profile, facts.name,
                  "--replica-updates", json_arg([{"Delete": {"RegionName": r}}])) for r in others],
    )


def deletion_protection_disabled(facts: TableFacts, profile: str | None = None) -> Finding | None:
    if facts.deletion_protection:
        return None
    return _table_finding(
        Kind.TABLE_DELETION_PROTECTION_DISABLED, Severity.WARNING, facts.region, facts.name,
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
        Kind.TABLE_PITR_DISABLED, Severity.INFO, region, table,
        f"Lock table {table} in {region} has point-in-time recovery off: a bad write or delete of its digest "
        "items cannot be undone (a restore goes to a new table, for the last 35 days).",
        {"point_in_time_recovery": status},
        ["Turn point-in-time recovery on (the command below)."],
        [dynamodb("update-continuous-backups", region, profile, table,
                  "--point-in-time-recovery-specification", json_arg({"PointInTimeRecoveryEnabled": True}))],
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
        fix.append("A view type cannot be changed in place: disable the stream, then enable it with "
                   "NEW_AND_OLD_IMAGES (the first two commands).")
        commands += [stream({"StreamEnabled": False}), enable]
    elif not facts.stream_enabled:
        fix.append("Enable the stream with NEW_AND_OLD_IMAGES (the first command).")
        commands.append(enable)
    fix.append(
        "Then point the stack at the table's current stream: the last command prints its ARN; deploy the stack "
        "with the parameter LockTableStreamArn set to it (sam deploy --parameter-overrides LockTableStreamArn=ARN)."
    )
    commands.append(dynamodb("describe-table", facts.region, profile, facts.name,
                             "--query", "Table.LatestStreamArn", "--output", "text"))
    return _table_finding(
        Kind.TABLE_STREAM_DISABLED, Severity.WARNING, facts.region, facts.name,
        f"The stream monitor is configured for {expected_arn}, but {'; '.join(problems)}: it receives nothing, "
        "so lock metrics stop and digest drift waits for the next scheduled sweep.",
        {"configured_stream_arn": expected_arn, "stream_enabled": facts.stream_enabled,
         "stream_view_type": facts.stream_view_type, "latest_stream_arn": facts.latest_stream_arn},
        fix,
        commands,
    )


# -- buckets ---------------------------------------------------------------------------------


def versioning_disabled(
    region: str, bucket: str, bucket_region: str, status: str | None, profile: str | None = None,
) -> Finding | None:
    if status == "Enabled":
        return None
    state = "suspended" if status == "Suspended" else "not enabled"
    return _bucket_finding(
        Kind.BUCKET_VERSIONING_DISABLED, Severity.WARNING, region, bucket, bucket_region,
        f"Versioning is {state} on state bucket {bucket}: a bad state write (a botched apply, a state push, "
        "a hand edit, a deleted workspace) cannot be undone, there is no earlier state to go back to.",
        {"versioning": status or "never enabled"},
        [
            "Enable versioning (the command below).",
            "Then expire old versions with a lifecycle rule (NoncurrentVersionExpiration with "
            "NewerNoncurrentVersions) so the history stays bounded.",
        ],
        [s3api_bucket("put-bucket-versioning", bucket_region, profile, bucket,
                      "--versioning-configuration", json_arg({"Status": "Enabled"}))],
    )


def public_access_open(
    region: str, bucket: str, bucket_region: str, config: dict[str, bool] | None, profile: str | None = None,
) -> Finding | None:
    config = config or {}
    off = [flag for flag in PUBLIC_ACCESS_FLAGS if not config.get(flag)]
    if not off:
        return None
    what = "has no public access block" if not config else f"has {', '.join(off)} off in its public access block"
    return _bucket_finding(
        Kind.BUCKET_PUBLIC_ACCESS_OPEN, Severity.WARNING, region, bucket, bucket_region,
        f"State bucket {bucket} {what}: one ACL or policy change can make states public, and states hold "
        "secrets (passwords, keys, tokens) in plain text. (An account-level block also protects it: check "
        "aws s3control get-public-access-block.)",
        {"public_access_block": {flag: bool(config.get(flag)) for flag in PUBLIC_ACCESS_FLAGS}, "off": off},
        ["Turn every public access block setting on (the command below)."],
        [s3api_bucket("put-public-access-block", bucket_region, profile, bucket,
                      "--public-access-block-configuration", json_arg({flag: True for flag in PUBLIC_ACCESS_FLAGS}))],
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _denies_insecure_transport(statement: dict[str, Any]) -> bool:
    for operator in ("Bool", "BoolIfExists"):
        block = (statement.get("Condition") or {}).get(operator) or {}
        for key, value in block.items():
            if key.lower() == "aws:securetransport" and any(str(v).lower() == "false" for v in _as_list(value)):
                return True
    return False


def _everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    return isinstance(principal, dict) and "*" in _as_list(principal.get("AWS"))


def _covers(patterns: list[Any], value: str) -> bool:
    for pattern in patterns:
        normalized = re.sub(r"^arn:aws[a-z-]*:", "arn:aws:", str(pattern))
        if fnmatchcase(value, normalized):
            return True
    return False


def tls_enforced(policy: str | None, bucket: str) -> bool:
    """True when the policy denies every principal every S3 action on the bucket's objects without TLS."""
    if not policy:
        return False
    try:
        doc = json.loads(policy)
    except ValueError:
        return False
    for statement in _as_list(doc.get("Statement")):
        if not isinstance(statement, dict) or statement.get("Effect") != "Deny":
            continue
        if not _everyone(statement.get("Principal")) or not _denies_insecure_transport(statement):
            continue
        actions = [str(a).lower() for a in _as_list(statement.get("Action"))]
        if not any(a in ("*", "s3:*") for a in actions):
            continue
        if _covers(_as_list(statement.get("Resource")), f"arn:aws:s3:::{bucket}/state.tfstate"):
            return True
    return False


def tls_statement(bucket: str, bucket_region: str) -> dict[str, Any]:
    arn = f"arn:{partition(bucket_region)}:s3:::{bucket}"
    return {
        "Sid": TLS_SID, "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def tls_not_enforced(
    region: str, bucket: str, bucket_region: str, policy: str | None, profile: str | None = None,
) -> Finding | None:
    if tls_enforced(policy, bucket):
        return None
    statement = tls_statement(bucket, bucket_region)
    try:
        doc = json.loads(policy) if policy else {"Version": "2012-10-17", "Statement": []}
        statements = [s for s in _as_list(doc.get("Statement")) if isinstance(s, dict)]
    except ValueError:
        doc, statements = {"Version": "2012-10-17"}, []
    sids = {s.get("Sid") for s in statements}
    n = 2
    while statement["Sid"] in sids:
        statement["Sid"] = f"{TLS_SID}{n}"
        n += 1
    merged = {**doc, "Statement": [*statements, statement]}
    return _bucket_finding(
        Kind.BUCKET_TLS_NOT_ENFORCED, Severity.INFO, region, bucket, bucket_region,
        f"State bucket {bucket} does not refuse plain-HTTP requests (no Deny on aws:SecureTransport = false "
        "for every principal): Terraform and the AWS SDKs use HTTPS by default, but a client configured with "
        "an http:// endpoint would move states, and their secrets, in clear text.",
        {"has_policy": policy is not None, "statement_to_add": statement},
        [
            "Check that nothing reads this bucket over plain HTTP, then apply its current policy plus the TLS "
            "statement with the command below (put-bucket-policy replaces the whole policy; its document keeps "
            "every current statement).",
        ],
        [s3api_bucket("put-bucket-policy", bucket_region, profile, bucket, "--policy", json_arg(merged))],
    )


@dataclass(frozen=True)
class LifecycleCoverage:
    noncurrent: bool  # noncurrent versions of .tflock keys expire
    delete_markers: bool  # expired delete markers are removed


def _rule_prefix(rule: dict[str, Any]) -> tuple[str, bool]:
    """(prefix, has other filters that lock objects do not match: tags)."""
    if "Prefix" in rule and "Filter" not in rule:  # legacy rule
        return str(rule.get("Prefix") or ""), False
    flt = rule.get("Filter") or {}
    if "And" in flt:
        and_ = flt["And"]
        return str(and_.get("Prefix") or ""), bool(and_.get("Tags"))
    return str(flt.get("Prefix") or ""), "Tag" in flt


def lifecycle_coverage(rules: list[dict[str, Any]], lock_keys: list[str], sizes: list[int]) -> LifecycleCoverage:
    noncurrent = markers = bool(lock_keys)
    for key in lock_keys:
        key_noncurrent = key_markers = False
        for rule in rules:
            if rule.get("Status") != "Enabled":
                continue
            prefix, tagged = _rule_prefix(rule)
            if tagged or not key.startswith(prefix):
                continue
            flt = (rule.get("Filter") or {}).get("And") or rule.get("Filter") or {}
            low, high = flt.get("ObjectSizeGreaterThan"), flt.get("ObjectSizeLessThan")
            if any((low is not None and s <= low) or (high is not None and s >= high) for s in sizes):
                continue
            if rule.get("NoncurrentVersionExpiration"):
                key_noncurrent = True
            if (rule.get("Expiration") or {}).get("ExpiredObjectDeleteMarker"):
                key_markers = True
        noncurrent &= key_noncurrent
        markers &= key_markers
    return LifecycleCoverage(noncurrent, markers)


def _common_prefix(keys: list[str]) -> str:
    if not keys:
        return ""
    lo, hi = min(keys), max(keys)
    n = 0
    while n < min(len(lo), len(hi)) and lo[n] == hi[n]:
        n += 1
    prefix = lo[:n]
    return prefix[: prefix.rfind("/") + 1]  # whole folders only: never a partial key


def lockfile_versions_accumulating(
    region: str, bucket: str, bucket_region: str, versioning: str | None, versions: list[ObjectVersion],
    rules: list[dict[str, Any]], profile: str | None = None,
) -> Finding | None:
    if versioning not in ("Enabled", "Suspended"):
        return None
    locks = [v for v in versions if v.key.endswith(LOCKFILE_SUFFIX)]
    old_versions = [v for v in locks if not v.delete_marker and not v.is_latest]
    markers = [v for v in locks if v.delete_marker]
    if not old_versions and not markers:
        return None
    lock_keys = sorted({v.key for v in locks})
    coverage = lifecycle_coverage(rules, lock_keys, [v.size for v in old_versions])
    if coverage.noncurrent and coverage.delete_markers:
        return None
    missing = []
    new_rule: dict[str, Any] = {"ID": LIFECYCLE_RULE_ID, "Status": "Enabled",
                                "Filter": {"Prefix": _common_prefix(lock_keys)}}
    if not coverage.noncurrent:
        missing.append("no rule expires noncurrent versions")
        new_rule["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": NONCURRENT_DAYS, "NewerNoncurrentVersions": KEEP_NEWER_NONCURRENT,
        }
    if not coverage.delete_markers:
        missing.append("no rule removes expired delete markers")
        new_rule["Expiration"] = {"ExpiredObjectDeleteMarker": True}
    ids = {r.get("ID") for r in rules}
    n = 2
    while new_rule["ID"] in ids:
        new_rule["ID"] = f"{LIFECYCLE_RULE_ID}-{n}"
        n += 1
    merged = {"Rules": [*rules, new_rule]}
    return _bucket_finding(
        Kind.LOCKFILE_VERSIONS_ACCUMULATING, Severity.INFO, region, bucket, bucket_region,
        f"Versioned bucket {bucket} holds {len(old_versions)} noncurrent .tflock versions and {len(markers)} "
        f"delete markers for {len(lock_keys)} lock files, and {' and '.join(missing)}: every lock with "
        "use_lockfile adds one of each, forever (listing and storage grow with every run).",
        {"lockfiles": len(lock_keys), "noncurrent_versions": len(old_versions), "delete_markers": len(markers),
         "lifecycle_rules": len(rules), "rule_to_add": new_rule},
        [
            "Add a lifecycle rule with the command below (put-bucket-lifecycle-configuration replaces the whole "
            "configuration; its document keeps every current rule). It also expires noncurrent *state* versions "
            f"older than {NONCURRENT_DAYS} days beyond the {KEEP_NEWER_NONCURRENT} newest of each key; adjust if "
            "you keep more history.",
        ],
        [s3api_bucket("put-bucket-lifecycle-configuration", bucket_region, profile, bucket,
                      "--lifecycle-configuration", json_arg(merged))],
    )


# -- lockfile migration --------------------------------------------------------------------------

DYNAMODB, BOTH, LOCKFILE = "dynamodb", "both", "lockfile"


@dataclass
class StateEvidence:
    """What the sweep and the bucket's history show about how one state locks."""

    key: str
    digests: dict[str, str] = field(default_factory=dict)  # table -> Digest
    locked_in_table: bool = False
    lockfile_now: bool = False
    lock_holds: list[tuple[datetime, datetime | None]] = field(default_factory=list)  # .tflock put -> release
    obj: ObjectFacts | None = None
    md5: str | None = None  # the object's MD5 when the sweep proved or computed it
    peer_digests: set[str] = field(default_factory=set)  # same-named tables in peer regions (split brain)

    @property
    def lockfile_seen(self) -> bool:
        return self.lockfile_now or bool(self.lock_holds)

    def digest_matches(self) -> bool | None:
        """Does a digest equal the object's MD5? None: cannot tell.

        Proof of a match: the MD5 (hashed by the sweep) or an ETag equal to a digest. Proof of a
        mismatch: the MD5, or a plain 32-hex ETag (single-part upload; the auditor cannot hash, and
        an SSE-KMS ETag would fool it: findings say which proof they used). A multipart ETag proves nothing.
        """
        if not self.digests:
            return None
        # A peer region's digest that matches means a DynamoDB-locking run wrote the object (split brain).
        values = {d.lower() for d in (*self.digests.values(), *self.peer_digests)}  # hex.DecodeString: any case
        if self.md5:
            return self.md5 in values
        if self.obj is not None and self.obj.etag in values:
            return True  # an ETag equal to a digest proves it
        return None if self.obj is not None and not re.fullmatch(r"[0-9a-f]{32}", self.obj.etag) else False

    def written_under_lockfile(self) -> bool:
        if self.obj is None:
            return False
        at = self.obj.last_modified
        return any(start <= at and (end is None or at <= end) for start, end in self.lock_holds)


def lock_holds(versions: list[ObjectVersion]) -> list[tuple[datetime, datetime | None]]:
    """Intervals a .tflock existed, from its versions (a version starts one, the next entry ends it)."""
    ordered = sorted(versions, key=lambda v: (v.last_modified, v.delete_marker))
    holds: list[tuple[datetime, datetime | None]] = []
    for i, v in enumerate(ordered):
        if v.delete_marker:
            continue
        end = ordered[i + 1].last_modified if i + 1 < len(ordered) else None
        holds.append((v.last_modified, end))
    return holds


def classify_state(ev: StateEvidence) -> tuple[str | None, bool]:
    """(mode, digest is a leftover). Mode None: no evidence of either mechanism."""
    if not ev.digests:
        return (LOCKFILE if ev.lockfile_seen else None), False
    if not ev.lockfile_seen:
        return DYNAMODB, False
    match = ev.digest_matches()
    if match or match is None or ev.locked_in_table or ev.lockfile_now:
        # A matching digest, no proof of a mismatch, or a run in progress: not a leftover.
        return BOTH, False
    if ev.written_under_lockfile():
        # Terraform wrote this object under a file lock and wrote no digest for it: dynamodb_table is gone.
        return LOCKFILE, True
    return BOTH, False  # a mismatch written outside any lock: drift (the sweep reports it), not migration


def lockfile_migration(
    region: str, bucket: str, evidence: list[StateEvidence], profile: str | None = None,
) -> Finding | None:
    rows = []
    leftovers = []
    for ev in sorted(evidence, key=lambda e: e.key):
        mode, leftover = classify_state(ev)
        if mode is None:
            continue
        rows.append({"key": ev.key, "mode": mode, "digest_tables": sorted(ev.digests), "leftover_digest": leftover,
                     "mismatch_proven_by": ("md5" if ev.md5 else "etag") if leftover else None})
        if leftover:
            for table, digest in sorted(ev.digests.items()):
                leftovers.append({"table": table, "lock_id": f"{bucket}/{ev.key}{DIGEST_SUFFIX}", "digest": digest})
    modes = Counter(r["mode"] for r in rows)
    if not (modes[BOTH] or leftovers or (modes[DYNAMODB] and modes[LOCKFILE])):
        return None  # nothing migrating: all on one mechanism, nothing left over
    parts = [f"{modes[m]} {label}" for m, label in
             ((DYNAMODB, "lock with DynamoDB only"), (BOTH, "with both"), (LOCKFILE, "with the lock file only"))
             if modes[m]]
    left = (f"; {len(leftovers)} digest item{'s are' if len(leftovers) != 1 else ' is'} left over from states "
            "that moved to lockfile-only: nothing updates them, and any configuration still naming the table "
            "fails its checksum check") if leftovers else ""
    fix = []
    if leftovers:
        fix.append("Delete the leftover digests (the commands below, one per digest: each only if unchanged).")
    if modes[BOTH]:
        fix.append("States on both: once every configuration of a state has use_lockfile = true, remove "
                   "dynamodb_table from its backend block and run terraform init -reconfigure, then delete its "
                   "digest item as above.")
    if modes[DYNAMODB]:
        fix.append("States on DynamoDB only (Terraform 1.11 deprecates dynamodb_table): add use_lockfile = true "
                   "next to dynamodb_table and run terraform init -reconfigure; remove dynamodb_table once every "
                   "configuration has it.")
    return with_fix(Finding(
        Kind.LOCKFILE_MIGRATION, Severity.INFO, region, None, bucket, None, None,
        f"s3://{bucket}: {len(rows)} state{'s' if len(rows) != 1 else ''} seen, {', '.join(parts)}{left}.",
        {"states": rows, "counts": {m: modes[m] for m in (DYNAMODB, BOTH, LOCKFILE)}, "leftover_digests": leftovers},
        fix,
    ), ("Delete the leftover digests", [
        digest_delete(region, profile, item["table"], item["lock_id"], item["digest"]) for item in leftovers]))


# -- split brain -----------------------------------------------------------------------------------


@dataclass
class Holder:
    """What one region's same-named table holds for one state."""

    lock: dict[str, Any] | None = None  # LockInfo summary
    digest: str | None = None


def peer_holders(items: list[dict[str, Any]]) -> dict[tuple[str, str], Holder]:
    """A peer table's raw items by state (lock and digest items only; foreign items are ignored)."""
    held: dict[tuple[str, str], Holder] = {}
    for raw in items:
        item = classify_item(raw)
        if isinstance(item, LockItem):
            held.setdefault((item.bucket, item.key), Holder()).lock = item.lock.summary()
        elif isinstance(item, DigestItem):
            held.setdefault((item.bucket, item.key), Holder()).digest = item.stored  # exact: deletes are conditional on it
    return held


def split_brain_lock(
    region: str, table: str, bucket: str, key: str, holders: dict[str, Holder], obj: ObjectFacts | None,
    md5: str | None, bucket_region: str | None, profile: str | None = None,
) -> Finding | None:
    """``holders``: region -> what that region's table named ``table`` holds for bucket/key."""
    held = {r: h for r, h in holders.items() if h.lock or h.digest}
    if len(held) < 2:
        return None
    known = md5 or (obj.etag if obj is not None and obj.etag in {(h.digest or "").lower() for h in held.values()}
                    else None)
    regions: dict[str, Any] = {}
    said = []
    for r in sorted(held):
        h = held[r]
        matches = None if known is None or h.digest is None else h.digest.lower() == known
        regions[r] = {"lock": h.lock, "digest": h.digest, "digest_matches_object": matches}
        what = []
        if h.digest:
            what.append("a digest " + {True: "that matches the object", False: "that does not match the object",
                                       None: "(match unknown)"}[matches])
        if h.lock:
            what.append(f"a lock by {h.lock.get('who') or '?'} ({h.lock.get('operation') or '?'}) since "
                        f"{h.lock.get('created') or '?'}")
        said.append(f"{r} holds {' and '.join(what)}")
    matching = sorted(r for r, v in regions.items() if v["digest_matches_object"])
    keep = bucket_region if bucket_region in held else (matching[0] if len(matching) == 1 else None)
    to_fix = sorted(r for r in held if r != keep) if keep else sorted(held)
    state = f"{bucket}/{key}"
    digest_id = f"{state}{DIGEST_SUFFIX}"
    if keep:
        which = (f"Fix the configurations whose backend uses the {table} table in {', '.join(to_fix)}: keep "
                 f"{keep}{' (the bucket is there)' if keep == bucket_region else ''}.")
    else:
        which = "No region is the obvious keeper: pick one for every configuration (or use_lockfile)."
    fix = [
        "First look for a lost write (two runs may have written this state at once), and keep the object only "
        "if it is the state you want: the first command lists its versions.",
    ]
    commands = [list_versions(bucket_region or region, profile, bucket, key)]
    kept = held[keep].digest if keep else None
    if keep and known and kept and kept.lower() != known:
        fix.append(
            f"Then store the object's digest in {keep}'s table (its own is stale, so a configuration switched to "
            "it would fail its checksum check): the next command, only if that digest is unchanged."
        )
        commands.append(digest_put(keep, profile, table, digest_id, known, kept))
    grep = ["grep", "-rnF", "--include=*.tf", "--include=*.tfbackend", "-e", key, "."]
    find = f" To find the configurations, run in your repositories: {shell_line(grep)}" if representable(grep) else ""
    fix.append(
        f'In every configuration with bucket = "{bucket}" and key = "{key}", lock through one table: set '
        f'region = "{keep or "<one region>"}" in the backend block (and remove any endpoints.dynamodb / '
        "dynamodb_endpoint override pointing elsewhere), or set use_lockfile = true everywhere (Terraform >= "
        f"1.10: the lock lives next to the state); then terraform init -reconfigure.{find}"
    )
    removals = [digest_delete(r, profile, table, digest_id, held[r].digest) for r in to_fix if held[r].digest]  # type: ignore[arg-type]
    if removals:
        fix.append(f"After that, remove the digests in {', '.join(r for r in to_fix if held[r].digest)} "
                   "(the last commands: each only if unchanged).")
    commands += removals
    return with_fix(Finding(
        Kind.SPLIT_BRAIN_LOCK, Severity.CRITICAL, region, table, bucket, key, None,
        f"Split-brain locking on {state}: same-named tables {table} in {len(held)} regions hold its lock data "
        f"({'; '.join(said)}). A lock taken in one table does not exclude writers using the other, so two runs "
        f"can write this state at once, and each table keeps its own digest. {which}",
        {"regions": regions, "object_md5": known, "digest_matches_in": matching, "bucket_region": bucket_region,
         "keep_region": keep, "regions_to_fix": to_fix, "digest_lock_id": digest_id},
        fix,
    ), ("", commands))


def versions_per_month(versions: list[ObjectVersion], keys: set[str], now: datetime) -> float | None:
    """State writes per month for ``keys``, from their object versions in the last 30 days."""
    if not keys:
        return None
    recent = [v for v in versions if v.key in keys and not v.delete_marker and now - v.last_modified <= WRITE_RATE_WINDOW]
    return len(recent) * (timedelta(days=30) / WRITE_RATE_WINDOW)
