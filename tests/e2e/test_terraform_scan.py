"""End to end: real terraform runs leave real locks and drift; tfjanitor must see them.

Each test drives the terraform binary against the moto server (tests/support/terraform.py),
then runs the real CLI (``python -m tfjanitor.cli.main scan --format json``) as a user would,
or the engine in-process where time must be compressed or sweeps repeated quickly.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import BUCKET, REGION, TABLE
from tests.support.awscli import Shell
from tests.support.terraform import BackendConfig, TerraformProject
from tfjanitor.aws.session import AwsSession
from tfjanitor.local.emulator import MotoServer
from tfjanitor.model import ScanResult, StalePolicy
from tfjanitor.scan.sweeper import Sweeper, SweepRequest
from tfjanitor.terraform import parse_time

pytestmark = pytest.mark.e2e

KEY = "dev/terraform.tfstate"
DIGEST_ERROR = "state data in S3 does not have the expected content"
# The shared backend is set up as the audit recommends (tests/conftest.py: versioned with a lifecycle
# rule, public access blocked, PITR and deletion protection on) except for a TLS-only bucket policy:
# the emulator serves plain HTTP and moto then refuses every object request, Terraform's and the
# hashing these tests need (tests/support/posture.py). So each scan here carries exactly that one
# info note, which never changes the exit code. tests/e2e/test_region_audit.py scans a fully
# hardened backend and asserts no finding at all.
TLS_NOTE = "bucket_tls_not_enforced"


# -- running the CLI ----------------------------------------------------------------


@dataclass
class Scan:
    code: int
    doc: dict[str, Any]
    stdout: str
    stderr: str

    @property
    def findings(self) -> list[dict[str, Any]]:
        return self.doc["findings"]

    @property
    def stats(self) -> dict[str, Any]:
        return self.doc["stats"]

    def kinds(self) -> list[str]:
        return [f["kind"] for f in self.findings]


def cli_env() -> dict[str, str]:
    """The caller's environment minus every AWS_* (the emulator fixture sets AWS_ENDPOINT_URL:
    the scan must reach the emulator through --endpoint-url alone)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_CONFIG_FILE="/nonexistent/tfjanitor-e2e/config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/tfjanitor-e2e/credentials",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def scan(server: MotoServer, *extra: str, cwd: Path | None = None) -> Scan:
    argv = [
        sys.executable,
        "-m",
        "tfjanitor",
        "scan",
        "--region",
        REGION,
        "--table",
        TABLE,
        "--format",
        "json",
        "--endpoint-url",
        server.url,
        *extra,
    ]
    proc = subprocess.run(argv, env=cli_env(), cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"scan printed no JSON (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    assert doc["region"] == REGION
    return Scan(proc.returncode, doc, proc.stdout, proc.stderr)


def sweeper(server: MotoServer, now: datetime | None = None) -> Sweeper:
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    return Sweeper(AwsSession(session, endpoint_url=server.url), now=now)


def paste_all(shell: Shell, tf: TerraformProject, lines: list[str], answer: str | None = None) -> None:
    """Paste printed command lines, in order, from the state's Terraform working directory."""
    for line in lines:
        ran = shell.paste(line, tf.workdir, answer)
        assert ran.ok, ran.output


def alternative(finding: dict[str, Any], words: str) -> list[str]:
    [chosen] = [a["commands"] for a in finding["details"]["alternatives"] if words in a["label"]]
    return chosen


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def digest_of(tf: TerraformProject, state_key: str = KEY) -> str:
    item = tf.client("dynamodb").get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{state_key}-md5"}}, ConsistentRead=True)[
        "Item"
    ]
    return str(item["Digest"]["S"])


def state_bytes(tf: TerraformProject, state_key: str = KEY) -> bytes:
    return bytes(tf.client("s3").get_object(Bucket=BUCKET, Key=state_key)["Body"].read())


