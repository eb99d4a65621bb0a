"""The audit's judgement, pure: table and bucket posture, split brain, lockfile migration, region cost."""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tfjanitor.catalog import Check, found_by
from tfjanitor.checks import audit_rules as audit
from tfjanitor.checks import bucket_rules, state_rules
from tfjanitor.checks.findings import cross_region_bucket
from tfjanitor.checks.regions import cross_region_cost, one_way_ms
from tfjanitor.model import Kind, ObjectFacts, ObjectVersion, Severity, TableFacts

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
GOOD_KEY = (("LockID", "HASH", "S"),)


def facts(**kw: Any) -> TableFacts:
    base: dict[str, Any] = {
        "name": "terraform-state-lock",
        "region": "ap-northeast-2",
        "key_schema": GOOD_KEY,
        "deletion_protection": True,
    }
    return TableFacts(**(base | kw))


def cli_json(line: str, option: str) -> Any:
    """The JSON value of ``option`` in one of a finding's command lines."""
    words = shlex.split(line)
    return json.loads(words[words.index(option) + 1])


def test_audit_kinds_are_the_contract_and_disjoint_from_the_sweepers() -> None:
    assert {k.value for k in found_by(Check.AUDIT)} == {
        "split_brain_lock",
        "replicated_lock_table",
        "lock_table_schema",
        "table_pitr_disabled",
        "table_deletion_protection_disabled",
        "table_stream_disabled",
        "bucket_versioning_disabled",
        "bucket_public_access_open",
        "bucket_tls_not_enforced",
        "lockfile_versions_accumulating",
        "lockfile_migration",
    }
    # Each function closes only its own alerts (process_findings' resolvable_kinds).
    assert not found_by(Check.AUDIT) & found_by(Check.SWEEP)


# -- lock tables --------------------------------------------------------------------------------


def test_terraform_key_schema_passes_and_every_other_schema_is_critical() -> None:
    assert audit.lock_table_schema(facts()) is None
    cases = {
        (("LockID", "HASH", "N"),): "of type N",
        (("id", "HASH", "S"),): "partition key is id",
        (("LockID", "HASH", "S"), ("Created", "RANGE", "S")): "sort key",
    }
    for schema, why in cases.items():
        finding = audit.lock_table_schema(facts(key_schema=schema))
        assert finding is not None and finding.kind is Kind.LOCK_TABLE_SCHEMA
        assert finding.severity is Severity.CRITICAL and why in finding.message
        [create] = finding.command_lines()
        assert cli_json(create, "--key-schema") == [{"AttributeName": "LockID", "KeyType": "HASH"}]
        assert cli_json(create, "--attribute-definitions") == [{"AttributeName": "LockID", "AttributeType": "S"}]


def test_missing_table_is_critical_and_names_the_create_command() -> None:
    finding = audit.lock_table_missing("ap-northeast-2", "terraform-state-lock")
    assert (finding.kind, finding.severity, finding.details["problem"]) == (Kind.LOCK_TABLE_SCHEMA, Severity.CRITICAL, "missing")
    assert "cannot plan or apply" in finding.message
    assert finding.command_lines()[0].startswith(
        "aws dynamodb create-table --region ap-northeast-2 --table-name terraform-state-lock "
    )


def test_replicas_under_mrec_are_unsafe_for_conditional_writes_and_mrsc_says_why_not() -> None:
    assert audit.replicated_lock_table(facts(replicas=(("ap-northeast-2", "ACTIVE"),))) is None  # itself only
    mrec = audit.replicated_lock_table(facts(replicas=(("us-east-1", "ACTIVE"), ("eu-west-1", "ACTIVE"))))
    assert mrec is not None and mrec.severity is Severity.WARNING
    assert mrec.details["consistency_mode"] == "MREC" and mrec.details["replica_regions"] == ["eu-west-1", "us-east-1"]
    assert "attribute_not_exists(LockID)" in mrec.message and "both 'acquire' the lock" in mrec.message
    # One removal per replica, named: no placeholder to fill in.
    assert [cli_json(line, "--replica-updates") for line in mrec.command_lines()] == [
        [{"Delete": {"RegionName": "eu-west-1"}}],
        [{"Delete": {"RegionName": "us-east-1"}}],
    ]
    mrsc = audit.replicated_lock_table(facts(replicas=(("us-east-1", "ACTIVE"),), multi_region_consistency="STRONG"))
    assert mrsc is not None and mrsc.details["consistency_mode"] == "MRSC"
    assert "cannot both take the lock" in mrsc.message and "quorum" in mrsc.message


