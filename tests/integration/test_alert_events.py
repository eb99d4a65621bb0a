"""Alert transitions on EventBridge and on chat, against the emulator: a rule on the bus with an SQS target
captures the events (as a user's rule would route them), an HTTP endpoint subscribed with protocol ``https``
(as AWS Chatbot subscribes) captures what chat gets."""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.integration.conftest import captured, event_queue, received, session
from tests.support.builders import lock_info, put_lock, put_state, state_body
from tests.support.fakes import refuse_put_events
from tfjanitor.aws.session import AwsSession
from tfjanitor.local.runner import LocalStack
from tfjanitor.runtime.settings import SweeperSettings
from tfjanitor.runtime.wiring import sweep_and_alert

ROOT = Path(__file__).resolve().parents[2]
KEY = "app/terraform.tfstate"
ACCOUNT = "123456789012"  # the emulator's default account
DEFAULT_BUS = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"
SCHEDULE = json.loads((ROOT / "events" / "schedule.json").read_text())


def stale_lock(server) -> None:
    # A run killed three hours ago before any state write: no sign of life since.
    put_lock(client("dynamodb", server), BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", age=timedelta(hours=3), lock_id="stale-1"))


def release(server) -> None:
    client("dynamodb", server).delete_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}"}})


def test_the_local_stack_puts_each_alert_transition_on_the_bus(backend) -> None:
    """template.yaml's sweeper, run as the local runner runs it: opened, then resolved, each one event."""
    queue = event_queue(backend)
    stale_lock(backend)
    stack = LocalStack(
        ROOT / "template.yaml",
        backend.url,
        REGION,
        {"StateBucketNames": BUCKET, "AlertEmail": "oncall@example.com"},
        echo=lambda _: None,
    )
    stack.setup()
    [sweeper] = [fn for fn in stack.functions if fn.name == "SweeperFunction"]
    assert sweeper.environment["EVENT_BUS_ARN"] == DEFAULT_BUS  # the template's default: this account's bus

    assert stack.invoke(sweeper, SCHEDULE)["alerts_sent"] == 1
    release(backend)
    assert stack.invoke(sweeper, SCHEDULE)["alerts_sent"] == 1

    opened, resolved = received(backend, queue)
    for event in (opened, resolved):
        assert (event["source"], event["detail-type"], event["region"]) == ("tfjanitor", "tfjanitor alert", REGION)
        finding = event["detail"]["finding"]
        assert (
            finding["kind"],
            finding["account"],
            finding["region"],
            finding["table"],
            finding["bucket"],
            finding["key"],
            finding["lock_id"],
        ) == ("stale_lock", ACCOUNT, REGION, TABLE, BUCKET, KEY, "stale-1")
        assert set(event["detail"]) >= {"event", "alert_id", "finding"}
    assert (opened["detail"]["event"], resolved["detail"]["event"]) == ("opened", "resolved")
    assert opened["detail"]["alert_id"] == resolved["detail"]["alert_id"]
    assert opened["detail"]["finding"]["details"]["commands"][0].startswith("tfjanitor unlock ")
    assert resolved["detail"]["resolution"] == "no longer seen"
    # The emails went out too.
    subjects = [e.subject for e in stack.drain_emails()]
    assert [s.split(":")[0] for s in subjects] == ["[tfjanitor] WARNING Stale lock", "[tfjanitor] RESOLVED Stale lock"]


def test_an_event_the_bus_refused_is_put_again_by_the_next_run_and_never_emailed_twice(backend, alerting) -> None:
    queue = event_queue(backend)
    stale_lock(backend)
    boto = session()
    refusals = refuse_put_events(boto, times=2)
    aws = AwsSession(boto, endpoint_url=backend.url)
    settings = SweeperSettings(**alerting, event_bus_arn=DEFAULT_BUS, account_id=ACCOUNT)

    _, first = sweep_and_alert(settings, aws)
    _, second = sweep_and_alert(settings, aws)  # the claim is taken again after each failure
    assert refusals["refused"] == 2
    assert first.sent == second.sent == [] and len(first.failed) == len(second.failed) == 1
    assert DEFAULT_BUS in first.failed[0] and "ThrottlingException" in first.failed[0]
    assert received(backend, queue) == []
    [email] = captured(backend)  # the topic had it at once, and only once
    assert email["subject"].startswith("[tfjanitor] WARNING Stale lock")

    _, third = sweep_and_alert(settings, aws)
    assert [n.event for n in third.sent] == ["opened"] and third.failed == []
    [event] = received(backend, queue)
    assert event["detail"]["event"] == "opened" and event["detail"]["notice_id"] == third.sent[0].id
    assert captured(backend) == []


