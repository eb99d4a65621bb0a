"""Releasing real Terraform locks: `tfjanitor unlock` and the sweeper's opt-in auto-release."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from tests.conftest import BUCKET, REGION, TABLE, client
from tfjanitor.aws.backend import LockWriter
from tfjanitor.aws.session import AwsSession
from tfjanitor.local.runner import LocalStack
from tfjanitor.release.locks import observe, release

ROOT = Path(__file__).resolve().parents[2]


def unlock(server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server.env())
    env["AWS_REGION"] = REGION
    return subprocess.run(
        [sys.executable, "-m", "tfjanitor", "unlock", *args, "--yes"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def snapshot(server, key: str) -> tuple[str, str | None]:
    """The state object's MD5 and the digest item: what a release must never change."""
    body = client("s3", server).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    item = client("dynamodb", server).get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{key}-md5"}})
    return hashlib.md5(body).hexdigest(), item.get("Item", {}).get("Digest", {}).get("S")


@pytest.mark.parametrize(
    "options", [{}, {"use_lockfile": True, "dynamodb_table": None}, {"use_lockfile": True}], ids=["dynamodb", "lockfile", "both"]
)
def test_unlock_a_killed_apply_then_terraform_runs_again(terraform, backend, options) -> None:
    tf = terraform(**options)
    tf.init()
    tf.apply("v1")
    before = snapshot(backend, "dev/terraform.tfstate")
    killed = tf.start_apply_and_kill("v2")
    lock_id = killed.lock["ID"]
    assert not tf.plan(check=False, timeout=60).ok  # Terraform itself is blocked
    args = (
        ["--table", TABLE, f"{BUCKET}/dev/terraform.tfstate"]
        if options.get("dynamodb_table", TABLE)
        else ["--bucket", BUCKET, "dev/terraform.tfstate", "--lockfile"]
    )
    proc = unlock(backend, *args, "--id", lock_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    released = proc.stdout.count("released: released")
    assert released == (2 if options.get("use_lockfile") and options.get("dynamodb_table", TABLE) else 1)
    assert snapshot(backend, "dev/terraform.tfstate") == before  # state and digest untouched
    assert tf.plan(timeout=60).ok


@pytest.mark.parametrize("lockfile", [False, True], ids=["dynamodb", "lockfile"])
def test_lock_retaken_by_a_new_terraform_run_is_never_released(terraform, backend, lockfile) -> None:
    tf = terraform(**({"use_lockfile": True, "dynamodb_table": None} if lockfile else {}))
    tf.init()
    tf.apply("v1")
    killed = tf.start_apply_and_kill("v2")
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    writer = LockWriter(AwsSession(session, endpoint_url=backend.url), REGION)
    [seen] = observe(writer, BUCKET, "dev/terraform.tfstate", None if lockfile else TABLE, lockfile)
    assert seen.lock_id == killed.lock["ID"]

    def held_id() -> str | None:
        if lockfile:
            body = tf.lockfile()
            return json.loads(body)["ID"] if body else None
        item = tf.lock_item()
        return json.loads(item["Info"]["S"])["ID"] if item else None

    tf.force_unlock(killed.lock["ID"])  # someone else frees it, and a new run takes the state
    new_run = subprocess.Popen(
        [tf.binary, "apply", "-auto-approve", "-input=false", "-no-color", "-var", "v=v3", "-var", "sleep=4"],
        cwd=tf.workdir,
        env=tf.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while held_id() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        new_id = held_id()
        assert new_id is not None and new_id != seen.lock_id
        result = release(writer, seen)  # the janitor acts on what it saw before
        assert not result.released and "nothing was deleted" in result.reason
        assert held_id() == new_id
        out, _ = new_run.communicate(timeout=90)
        assert new_run.returncode == 0, out.decode()  # the new run finished normally
    finally:
        if new_run.poll() is None:
            os.killpg(new_run.pid, 9)
            new_run.wait(timeout=10)


def _stack(backend, tmp_path, **params: str) -> LocalStack:
    base = {
        "StaleAfter": "2s",
        "ReadOnlyStaleAfter": "2s",
        "StateBucketNames": BUCKET,
        "AlertEmail": "oncall@example.com",
        "AutoRelease": "true",
        "ReleaseGracePeriod": "3s",
        "ReleaseOperationClasses": "apply,plan,other",
    }
    return LocalStack(
        ROOT / "template.yaml", backend.url, REGION, base | params, time_scale=300, emails_dir=tmp_path / "emails", echo=lambda _: None
    )


def _wait(stack: LocalStack, predicate, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        stack.step()
        time.sleep(0.2)
    assert predicate(), [e.subject for e in stack.emails]


def test_sweeper_alerts_waits_then_releases_and_emails(terraform, backend, tmp_path) -> None:
    tf = terraform()
    tf.init()
    tf.apply("v1")
    stack = _stack(backend, tmp_path)
    stack.setup()
    before = snapshot(backend, "dev/terraform.tfstate")
    killed = tf.start_apply_and_kill("v2")
    _wait(stack, lambda: any("RELEASED" in e.subject for e in stack.emails))
    subjects = [e.subject for e in stack.emails]
    assert subjects[0].startswith(f"[tfjanitor] WARNING Stale lock: {BUCKET}/dev/terraform.tfstate")
    assert subjects[1].startswith(f"[tfjanitor] RELEASED stale lock: {BUCKET}/dev/terraform.tfstate")
    opened, released = stack.emails[0].received, stack.emails[1].received
    assert (released - opened).total_seconds() >= 3  # the grace period after the alert
    body = stack.emails[1].body
    assert killed.lock["ID"] in body and "If that run is still alive" in body and killed.lock["Who"] in body
    assert tf.lock_item() is None
    assert snapshot(backend, "dev/terraform.tfstate") == before
    # The record of the release, in the stack's own findings table.
    items = client("dynamodb", backend).scan(TableName="tfjanitor-findings")["Items"]
    record = json.loads(next(i for i in items if "ReleaseRecord" in i)["ReleaseRecord"]["S"])
    assert json.loads(record["original_info"])["ID"] == killed.lock["ID"] and "unchanged in" in record["rule"]
    stack.run(3)
    assert len(stack.emails) == 2  # no 'resolved' on top of 'released'
    assert tf.plan(timeout=60).ok
    released_metric = [m for m in stack.metrics if m.name == "LocksAutoReleased" and m.values[0] > 0]
    assert released_metric


def test_protected_keys_and_disallowed_operations_are_never_released(terraform, backend, tmp_path) -> None:
    prod = terraform("prod", key="prod/app/terraform.tfstate")
    dev = terraform("dev", key="dev/app/terraform.tfstate")
    for tf in (prod, dev):
        tf.init()
        tf.apply("v1")
    stack = _stack(backend, tmp_path, ProtectedKeyPatterns="prod/**", ReleaseOperationClasses="plan,other")
    stack.setup()
    prod.start_apply_and_kill("v2")
    dev.start_apply_and_kill("v2")  # an apply lock: not in plan,other
    _wait(stack, lambda: len(stack.emails) >= 2)
    stack.run(8)  # far past the grace period
    assert all("Stale lock" in e.subject and "RELEASED" not in e.subject for e in stack.emails)
    assert prod.lock_item() is not None and dev.lock_item() is not None
