"""End to end: the region, topology and posture audit on backends real Terraform used.

Each test drives the terraform binary against the moto server (two regions: ap-northeast-2 and
us-east-1), then runs ``tfjanitor scan`` as a user would, and where a finding names a fix, pastes
its printed commands into bash with the real AWS CLI (tests/support/awscli.py) and scans again.

About TLS: the emulator serves plain HTTP and moto refuses every object request to a bucket with
a Deny on aws:SecureTransport = false (bucket-level reads still work). A TLS-only policy is
therefore attached only after Terraform's last write, and only where the scan that follows reads
no object (every digest proven by its ETag). Global-table replicas are not in moto: see
tests/integration/test_audit.py (pinned DescribeTable).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import BUCKET, REGION, TABLE, client, create_bucket, create_lock_table
from tests.support.awscli import Shell
from tests.support.builders import md5
from tests.support.posture import enforce_tls, harden_bucket, harden_table
from tests.support.terraform import BackendConfig, TerraformProject
from tfjanitor.local.emulator import MotoServer

pytestmark = pytest.mark.e2e

PEER = "us-east-1"
KEY = "dev/terraform.tfstate"


def paste_all(shell: Shell, tf: TerraformProject, finding: dict[str, Any]) -> None:
    """Paste a finding's commands, in order, from a working directory of the backend."""
    assert finding["details"]["commands"], finding["kind"]
    for line in finding["details"]["commands"]:
        ran = shell.paste(line, tf.workdir)
        assert ran.ok, ran.output


@dataclass
class Scan:
    code: int
    doc: dict[str, Any]
    stdout: str

    @property
    def findings(self) -> list[dict[str, Any]]:
        return self.doc["findings"]

    def kinds(self) -> list[str]:
        return [f["kind"] for f in self.findings]

    def one(self, kind: str) -> dict[str, Any]:
        [finding] = [f for f in self.findings if f["kind"] == kind]
        return finding


