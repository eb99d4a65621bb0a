"""The audit's rules on state buckets: versioning, public access, TLS, lock-file version lifecycle (pure code).

Inputs are a bucket's posture as read (model.BucketPosture's parts) and its object versions; outputs are
Findings whose ``commands`` set the bucket's configuration (never an object). Severities as in
``checks/audit_rules.py``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from tfjanitor.checks.fixes import Argv, with_fix
from tfjanitor.commands import aws, json_arg, option
from tfjanitor.model import Finding, Kind, ObjectVersion, Severity
from tfjanitor.terraform import LOCKFILE_SUFFIX

PUBLIC_ACCESS_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
TLS_SID = "DenyInsecureTransport"
LIFECYCLE_RULE_ID = "tfjanitor-expire-old-lock-versions"
NONCURRENT_DAYS = 30  # the fix's rule: noncurrent versions older than this ...
KEEP_NEWER_NONCURRENT = 20  # ... beyond the 20 newest of each key (state history stays recoverable)


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _bucket_finding(
    kind: Kind,
    severity: Severity,
    region: str,
    bucket: str,
    bucket_region: str,
    message: str,
    details: dict[str, Any],
    fix: list[str],
    commands: list[Argv],
) -> Finding:
    return with_fix(
        Finding(kind, severity, region, None, bucket, None, None, message, {"bucket_region": bucket_region, **details}, fix),
        ("", commands),
    )


def s3api_bucket(operation: str, region: str, profile: str | None, bucket: str, *args: str) -> Argv:
    """``aws s3api OPERATION`` on one bucket's configuration (a bucket name, never an object key)."""
    return aws("s3api", operation, region, profile, *option("--bucket", bucket), *args)


def versioning_disabled(
    region: str, bucket: str, bucket_region: str, status: str | None, profile: str | None = None
) -> Finding | None:
    if status == "Enabled":
        return None
    state = "suspended" if status == "Suspended" else "not enabled"
    return _bucket_finding(
        Kind.BUCKET_VERSIONING_DISABLED,
        Severity.WARNING,
        region,
        bucket,
        bucket_region,
        f"Versioning is {state} on state bucket {bucket}: a bad state write (a botched apply, a state push, "
        "a hand edit, a deleted workspace) cannot be undone, there is no earlier state to go back to.",
        {"versioning": status or "never enabled"},
        [
            "Enable versioning (the command below).",
            "Then expire old versions with a lifecycle rule (NoncurrentVersionExpiration with "
            "NewerNoncurrentVersions) so the history stays bounded.",
        ],
        [
            s3api_bucket(
                "put-bucket-versioning", bucket_region, profile, bucket, "--versioning-configuration", json_arg({"Status": "Enabled"})
            )
        ],
    )


def public_access_open(
    region: str, bucket: str, bucket_region: str, config: dict[str, bool] | None, profile: str | None = None
) -> Finding | None:
    config = config or {}
    off = [flag for flag in PUBLIC_ACCESS_FLAGS if not config.get(flag)]
    if not off:
        return None
    what = "has no public access block" if not config else f"has {', '.join(off)} off in its public access block"
    return _bucket_finding(
        Kind.BUCKET_PUBLIC_ACCESS_OPEN,
        Severity.WARNING,
        region,
        bucket,
        bucket_region,
        f"State bucket {bucket} {what}: one ACL or policy change can make states public, and states hold "
        "secrets (passwords, keys, tokens) in plain text. (An account-level block also protects it: check "
        "aws s3control get-public-access-block.)",
        {"public_access_block": {flag: bool(config.get(flag)) for flag in PUBLIC_ACCESS_FLAGS}, "off": off},
        ["Turn every public access block setting on (the command below)."],
        [
            s3api_bucket(
                "put-public-access-block",
                bucket_region,
                profile,
                bucket,
                "--public-access-block-configuration",
                json_arg({flag: True for flag in PUBLIC_ACCESS_FLAGS}),
            )
        ],
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
        "Sid": TLS_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def tls_not_enforced(region: str, bucket: str, bucket_region: str, policy: str | None, profile: str | None = None) -> Finding | None:
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
        Kind.BUCKET_TLS_NOT_ENFORCED,
        Severity.INFO,
        region,
        bucket,
        bucket_region,
        f"State bucket {bucket} does not refuse plain-HTTP requests (no Deny on aws:SecureTransport = false "
        "for every principal): Terraform and the AWS SDKs use HTTPS by default, but a client configured with "
        "an http:// endpoint would move states, and their secrets, in clear text.",
        {"has_policy": policy is not None, "statement_to_add": statement},
        [
            "Check that nothing reads this bucket over plain HTTP, then apply its current policy plus the TLS "
            "statement with the command below (put-bucket-policy replaces the whole policy; its document keeps "
            "every current statement)."
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
    region: str,
    bucket: str,
    bucket_region: str,
    versioning: str | None,
    versions: list[ObjectVersion],
    rules: list[dict[str, Any]],
    profile: str | None = None,
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
    new_rule: dict[str, Any] = {"ID": LIFECYCLE_RULE_ID, "Status": "Enabled", "Filter": {"Prefix": _common_prefix(lock_keys)}}
    if not coverage.noncurrent:
        missing.append("no rule expires noncurrent versions")
        new_rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": NONCURRENT_DAYS, "NewerNoncurrentVersions": KEEP_NEWER_NONCURRENT}
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
        Kind.LOCKFILE_VERSIONS_ACCUMULATING,
        Severity.INFO,
        region,
        bucket,
        bucket_region,
        f"Versioned bucket {bucket} holds {len(old_versions)} noncurrent .tflock versions and {len(markers)} "
        f"delete markers for {len(lock_keys)} lock files, and {' and '.join(missing)}: every lock with "
        "use_lockfile adds one of each, forever (listing and storage grow with every run).",
        {
            "lockfiles": len(lock_keys),
            "noncurrent_versions": len(old_versions),
            "delete_markers": len(markers),
            "lifecycle_rules": len(rules),
            "rule_to_add": new_rule,
        },
        [
            "Add a lifecycle rule with the command below (put-bucket-lifecycle-configuration replaces the whole "
            "configuration; its document keeps every current rule). It also expires noncurrent *state* versions "
            f"older than {NONCURRENT_DAYS} days beyond the {KEEP_NEWER_NONCURRENT} newest of each key; adjust if "
            "you keep more history."
        ],
        [
            s3api_bucket(
                "put-bucket-lifecycle-configuration", bucket_region, profile, bucket, "--lifecycle-configuration", json_arg(merged)
            )
        ],
    )
