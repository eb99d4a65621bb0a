"""One command that looks everywhere (issue 12.1): another account through --role-arn, several regions
read concurrently, lock tables found by their key schema, and a region that fails without hiding the rest."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import boto3
import pytest

from tests.support.builders import lock_info, put_lock, put_state, state_body
from tfjanitor.local.proxy import EmulatorProxy

OTHER_ACCOUNT = "222222222222"
ROLE = f"arn:aws:iam::{OTHER_ACCOUNT}:role/tfjanitor-reader"


def other_account(server) -> boto3.session.Session:
    creds = boto3.client(
        "sts", region_name="us-east-1", endpoint_url=server.url, aws_access_key_id="test", aws_secret_access_key="test"
    ).assume_role(RoleArn=ROLE, RoleSessionName="setup")["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"]
    )


def backend_in(session, server, region: str, table: str, bucket: str):
    ddb = session.client("dynamodb", region_name=region, endpoint_url=server.url)
    s3 = session.client("s3", region_name=region, endpoint_url=server.url)
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    return s3, ddb


@pytest.fixture
def fleet(emulator):
    """Account 222222222222: a stale lock in eu-west-1, a drift in us-west-2, a table that is not a lock
    table; the default account has a backend of its own that --role-arn must not show."""
    other = other_account(emulator)
    s3, ddb = backend_in(other, emulator, "eu-west-1", "locks-eu", "state-eu-222")
    # A first apply that died before writing any state: no sign of life since its lock was taken.
    put_lock(ddb, "state-eu-222", "app/terraform.tfstate", lock_info("x", age=timedelta(hours=3), lock_id="dead-eu"), table="locks-eu")
    s3, ddb = backend_in(other, emulator, "us-west-2", "locks-us", "state-us-222")
    put_state(s3, ddb, "state-us-222", "net/terraform.tfstate", state_body(2), table="locks-us")
    s3.put_object(Bucket="state-us-222", Key="net/terraform.tfstate", Body=state_body(3))
    other.client("dynamodb", region_name="us-west-2", endpoint_url=emulator.url).create_table(
        TableName="not-locks",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    mine = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test")
    s3, ddb = backend_in(mine, emulator, "eu-west-1", "locks-mine", "state-mine-123")
    put_lock(ddb, "state-mine-123", "x/terraform.tfstate", lock_info("x", age=timedelta(hours=3)), table="locks-mine")
    return emulator


def scan(endpoint: str, *args: str) -> tuple[int, dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "tfjanitor", "scan", "--skip-audit", "--format", "json", "--endpoint-url", endpoint, *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_role_all_regions_and_discovery_find_the_other_accounts_problems(fleet) -> None:
    code, doc = scan(fleet.url, "--region", "eu-west-1", "--role-arn", ROLE, "--all-regions", "--discover-tables")
    assert doc["account"] == OTHER_ACCOUNT and len(doc["regions"]) > 3 and doc["complete"], doc["errors"]
    found = {(f["kind"], f["region"], f["table"], f["account"]) for f in doc["findings"]}
    assert found == {("stale_lock", "eu-west-1", "locks-eu", OTHER_ACCOUNT), ("digest_drift", "us-west-2", "locks-us", OTHER_ACCOUNT)}
    assert "not-locks" not in doc["tables"] and "locks-mine" not in doc["tables"]
    assert code == 1
    stats = doc["stats"]  # regions read four at a time: the longest chain is far shorter than all the calls
    assert 0 < stats["critical_path_calls"] < stats["total_api_calls"]
    assert {name.split("/", 1)[0] for name in stats["bucket_reads"]} <= set(doc["regions"])


def test_a_region_that_fails_makes_the_scan_incomplete_without_hiding_the_others(fleet) -> None:
    with EmulatorProxy(fleet.url, failing_regions={"ap-south-1"}) as proxy:
        code, doc = scan(
            proxy.url,
            "--role-arn",
            ROLE,
            "--region",
            "eu-west-1",
            "--region",
            "us-west-2",
            "--region",
            "ap-south-1",
            "--discover-tables",
        )
    assert proxy.failed and code == 2 and doc["complete"] is False
    assert doc["regions"] == ["eu-west-1", "us-west-2", "ap-south-1"]
    assert {e["region"] for e in doc["errors"]} == {"ap-south-1"}
    assert {f["kind"] for f in doc["findings"]} == {"stale_lock", "digest_drift"}


def test_one_region_keeps_the_single_region_shape_and_names_the_account(fleet) -> None:
    code, doc = scan(fleet.url, "--region", "eu-west-1", "--table", "locks-mine")
    assert doc["account"] == "123456789012" and doc["region"] == "eu-west-1" and doc["regions"] == ["eu-west-1"]
    assert [(f["kind"], f["account"]) for f in doc["findings"]] == [("stale_lock", "123456789012")] and code == 1
