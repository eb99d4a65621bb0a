"""The test harness's one allowance for the emulator: a lock Terraform's own retried write left.

Under load, moto can answer Terraform's conditional PutItem after the SDK gave up on it; the SDK's
retry then fails its condition against the item the first attempt wrote, and Terraform reports a
lock held by itself. The harness releases exactly such a lock and runs the command once more, and
never a lock taken before the command started (what the contention tests set up).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.terraform import TerraformError


def _lock(tf, created: datetime) -> None:
    key = f"{tf.backend.bucket}/{tf.backend.state_key()}"
    info = {
        "ID": "retried-0000",
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": "root@vm",
        "Version": "1.11.4",
        "Created": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "Path": key,
    }
    tf.client("dynamodb").put_item(TableName=tf.backend.dynamodb_table, Item={"LockID": {"S": key}, "Info": {"S": json.dumps(info)}})


def test_a_lock_created_after_the_command_started_is_its_own_and_is_released_once(terraform) -> None:
    tf = terraform()
    tf.init()
    started = datetime.now(timezone.utc) + timedelta(seconds=2)  # as if written by this command's first try
    _lock(tf, started)
    time.sleep(0.1)
    assert tf.apply("v1").ok and tf.lock_item() is None


@pytest.mark.parametrize("before", [timedelta(minutes=5), timedelta(milliseconds=200)])  # a run killed just before
def test_a_lock_taken_before_the_command_is_never_touched(terraform, before: timedelta) -> None:
    tf = terraform()
    tf.init()
    _lock(tf, datetime.now(timezone.utc) - before)
    with pytest.raises(TerraformError, match="Error acquiring the state lock"):
        tf.apply("v1")
    assert json.loads(tf.lock_item()["Info"]["S"])["ID"] == "retried-0000"
