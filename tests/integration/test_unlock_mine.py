"""`tfjanitor unlock --mine` against moto server, in-process, with a machine whose Who and live runs the test
decides (the real binary and the real /proc: tests/e2e/test_unlock_mine.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest

import tfjanitor.cli.mine as mine_cli
from tests.conftest import BUCKET, REGION, TABLE, client
from tests.integration.test_cli_never_crashes import one_json_object
from tests.support.builders import lock_info, md5, put_lock, put_state, state_body
from tests.support.machine import FakeMachine, run_started
from tfjanitor.aws.backend import LockWriter
from tfjanitor.aws.session import AwsSession
from tfjanitor.cli.main import main
from tfjanitor.local.emulator import MotoServer
from tfjanitor.model import BucketSpec
from tfjanitor.release.mine import BEFORE_SINCE, CHANGED, LIVE_RUN, OTHER_MACHINE, StateScope, StoreScope, release_mine

KEY = "dev/terraform.tfstate"
ME = "runner@fv-az123-456"


def put_lockfile(s3: Any, key: str, info: str) -> str:
    return str(s3.put_object(Bucket=BUCKET, Key=f"{key}.tflock", Body=info.encode())["ETag"])


def held(ddb: Any, s3: Any, key: str = KEY) -> tuple[bool, bool]:
    """(the DynamoDB lock item is there, the .tflock is there)."""
    item = "Item" in ddb.get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{key}"}}, ConsistentRead=True)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{key}.tflock").get("KeyCount", 0) > 0
    return item, listed


def workdir(tmp_path: Path, server: MotoServer, workspace: str | None = None, **config: object) -> Path:
    """A working directory as terraform init leaves it, its backend pointed at the emulator."""
    where = tmp_path / "work"
    (where / ".terraform").mkdir(parents=True, exist_ok=True)
    settings: dict[str, object] = {
        "bucket": BUCKET,
        "key": KEY,
        "region": REGION,
        "dynamodb_table": TABLE,
        "use_lockfile": None,
        "workspace_key_prefix": None,
        "endpoint": None,
        "dynamodb_endpoint": None,
        "profile": None,
        "endpoints": {"s3": server.url, "dynamodb": server.url, "iam": None, "sso": None, "sts": None},
    }
    settings.update(config)
    doc = {"version": 3, "terraform_version": "1.11.4", "backend": {"type": "s3", "config": settings, "hash": 1}}
    (where / ".terraform" / "terraform.tfstate").write_text(json.dumps(doc))
    if workspace:
        (where / ".terraform" / "environment").write_text(workspace)
    return where


def mine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], machine: FakeMachine, *args: str, fmt: str = "json"
) -> tuple[int, Any, str]:
    monkeypatch.setattr(mine_cli, "LocalMachine", lambda: machine)
    code = main(["unlock", "--mine", *args, "--format", fmt])
    out, err = capsys.readouterr()
    return code, (one_json_object(out) if fmt == "json" else out), err


def aws(server: MotoServer) -> AwsSession:
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    return AwsSession(session, endpoint_url=server.url)


def test_chdir_releases_both_locks_of_this_machines_dead_run_and_never_the_digest_or_state(
    backend: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    key = "env:/staging/dev/terraform.tfstate"
    body = state_body()
    put_state(s3, ddb, BUCKET, key, body)
    info = lock_info(f"{BUCKET}/{key}", who=ME, age=timedelta(minutes=3), lock_id="aaaa-1111")
    put_lock(ddb, BUCKET, key, info)
    put_lockfile(s3, key, info)
    put_lock(ddb, BUCKET, KEY, lock_info("x", who=ME, lock_id="default-ws"))  # another workspace's: not looked at
    machine = FakeMachine(ME, [run_started(datetime.now(timezone.utc) + timedelta(seconds=1))])  # started after
    code, doc, err = mine(monkeypatch, capsys, machine, "--chdir", str(workdir(tmp_path, backend, "staging", use_lockfile=True)))
    assert code == 0, (doc, err)
    assert [(r["source"], r["lock_id"], r["bucket"], r["key"]) for r in doc["released"]] == [
        ("dynamodb", "aaaa-1111", BUCKET, key),
        ("lockfile", "aaaa-1111", BUCKET, key),
    ]
    assert doc["released"][0]["table"] == TABLE and doc["released"][1]["lockfile"] == f"{key}.tflock"
    assert doc["kept"] == [] and doc["complete"] and doc["who"] == ME and doc["scope"]["workspace"] == "staging"
    assert held(ddb, s3, key) == (False, False) and held(ddb, s3)[0]  # the default workspace's lock stays
    digest = ddb.get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{key}-md5"}})["Item"]["Digest"]["S"]
    assert digest == md5(body) and s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body
    assert machine.calls == ["who", "processes"]


def test_a_lock_taken_after_the_locks_were_read_is_never_touched(backend: MotoServer) -> None:
    """The process table is read after the locks: a run that starts in between (no live run is seen when the
    table is read) took its lock after the read, and that lock is not among those judged."""
    ddb = client("dynamodb", backend)
    put_lock(ddb, BUCKET, "old/terraform.tfstate", lock_info("x", who=ME, age=timedelta(minutes=1), lock_id="dead"))
    machine = FakeMachine(
        ME, on_processes=lambda: put_lock(ddb, BUCKET, "new/terraform.tfstate", lock_info("x", who=ME, lock_id="fresh"))
    )
    report = release_mine(aws(backend), REGION, machine, StoreScope(TABLE, None), None)
    assert [r.lock.lock_id for r in report.released] == ["dead"] and report.exit_code == 0
    assert "Item" in ddb.get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/new/terraform.tfstate"}})


def test_table_and_bucket_mode_release_only_this_machines_dead_runs_locks(
    backend: MotoServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    now = datetime.now(timezone.utc)
    live_since = now - timedelta(minutes=10)
    both = lock_info("x", who=ME, age=timedelta(minutes=20), lock_id="dead-both")
    put_lock(ddb, BUCKET, "a/terraform.tfstate", both)
    put_lockfile(s3, "a/terraform.tfstate", both)  # its companion: found by name (the bucket is not given)
    put_lock(ddb, BUCKET, "b/terraform.tfstate", lock_info("x", who=ME, age=timedelta(minutes=5), lock_id="live"))
    put_lock(ddb, BUCKET, "c/terraform.tfstate", lock_info("x", who="runner@fv-az999-9", age=timedelta(days=2), lock_id="other"))
    put_lock(ddb, BUCKET, "d/terraform.tfstate", lock_info("x", who=ME, age=timedelta(hours=3), lock_id="older"))
    ddb.put_item(TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/e/terraform.tfstate"}, "Info": {"S": "{broken"}})
    put_state(s3, ddb, BUCKET, "a/terraform.tfstate", state_body())  # a digest item: never a lock
    machine = FakeMachine(ME, [run_started(live_since)])
    code, doc, _ = mine(monkeypatch, capsys, machine, "--table", TABLE, "--region", REGION, "--since", "2h")
    assert code == 0, doc
    assert sorted((r["lock_id"], r["source"]) for r in doc["released"]) == [("dead-both", "dynamodb"), ("dead-both", "lockfile")]
    kept = {k["lock_id"]: k for k in doc["kept"]}
    assert {k: v["reason_code"] for k, v in kept.items()} == {"live": LIVE_RUN, "other": OTHER_MACHINE, "older": BEFORE_SINCE}
    assert kept["live"]["reason"].startswith("held by a live run") and kept["live"]["live_runs"][0]["pid"] == 4242
    assert kept["other"]["reason"].startswith("another machine's") and kept["older"]["reason"].startswith("before --since")
    assert doc["kept_counts"] == {LIVE_RUN: 1, OTHER_MACHINE: 1, BEFORE_SINCE: 1}
    for key in ("b", "c", "d", "e"):
        assert held(ddb, s3, f"{key}/terraform.tfstate")[0], key
    assert "Item" in ddb.get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/a/terraform.tfstate-md5"}})
    # Lock files alone, by bucket and prefix: only this machine's, only under the prefix.
    put_lockfile(s3, "team/x/terraform.tfstate", lock_info("x", who=ME, age=timedelta(minutes=20), lock_id="file-mine"))
    put_lockfile(s3, "team/y/terraform.tfstate", lock_info("x", who="jenkins@agent-2", lock_id="file-other"))
    put_lockfile(s3, "elsewhere/terraform.tfstate", lock_info("x", who=ME, age=timedelta(minutes=20), lock_id="not-under"))
    code, doc, _ = mine(monkeypatch, capsys, machine, "--bucket", f"{BUCKET}/team/", "--region", REGION)
    assert code == 0 and [r["lock_id"] for r in doc["released"]] == ["file-mine"]
    assert [(k["lock_id"], k["reason_code"], k["lockfile"]) for k in doc["kept"]] == [
        ("file-other", OTHER_MACHINE, "team/y/terraform.tfstate.tflock")
    ]
    assert held(ddb, s3, "elsewhere/terraform.tfstate")[1] and held(ddb, s3, "team/y/terraform.tfstate")[1]


class ReplacingWriter(LockWriter):
    """A new run takes the state between tfjanitor's read and its delete: the lock is replaced first."""

    def __init__(self, aws: AwsSession, server: MotoServer):
        super().__init__(aws, REGION)
        self.ddb, self.s3 = client("dynamodb", server), client("s3", server)
        self.new = lock_info("x", who="runner@fv-az123-456", lock_id="new-run")

    def delete_lock_item(self, table: str, lock_id: str, info: str) -> None:
        self.ddb.put_item(TableName=table, Item={"LockID": {"S": lock_id}, "Info": {"S": self.new}})
        super().delete_lock_item(table, lock_id, info)

    def delete_lockfile(self, bucket: str, key: str, etag: str, region: str | None = None) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=self.new.encode())
        super().delete_lockfile(bucket, key, etag, region)