def put_state(tf: TerraformProject, body: bytes, state_key: str = KEY) -> None:
    tf.client("s3").put_object(Bucket=BUCKET, Key=state_key, Body=body)


def wait_until_older_than(created: str, seconds: float) -> None:
    """Sleep until a lock's Created time is more than ``seconds`` in the past."""
    age = (datetime.now(timezone.utc) - parse_time(created)).total_seconds()
    if age <= seconds:
        time.sleep(seconds - age + 0.2)


# -- a. healthy ---------------------------------------------------------------------


def test_healthy_apply_is_clean_and_its_digest_proven_by_etag(terraform, backend: MotoServer) -> None:
    tf = terraform()
    tf.init()
    tf.apply("healthy")
    assert digest_of(tf) == md5(state_bytes(tf))  # Terraform stored a digest: the table is in use

    result = scan(backend)

    assert result.code == 0, result.stdout
    assert result.doc["complete"] is True
    assert result.doc["errors"] == []
    assert result.kinds() == [TLS_NOTE]
    assert result.stats["states"] == 1
    assert result.stats["digest_items"] == 1
    assert result.stats["lock_items"] == 0
    assert result.stats["etag_proven"] >= 1
    assert result.stats["downloads"] == 0  # proven from the listing: no state was read


# -- b. workspaces ------------------------------------------------------------------


def test_workspace_state_is_swept_too_and_clean(terraform, backend: MotoServer) -> None:
    tf = terraform()
    tf.init()
    tf.apply("default-ws")
    tf.workspace_new("staging")
    tf.apply("staging-ws")
    staging_key = f"env:/staging/{KEY}"
    assert tf.backend.state_key("staging") == staging_key
    assert digest_of(tf, staging_key) == md5(state_bytes(tf, staging_key))
    tf.workspace_select("default")
    tf.plan("default-ws")  # both workspaces are still usable

    result = scan(backend)

    assert result.code == 0, result.stdout
    assert result.doc["complete"] is True
    assert result.kinds() == [TLS_NOTE]
    assert result.stats["states"] == 2  # dev/terraform.tfstate and env:/staging/dev/terraform.tfstate
    assert result.stats["digest_items"] == 2
    assert result.stats["etag_proven"] == 2
    assert result.stats["downloads"] == 0

    # Deleting the workspace deletes its digest too: nothing is left to call an orphan.
    tf.run("workspace", "delete", "-force", "-no-color", "staging")
    after = scan(backend)
    assert after.code == 0, after.stdout
    assert after.kinds() == [TLS_NOTE]
    assert after.stats["states"] == 1


# -- c. killed apply, DynamoDB lock --------------------------------------------------