def test_deletion_protection_pitr_and_their_fixes() -> None:
    assert audit.deletion_protection_disabled(facts()) is None
    dp = audit.deletion_protection_disabled(facts(deletion_protection=False))
    assert dp is not None and dp.severity is Severity.WARNING
    assert dp.command_lines() == [
        "aws dynamodb update-table --region ap-northeast-2 --table-name terraform-state-lock --deletion-protection-enabled"
    ]
    assert audit.pitr_disabled("ap-northeast-2", "t", "ENABLED") is None
    pitr = audit.pitr_disabled("ap-northeast-2", "t", "DISABLED")
    assert pitr is not None and pitr.severity is Severity.INFO  # exit code 0: a hardening note
    assert cli_json(pitr.command_lines()[0], "--point-in-time-recovery-specification") == {"PointInTimeRecoveryEnabled": True}


def test_stream_check_compares_the_monitors_stream_with_the_tables() -> None:
    arn = "arn:aws:dynamodb:ap-northeast-2:123456789012:table/terraform-state-lock/stream/2026-11-01T00:00:00.000"
    live = facts(stream_enabled=True, stream_view_type="NEW_AND_OLD_IMAGES", latest_stream_arn=arn)
    assert audit.stream_disabled(live, arn) is None
    off = audit.stream_disabled(facts(), arn)
    assert off is not None and off.severity is Severity.WARNING and "disabled" in off.message
    assert cli_json(off.command_lines()[0], "--stream-specification") == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    assert off.command_lines()[-1].endswith("--query Table.LatestStreamArn --output text")  # the ARN to deploy with
    replaced = audit.stream_disabled(
        facts(stream_enabled=True, stream_view_type="NEW_AND_OLD_IMAGES", latest_stream_arn=arn.replace("11-01", "11-20")), arn
    )
    assert replaced is not None and "re-created" in replaced.message and "LockTableStreamArn" in replaced.fix[-1]
    keys_only = audit.stream_disabled(facts(stream_enabled=True, stream_view_type="KEYS_ONLY", latest_stream_arn=arn), arn)
    assert keys_only is not None and "cannot be changed in place" in keys_only.fix[0]
    assert [cli_json(line, "--stream-specification")["StreamEnabled"] for line in keys_only.command_lines()[:2]] == [False, True]


# -- buckets --------------------------------------------------------------------------------------


def test_versioning_and_public_access_block() -> None:
    assert bucket_rules.versioning_disabled("r", "b", "r", "Enabled") is None
    for status, word in ((None, "not enabled"), ("Suspended", "suspended")):
        finding = bucket_rules.versioning_disabled("r", "b", "r", status)
        assert finding is not None and finding.severity is Severity.WARNING and word in finding.message
        assert cli_json(finding.command_lines()[0], "--versioning-configuration") == {"Status": "Enabled"}
    full = dict.fromkeys(bucket_rules.PUBLIC_ACCESS_FLAGS, True)
    assert bucket_rules.public_access_open("r", "b", "r", full) is None
    missing = bucket_rules.public_access_open("r", "b", "r", None)
    assert missing is not None and "no public access block" in missing.message
    partial = bucket_rules.public_access_open("r", "b", "r", full | {"RestrictPublicBuckets": False})
    assert partial is not None and partial.details["off"] == ["RestrictPublicBuckets"]
    assert cli_json(partial.command_lines()[0], "--public-access-block-configuration") == full


