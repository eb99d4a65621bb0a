"""`tfjanitor unlock` and the conditional release underneath it, against moto server over HTTP."""

from __future__ import annotations

import io
import json
import os
import random
import re
import subprocess
import sys
import threading
import uuid

import boto3
from botocore.exceptions import ClientError

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.support.builders import lock_info, md5, put_lock, put_state, state_body
from tfjanitor.aws.backend import LockWriter
from tfjanitor.aws.session import AwsSession
from tfjanitor.cli.unlock import Console, run_unlock
from tfjanitor.release.by_hand import UnlockRequest
from tfjanitor.release.locks import observe, release

KEY = "dev/terraform.tfstate"


def run(server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server.env())
    env["AWS_REGION"] = REGION
    return subprocess.run(
        [sys.executable, "-m", "tfjanitor", "unlock", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def writer(server) -> LockWriter:
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    return LockWriter(AwsSession(session, endpoint_url=server.url), REGION)


def test_release_dynamodb_lock_leaves_digest_and_state_alone(backend) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    body = state_body()
    put_state(s3, ddb, BUCKET, KEY, body)
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", lock_id="aaaa-1111"))
    proc = run(backend, "--table", TABLE, f"{BUCKET}/{KEY}", "--yes", "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert [r["lock_id"] for r in doc["released"]] == ["aaaa-1111"] and doc["complete"]
    assert "Item" not in ddb.get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}"}})
    digest = ddb.get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}-md5"}})["Item"]["Digest"]["S"]
    assert digest == md5(body) and s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == body


def test_wrong_id_is_refused_and_nothing_deleted(backend) -> None:
    ddb = client("dynamodb", backend)
    put_lock(ddb, BUCKET, KEY, lock_info("p", lock_id="aaaa-1111"))
    proc = run(backend, "--table", TABLE, f"{BUCKET}/{KEY}", "--id", "bbbb-2222", "--yes")
    assert proc.returncode == 1
    assert "aaaa-1111, not bbbb-2222" in proc.stdout and "nothing was deleted" in proc.stdout
    assert "Item" in ddb.get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}"}})


def test_lockfile_release_and_both_kinds_with_one_id(backend) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    info = lock_info(f"{BUCKET}/{KEY}", lock_id="cccc-3333")
    s3.put_object(Bucket=BUCKET, Key=f"{KEY}.tflock", Body=info.encode())
    proc = run(backend, "--bucket", BUCKET, KEY, "--lockfile", "--yes", "--id", "cccc-3333")
    assert proc.returncode == 0, proc.stdout
    assert "released: released s3://" in proc.stdout
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{KEY}.tflock")
    # Both options: Terraform holds the item and the .tflock with one ID. --table releases both.
    s3.put_object(Bucket=BUCKET, Key=f"{KEY}.tflock", Body=info.encode())
    put_lock(ddb, BUCKET, KEY, info)
    proc = run(backend, "--table", TABLE, f"{BUCKET}/{KEY}", "--yes", "--format", "json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and sorted(r["source"] for r in doc["released"]) == ["dynamodb", "lockfile"]


class Terminal(io.StringIO):
    """A person at a terminal: stdin that is a tty and answers the prompt."""

    def isatty(self) -> bool:
        return True


def test_the_prompt_and_everything_shown_escape_a_hostile_lock(backend) -> None:
    evil = "\x1b]0;pwned\x07\x1b[2J\r\x85\u202e"
    key = f"dev/{evil}/terraform.tfstate"
    info = lock_info(f"{BUCKET}/{key}", lock_id=f"id-{evil}", who=f"ci{evil}@host", operation=f"Apply{evil}")
    put_lock(client("dynamodb", backend), BUCKET, key, info)
    out, err = io.StringIO(), io.StringIO()
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    writer = LockWriter(AwsSession(session, endpoint_url=backend.url), REGION)
    code = run_unlock(
        writer, REGION, UnlockRequest(BUCKET, key, TABLE, False, f"id-{evil}"), False, "table", Console(Terminal("yes\n"), out, err)
    )
    assert code == 0, out.getvalue() + err.getvalue()
    shown = out.getvalue() + err.getvalue()
    assert "Release 1 lock on" in err.getvalue() and "\\x1b]0;pwned\\x07" in shown and "ci\\x1b" in shown
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]", shown), shown
    assert "Item" not in client("dynamodb", backend).get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{key}"}})