def test_killed_apply_leaves_a_stale_dynamodb_lock_that_is_reported(terraform, backend: MotoServer, shell: Shell) -> None:
    tf = terraform()
    tf.init()
    tf.apply("one")
    killed = tf.start_apply_and_kill("two", sleep=300)
    assert killed.where == "dynamodb"

    # The lock item survived the kill, and Terraform itself is now blocked by it.
    item = tf.lock_item()
    assert item is not None, f"no lock item after the kill; terraform printed:\n{killed.log}"
    info = json.loads(item["Info"]["S"])
    assert info["ID"] == killed.lock["ID"]
    assert info["Operation"] == "OperationTypeApply"
    blocked = tf.plan("two", check=False)
    assert not blocked.ok
    assert "Error acquiring the state lock" in blocked.output
    assert info["ID"] in blocked.output

    wait_until_older_than(info["Created"], 1.0)
    stale = scan(backend, "--stale-after", "1s")

    assert stale.code == 1, stale.stdout
    assert stale.doc["complete"] is True
    assert stale.kinds() == ["stale_lock", TLS_NOTE], stale.stdout
    finding = stale.findings[0]
    assert finding["severity"] == "warning"
    assert finding["lock_id"] == info["ID"]
    assert finding["table"] == TABLE
    assert finding["bucket"] == BUCKET
    assert finding["key"] == KEY
    assert finding["details"]["operation"] == "OperationTypeApply"
    assert finding["details"]["who"] == info["Who"]
    assert finding["details"]["version"] == info["Version"]
    assert finding["details"]["path"] == f"{BUCKET}/{KEY}"
    assert finding["details"]["age_seconds"] >= 1
    assert finding["details"]["last_sign_of_life"]["what"] == "created"  # killed before it wrote anything
    assert stale.stats["lock_items"] == 1

    # Make the object and the digest differ while the lock is held: that is a write in progress as far as
    # anyone can tell (and a sign of life of the run holding the lock), not drift.
    original = state_bytes(tf)
    put_state(tf, original + b"\n")
    assert md5(state_bytes(tf)) != digest_of(tf)
    held = scan(backend, "--stale-after", "1m")
    assert held.kinds() == [TLS_NOTE], held.stdout  # no digest_drift
    assert held.stats["skipped_locked"] == 1  # the mismatch was seen, and held back because of the lock
    put_state(tf, original)

    # The default threshold (1h): a lock this young is somebody's apply, not stale.
    fresh = scan(backend)
    assert fresh.code == 0, fresh.stdout
    assert fresh.doc["complete"] is True
    assert fresh.kinds() == [TLS_NOTE]

    # Compressed time, in-process: stale just after the default hour of silence (since the last state write,
    # a few seconds after the lock was taken), not just before.
    created = parse_time(info["Created"])
    request = SweepRequest(REGION, [TABLE], policy=StalePolicy())
    before = sweeper(backend, now=created + timedelta(minutes=59)).sweep(request)
    after = sweeper(backend, now=created + timedelta(minutes=61)).sweep(request)
    assert before.findings == [] and before.complete
    assert [(f.kind.value, f.lock_id) for f in after.findings] == [("stale_lock", info["ID"])]
    assert after.exit_code == 1

    # Paste the finding's own fix (tfjanitor unlock, answered at the terminal), then Terraform works again.
    assert finding["details"]["commands"] == [
        f"tfjanitor unlock --region {REGION} --id {info['ID']} --table {TABLE} -- {BUCKET}/{KEY}"
    ]
    paste_all(shell, tf, finding["details"]["commands"], answer="yes")
    assert tf.lock_item() is None
    tf.apply("three")
    cleared = scan(backend, "--stale-after", "1s")
    assert cleared.code == 0, cleared.stdout
    assert cleared.kinds() == [TLS_NOTE]


# -- d. killed apply, S3 lock file only -----------------------------------------------


def test_killed_apply_with_use_lockfile_leaves_a_stale_tflock_that_is_reported(terraform, backend: MotoServer, shell: Shell) -> None:
    tf = terraform(dynamodb_table=None, use_lockfile=True)
    tf.init()
    killed = tf.start_apply_and_kill("one", sleep=300)
    assert killed.where == "s3"

    body = tf.lockfile()
    assert body is not None, f"no .tflock after the kill; terraform printed:\n{killed.log}"
    info = json.loads(body)
    assert info["ID"] == killed.lock["ID"]
    assert info["Operation"] == "OperationTypeApply"

    # Not stale yet under the defaults.
    fresh = scan(backend, "--bucket", BUCKET)
    assert fresh.code == 0, fresh.stdout
    assert fresh.kinds() == [TLS_NOTE]
    assert fresh.stats["lockfiles"] == 1

    # The engine only reads a .tflock older than the shortest threshold (LastModified).
    wait_until_older_than(info["Created"], 1.0)
    stale = scan(backend, "--bucket", BUCKET, "--stale-after", "1s", "--read-only-stale-after", "1s")

    assert stale.code == 1, stale.stdout
    assert stale.doc["complete"] is True
    assert stale.kinds() == ["stale_lockfile", TLS_NOTE], stale.stdout
    finding = stale.findings[0]
    assert finding["severity"] == "warning"
    assert finding["lock_id"] == info["ID"]
    assert finding["bucket"] == BUCKET
    assert finding["key"] == KEY
    assert finding["table"] is None
    assert finding["details"]["operation"] == "OperationTypeApply"
    assert finding["details"]["lockfile"] == f"{KEY}.tflock"
    assert stale.stats["digest_items"] == 0  # use_lockfile alone stores no digest anywhere

    # Paste the fix without tfjanitor: the AWS CLI deletes the lock object only if unchanged (If-Match its ETag).
    paste_all(shell, tf, alternative(finding, "Without tfjanitor"))
    assert tf.lockfile() is None
    tf.apply("two")
    cleared = scan(backend, "--bucket", BUCKET, "--stale-after", "1s", "--read-only-stale-after", "1s")
    assert cleared.code == 0, cleared.stdout
    assert cleared.kinds() == [TLS_NOTE]