TLS = {
    "Sid": "TLS",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


@pytest.mark.parametrize(
    ("statement", "enforced"),
    [
        (TLS, True),
        (TLS | {"Principal": {"AWS": "*"}}, True),
        (TLS | {"Condition": {"BoolIfExists": {"aws:SecureTransport": ["false"]}}}, True),
        (TLS | {"Resource": "arn:aws:s3:::b*"}, True),
        (TLS | {"Effect": "Allow"}, False),
        (TLS | {"Condition": {"Bool": {"aws:SecureTransport": "true"}}}, False),
        (TLS | {"Resource": "arn:aws:s3:::b"}, False),  # the bucket, not its objects
        (TLS | {"Action": "s3:GetObject"}, False),  # PutObject over HTTP still allowed
        (TLS | {"Principal": {"AWS": "arn:aws:iam::123456789012:root"}}, False),
        (TLS | {"Resource": "arn:aws:s3:::other/*"}, False),
    ],
)
def test_tls_policy_judgement(statement, enforced) -> None:
    policy = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    assert bucket_rules.tls_enforced(policy, "b") is enforced
    assert (bucket_rules.tls_not_enforced("r", "b", "r", policy) is None) is enforced


def test_tls_fix_keeps_the_current_policy_and_then_passes() -> None:
    assert not bucket_rules.tls_enforced(None, "b") and not bucket_rules.tls_enforced("{not json", "b")
    allow = {
        "Sid": "TLS",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::1:root"},
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::b/*",
    }
    finding = bucket_rules.tls_not_enforced(
        "ap-northeast-2", "b", "us-east-1", json.dumps({"Version": "2012-10-17", "Statement": [allow]})
    )
    assert finding is not None and finding.severity is Severity.INFO and finding.details["bucket_region"] == "us-east-1"
    [line] = finding.command_lines()
    merged = cli_json(line, "--policy")
    assert merged["Statement"][0] == allow  # kept
    assert merged["Statement"][1]["Sid"] == "DenyInsecureTransport"
    assert bucket_rules.tls_enforced(json.dumps(merged), "b")
    assert "--region us-east-1" in line  # the bucket's region, not the table's


def lock_version(key: str, at: datetime, latest: bool = False, marker: bool = False) -> ObjectVersion:
    return ObjectVersion(key, f"v{at.timestamp()}{marker}", latest, at, marker, 0 if marker else 230)


def lock_history(key: str, *starts: datetime, held_now: bool = False) -> list[ObjectVersion]:
    """What use_lockfile leaves in a versioned bucket: per lock a version, then a delete marker."""
    out = []
    for i, start in enumerate(starts):
        last = i == len(starts) - 1
        out.append(lock_version(key, start, latest=last and held_now))
        if not (last and held_now):
            out.append(lock_version(key, start + timedelta(seconds=5), latest=last, marker=True))
    return out


RULE = {
    "ID": "x",
    "Status": "Enabled",
    "Filter": {"Prefix": ""},
    "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
    "Expiration": {"ExpiredObjectDeleteMarker": True},
}


def test_lockfile_versions_accumulate_until_a_rule_expires_both_versions_and_markers() -> None:
    versions = lock_history("app/terraform.tfstate.tflock", T0, T0 + timedelta(minutes=5))
    assert bucket_rules.lockfile_versions_accumulating("r", "b", "r", None, versions, []) is None  # not versioned
    assert bucket_rules.lockfile_versions_accumulating("r", "b", "r", "Enabled", [], []) is None  # nothing there
    finding = bucket_rules.lockfile_versions_accumulating("r", "b", "r", "Enabled", versions, [])
    assert finding is not None and finding.severity is Severity.INFO
    assert (finding.details["noncurrent_versions"], finding.details["delete_markers"]) == (2, 2)
    merged = cli_json(finding.command_lines()[0], "--lifecycle-configuration")
    [rule] = merged["Rules"]
    assert rule["Filter"] == {"Prefix": "app/"} and rule["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert bucket_rules.lockfile_versions_accumulating("r", "b", "r", "Enabled", versions, merged["Rules"]) is None
    assert bucket_rules.lockfile_versions_accumulating("r", "b", "r", "Suspended", versions, [RULE]) is None
    # Rules that do not cover the lock files: disabled, another prefix, tag-filtered, half a rule.
    half = {k: v for k, v in RULE.items() if k != "Expiration"}
    for rules in (
        [RULE | {"Status": "Disabled"}],
        [RULE | {"Filter": {"Prefix": "other/"}}],
        [RULE | {"Filter": {"Tag": {"Key": "k", "Value": "v"}}}],
        [half],
    ):
        finding = bucket_rules.lockfile_versions_accumulating("r", "b", "r", "Enabled", versions, rules)
        assert finding is not None, rules
    finding = bucket_rules.lockfile_versions_accumulating("r", "b", "r", "Enabled", versions, [half])
    assert finding is not None
    merged = cli_json(finding.command_lines()[0], "--lifecycle-configuration")
    assert merged["Rules"][0] == half and "NoncurrentVersionExpiration" not in merged["Rules"][1]


# -- lockfile migration ------------------------------------------------------------------------------


def ev(
    key: str,
    *,
    digest: str | None = None,
    etag: str = "a" * 32,
    written: datetime = T0,
    holds=(),
    md5: str | None = None,
    lockfile_now: bool = False,
    locked: bool = False,
) -> state_rules.StateEvidence:
    return state_rules.StateEvidence(
        key=key,
        digests={"terraform-state-lock": digest} if digest else {},
        locked_in_table=locked,
        lockfile_now=lockfile_now,
        lock_holds=list(holds),
        obj=ObjectFacts(etag, 100, written),
        md5=md5,
    )


HOLD = (T0 - timedelta(seconds=1), T0 + timedelta(seconds=3))


def test_each_state_is_classified_by_what_the_bucket_and_table_show() -> None:
    assert state_rules.classify_state(ev("a", digest="a" * 32)) == ("dynamodb", False)
    assert state_rules.classify_state(ev("b", digest="a" * 32, holds=[HOLD])) == ("both", False)
    assert state_rules.classify_state(ev("c", holds=[HOLD])) == ("lockfile", False)
    assert state_rules.classify_state(ev("d")) == (None, False)  # no evidence of any locking
    # Written by Terraform under a file lock, with no digest for it: the digest is a leftover.
    assert state_rules.classify_state(ev("e", digest="f" * 32, holds=[HOLD])) == ("lockfile", True)
    # The same mismatch written outside any lock: a hand edit (drift, the sweep's), not migration.
    outside = ev("f", digest="f" * 32, holds=[HOLD], written=T0 + timedelta(minutes=1))
    assert state_rules.classify_state(outside) == ("both", False)
    # A run in progress, or no proof of a mismatch (a multipart ETag, not hashed): never a leftover.
    assert state_rules.classify_state(ev("g", digest="f" * 32, holds=[HOLD], lockfile_now=True)) == ("both", False)
    assert state_rules.classify_state(ev("h", digest="f" * 32, holds=[HOLD], etag="9" * 32 + "-3")) == ("both", False)
    # A hashed MD5 decides, whatever the ETag says.
    assert state_rules.classify_state(ev("i", digest="f" * 32, holds=[HOLD], etag="9" * 32 + "-3", md5="e" * 32)) == ("lockfile", True)
    # A peer region's digest matching the object: a DynamoDB-locking run wrote it (split brain).
    split = ev("j", digest="f" * 32, holds=[HOLD])
    split.peer_digests = {"a" * 32}
    assert state_rules.classify_state(split) == ("both", False)


def test_lock_holds_from_versions() -> None:
    holds = state_rules.lock_holds(lock_history("k.tflock", T0, T0 + timedelta(minutes=1), held_now=True))
    assert holds == [(T0, T0 + timedelta(seconds=5)), (T0 + timedelta(minutes=1), None)]


def test_migration_finding_lists_modes_and_leftovers_with_a_guarded_delete() -> None:
    states = [
        ev("a/terraform.tfstate", digest="a" * 32),
        ev("b/terraform.tfstate", digest="a" * 32, holds=[HOLD]),
        ev("c/terraform.tfstate", digest="f" * 32, holds=[HOLD]),
    ]
    finding = state_rules.lockfile_migration("ap-northeast-2", "b", states)
    assert finding is not None and finding.kind is Kind.LOCKFILE_MIGRATION and finding.severity is Severity.INFO
    assert finding.details["counts"] == {"dynamodb": 1, "both": 1, "lockfile": 1}
    assert [(s["key"], s["mode"], s["leftover_digest"]) for s in finding.details["states"]] == [
        ("a/terraform.tfstate", "dynamodb", False),
        ("b/terraform.tfstate", "both", False),
        ("c/terraform.tfstate", "lockfile", True),
    ]
    assert finding.details["leftover_digests"] == [
        {"table": "terraform-state-lock", "lock_id": "b/c/terraform.tfstate-md5", "digest": "f" * 32}
    ]
    [delete] = finding.command_lines()
    assert cli_json(delete, "--key") == {"LockID": {"S": "b/c/terraform.tfstate-md5"}}
    assert cli_json(delete, "--expression-attribute-values") == {":d": {"S": "f" * 32}}
    assert "--condition-expression 'Digest = :d'" in delete


def test_no_migration_note_when_nothing_is_migrating() -> None:
    assert state_rules.lockfile_migration("r", "b", [ev("a", digest="a" * 32), ev("b", digest="a" * 32)]) is None
    assert state_rules.lockfile_migration("r", "b", [ev("a", holds=[HOLD]), ev("b", lockfile_now=True)]) is None
    assert state_rules.lockfile_migration("r", "b", []) is None


# -- split brain ------------------------------------------------------------------------------------------


def test_split_brain_says_who_holds_what_which_digest_matches_and_which_config_to_fix() -> None:
    lock = {"id": "1", "who": "ci@runner-7", "operation": "OperationTypeApply", "created": "2026-11-20T09:00:00Z"}
    holders = {"ap-northeast-2": state_rules.Holder(digest="a" * 32), "us-east-1": state_rules.Holder(digest="b" * 32, lock=lock)}
    obj = ObjectFacts("b" * 32, 500, T0)  # the object's ETag proves Virginia's digest
    finding = state_rules.split_brain_lock(
        "ap-northeast-2", "terraform-state-lock", "tfstate", "dev/t.tfstate", holders, obj, None, "ap-northeast-2"
    )
    assert finding is not None and finding.kind is Kind.SPLIT_BRAIN_LOCK and finding.severity is Severity.CRITICAL
    d = finding.details
    assert d["digest_matches_in"] == ["us-east-1"] and d["object_md5"] == "b" * 32
    assert d["regions"]["ap-northeast-2"]["digest_matches_object"] is False
    assert d["regions"]["us-east-1"]["lock"]["who"] == "ci@runner-7"
    assert (d["keep_region"], d["regions_to_fix"]) == ("ap-northeast-2", ["us-east-1"])  # the bucket's region
    assert "ci@runner-7" in finding.message and "does not exclude" in finding.message
    # In order: look for a lost write, make the kept table's stale digest current, move the configs, clean up.
    assert "terraform init -reconfigure" in finding.fix[2]
    assert 'region = "ap-northeast-2"' in finding.fix[2] and "use_lockfile = true" in finding.fix[2]
    look, store, removal = finding.command_lines()
    assert look.startswith("aws s3api list-object-versions --region ap-northeast-2 ")
    # The kept table's digest is stale: store the object's, only if that digest is still the stale one.
    assert store.startswith("aws dynamodb put-item --region ap-northeast-2 ")
    assert cli_json(store, "--item") == {"LockID": {"S": "tfstate/dev/t.tfstate-md5"}, "Digest": {"S": "b" * 32}}
    assert cli_json(store, "--expression-attribute-values") == {":d": {"S": "a" * 32}}
    assert removal.startswith("aws dynamodb delete-item --region us-east-1 ")
    assert cli_json(removal, "--expression-attribute-values") == {":d": {"S": "b" * 32}}


def test_one_region_is_not_split_brain() -> None:
    only = {"ap-northeast-2": state_rules.Holder(digest="a" * 32), "us-east-1": state_rules.Holder()}
    assert state_rules.split_brain_lock("r", "t", "b", "k", only, None, None, None) is None


def test_peer_items_are_read_in_terraforms_formats() -> None:
    items = [
        {"LockID": {"S": "b/k-md5"}, "Digest": {"S": "c" * 32}},
        {
            "LockID": {"S": "b/k"},
            "Info": {
                "S": json.dumps(
                    {
                        "ID": "x",
                        "Operation": "OperationTypePlan",
                        "Info": "",
                        "Who": "me@host",
                        "Version": "1.11.4",
                        "Created": "2026-11-20T09:00:00.123456789Z",
                        "Path": "b/k",
                    },
                    separators=(",", ":"),
                )
            },
        },
        {"LockID": {"S": "cache-entry"}, "Value": {"N": "3"}},  # another workload's item: ignored
    ]
    held = state_rules.peer_holders(items)
    assert set(held) == {("b", "k")}
    holder = held[("b", "k")]
    assert holder.digest == "c" * 32 and holder.lock is not None and holder.lock["who"] == "me@host"


# -- cross region -----------------------------------------------------------------------------------------


def test_region_latency_estimates() -> None:
    estimate = one_way_ms("ap-northeast-2", "us-east-1")
    assert estimate is not None and 140 <= estimate <= 160  # ~150 ms measured
    assert one_way_ms("eu-west-1", "eu-west-1") == 5
    assert (one_way_ms("us-east-1", "us-east-2") or 0) < 20
    assert one_way_ms("ap-northeast-2", "xx-nowhere-1") is None


def test_cross_region_finding_estimates_latency_and_transfer_and_says_where_the_rate_came_from() -> None:
    assumed = cross_region_bucket("ap-northeast-2", "t", "b", "us-east-1", 2, state_sizes=[1024**2, 3 * 1024**2])
    d = assumed.details
    assert (d["table_region"], d["bucket_region"], d["states"]) == ("ap-northeast-2", "us-east-1", 2)
    assert 270 <= d["extra_ms_per_lock_operation"] <= 310 and d["extra_ms_per_apply"] == 5 * d["extra_ms_per_lock_operation"]
    assert d["write_rate_source"].startswith("assumed") and d["applies_per_month"] == 60
    # 60 applies x 2 MiB average x (one read + one write) = 240 MiB when Terraform runs next to the table.
    assert d["monthly_gb_if_terraform_runs_near_table"] == round(240 / 1024, 4)
    assert "~" in assumed.message and "ms more per lock operation" in assumed.message
    assert assumed.command_lines()[0].startswith("aws dynamodb create-table --region us-east-1 ")
    assert any("terraform init -migrate-state" in f for f in assumed.fix)
    assert any("use_lockfile = true" in f for f in assumed.fix)
    measured = cross_region_cost("ap-northeast-2", "us-east-1", [1024**2], 12.0, "measured: 12 state versions")
    source = measured.to_dict()["write_rate_source"]
    assert isinstance(source, str) and source.startswith("measured") and measured.applies_per_month == 12


def test_audit_alert_emails_have_a_title_and_fit_the_subject_limit() -> None:
    from tfjanitor.alerts.emails import SUBJECT_LIMIT, render
    from tfjanitor.alerts.lifecycle import Notice

    findings = [
        audit.deletion_protection_disabled(facts(deletion_protection=False, name="a-rather-long-lock-table-name" * 2)),
        state_rules.split_brain_lock(
            "ap-northeast-2",
            "t",
            "b",
            "env:/staging/dev/terraform.tfstate",
            {"ap-northeast-2": state_rules.Holder(digest="a" * 32), "us-east-1": state_rules.Holder(digest="b" * 32)},
            None,
            None,
            None,
        ),
    ]
    subjects = []
    for f in findings:
        assert f is not None
        email = render(Notice("opened", f.to_dict(), "fp", T0, T0))
        assert len(email.subject) < SUBJECT_LIMIT and "_" not in email.subject.split(":")[0]
        assert f.fix[0] in email.plain and all(line in email.plain for line in f.command_lines())  # the fix travels
        subjects.append(email.subject)
    assert subjects[0].startswith("[tfjanitor] WARNING Lock table without deletion protection: ")
    assert subjects[1].startswith("[tfjanitor] CRITICAL Split-brain locking: b/env:/staging/")
