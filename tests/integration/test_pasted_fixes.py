"""The printed fixes, pasted into bash and run with the real AWS CLI and ``tfjanitor`` against the emulator.

Keys, lock IDs and ``Who`` are hostile (quotes, ``$(...)``, backticks, ``;``, a leading ``-``, control
characters, an AWS CLI ``file://`` prefix). Each finding's ``details.commands`` must fix it; a write is
conditional on the value the sweep saw, so once that value changed the same command fails and changes
nothing; and no command creates a file where it runs.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE, client
from tests.integration.conftest import kinds, sweep
from tests.support.awscli import Pasted, Shell
from tests.support.builders import lock_info, md5, put_lock, put_state, state_body
from tfjanitor.local.emulator import MotoServer
from tfjanitor.model import Kind, StalePolicy

KEY = '-dev/it\'s $(touch pwned) `touch pwned2`; "q" \\ ü ✓\x1b[31m\x85\u202e/terraform.tfstate'
LOCKFILE_KEY = "file:///tmp/tfjanitor-paste/$(touch pwned)/terraform.tfstate"  # the AWS CLI would read that file
LOCK_ID = "-h'; $(touch pwned) `touch pwned3`\x1b]0;title\x07"
WHO = "evil\x1b[2J\r\x85\u202e@host"
STALE = StalePolicy(default=timedelta(seconds=0.001), read_only=timedelta(seconds=0.001))
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]")  # anything but a newline


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"  # the state's working directory: empty, and it must stay so
    path.mkdir()
    return path


def paste(shell: Shell, work: Path, line: str, answer: str | None = None) -> Pasted:
    ran = shell.paste(line, work, answer)
    assert list(work.iterdir()) == [] and list(shell.home.iterdir()) == [], f"{line} created files"
    assert not RAW_CONTROL.search(ran.output), ran.output  # the terminal shows, never obeys
    return ran


def one(found: list[Any], kind: Kind) -> dict[str, Any]:
    [finding] = [f for f in found if f.kind is kind]
    return finding.to_dict()


def alternative(finding: dict[str, Any], words: str) -> list[str]:
    [chosen] = [a["commands"] for a in finding["details"]["alternatives"] if words in a["label"]]
    return chosen


def item(ddb, lock_id: str) -> dict[str, Any] | None:
    return ddb.get_item(TableName=TABLE, Key={"LockID": {"S": lock_id}}, ConsistentRead=True).get("Item")


def present(ddb, lock_id: str) -> dict[str, Any]:
    """The item, which must be there."""
    found = item(ddb, lock_id)
    assert found is not None, lock_id
    return found


def test_stale_lock_commands_release_it_and_only_it(backend: MotoServer, shell: Shell, work: Path) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    body = state_body()
    put_state(s3, ddb, BUCKET, KEY, body)
    seen = lock_info(f"{BUCKET}/{KEY}", age=timedelta(hours=3), lock_id=LOCK_ID, who=WHO)
    put_lock(ddb, BUCKET, KEY, seen)
    stale = one(sweep(backend, policy=STALE).findings, Kind.STALE_LOCK)
    assert stale["lock_id"] == LOCK_ID

    # The recommended release: tfjanitor unlock shows the lock, asks, and the engineer answers yes.
    [unlock] = stale["details"]["commands"]
    ran = paste(shell, work, unlock, answer="yes")
    assert ran.ok, ran.output
    assert "\\x1b" in ran.output and "released" in ran.output  # Who and the ID shown escaped
    assert item(ddb, f"{BUCKET}/{KEY}") is None
    assert present(ddb, f"{BUCKET}/{KEY}-md5")["Digest"]["S"] == md5(body)

    # Without tfjanitor: the AWS CLI's delete, conditional on the exact Info seen.
    [delete] = alternative(stale, "Without tfjanitor")
    put_lock(ddb, BUCKET, KEY, seen)
    assert paste(shell, work, delete).ok
    assert item(ddb, f"{BUCKET}/{KEY}") is None
    # A new run took the state since: the same command fails and deletes nothing.
    taken = lock_info(f"{BUCKET}/{KEY}", lock_id=LOCK_ID, who=WHO)
    put_lock(ddb, BUCKET, KEY, taken)
    refused = paste(shell, work, delete)
    assert not refused.ok and "ConditionalCheckFailed" in refused.output
    assert present(ddb, f"{BUCKET}/{KEY}")["Info"]["S"] == taken


def test_digest_fixes_apply_only_to_the_digest_seen(backend: MotoServer, shell: Shell, work: Path) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_state(s3, ddb, BUCKET, KEY, state_body(1))
    stored = md5(state_body(1))
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=state_body(2))  # edited by hand: drift
    drift = one(sweep(backend).findings, Kind.DIGEST_DRIFT)
    [store] = drift["details"]["commands"]
    digest_id = f"{BUCKET}/{KEY}-md5"

    def set_digest(value: str) -> None:
        ddb.put_item(TableName=TABLE, Item={"LockID": {"S": digest_id}, "Digest": {"S": value}})

    set_digest("c" * 32)  # another writer changed it since the sweep
    refused = paste(shell, work, store)
    assert not refused.ok and "ConditionalCheckFailed" in refused.output
    assert present(ddb, digest_id)["Digest"]["S"] == "c" * 32
    set_digest(stored)
    assert paste(shell, work, store).ok
    assert present(ddb, digest_id)["Digest"]["S"] == md5(state_body(2))
    assert kinds(sweep(backend)) == []

    # The leftover alternative deletes only the digest seen.
    [leftover] = alternative(drift, "use_lockfile only")
    set_digest("c" * 32)
    assert not paste(shell, work, leftover).ok and item(ddb, digest_id) is not None
    set_digest(stored)
    assert paste(shell, work, leftover).ok and item(ddb, digest_id) is None


def test_orphan_digest_commands_list_the_right_versions_and_remove_it(
    backend: MotoServer, shell: Shell, work: Path, tmp_path: Path
) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    decoy = tmp_path / "decoy"
    decoy.write_text("not-the-key")
    key = f"file://{decoy}"  # the AWS CLI reads a bare file:// value from that file
    put_state(s3, ddb, BUCKET, key, state_body())
    s3.delete_object(Bucket=BUCKET, Key=key)
    orphan = one(sweep(backend).findings, Kind.ORPHAN_DIGEST)
    [versions] = alternative(orphan, "deleted by mistake")  # read only: which version to restore
    listed = paste(shell, work, versions)
    assert listed.ok and f'"Key": "{key}"' in listed.output and '"DeleteMarkers"' in listed.output
    for line in orphan["details"]["commands"]:
        assert paste(shell, work, line).ok
    assert item(ddb, f"{BUCKET}/{key}-md5") is None and kinds(sweep(backend)) == []


def test_stale_lockfile_commands_delete_exactly_that_object(backend: MotoServer, shell: Shell, work: Path) -> None:
    s3 = client("s3", backend)
    lockfile = f"{LOCKFILE_KEY}.tflock"
    body = lock_info(f"{BUCKET}/{LOCKFILE_KEY}", age=timedelta(hours=3), lock_id=LOCK_ID, who=WHO).encode()
    s3.put_object(Bucket=BUCKET, Key=LOCKFILE_KEY, Body=state_body())
    s3.put_object(Bucket=BUCKET, Key=lockfile, Body=body)
    stale = one(sweep(backend, buckets=[BUCKET], policy=STALE).findings, Kind.STALE_LOCKFILE)

    [unlock] = stale["details"]["commands"]
    assert paste(shell, work, unlock, answer="yes").ok
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=lockfile)

    # The AWS CLI alternative, If-Match the ETag seen: the key is not read as a file:// parameter.
    [delete] = alternative(stale, "Without tfjanitor")
    s3.put_object(Bucket=BUCKET, Key=lockfile, Body=body)
    assert paste(shell, work, delete).ok
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=lockfile)
    s3.put_object(Bucket=BUCKET, Key=lockfile, Body=body + b" ")  # taken again: another ETag
    refused = paste(shell, work, delete)
    assert not refused.ok and "PreconditionFailed" in refused.output
    assert s3.get_object(Bucket=BUCKET, Key=lockfile)["Body"].read() == body + b" "


def test_an_empty_item_on_a_state_lock_slot_is_a_warning_deleted_exactly(backend: MotoServer, shell: Shell, work: Path) -> None:
    """Neither Info nor Digest, where a known state's lock belongs (issue 18.5): Terraform cannot lock that state
    while it is there. It is a warning (not another workload's item) whose delete takes exactly that item."""
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    key = "slot/terraform.tfstate"  # (the AWS CLI prints a hostile key raw: tested with the other commands)
    put_state(s3, ddb, BUCKET, key, state_body())
    slot = {"LockID": {"S": f"{BUCKET}/{key}"}, "Owner": {"S": "it's $(touch pwned)"}, "Since": {"N": "17"}}
    ddb.put_item(TableName=TABLE, Item=slot)
    ddb.put_item(TableName=TABLE, Item={"LockID": {"S": "orders/42"}, "Qty": {"N": "1"}})  # another workload's
    found = sweep(backend).findings
    [finding] = [f for f in found if f.kind is Kind.MALFORMED_ITEM and f.severity.value == "warning"]
    assert finding.details["state_lock_slot"] is True and "fails to lock" in finding.message
    assert sorted(f.severity.value for f in found if f.kind is Kind.MALFORMED_ITEM) == ["info", "warning"]
    inspect, delete = finding.to_dict()["details"]["commands"]
    assert paste(shell, work, inspect).ok
    ddb.put_item(TableName=TABLE, Item={**slot, "Since": {"N": "18"}})  # changed since the sweep
    refused = paste(shell, work, delete)
    assert not refused.ok and "ConditionalCheckFailed" in refused.output and item(ddb, f"{BUCKET}/{key}")
    ddb.put_item(TableName=TABLE, Item=slot)
    assert paste(shell, work, delete).ok and item(ddb, f"{BUCKET}/{key}") is None
    assert item(ddb, f"{BUCKET}/{key}-md5") is not None  # the digest is untouched
    assert kinds(sweep(backend)) == ["malformed_item"]  # only the other workload's item, as info