def scan(server: MotoServer, *args: str, table: str = TABLE) -> Scan:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/nonexistent/tfjanitor-e2e/config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/tfjanitor-e2e/credentials",
    )
    argv = [
        sys.executable,
        "-m",
        "tfjanitor",
        "scan",
        "--region",
        REGION,
        "--table",
        table,
        "--format",
        "json",
        "--endpoint-url",
        server.url,
        *args,
    ]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    try:
        return Scan(proc.returncode, json.loads(proc.stdout), proc.stdout)
    except ValueError:
        pytest.fail(f"scan printed no JSON (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def state_md5(server: MotoServer, bucket: str = BUCKET, key: str = KEY) -> str:
    return md5(client("s3", server).get_object(Bucket=bucket, Key=key)["Body"].read())


def digest(server: MotoServer, region: str, table: str = TABLE, bucket: str = BUCKET, key: str = KEY) -> str | None:
    item = (
        client("dynamodb", server, region)
        .get_item(TableName=table, Key={"LockID": {"S": f"{bucket}/{key}-md5"}}, ConsistentRead=True)
        .get("Item")
    )
    return item["Digest"]["S"] if item else None


def reconfigure(tf: TerraformProject, **options: Any) -> None:
    tf.backend = BackendConfig(**{**tf.backend.__dict__, **options})
    tf.write_config()
    tf.run("init", "-reconfigure", "-input=false", "-no-color")


# -- a. a clean, well-configured backend: nothing to say ----------------------------------------------


def test_well_configured_backend_produces_no_audit_finding(terraform, backend: MotoServer) -> None:
    tf = terraform()
    tf.init()
    tf.apply("one")
    tf.apply("two")
    enforce_tls(backend.url, BUCKET, REGION)  # after Terraform's last write (see the module docstring)

    result = scan(backend, "--peer-region", PEER)  # no same-named table there: one region

    assert result.code == 0, result.stdout
    assert result.doc["complete"] is True and result.doc["errors"] == []
    assert result.findings == []
    calls = result.doc["stats"]["api_calls"]
    # Every check ran, once: table posture, bucket posture, the version listing, the peer region's Scan.
    for op in (
        "DescribeTable",
        "DescribeContinuousBackups",
        "GetBucketVersioning",
        "GetPublicAccessBlock",
        "GetBucketPolicy",
        "GetBucketLifecycleConfiguration",
        "ListObjectVersions",
    ):
        assert calls[op] == 1, (op, calls)
    assert calls["Scan"] == 2  # here, and the (absent) table in us-east-1
    assert "GetObject" not in calls  # no state read: the digest is proven by the ETag


# -- b. split brain: two real configurations, same bucket/key, same-named tables in two regions ------------


def test_split_brain_applies_do_not_exclude_each_other_and_are_reported(terraform, backend: MotoServer, shell: Shell) -> None:
    create_lock_table(backend, TABLE, PEER)
    seoul = terraform("seoul")
    virginia = terraform("virginia", region=PEER)  # copied config, `region` changed: its table is Virginia's
    seoul.init()
    virginia.init()

    # Virginia applies (its provisioner holds the lock for 12 s); while its lock is held, Seoul applies.
    results: dict[str, Any] = {}
    background = threading.Thread(target=lambda: results.update(virginia=virginia.apply("from-virginia", sleep=12, check=False)))
    background.start()
    deadline = time.monotonic() + 60
    while (held := virginia.lock_item()) is None and background.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert held is not None, "Virginia's apply never took its lock"
    results["seoul"] = seoul.apply("from-seoul", check=False)
    still = virginia.lock_item()  # the same lock, held from before Seoul started until after it finished
    background.join(timeout=90)

    assert results["seoul"].ok, results["seoul"].output  # not blocked by Virginia's lock
    assert still is not None and still["Info"]["S"] == held["Info"]["S"], "Virginia's lock did not span Seoul's apply"
    assert results["virginia"].ok, results["virginia"].output  # and Virginia finished too
    # Both said "Apply complete!", yet the state records one of the two resources: a lost write.
    state = json.loads(client("s3", backend).get_object(Bucket=BUCKET, Key=KEY)["Body"].read())
    recorded = {i["attributes"]["triggers_replace"]["value"] for r in state["resources"] for i in r["instances"]}
    assert len(recorded) == 1 and recorded < {"from-seoul", "from-virginia"}
    assert digest(backend, REGION) and digest(backend, PEER)  # each run kept a digest in its own table

    # The Virginia team carries on through its table: Seoul's digest goes stale.
    virginia.apply("from-virginia-2")
    seoul_digest, virginia_digest, actual = digest(backend, REGION), digest(backend, PEER), state_md5(backend)
    assert virginia_digest == actual and seoul_digest and seoul_digest != actual

    alone = scan(backend)
    assert "split_brain_lock" not in alone.kinds()  # one region cannot see it

    result = scan(backend, "--peer-region", PEER)
    assert result.code == 1 and result.doc["complete"] is True, result.stdout
    split = result.one("split_brain_lock")
    assert split["severity"] == "critical" and (split["bucket"], split["key"], split["table"]) == (BUCKET, KEY, TABLE)
    regions = split["details"]["regions"]
    assert regions[REGION]["digest"] == seoul_digest and regions[PEER]["digest"] == virginia_digest
    assert split["details"]["object_md5"] == actual
    assert split["details"]["digest_matches_in"] == [PEER]
    assert regions[REGION]["digest_matches_object"] is False
    assert split["details"]["keep_region"] == REGION and split["details"]["regions_to_fix"] == [PEER]
    assert (
        f"{REGION} holds a digest that does not match the object" in split["message"]
        and f"{PEER} holds a digest that matches the object" in split["message"]
    )
    # Seoul's next run would fail its digest check, and the sweep says so too.
    assert result.one("digest_drift")["details"]["stored_md5"] == seoul_digest

    # The fix: its commands (look at the versions, make Seoul's stale digest current, remove Virginia's),
    # and the setting it names (Virginia's config moved to Seoul's table).
    paste_all(shell, seoul, split)
    [step] = [step for step in split["details"]["fix"] if "terraform init -reconfigure" in step]
    assert f'region = "{REGION}"' in step
    reconfigure(virginia, region=REGION)
    assert digest(backend, PEER) is None and digest(backend, REGION) == actual
    # Now the locks exclude each other: while a Seoul run holds the lock, Virginia's run cannot take it.
    killed = seoul.start_apply_and_kill("again")  # leaves its lock in Seoul's table, deterministically
    blocked = virginia.apply("again-virginia", check=False)
    assert not blocked.ok and "Error acquiring the state lock" in blocked.output
    assert killed.lock["ID"] in blocked.output
    seoul.force_unlock(killed.lock["ID"])
    fixed = scan(backend, "--peer-region", PEER)
    assert "split_brain_lock" not in fixed.kinds() and "digest_drift" not in fixed.kinds(), fixed.stdout


# -- c. migration: DynamoDB -> both -> the lock file only ---------------------------------------------------


def test_lockfile_migration_lists_each_states_mechanism_and_the_leftover_digest(terraform, backend: MotoServer, shell: Shell) -> None:
    plain = terraform("a", key="a/terraform.tfstate")  # stays on DynamoDB
    half = terraform("b", key="b/terraform.tfstate")  # moves to both
    moved = terraform("c", key="c/terraform.tfstate")  # moves to both, then to the lock file only
    for tf in (plain, half, moved):
        tf.init()
        tf.apply("v1")
    for tf in (half, moved):
        reconfigure(tf, use_lockfile=True)
        tf.apply("v2")
    reconfigure(moved, use_lockfile=True, dynamodb_table=None)
    moved.apply("v3")  # under the lock file only: Terraform no longer writes the digest
    leftover = digest(backend, REGION, key="c/terraform.tfstate")
    assert leftover and leftover != state_md5(backend, key="c/terraform.tfstate")

    result = scan(backend)
    migration = result.one("lockfile_migration")
    assert migration["severity"] == "info" and migration["bucket"] == BUCKET
    modes = {s["key"]: s["mode"] for s in migration["details"]["states"]}
    assert modes == {"a/terraform.tfstate": "dynamodb", "b/terraform.tfstate": "both", "c/terraform.tfstate": "lockfile"}
    assert migration["details"]["leftover_digests"] == [
        {"table": TABLE, "lock_id": f"{BUCKET}/c/terraform.tfstate-md5", "digest": leftover}
    ]
    assert "1 digest item is left over" in migration["message"]
    # The sweep still calls it drift (a config still naming the table would fail on it): critical.
    assert result.one("digest_drift")["key"] == "c/terraform.tfstate"
    assert result.code == 1

    paste_all(shell, moved, migration)  # the guarded delete of the leftover
    after = scan(backend)
    assert after.code == 0, after.stdout
    assert "digest_drift" not in after.kinds()
    assert after.one("lockfile_migration")["details"]["leftover_digests"] == []
    assert moved.plan("v3").ok and plain.plan("v1").ok  # both mechanisms still work


# -- d. each posture finding on an unconfigured backend, and each fix ---------------------------------------


def test_posture_findings_on_an_unconfigured_backend_and_the_fixes_they_name(terraform, backend: MotoServer, shell: Shell) -> None:
    create_lock_table(backend, "plain-lock")
    create_bucket(backend, "tfstate-plain")
    tf = terraform("plain", bucket="tfstate-plain", dynamodb_table="plain-lock")
    tf.init()
    tf.apply("v1")

    first = scan(backend, table="plain-lock")
    assert first.code == 1 and first.doc["complete"] is True, first.stdout
    assert {f["kind"]: f["severity"] for f in first.findings} == {
        "bucket_versioning_disabled": "warning",
        "bucket_public_access_open": "warning",
        "table_deletion_protection_disabled": "warning",
        "bucket_tls_not_enforced": "info",
        "table_pitr_disabled": "info",
    }
    for kind in (
        "bucket_versioning_disabled",
        "bucket_public_access_open",
        "table_deletion_protection_disabled",
        "table_pitr_disabled",
    ):
        paste_all(shell, tf, first.one(kind))

    # Versioned now: locks with the lock file leave old .tflock versions and delete markers behind.
    reconfigure(tf, use_lockfile=True)
    tf.apply("v2")
    tf.apply("v3")
    second = scan(backend, table="plain-lock")
    assert second.code == 0, second.stdout  # info only
    assert sorted(second.kinds()) == ["bucket_tls_not_enforced", "lockfile_migration", "lockfile_versions_accumulating"]
    versions = second.one("lockfile_versions_accumulating")
    assert versions["details"]["noncurrent_versions"] >= 2 and versions["details"]["delete_markers"] >= 2
    assert second.one("lockfile_migration")["details"]["counts"] == {"dynamodb": 0, "both": 1, "lockfile": 0}
    paste_all(shell, tf, versions)
    rules = client("s3", backend).get_bucket_lifecycle_configuration(Bucket="tfstate-plain")["Rules"]
    assert any(r.get("Expiration", {}).get("ExpiredObjectDeleteMarker") for r in rules)

    # TLS last: after it, the emulator refuses object requests (Terraform's included).
    third = scan(backend, table="plain-lock")
    assert sorted(third.kinds()) == ["bucket_tls_not_enforced", "lockfile_migration"]
    paste_all(shell, tf, third.one("bucket_tls_not_enforced"))
    final = scan(backend, table="plain-lock")
    assert final.code == 0 and final.doc["complete"] is True, final.stdout
    assert final.kinds() == ["lockfile_migration"]  # mid-migration (both): a note, not a posture problem


# -- e. a lock table Terraform cannot use -----------------------------------------------------------------


def test_wrong_or_missing_lock_table_fails_terraform_and_is_critical(terraform, backend: MotoServer, shell: Shell) -> None:
    client("dynamodb", backend).create_table(
        TableName="keyed-by-id",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    harden_table(backend.url, "keyed-by-id", REGION)
    wrong = terraform("wrong", dynamodb_table="keyed-by-id", key="wrong/terraform.tfstate")
    wrong.init()
    failed = wrong.apply("v1", check=False)
    assert not failed.ok and "Error acquiring the state lock" in failed.output

    result = scan(backend, table="keyed-by-id")
    schema = result.one("lock_table_schema")
    assert schema["severity"] == "critical" and schema["details"]["key_schema"] == [["id", "HASH", "S"]]
    assert "partition key is id" in schema["message"]
    paste_all(shell, wrong, schema)  # the new table the fix names ...
    reconfigure(wrong, dynamodb_table="keyed-by-id-terraform-lock")  # ... and the setting it names
    assert wrong.apply("v1").ok

    missing = terraform("missing", dynamodb_table="no-such-lock", key="missing/terraform.tfstate")
    missing.init()
    assert not missing.apply("v1", check=False).ok
    gone = scan(backend, table="no-such-lock")
    assert gone.code == 2 and gone.doc["complete"] is False  # nothing could be swept: incomplete, never healthy
    assert gone.one("lock_table_schema")["details"]["problem"] == "missing"


# -- f. cross-region: a table in Seoul, the bucket in Virginia ------------------------------------------------


def test_cross_region_bucket_estimates_latency_and_transfer_from_what_it_saw(terraform, backend: MotoServer) -> None:
    create_bucket(backend, "tfstate-virginia", PEER)
    harden_bucket(backend.url, "tfstate-virginia", PEER)
    tf = terraform("far", bucket="tfstate-virginia")  # region = Seoul: the lock table is Seoul's
    tf.init()
    for v in ("v1", "v2", "v3"):
        tf.apply(v)
    size = client("s3", backend, PEER).head_object(Bucket="tfstate-virginia", Key=KEY)["ContentLength"]

    result = scan(backend)
    far = result.one("cross_region_bucket")
    d = far["details"]
    assert (d["table_region"], d["bucket_region"], d["states"]) == (REGION, PEER, 1)
    assert 250 <= d["extra_ms_per_lock_operation"] <= 330  # ~150 ms each way, Seoul <-> N. Virginia
    assert d["state_bytes_seen"] == size
    assert d["write_rate_source"] == "measured: 3 state versions in the last 30 days" and d["applies_per_month"] == 3
    assert d["monthly_gb_if_terraform_runs_near_table"] == round(3 * size * 2 / 1024**3, 4)
    assert far["details"]["commands"][0].startswith(f"aws dynamodb create-table --region {PEER} --table-name {TABLE} ")
    steps = " ".join(far["details"]["fix"])
    assert "terraform init -migrate-state" in steps
    assert "use_lockfile = true" in steps