class Inbox(BaseHTTPRequestHandler):
    posts: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def test_chatbots_https_subscription_gets_a_card_and_email_keeps_the_text(backend, alerting) -> None:
    """AWS Chatbot subscribes to the topic with protocol https: what it gets is the custom notification."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Inbox)
    Inbox.posts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        [topic] = alerting["alert_topic_arns"]
        client("sns", backend).subscribe(
            TopicArn=topic, Protocol="https", Endpoint=f"http://127.0.0.1:{server.server_address[1]}/chatbot"
        )
        stale_lock(backend)
        _, delivery = sweep_and_alert(
            SweeperSettings(**alerting, account_id=ACCOUNT),
            AwsSession(session(), endpoint_url=backend.url),
            datetime.now(timezone.utc),
        )
        assert [n.event for n in delivery.sent] == ["opened"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    [post] = Inbox.posts
    card = json.loads(post["Message"])
    assert (card["version"], card["source"], card["content"]["textType"]) == ("1.0", "custom", "client-markdown")
    assert card["content"]["title"] == f"\u26a0\ufe0f WARNING Stale lock: `{KEY}`"
    assert card["content"]["nextSteps"][0].startswith("Run: `tfjanitor unlock --region ap-northeast-2 ")
    assert f"*Account:* `{ACCOUNT}`" in card["content"]["description"]
    [email] = captured(backend)  # the queue's copy: the email text, and the same card
    assert email["email"].startswith("WARNING Stale lock") and json.loads(email["chat"])["content"] == card["content"]


def test_the_readmes_example_rules_route_what_they_say(backend, alerting) -> None:
    """The two rules of docs/alerts.md, on the events a sweep puts: the critical one gets only the drift; the chat one
    every transition, turned by its input transformer into a card Chatbot reads (queues stand in for the
    topics: the emulator's EventBridge delivers to SQS, not SNS)."""
    readme = (ROOT / "docs" / "alerts.md").read_text()
    section = readme[readme.index("## Findings as events") :]  # the page's last section
    critical_pattern, chat_pattern = re.findall(r"--event-pattern '([^']*)'", section)
    [chat_targets] = re.findall(r"--targets '(\[.*?\])'", section, re.S)
    sqs, bus = client("sqs", backend), client("events", backend)
    queues = {}
    for name, pattern, targets in (
        ("critical", critical_pattern, [{"Id": "oncall"}]),
        ("chat", chat_pattern, json.loads(chat_targets)),
    ):
        url = sqs.create_queue(QueueName=f"readme-{name}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bus.put_rule(Name=f"tfjanitor-{name}", EventPattern=pattern)
        bus.put_targets(Rule=f"tfjanitor-{name}", Targets=[{**t, "Arn": arn} for t in targets])
        queues[name] = url
    stale_lock(backend)  # a warning
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_state(s3, ddb, BUCKET, "drift/terraform.tfstate", state_body(1))
    s3.put_object(Bucket=BUCKET, Key="drift/terraform.tfstate", Body=state_body(2))  # a critical drift

    _, delivery = sweep_and_alert(
        SweeperSettings(**alerting, event_bus_arn=DEFAULT_BUS, account_id=ACCOUNT), AwsSession(session(), endpoint_url=backend.url)
    )

    assert sorted(n.finding["kind"] for n in delivery.sent) == ["digest_drift", "stale_lock"]
    [page] = received(backend, queues["critical"])
    assert (page["detail"]["event"], page["detail"]["finding"]["kind"]) == ("opened", "digest_drift")
    cards = sorted(received(backend, queues["chat"]), key=lambda c: c["content"]["title"])
    assert [(c["version"], c["source"], c["content"]["title"]) for c in cards] == [
        ("1.0", "custom", "tfjanitor opened: digest_drift"),
        ("1.0", "custom", "tfjanitor opened: stale_lock"),
    ]
    assert cards[0]["content"]["description"].startswith(f"account {ACCOUNT}, region {REGION}, alert ")