def test_a_lock_replaced_between_read_and_delete_is_kept_reported_and_exit_1(backend: MotoServer) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    info = lock_info("x", who=ME, age=timedelta(minutes=3), lock_id="dead")
    put_lock(ddb, BUCKET, KEY, info)
    put_lockfile(s3, KEY, info)
    session = aws(backend)
    report = release_mine(
        session, REGION, FakeMachine(ME), StateScope(BUCKET, KEY, TABLE, True), None, writer=ReplacingWriter(session, backend)
    )
    assert report.released == [] and report.exit_code == 1
    assert [(k.lock.source, k.code) for k in report.kept] == [("dynamodb", CHANGED), ("lockfile", CHANGED)]
    assert all(k.verdict.reason.startswith("changed since read") and "nothing was deleted" in k.verdict.reason for k in report.kept)
    stored = ddb.get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}"}})["Item"]["Info"]["S"]
    assert json.loads(stored)["ID"] == "new-run"  # the new run's lock is intact
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=f"{KEY}.tflock")["Body"].read())["ID"] == "new-run"
    assert "changed" in report.message() and report.to_dict()["kept"][0]["reason_code"] == CHANGED


def test_dry_run_says_what_would_go_and_deletes_nothing(
    backend: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ddb = client("dynamodb", backend)
    put_lock(ddb, BUCKET, KEY, lock_info("x", who=ME, age=timedelta(minutes=3), lock_id="dead"))
    where = str(workdir(tmp_path, backend))
    code, doc, _ = mine(monkeypatch, capsys, FakeMachine(ME), "--chdir", where, "--dry-run")
    assert code == 0 and doc["dry_run"] and doc["released"] == [] and [w["lock_id"] for w in doc["would_release"]] == ["dead"]
    code, text, _ = mine(monkeypatch, capsys, FakeMachine(ME), "--chdir", where, "--dry-run", fmt="table")
    assert code == 0 and "would release: DynamoDB item" in text and "Would release 1 lock" in text
    assert "Item" in ddb.get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}"}})


