"""AlertTopicArn: alerts go to an existing topic (PagerDuty, Opsgenie, chat) instead of, or besides, the stack's own."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.integration.conftest import session
from tests.support.builders import lock_info, put_lock, put_state, state_body
from tfjanitor.aws.session import AwsSession
from tfjanitor.runtime.settings import SweeperSettings
from tfjanitor.runtime.wiring import sweep_and_alert

KEY = "app/terraform.tfstate"
ELSEWHERE = "us-east-1"  # an organisation's paging topic need not live in the stack's region


def topic_with_queue(server, name: str, region: str) -> tuple[str, str]:
    sns, sqs = client("sns", server, region), client("sqs", server, region)
    arn = sns.create_topic(Name=name)["TopicArn"]
    url = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    return arn, url


def inbox(server, url: str, region: str) -> list[dict[str, str]]:
    """What arrived: {"subject", "email", "plain"} per message."""
    messages = client("sqs", server, region).receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def subjects(server, url: str, region: str) -> list[str]:
    return [doc["subject"] for doc in inbox(server, url, region)]


def stale_lock_settings(backend, topics: list[str]) -> SweeperSettings:
    client("dynamodb", backend).create_table(
        TableName="tfjanitor-findings",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "Fingerprint", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Fingerprint", "AttributeType": "S"}],
    )
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_state(s3, ddb, BUCKET, "other/terraform.tfstate", state_body())
    # A run killed three hours ago, before any state write: no sign of life since (issue 11).
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", age=timedelta(hours=3), lock_id="stale-1"))
    # ALERT_TOPIC_ARN as the template sets it: a comma-separated list.
    return SweeperSettings.from_env(
        {
            "AWS_REGION": REGION,
            "LOCK_TABLES": TABLE,
            "FINDINGS_TABLE": "tfjanitor-findings",
            "ALERT_TOPIC_ARN": ",".join(topics),
            "STACK_NAME": "tfjanitor",
            "ACCOUNT_ID": "123456789012",
            "ACCOUNT_ALIAS": "payments-prod",
        }
    )


def test_each_alert_reaches_the_stacks_topic_and_the_existing_one_in_another_region(backend) -> None:
    own, own_inbox = topic_with_queue(backend, "tfjanitor-alerts", REGION)
    paging, paging_inbox = topic_with_queue(backend, "pagerduty", ELSEWHERE)
    settings = stale_lock_settings(backend, [own, paging])

    result, delivery = sweep_and_alert(settings, AwsSession(session(), endpoint_url=backend.url), datetime.now(timezone.utc))

    assert [n.event for n in delivery.sent] == ["opened"] and result.errors == [] and delivery.failed == []
    [mail] = inbox(backend, own_inbox, REGION)
    assert mail["subject"].startswith("[tfjanitor] WARNING Stale lock")
    assert inbox(backend, paging_inbox, ELSEWHERE) == [mail]
    # Whoever reads it, in whichever inbox, knows the account and the stack it comes from.
    for text in (mail["email"], mail["plain"]):
        assert text.splitlines()[1] == f"Account 123456789012 (payments-prod), stack tfjanitor, region {REGION}"


def test_a_topic_that_fails_does_not_keep_the_alert_from_the_other_and_is_reported(backend) -> None:
    gone = f"arn:aws:sns:{REGION}:123456789012:deleted-topic"
    paging, paging_inbox = topic_with_queue(backend, "pagerduty", ELSEWHERE)
    settings = stale_lock_settings(backend, [gone, paging])

    aws = AwsSession(session(), endpoint_url=backend.url)
    result, delivery = sweep_and_alert(settings, aws, datetime.now(timezone.utc))

    assert [s.startswith("[tfjanitor] WARNING Stale lock") for s in subjects(backend, paging_inbox, ELSEWHERE)] == [True]
    # Reported as a notice not delivered (NotificationsFailed), not as a sweep that could not read.
    [failure] = delivery.failed
    assert gone in failure and delivery.sent == [] and result.complete
    # Every later run retries the topic that failed, and never sends the other one the same alert again.
    _, again = sweep_and_alert(settings, aws, datetime.now(timezone.utc))
    assert [gone in f for f in again.failed] == [True] and subjects(backend, paging_inbox, ELSEWHERE) == []
