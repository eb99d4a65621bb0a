"""Delivery against the emulator: a share of Publish calls fail, and every transition still arrives once."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

from tests.conftest import BUCKET, TABLE, client
from tests.integration.conftest import captured, session
from tests.support.builders import lock_info, put_lock, put_state, state_body
from tests.support.fakes import fail_publishes
from tfjanitor.alerts.store import DynamoAlertStore
from tfjanitor.aws.session import AwsSession
from tfjanitor.runtime.settings import AuditorSettings, SweeperSettings
from tfjanitor.runtime.wiring import audit_and_alert, deliver_notices, sweep_and_alert


def notice_items(backend) -> list[dict]:
    items = client("dynamodb", backend).scan(TableName="tfjanitor-findings")["Items"]
    return [i for i in items if i["Fingerprint"]["S"].startswith("notice#")]


def test_with_flaky_publish_every_transition_arrives_exactly_once(backend, alerting) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    for i in range(4):  # runs killed three hours ago before any state write: no sign of life since
        put_lock(ddb, BUCKET, f"s{i}/terraform.tfstate", lock_info(f"{BUCKET}/s{i}", age=timedelta(hours=3)))
    put_state(s3, ddb, BUCKET, "drift/terraform.tfstate", state_body(1))
    s3.put_object(Bucket=BUCKET, Key="drift/terraform.tfstate", Body=state_body(2))  # edited by hand
    ddb.update_table(TableName=TABLE, DeletionProtectionEnabled=False)  # an auditor warning
    boto = session()
    publishes = fail_publishes(boto, share=0.5, seed=7)
    aws = AwsSession(boto, endpoint_url=backend.url)
    sweeper, auditor = SweeperSettings(**alerting), AuditorSettings(**alerting)

    sweep_and_alert(sweeper, aws)  # 4 stale locks and the drift open
    for i in (0, 1):
        ddb.delete_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/s{i}/terraform.tfstate"}})
    sweep_and_alert(sweeper, aws)  # 2 resolve
    audit_and_alert(auditor, aws)  # the table's deletion protection opens
    deliver_notices(sweeper, aws)  # what the stream monitor does after each batch
    store = DynamoAlertStore(aws, alerting["region"], alerting["findings_table"])
    for _ in range(30):  # later sweeps retry what is still pending
        if not store.pending_notices():
            break
        sweep_and_alert(sweeper, aws)

    assert publishes["failed"] >= 5  # Publish really failed, many times
    emails = captured(backend)
    kinds = Counter(e["subject"].split(":")[0] for e in emails)
    assert kinds == {
        "[tfjanitor] WARNING Stale lock": 4,
        "[tfjanitor] RESOLVED Stale lock": 2,
        "[tfjanitor] CRITICAL Digest drift": 1,
        "[tfjanitor] WARNING Lock table without deletion protection": 1,
    }
    # Each transition's notice is marked delivered with the id of the one message SNS accepted for it.
    items = notice_items(backend)
    assert len(items) == 8 and {i["Status"]["S"] for i in items} == {"delivered"}
    [topic] = alerting["alert_topic_arns"]
    assert all(i["MessageIds"]["SS"][0].startswith(topic + " ") for i in items)
    assert sorted(i["MessageIds"]["SS"][0].split(" ")[1] for i in items) == sorted(e["message_id"] for e in emails)


def test_a_poison_lock_gets_its_own_capped_alert_and_every_other_alert_still_arrives(backend, alerting) -> None:
    """moto enforces DynamoDB's 400 KB item and SNS's 256 KB message limits, as AWS does."""
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_state(s3, ddb, BUCKET, "drift/terraform.tfstate", state_body())
    # Runs killed three hours ago before any state write (no sign of life since), one with a 200 KB Who.
    put_lock(ddb, BUCKET, "ok/terraform.tfstate", lock_info(f"{BUCKET}/ok", age=timedelta(hours=3)))
    who = "W" * 200_000
    put_lock(ddb, BUCKET, "poison/terraform.tfstate", lock_info(f"{BUCKET}/poison", age=timedelta(hours=3), who=who))
    s3.put_object(Bucket=BUCKET, Key="drift/terraform.tfstate", Body=state_body(9))
    junk = lock_info(f"{BUCKET}/junk").replace('"Created":"', '"Created":"' + "x" * 300_000)
    put_lock(ddb, BUCKET, "junk/terraform.tfstate", junk)  # not a time: a malformed item
    aws = AwsSession(session(), endpoint_url=backend.url)

    result, delivery = sweep_and_alert(SweeperSettings(**alerting), aws)

    assert result.complete and delivery.failed == []
    emails = {e["subject"].split(":")[0] + ":" + e["subject"].split(": ")[1].split(" ")[0]: e for e in captured(backend)}
    assert sorted(emails) == [
        f"[tfjanitor] CRITICAL Digest drift:{BUCKET}/drift/terraform.tfstate",
        f"[tfjanitor] WARNING Malformed lock item:{BUCKET}/junk/terraform.tfstate",
        f"[tfjanitor] WARNING Stale lock:{BUCKET}/ok/terraform.tfstate",
        f"[tfjanitor] WARNING Stale lock:{BUCKET}/poison/terraform.tfstate",
    ]
    poison = emails[f"[tfjanitor] WARNING Stale lock:{BUCKET}/poison/terraform.tfstate"]
    assert "[truncated, 200000 chars]" in poison["plain"] and who not in poison["plain"]
    assert len(poison["email"].encode()) < 32 * 1024
    items = client("dynamodb", backend).scan(TableName="tfjanitor-findings")["Items"]
    assert len(items) == 8  # 4 alerts, 4 notices
    assert max(len(json.dumps(i, ensure_ascii=False).encode()) for i in items) < 32 * 1024  # limit: 400 KB
