"""Canary: a state whose body holds a unique secret goes through everything tfjanitor does (drift, a stale
lock over the drifted state, `tfjanitor scan`, `tfjanitor unlock`, auto-release, the stream monitor, the
alert emails, the local stack's logs and metrics, the findings table). The secret appears in none of it."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.integration.conftest import event_queue, received
from tests.support.builders import lock_info, md5, put_lock, put_state, state_body
from tfjanitor.local.runner import FINDINGS_TABLE, LocalStack

ROOT = Path(__file__).resolve().parents[2]
KEY = "dev/terraform.tfstate"


def tfjanitor(server, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server.env())
    env["AWS_REGION"] = REGION
    proc = subprocess.run(
        [sys.executable, "-m", "tfjanitor", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout + proc.stderr


def wait_for(stack: LocalStack, predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        stack.step()
        time.sleep(0.2)
    assert predicate(), [e.subject for e in stack.emails]


def test_a_state_secret_reaches_no_output_log_email_metric_or_record(backend, tmp_path, capfd, caplog) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    echoed: list[str] = []
    stack = LocalStack(
        ROOT / "template.yaml",
        backend.url,
        REGION,
        {
            "StaleAfter": "2s",
            "ReadOnlyStaleAfter": "2s",
            "StateBucketNames": BUCKET,
            "ExtraBucketNames": BUCKET,
            "SweepIntervalMinutes": "5",
            "AutoRelease": "true",
            "ReleaseGracePeriod": "1s",
            "ReleaseOperationClasses": "apply,plan,other",
            "AlertEmail": "oncall@example.com",
        },
        time_scale=300,
        emails_dir=tmp_path / "emails",
        echo=echoed.append,
        log_level="DEBUG",
    )
    stack.setup()
    events = event_queue(backend)  # every alert event the stack puts
    stack.step()  # the functions' first run imports their Powertools objects with the template's environment
    from tfjanitor.runtime import observability

    observability.logger.setLevel("DEBUG")  # every log line the functions can write
    caplog.set_level(logging.INFO)

    # A healthy state, then an upload that bypasses the digest: drift, judged by hashing the secret-bearing body.
    put_state(s3, ddb, BUCKET, KEY, state_body(1, secret=canary))
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=state_body(2, secret=canary))
    wait_for(stack, lambda: any("Digest drift" in e.subject for e in stack.emails))

    # A run killed over the drifted state (an interrupted write): seen by scan, released by hand.
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", age=timedelta(hours=1), lock_id="canary-by-hand"))
    outputs = [tfjanitor(backend, "scan", "--table", TABLE, "--bucket", BUCKET, *fmt) for fmt in ([], ["--format", "json"])]
    outputs.append(tfjanitor(backend, "unlock", "--table", TABLE, f"{BUCKET}/{KEY}", "--id", "canary-by-hand", "--yes"))
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", age=timedelta(hours=1), lock_id="canary-by-hand-2"))
    outputs.append(tfjanitor(backend, "unlock", "--table", TABLE, f"{BUCKET}/{KEY}", "--yes", "--format", "json"))
    assert "canary-by-hand" in outputs[0] and "canary-by-hand-2" in outputs[-1]  # the lock, shown; never the state

    # The interrupted write's other fix: accept the object as the state (its digest stored).
    ddb.put_item(TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/{KEY}-md5"}, "Digest": {"S": md5(state_body(2, secret=canary))}})

    # Another stale lock, left to the stack: alerted, then released automatically; the stream sees both.
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", age=timedelta(hours=1), lock_id="canary-auto"))
    wait_for(stack, lambda: any("RELEASED" in e.subject for e in stack.emails))
    stack.run(2.0)

    subjects = [e.subject for e in stack.emails]
    assert any("Stale lock" in s for s in subjects) and any("Digest drift" in s for s in subjects)
    emails = [e.subject + e.body + e.plain + e.chat for e in stack.emails]
    put = [json.dumps(event) for event in received(backend, events)]
    for eml in sorted((tmp_path / "emails").glob("*.eml")):
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        emails.append(eml.read_bytes().decode("utf-8", "replace"))
        emails += [part.get_content() for part in message.walk() if part.get_content_maintype() == "text"]
    captured = capfd.readouterr()
    logs = [json.dumps(vars(r), default=str) + r.getMessage() for r in caplog.records]
    table = json.dumps(client("dynamodb", backend).scan(TableName=FINDINGS_TABLE)["Items"], ensure_ascii=False)
    metrics = [json.dumps(vars(m), default=str) for m in stack.metrics]
    assert any("sweep finished" in line for line in logs) and metrics and table != "[]" and put
    surfaces = {
        "CLI output": "\n".join(outputs),
        "emails": "\n".join(emails),
        "local stack output": "\n".join(echoed),
        "stdout/stderr": captured.out + captured.err,
        "log records": "\n".join(logs),
        "metrics": "\n".join(metrics),
        "findings table": table,
        "responses": json.dumps(stack.invocations, default=str),
        "events": "\n".join(put),
    }
    for surface, text in surfaces.items():
        assert canary not in text, f"the state's secret leaked into {surface}"