def test_no_lock_no_terminal_and_bad_usage(backend) -> None:
    assert run(backend, "--table", TABLE, f"{BUCKET}/{KEY}", "--yes").returncode == 1
    put_lock(client("dynamodb", backend), BUCKET, KEY, lock_info("p"))
    no_tty = run(backend, "--table", TABLE, f"{BUCKET}/{KEY}")
    assert no_tty.returncode == 2 and "--yes" in no_tty.stdout
    assert run(backend, f"{BUCKET}/{KEY}").returncode == 2  # neither --table nor --lockfile
    assert run(backend, "--table", TABLE, "no-slash").returncode == 2
    assert run(backend, "--table", "missing-table", f"{BUCKET}/{KEY}", "--yes").returncode == 2


def test_a_lock_taken_again_between_observation_and_delete_is_never_deleted(backend) -> None:
    """Hundreds of interleavings: release + re-acquire by a new run lands between read and delete."""
    ddb, s3 = client("dynamodb", backend), client("s3", backend)
    w = writer(backend)
    rng = random.Random(7)
    stolen = kept = 0
    for i in range(300):
        lockfile = i % 3 == 0
        first = lock_info(f"{BUCKET}/{KEY}", lock_id=str(uuid.uuid4()))
        if lockfile:
            s3.put_object(Bucket=BUCKET, Key=f"{KEY}.tflock", Body=first.encode())
        else:
            put_lock(ddb, BUCKET, KEY, first)
        [seen] = observe(w, BUCKET, KEY, None if lockfile else TABLE, lockfile)
        race = rng.random() < 0.5
        second = lock_info(f"{BUCKET}/{KEY}", lock_id=str(uuid.uuid4()))
        if race:  # the stale run's lock is released and a new run takes the state
            if lockfile:
                s3.delete_object(Bucket=BUCKET, Key=f"{KEY}.tflock")
                s3.put_object(Bucket=BUCKET, Key=f"{KEY}.tflock", Body=second.encode(), IfNoneMatch="*")
            else:
                ddb.delete_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}"}})
                ddb.put_item(
                    TableName=TABLE,
                    Item={"LockID": {"S": f"{BUCKET}/{KEY}"}, "Info": {"S": second}},
                    ConditionExpression="attribute_not_exists(LockID)",
                )
        result = release(w, seen)
        now = observe(w, BUCKET, KEY, None if lockfile else TABLE, lockfile)
        if race:
            assert not result.released and "nothing was deleted" in result.reason
            assert [lock.lock_id for lock in now] == [json.loads(second)["ID"]]  # the new run keeps its lock
            kept += 1
            release(w, now[0])
        else:
            assert result.released and now == []
            stolen += 1
    assert kept > 100 and stolen > 100


def test_concurrent_acquirers_never_lose_a_lock_they_still_hold(backend) -> None:
    """A thread acquires and releases as Terraform does while another observes and releases."""
    ddb = client("dynamodb", backend)
    w = writer(backend)
    stop = threading.Event()
    lost: list[str] = []
    acquired: list[str] = []
    released_by_janitor: set[str] = set()
    lock_id_key = {"LockID": {"S": f"{BUCKET}/{KEY}"}}

    def terraform_like() -> None:
        for _ in range(400):
            if stop.is_set():
                return
            info = lock_info(f"{BUCKET}/{KEY}", lock_id=str(uuid.uuid4()))
            try:
                ddb.put_item(
                    TableName=TABLE, Item={**lock_id_key, "Info": {"S": info}}, ConditionExpression="attribute_not_exists(LockID)"
                )
            except ClientError:
                continue
            acquired.append(json.loads(info)["ID"])
            got = ddb.get_item(TableName=TABLE, Key=lock_id_key, ConsistentRead=True).get("Item")
            if got is None or got["Info"]["S"] != info:
                lost.append(json.loads(info)["ID"])  # someone deleted the lock this run held
                continue
            try:
                ddb.delete_item(
                    TableName=TABLE, Key=lock_id_key, ConditionExpression="Info = :i", ExpressionAttributeValues={":i": {"S": info}}
                )
            except ClientError:
                lost.append(json.loads(info)["ID"])  # released under it between its read and its delete

    thread = threading.Thread(target=terraform_like)
    thread.start()
    try:
        for _ in range(300):
            for lock in observe(w, BUCKET, KEY, TABLE, False):
                if release(w, lock).released:
                    released_by_janitor.add(lock.lock_id or "")
    finally:
        stop.set()
        thread.join(timeout=60)
    # Every lock the runs lost is one the janitor observed and released by its exact bytes.
    assert set(lost) <= released_by_janitor
    assert len(acquired) >= 50 and released_by_janitor  # both sides really raced
