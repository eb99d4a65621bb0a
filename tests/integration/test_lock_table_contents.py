"""What users' real lock tables hold (issue 18.5): a table of another key schema is one finding."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import BUCKET, REGION, client
from tests.integration.conftest import kinds, sweep
from tests.support.builders import put_state, state_body
from tfjanitor.local.emulator import MotoServer

TERRAGRUNT = "terragrunt-locks"


def terragrunt_table(server: MotoServer) -> None:
    """Old Terragrunt's own lock table: hash key StateFileId."""
    ddb = client("dynamodb", server)
    ddb.create_table(
        TableName=TERRAGRUNT,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "StateFileId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "StateFileId", "AttributeType": "S"}],
    )
    for i in range(5):
        ddb.put_item(
            TableName=TERRAGRUNT,
            Item={"StateFileId": {"S": f"{BUCKET}/app{i}/terraform.tfstate"}, "Username": {"S": "ci"}, "Ip": {"S": "10.0.0.1"}},
        )


def test_a_table_of_another_key_schema_is_one_finding_naming_items_by_their_key(backend: MotoServer) -> None:
    terragrunt_table(backend)
    put_state(client("s3", backend), client("dynamodb", backend), BUCKET, "dev/terraform.tfstate", state_body())
    result = sweep(backend, tables=["terraform-state-lock", TERRAGRUNT])
    assert kinds(result) == ["lock_table_schema"], [f.message for f in result.findings]
    [finding] = result.findings
    assert finding.table == TERRAGRUNT and "partition key is StateFileId" in finding.message
    assert finding.details["items_without_lockid"] == 5
    assert finding.details["example_items"][0].startswith(f"StateFileId={BUCKET}/app")
    assert "None" not in finding.message


def test_the_cli_scan_reports_it_once_with_the_audit(backend: MotoServer) -> None:
    terragrunt_table(backend)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfjanitor",
            "scan",
            "--region",
            REGION,
            "--table",
            TERRAGRUNT,
            "--format",
            "json",
            "--endpoint-url",
            backend.url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1, proc.stdout
    found = [f["kind"] for f in doc["findings"]]
    assert found.count("lock_table_schema") == 1 and "malformed_item" not in found, found  # and its posture
    assert not any("Item None" in f["message"] for f in doc["findings"])