# -- e. a state edited by hand --------------------------------------------------------


def test_hand_edited_state_breaks_terraform_and_is_reported_without_leaking_it(terraform, backend: MotoServer, shell: Shell) -> None:
    tf = terraform()
    tf.init()
    marker = f"marker-{os.urandom(8).hex()}"
    tf.apply(marker)
    original = state_bytes(tf)
    assert marker.encode() in original
    lineage = json.loads(original)["lineage"]
    stored = digest_of(tf)
    assert stored == md5(original)

    edited = original.replace(b'"serial": 1,', b'"serial": 2,', 1)
    assert edited != original
    put_state(tf, edited)
    actual = md5(edited)

    # What the user hits: every terraform run on this state fails (after 10 s of retries).
    broken = tf.plan(marker, check=False)
    assert not broken.ok
    assert DIGEST_ERROR in broken.output
    assert actual in broken.output  # Terraform's "Calculated checksum": the same MD5 tfjanitor must find

    result = scan(backend)

    assert result.code == 1, result.stdout
    assert result.doc["complete"] is True
    assert result.kinds() == ["digest_drift", TLS_NOTE], result.stdout
    finding = result.findings[0]
    assert finding["severity"] == "critical"
    assert finding["table"] == TABLE and finding["bucket"] == BUCKET and finding["key"] == KEY
    assert finding["details"]["stored_md5"] == stored
    assert finding["details"]["actual_md5"] == actual
    assert finding["details"]["size"] == len(edited)
    assert result.stats["downloads"] == 1
    # The state's contents never reach the output.
    printed = result.stdout + result.stderr
    assert marker not in printed
    assert lineage not in printed

    # Paste the finding's fix (the object is the wanted state: store its digest, only if still the one seen).
    paste_all(shell, tf, finding["details"]["commands"])
    assert digest_of(tf) == actual

    fixed = tf.plan(marker)
    assert "No changes" in fixed.output
    clean = scan(backend)
    assert clean.code == 0, clean.stdout
    assert clean.kinds() == [TLS_NOTE]
    assert clean.stats["etag_proven"] == 1


# -- f. sweeps racing real applies ----------------------------------------------------


