"""The JSON Schemas of docs/schemas/ describe what the CLI really prints: `scan`, `locks`, `unlock` and
`unlock --mine` run as a user runs them (a subprocess against moto server), healthy, with findings, incomplete
and on bad usage, and each output validated against its command's schema (docs/cli.md links them)."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.integration.test_cli import run
from tests.support.builders import lock_info, put_lock, put_state, state_body
from tests.support.posture import enforce_tls
from tfjanitor.local.emulator import MotoServer
from tfjanitor.release.machine import LocalMachine

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
COMMANDS = ("scan", "locks", "unlock", "unlock-mine")


def validated(schema: str, proc: subprocess.CompletedProcess[str], exit_code: int) -> dict[str, Any]:
    """The one JSON object the command printed, valid against docs/schemas/<schema>.json."""
    assert proc.returncode == exit_code, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    errors = sorted(
        Draft202012Validator(json.loads((SCHEMAS / f"{schema}.json").read_text())).iter_errors(doc),
        key=lambda e: list(e.absolute_path),
    )
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])
    return doc


@pytest.mark.parametrize("schema", COMMANDS)
def test_each_schema_is_a_valid_json_schema(schema: str) -> None:
    doc = json.loads((SCHEMAS / f"{schema}.json").read_text())
    Draft202012Validator.check_schema(doc)
    assert doc["$id"] == f"https://tfjanitor.github.io/tfjanitor/schemas/{schema}.json"


def broken_backend(server: MotoServer) -> None:
    """One stale lock, one drifted state, one healthy state; the bucket not TLS-only (an info finding)."""
    s3, ddb = client("s3", server), client("dynamodb", server)
    put_state(s3, ddb, BUCKET, "prod/terraform.tfstate", state_body())
    put_state(s3, ddb, BUCKET, "drift/terraform.tfstate", state_body(1))
    s3.put_object(Bucket=BUCKET, Key="drift/terraform.tfstate", Body=state_body(2))
    put_lock(ddb, BUCKET, "dev/terraform.tfstate", lock_info("x", age=timedelta(hours=2), lock_id="aaaa-bbbb"))


def test_scan_healthy(backend: MotoServer) -> None:
    put_state(client("s3", backend), client("dynamodb", backend), BUCKET, "ok/terraform.tfstate", state_body())
    enforce_tls(backend.url, BUCKET, REGION)  # after the last object write: the backend is now fully hardened
    healthy = validated("scan", run(backend, "scan", "--table", TABLE, "--format", "json"), 0)
    assert healthy["complete"] and healthy["findings"] == [] and healthy["stats"]["states"] == 1


def test_scan_findings_incomplete_and_bad_usage(backend: MotoServer) -> None:
    broken_backend(backend)
    found = validated("scan", run(backend, "scan", "--table", TABLE, "--format", "json"), 1)
    kinds = {f["kind"] for f in found["findings"]}
    assert {"stale_lock", "digest_drift", "bucket_tls_not_enforced"} <= kinds, kinds

    incomplete = validated("scan", run(backend, "scan", "--table", "no-such-table", "--format", "json"), 2)
    assert incomplete["complete"] is False and incomplete["errors"]

    usage = validated("scan", run(backend, "scan", "--format", "json"), 2)  # no --table
    assert usage == {"command": "scan", "complete": False, "errors": [usage["errors"][0]]}


def test_locks(backend: MotoServer) -> None:
    assert validated("locks", run(backend, "locks", "--table", TABLE, "--format", "json"), 0)["locks"] == []
    broken_backend(backend)
    held = validated("locks", run(backend, "locks", "--table", TABLE, "--format", "json"), 0)
    assert [lock["verdict"] for lock in held["locks"]] == ["stale"]
    validated("locks", run(backend, "locks", "--table", "no-such-table", "--format", "json"), 2)
    validated("locks", run(backend, "locks", "--table", TABLE, "--stale-after", "soon", "--format", "json"), 2)


def test_unlock(backend: MotoServer) -> None:
    state = f"{BUCKET}/dev/terraform.tfstate"
    nothing = validated("unlock", run(backend, "unlock", "--table", TABLE, "--yes", "--format", "json", state), 1)
    assert nothing["locks"] == []
    put_lock(client("dynamodb", backend), BUCKET, "dev/terraform.tfstate", lock_info("x", age=timedelta(hours=2), lock_id="aaaa-bbbb"))
    other = validated("unlock", run(backend, "unlock", "--table", TABLE, "--id", "cccc", "--yes", "--format", "json", state), 1)
    assert other["released"] == [] and other["locks"][0]["lock_id"] == "aaaa-bbbb"
    done = validated("unlock", run(backend, "unlock", "--table", TABLE, "--id", "aaaa-bbbb", "--yes", "--format", "json", state), 0)
    assert [r["lock_id"] for r in done["released"]] == ["aaaa-bbbb"]
    unread = validated("unlock", run(backend, "unlock", "--table", "no-such-table", "--yes", "--format", "json", state), 2)
    assert unread["complete"] is False
    validated("unlock", run(backend, "unlock", "--table", TABLE, "--format", "json"), 2)  # no state named


def test_unlock_mine(backend: MotoServer) -> None:
    mine = ["unlock", "--mine", "--table", TABLE, "--format", "json"]
    assert validated("unlock-mine", run(backend, *mine), 0)["released"] == []
    ddb = client("dynamodb", backend)
    # This machine's dead run (a day ago: before every live terraform run here started) and another machine's.
    put_lock(
        ddb, BUCKET, "dev/terraform.tfstate", lock_info("x", age=timedelta(days=1), lock_id="mine-0001", who=LocalMachine().who())
    )
    put_lock(ddb, BUCKET, "app/terraform.tfstate", lock_info("x", age=timedelta(days=1), lock_id="othr-0001"))
    dry = validated("unlock-mine", run(backend, *mine, "--dry-run"), 0)
    assert [lock["lock_id"] for lock in dry["would_release"]] == ["mine-0001"]
    done = validated("unlock-mine", run(backend, *mine), 0)
    assert [r["lock_id"] for r in done["released"]] == ["mine-0001"]
    assert [k["reason_code"] for k in done["kept"]] == ["other_machine"]
    validated("unlock-mine", run(backend, "unlock", "--mine", "--table", "no-such-table", "--format", "json"), 2)
    validated("unlock-mine", run(backend, *mine, "--since", "yesterday-ish"), 2)
