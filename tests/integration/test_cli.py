"""`tfjanitor scan` as a user runs it: a subprocess, environment-driven AWS settings, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.support.builders import lock_info, put_lock, put_state, state_body
from tests.support.posture import enforce_tls


def run(server, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base.update(server.env())
    base["AWS_REGION"] = REGION
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tfjanitor", *args], capture_output=True, text=True, env=base, timeout=60, check=False
    )


def test_json_contract_and_exit_code_1_on_findings(backend) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_state(s3, ddb, BUCKET, "prod/terraform.tfstate", state_body())
    # A first apply killed before it wrote any state: no sign of life since the lock was taken.
    put_lock(ddb, BUCKET, "dev/terraform.tfstate", lock_info("x", age=timedelta(hours=2), lock_id="aaaa-bbbb"))
    enforce_tls(backend.url, BUCKET, REGION)  # after the last object write: the backend is now fully hardened
    proc = run(backend, "scan", "--table", TABLE, "--format", "json")  # region and endpoint from the environment
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) >= {"region", "complete", "findings", "errors", "stats"}
    assert doc["region"] == REGION and doc["complete"] is True and doc["errors"] == []
    [finding] = doc["findings"]
    assert set(finding) >= {"kind", "severity", "region", "table", "bucket", "key", "lock_id", "message", "details"}
    assert finding["kind"] == "stale_lock" and finding["lock_id"] == "aaaa-bbbb"
    assert finding["key"] == "dev/terraform.tfstate" and finding["bucket"] == BUCKET
    assert doc["stats"]["api_calls"]["Scan"] == 1


def test_clean_scan_exits_0_and_says_so(backend) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_state(s3, ddb, BUCKET, "dev/terraform.tfstate", state_body())
    enforce_tls(backend.url, BUCKET, REGION)  # after the last object write: the backend is now fully hardened
    proc = run(backend, "scan", "--region", REGION, "--table", TABLE, "--endpoint-url", backend.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sweep complete" in proc.stdout and "No findings" in proc.stdout


def test_stale_after_flag_and_table_output_shows_the_fix(backend) -> None:
    ddb = client("dynamodb", backend)
    put_lock(ddb, BUCKET, "dev/terraform.tfstate", lock_info("x", age=timedelta(minutes=3), lock_id="cafe-0001"))
    assert run(backend, "scan", "--table", TABLE).returncode == 0  # 3 minutes is fresh by default
    proc = run(backend, "scan", "--table", TABLE, "--stale-after", "90s")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("#"))
    assert header.split() == ["#", "SEVERITY", "KIND", "STATE", "LOCK", "ID", "AGE"]
    assert any("stale_lock" in line and "cafe-0001" in line and "3m0" in line for line in lines)
    # Each command on a line of its own, the recommended release first.
    assert f"      tfjanitor unlock --region {REGION} --id cafe-0001 --table {TABLE} -- {BUCKET}/dev/terraform.tfstate" in lines
    assert "      terraform force-unlock -force -- cafe-0001" in lines


def test_incomplete_scan_exits_2_and_says_what_was_not_checked(backend) -> None:
    proc = run(backend, "scan", "--table", "no-such-table")
    assert proc.returncode == 2
    assert "SWEEP INCOMPLETE" in proc.stdout and "no-such-table" in proc.stdout
    assert "No findings" not in proc.stdout
    doc = json.loads(run(backend, "scan", "--table", "no-such-table", "--format", "json").stdout)
    assert doc["complete"] is False and doc["errors"][0]["code"] == "ResourceNotFoundException"


def test_bad_usage_exits_2(backend) -> None:
    assert run(backend, "scan").returncode == 2  # --table is required
    bad = run(backend, "scan", "--table", TABLE, "--stale-after", "soon")
    assert bad.returncode == 2 and "not a duration" in bad.stderr
    no_region = run(backend, "scan", "--table", TABLE, env={"AWS_REGION": "", "AWS_DEFAULT_REGION": ""})
    assert no_region.returncode == 2 and "region" in no_region.stderr


def test_unreachable_endpoint_is_incomplete_not_healthy(backend) -> None:
    proc = run(backend, "scan", "--table", TABLE, "--endpoint-url", "http://127.0.0.1:9", "--format", "json")
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["complete"] is False and doc["errors"][0]["code"] == "EndpointConnectionError"


def test_skip_audit_runs_only_the_sweep_checks(backend) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_state(s3, ddb, BUCKET, "dev/terraform.tfstate", state_body())
    full = json.loads(run(backend, "scan", "--table", TABLE, "--format", "json").stdout)
    fast = json.loads(run(backend, "scan", "--table", TABLE, "--format", "json", "--skip-audit").stdout)
    assert set(fast["stats"]["api_calls"]) == {"Scan", "ListObjectsV2", "GetBucketLocation"}
    assert set(full["stats"]["api_calls"]) > set(fast["stats"]["api_calls"])  # the audit's posture reads
    assert all(f["kind"] != "bucket_tls_not_enforced" for f in fast["findings"])