def test_sweeps_racing_real_applies_never_report_drift(terraform, backend: MotoServer) -> None:
    applies = 6
    tf = terraform()
    tf.init()
    tf.apply("v0")

    failure: list[BaseException] = []
    stop = threading.Event()

    def apply_loop() -> None:
        try:
            for i in range(1, applies + 1):
                if stop.is_set():
                    return
                tf.apply(f"v{i}", sleep=1, timeout=60)
        except BaseException as exc:  # noqa: BLE001 (re-raised in the main thread)
            failure.append(exc)

    worker = threading.Thread(target=apply_loop, name="terraform-applies", daemon=True)
    sweep = sweeper(backend)
    request = SweepRequest(REGION, [TABLE], policy=StalePolicy())
    results: list[ScanResult] = []
    deadline = time.monotonic() + 120
    worker.start()
    try:
        while worker.is_alive() and time.monotonic() < deadline:
            results.append(sweep.sweep(request))
            time.sleep(0.02)  # two cores: leave terraform and moto room to run
    finally:
        stop.set()
        worker.join(timeout=max(0.0, deadline - time.monotonic()) + 5)
        tf.close()
    assert not worker.is_alive(), "the apply loop did not finish in time"
    if failure:
        raise failure[0]

    locked = [r for r in results if r.stats.lock_items]
    held_back = sum(r.stats.skipped_locked for r in results)
    hashed = sum(r.stats.downloads for r in results)
    print(
        f"{len(results)} sweeps during {applies} applies: {len(locked)} saw a lock held, "
        f"{held_back} mismatches held back because of a lock, {hashed} states hashed"
    )
    assert all(r.complete for r in results), [e.to_dict() for r in results for e in r.errors]
    bad = [f.to_dict() for r in results for f in r.findings if f.kind.value in {"digest_drift", "orphan_digest"}]
    assert bad == []
    assert [f.to_dict() for r in results for f in r.findings] == []
    # Meaningful only if the sweeps really overlapped the applies.
    assert len(results) >= applies * 3
    assert len(locked) >= 3, f"only {len(locked)} of {len(results)} sweeps ran while a lock was held"

    # Afterwards: clean, proven by ETag, and the same sweeper does catch real drift.
    final = sweep.sweep(request)
    assert final.findings == [] and final.complete
    assert final.stats.etag_proven == 1 and final.stats.lock_items == 0
    assert digest_of(tf) == md5(state_bytes(tf))
    put_state(tf, state_bytes(tf) + b"\n")
    control = sweep.sweep(request)
    assert [f.kind.value for f in control.findings] == ["digest_drift"]


# -- g. a multipart state: the ETag proves nothing, the body is hashed ---------------------


def test_multipart_state_is_hashed_not_judged_by_its_etag(terraform, backend: MotoServer) -> None:
    tf = terraform()
    # ~7 MiB of state (input and output both hold the string): Terraform's uploader goes multipart.
    (tf.workdir / "big.txt").write_text(os.urandom(1792 * 1024).hex())
    (tf.workdir / "big.tf").write_text('resource "terraform_data" "big" {\n  input = file("${path.module}/big.txt")\n}\n')
    tf.init()
    tf.apply("big")
    head = tf.client("s3").head_object(Bucket=BUCKET, Key=KEY)
    etag, size = head["ETag"].strip('"'), head["ContentLength"]
    assert re.fullmatch(r"[0-9a-f]{32}-\d+", etag), f"expected a multipart ETag, got {etag}"
    assert digest_of(tf) == md5(state_bytes(tf)) != etag.split("-")[0]

    result = scan(backend)

    assert result.code == 0, result.stdout
    assert result.doc["complete"] is True
    assert result.kinds() == [TLS_NOTE]
    assert result.stats["etag_proven"] == 0
    assert result.stats["downloads"] == 1
    assert result.stats["bytes_downloaded"] == size


# -- h. a deleted state: orphan digest --------------------------------------------------


def test_deleted_state_object_is_an_orphan_digest_and_the_fix_works(terraform, backend: MotoServer, shell: Shell) -> None:
    tf = terraform()
    tf.init()
    tf.apply("one")
    stored = digest_of(tf)
    tf.client("s3").delete_object(Bucket=BUCKET, Key=KEY)

    broken = tf.plan("one", check=False)  # a digest with no object is a mismatch (after ~10 s of retries)
    assert not broken.ok
    assert DIGEST_ERROR in broken.output

    result = scan(backend)
    assert result.code == 1, result.stdout
    assert result.kinds() == ["orphan_digest", TLS_NOTE], result.stdout
    finding = result.findings[0]
    assert finding["severity"] == "warning"
    assert finding["key"] == KEY and finding["details"]["stored_md5"] == stored
    assert finding["details"]["bucket_missing"] is False

    paste_all(shell, tf, finding["details"]["commands"])
    tf.apply("one")  # Terraform works again (and writes a fresh state and digest)
    clean = scan(backend)
    assert clean.code == 0, clean.stdout
    assert clean.kinds() == [TLS_NOTE]


