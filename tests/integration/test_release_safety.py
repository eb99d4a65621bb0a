"""Auto-release against the emulator: staleness for release is measured from tfjanitor's first sight."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.integration.conftest import session
from tests.support.builders import lock_info, put_lock
from tfjanitor.aws.session import AwsSession
from tfjanitor.local.runner import FINDINGS_TABLE
from tfjanitor.runtime.settings import SweeperSettings
from tfjanitor.runtime.wiring import sweep_and_alert

KEY = "dev/terraform.tfstate"


def test_a_lock_whose_created_is_old_is_released_one_threshold_after_tfjanitor_first_saw_it(backend) -> None:
    """Created says 3h ago (a -lock-timeout wait, or the holder's clock): the lock is stale at first sight,
    but the sweeper releases it only once it has itself seen the same lock for the 1h threshold."""
    ddb = client("dynamodb", backend)
    ddb.create_table(
        TableName=FINDINGS_TABLE,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "Fingerprint", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Fingerprint", "AttributeType": "S"}],
    )
    topic = client("sns", backend).create_topic(Name="alerts")["TopicArn"]
    t0 = datetime.now(timezone.utc).replace(microsecond=0)
    put_lock(
        ddb,
        BUCKET,
        KEY,
        lock_info(f"{BUCKET}/{KEY}", age=timedelta(hours=3), operation="OperationTypePlan", lock_id="held-since-long", now=t0),
    )
    settings = SweeperSettings(
        region=REGION,
        findings_table=FINDINGS_TABLE,
        alert_topic_arns=[topic],
        lock_tables=[TABLE],
        auto_release=True,
        stale_after=timedelta(hours=1),
        read_only_stale_after=timedelta(hours=1),
        release_grace=timedelta(minutes=30),
    )
    aws = AwsSession(session(), endpoint_url=backend.url)
    released_at = []
    for minutes in (0, 10, 35, 50, 61):
        now = t0 + timedelta(minutes=minutes)
        _, delivery = sweep_and_alert(settings, aws, now=now, sweep_id=f"m{minutes}")
        released_at += [minutes for n in delivery.sent if n.event == "released"]
    # Grace (30m) and sightings (2) were met at 35m; tfjanitor's own 1h only at 61m.
    assert released_at == [61]
    assert "Item" not in ddb.get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}"}})
    [item] = [i for i in ddb.scan(TableName=FINDINGS_TABLE)["Items"] if "Finding" in i]  # the alert, not its notices
    assert datetime.fromisoformat(item["FirstSeenAt"]["S"]) == t0
    record = json.loads(item["ReleaseRecord"]["S"])
    assert record["first_seen_at"] == t0.isoformat() and "since tfjanitor first saw it" in record["rule"]