def test_the_table_escapes_what_came_from_the_lock_table(
    backend: MotoServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ddb = client("dynamodb", backend)
    hostile_key = "dev/\x1b]0;pwned\x07/\u202eterraform.tfstate"
    put_lock(ddb, BUCKET, hostile_key, lock_info("x", who=ME, age=timedelta(minutes=3), lock_id="id\x1b[2J"))
    put_lock(ddb, BUCKET, "k", lock_info("x", who="evil\x1b[31m@host\r\nreleased: everything", lock_id="o"))
    code, text, _ = mine(monkeypatch, capsys, FakeMachine(ME), "--table", TABLE, "--region", REGION, fmt="table")
    assert code == 0
    assert "\x1b" not in text and "\u202e" not in text and "\r" not in text
    assert "\\x1b]0;pwned\\x07/\\u202eterraform.tfstate" in text and "id\\x1b[2J" in text
    assert "evil\\x1b[31m@host\\r\\nreleased: everything" in text
    assert "released: DynamoDB item" in text and text.count("\nreleased: ") == 1


def test_the_backends_region_and_endpoints_are_used_and_an_explicit_endpoint_url_wins(
    backend: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ddb = client("dynamodb", backend)
    monkeypatch.setenv("AWS_REGION", "us-east-1")  # the backend's region wins over the environment's
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # and its endpoints over AWS_ENDPOINT_URL
    put_lock(ddb, BUCKET, KEY, lock_info("x", who=ME, age=timedelta(minutes=3), lock_id="one"))
    code, doc, err = mine(monkeypatch, capsys, FakeMachine(ME), "--chdir", str(workdir(tmp_path, backend)))
    assert code == 0 and doc["region"] == REGION and [r["lock_id"] for r in doc["released"]] == ["one"], err
    put_lock(ddb, BUCKET, KEY, lock_info("x", who=ME, age=timedelta(minutes=3), lock_id="two"))
    dead = {"s3": "http://127.0.0.1:9", "dynamodb": "http://127.0.0.1:9"}
    where = workdir(tmp_path, backend, endpoints=None, dynamodb_endpoint=dead["dynamodb"], endpoint=dead["s3"])
    code, doc, err = mine(monkeypatch, capsys, FakeMachine(ME), "--chdir", str(where), "--endpoint-url", backend.url)
    assert code == 0 and [r["lock_id"] for r in doc["released"]] == ["two"], err


def test_what_it_cannot_read_is_exit_2_and_nothing_is_released(
    backend: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ddb = client("dynamodb", backend)
    put_lock(ddb, BUCKET, KEY, lock_info("x", who=ME, age=timedelta(minutes=3), lock_id="dead"))
    code, doc, _ = mine(monkeypatch, capsys, FakeMachine(ME), "--table", "no-such-table", "--region", REGION)
    assert code == 2 and not doc["complete"] and doc["errors"][0]["check"] == "scan_table"
    for fail in ("who", "processes"):
        code, doc, _ = mine(monkeypatch, capsys, FakeMachine(ME, fail=fail), "--chdir", str(workdir(tmp_path, backend)))
        assert code == 2 and doc["errors"][0]["code"] == "MachineError" and doc["released"] == [], fail
    code, doc, _ = mine(monkeypatch, capsys, FakeMachine(ME), "--chdir", str(workdir(tmp_path, backend, dynamodb_table="gone")))
    assert code == 2 and doc["errors"][0]["check"] == "read_lock_item"
    assert "Item" in ddb.get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}"}})


def test_bad_input_is_exit_2_one_line_on_stderr_and_one_json_object(
    backend: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good = workdir(tmp_path, backend)
    local = tmp_path / "local"
    (local / ".terraform").mkdir(parents=True)
    (local / ".terraform" / "terraform.tfstate").write_text(
        json.dumps({"version": 3, "backend": {"type": "gcs", "config": {"bucket": "b"}}})
    )
    broken = tmp_path / "broken"
    (broken / ".terraform").mkdir(parents=True)
    (broken / ".terraform" / "terraform.tfstate").write_text("{ not json")
    bad_endpoint = tmp_path / "bad-endpoint"
    bad_endpoint.mkdir()
    (bad_endpoint / ".terraform").symlink_to(workdir(tmp_path / "x", backend, endpoints={"s3": "not a url"}) / ".terraform")
    no_locking = tmp_path / "no-locking"
    no_locking.mkdir()
    (no_locking / ".terraform").symlink_to(workdir(tmp_path / "y", backend, dynamodb_table=None) / ".terraform")
    cases = [
        (["--chdir", str(good), "--since", "yesterday"], "--since: not a time"),
        (["--chdir", str(tmp_path / "nowhere")], "not a directory"),
        (["--chdir", str(tmp_path)], "no .terraform directory"),
        (["--chdir", str(local)], "'gcs', not s3"),
        (["--chdir", str(broken)], "not JSON"),
        (["--chdir", str(bad_endpoint)], "not an endpoint URL"),
        (["--chdir", str(no_locking)], "neither dynamodb_table nor use_lockfile"),
        ([f"{BUCKET}/{KEY}", "--table", TABLE], "takes no BUCKET/KEY"),
        (["--chdir", str(good), "--table", TABLE], "not both"),
        (["--table", TABLE, "--id", "x"], "--id names one lock"),
        (["--bucket", BUCKET, "--lockfile"], "--lockfile is not needed"),
        (["--bucket", "Not_A_Bucket"], "is not a bucket"),
        (["--table", TABLE, "--region", "us east 1"], "not a region"),
    ]
    monkeypatch.setattr(mine_cli, "LocalMachine", lambda: FakeMachine(ME))
    for args, says in cases:
        assert main(["unlock", "--mine", *args, "--format", "json"]) == 2, args
        out, err = capsys.readouterr()
        doc = one_json_object(out)
        assert doc["complete"] is False and says in doc["errors"][0]["message"], (args, doc)
        assert err.count("\n") == 1 and says in err and "Traceback" not in err, (args, err)
    for flag in (["--since", "2h"], ["--chdir", "."], ["--dry-run"]):
        assert main(["unlock", "--table", TABLE, f"{BUCKET}/{KEY}", *flag, "--format", "json"]) == 2
        out, err = capsys.readouterr()
        assert "goes with --mine" in one_json_object(out)["errors"][0]["message"]


def test_bucket_mode_reads_lock_files_with_the_bucket_spec(backend: MotoServer) -> None:
    s3 = client("s3", backend)
    put_lockfile(s3, "p/one/terraform.tfstate", lock_info("x", who=ME, age=timedelta(minutes=2), lock_id="one"))
    s3.put_object(Bucket=BUCKET, Key="p/.tflock", Body=b"{}")  # not a valid lock: nothing says it is this machine's
    s3.put_object(Bucket=BUCKET, Key="p/garbage.tflock", Body=b"\xff\xfe not a lock")
    report = release_mine(aws(backend), REGION, FakeMachine(ME), StoreScope(None, BucketSpec(BUCKET, "p/")), None)
    assert [r.lock.lock_id for r in report.released] == ["one"]
    assert [(k.lock.key, k.code) for k in report.kept] == [("p/", OTHER_MACHINE), ("p/garbage", OTHER_MACHINE)]
    assert report.exit_code == 0