# -- i. both lock mechanisms, killed ----------------------------------------------------


def test_killed_apply_with_both_locks_reports_both_and_force_unlock_clears_them(terraform, backend: MotoServer, shell: Shell) -> None:
    tf = terraform(use_lockfile=True)  # dynamodb_table too
    tf.init()
    killed = tf.start_apply_and_kill("one", sleep=300)  # waits for the DynamoDB lock, taken second
    lock_id = killed.lock["ID"]
    body = tf.lockfile()
    assert body is not None and json.loads(body)["ID"] == lock_id  # same ID in both places

    wait_until_older_than(killed.lock["Created"], 1.0)
    # No --bucket: the lock item names the bucket, so its .tflock is found too.
    stale = scan(backend, "--stale-after", "1s", "--read-only-stale-after", "1s")
    assert stale.code == 1, stale.stdout
    assert sorted(stale.kinds()) == [TLS_NOTE, "stale_lock", "stale_lockfile"], stale.stdout
    locks = [f for f in stale.findings if f["kind"] in ("stale_lock", "stale_lockfile")]  # both, per the line above
    assert {f["lock_id"] for f in locks} == {lock_id}

    # Terraform's own release, offered by both findings, pasted into the configuration's working directory.
    for finding in locks:
        assert alternative(finding, "Terraform's own release") == [f"terraform force-unlock -force -- {lock_id}"]
    paste_all(shell, tf, alternative(locks[0], "Terraform's own release"))
    assert tf.lock_item() is None
    assert tf.lockfile() is None
    cleared = scan(backend, "--stale-after", "1s", "--read-only-stale-after", "1s")
    assert cleared.code == 0, cleared.stdout
    assert cleared.findings == []  # the table is empty again: it names no bucket to audit
    tf.apply("two")


# -- after moving to use_lockfile the leftover digest drifts ---------------------------------
# One sweep cannot tell a config that still uses dynamodb_table (whose next run fails) from one
# that moved to use_lockfile only (nothing reads the digest). The finding stays critical, says
# which runs fail, and names both remedies.


def test_leftover_digest_after_moving_to_use_lockfile_names_the_leftover_remedy(terraform, backend: MotoServer, shell: Shell) -> None:
    tf = terraform()
    tf.init()
    tf.apply("one")  # dynamodb_table: a digest is stored
    # Migrate: both mechanisms, then the S3 lock file alone (dynamodb_table is deprecated in 1.11).
    for options in ({"use_lockfile": True}, {"use_lockfile": True, "dynamodb_table": None}):
        tf.backend = BackendConfig(endpoint_url=backend.url, **options)
        tf.write_config()
        tf.run("init", "-reconfigure", "-input=false", "-no-color")
    tf.apply("two")  # no digest written any more: the old one no longer matches
    assert digest_of(tf) != md5(state_bytes(tf))
    assert tf.plan("two").ok  # Terraform is fine: it does not check digests without dynamodb_table

    result = scan(backend, "--bucket", BUCKET)
    [drift] = [f for f in result.findings if f["kind"] == "digest_drift"]
    assert "locks it with this table (dynamodb_table) will fail" in drift["message"]
    assert any("use_lockfile only" in step for step in drift["details"]["fix"])
    paste_all(shell, tf, alternative(drift, "use_lockfile only"))  # the leftover digest, deleted only if unchanged
    assert tf.client("dynamodb").get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}-md5"}}).get("Item") is None
    assert tf.plan("two").ok
