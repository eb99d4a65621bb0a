"""Integration level: engine, adapters and handlers in-process against moto server over HTTP."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest

from tests.conftest import BUCKET, REGION, TABLE, client
from tfjanitor.aws.session import AwsSession
from tfjanitor.local.emulator import MotoServer
from tfjanitor.model import ScanResult, StalePolicy
from tfjanitor.scan.sweeper import Sweeper, SweepRequest


@pytest.fixture
def ddb(backend: MotoServer):
    return client("dynamodb", backend)


@pytest.fixture
def s3(backend: MotoServer):
    return client("s3", backend)


CAPTURE_QUEUE = "tfjanitor-captured-alerts"


@pytest.fixture
def alerting(backend: MotoServer) -> dict[str, Any]:
    """The stack's own findings table and alert topic, in the emulator (settings keyword arguments).

    A queue subscribed to the topic captures every message SNS accepted: see :func:`captured`."""
    client("dynamodb", backend).create_table(
        TableName="tfjanitor-findings",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "Fingerprint", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Fingerprint", "AttributeType": "S"}],
    )
    topic = client("sns", backend).create_topic(Name="tfjanitor-alerts")["TopicArn"]
    sqs = client("sqs", backend)
    queue = sqs.create_queue(QueueName=CAPTURE_QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client("sns", backend).subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return {"region": REGION, "findings_table": "tfjanitor-findings", "alert_topic_arns": [topic], "lock_tables": [TABLE]}


def received(server: MotoServer, url: str) -> list[dict[str, Any]]:
    """The JSON messages on ``url``'s queue since the last call (taken off the queue)."""
    sqs, out = client("sqs", server), []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            out.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return out


def captured(server: MotoServer) -> list[dict[str, Any]]:
    """Messages SNS delivered to the capture queue since the last call: ``{"message_id", "subject", "email",
    "plain", "chat"}`` (``chat``: the card AWS Chatbot gets, as JSON)."""
    queue = client("sqs", server).get_queue_url(QueueName=CAPTURE_QUEUE)["QueueUrl"]
    return [{"message_id": envelope["MessageId"], **json.loads(envelope["Message"])} for envelope in received(server, queue)]


def event_queue(server: MotoServer) -> str:
    """A rule on the default bus matching every tfjanitor event, with a queue as its target (see :func:`received`)."""
    sqs, bus = client("sqs", server), client("events", server)
    url = sqs.create_queue(QueueName="tfjanitor-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus.put_rule(Name="tfjanitor-everything", EventPattern=json.dumps({"source": ["tfjanitor"]}))
    bus.put_targets(Rule="tfjanitor-everything", Targets=[{"Id": "queue", "Arn": arn}])
    return url


def session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)


def sweep(
    server: MotoServer,
    tables: list[str] | None = None,
    buckets: list[str] | None = None,
    policy: StalePolicy | None = None,
    aws: AwsSession | None = None,
) -> ScanResult:
    request = SweepRequest(REGION, tables or [TABLE], buckets or [], policy or StalePolicy())
    return Sweeper(aws or AwsSession(session(), endpoint_url=server.url)).sweep(request)


def kinds(result: ScanResult) -> list[str]:
    return sorted(f.kind.value for f in result.findings)


__all__ = ["BUCKET", "REGION", "TABLE", "captured", "event_queue", "kinds", "received", "session", "sweep", "timedelta"]
