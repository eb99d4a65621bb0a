"""Every notice fits, is delivered in order, and gives up loudly, against the emulator (issue 18.2, 18.3).

moto refuses an SNS message over 256 KB as SNS does; a refusal SNS keeps making is provoked with a hook on
the client's ``Publish``, a run killed between ``Publish`` and ``PutEvents`` with one on ``PutEvents``."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.integration.conftest import captured, event_queue, received, session
from tests.support.builders import lock_info, put_lock
from tests.support.fakes import fail_publishes
from tests.support.faults import http_headers
from tfjanitor.alerts import budgets, delivery
from tfjanitor.alerts.store import DynamoAlertStore
from tfjanitor.aws.session import AwsSession
from tfjanitor.durations import Deadline
from tfjanitor.runtime.settings import SweeperSettings
from tfjanitor.runtime.wiring import deliver_notices, sweep_and_alert

KEY = "app/terraform.tfstate"
ACCOUNT = "123456789012"  # the emulator's default account
DEFAULT_BUS = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"
TAG = "\U000e0041"  # escaped to 10 characters where shown, to 16 in a command: 4 UTF-8 bytes


def stale_lock(server, lock_id: str = "stale-1", who: str = "ci@runner-7", info: str = "") -> None:
    """A run killed three hours ago before any state write: no sign of life since."""
    doc = json.loads(lock_info(f"{BUCKET}/{KEY}", age=timedelta(hours=3)))
    doc.update({"ID": lock_id, "Who": who, "Info": info})
    put_lock(client("dynamodb", server), BUCKET, KEY, json.dumps(doc, ensure_ascii=False, separators=(",", ":")))


def release(server) -> None:
    client("dynamodb", server).delete_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}"}})


def notice_items(server) -> list[dict[str, Any]]:
    items = client("dynamodb", server).scan(TableName="tfjanitor-findings")["Items"]
    return [i for i in items if i["Fingerprint"]["S"].startswith("notice#")]


def publishes(boto: boto3.session.Session) -> list[dict[str, Any]]:
    """Every Publish request clients made from ``boto`` send from now on (its parameters)."""
    seen: list[dict[str, Any]] = []
    boto.events.register("before-parameter-build.sns.Publish", lambda params, **_: seen.append(dict(params)))
    return seen


def puts(boto: boto3.session.Session) -> list[dict[str, Any]]:
    """The detail of every event PutEvents is asked to put from now on, in the order asked."""
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.extend(json.loads(e["Detail"]) for e in params["Entries"])

    boto.events.register("before-parameter-build.events.PutEvents", record)
    return seen


def test_the_issues_oversized_lock_is_delivered_to_the_topic_and_the_bus_within_budget(backend, alerting) -> None:
    """ID and Who just under the 1,024-character cap, Info 2,471 characters, every one escaping: today's code
    renders a 287 KB message, SNS refuses it, and the notice stays pending for ever."""
    queue = event_queue(backend)
    stale_lock(backend, lock_id=TAG * 1000, who=TAG * 1000, info=TAG * 2471)
    boto = session()
    sent = publishes(boto)
    settings = SweeperSettings(**alerting, event_bus_arn=DEFAULT_BUS, account_id=ACCOUNT)

    _, done = sweep_and_alert(settings, AwsSession(boto, endpoint_url=backend.url))

    assert [n.event for n in done.sent] == ["opened"] and done.failed == [] and done.gave_up == []
    [request] = sent
    assert budgets.utf8(request["Message"]) + budgets.utf8(request["Subject"]) <= budgets.SNS_BUDGET
    [email] = captured(backend)
    assert email["subject"].startswith("[tfjanitor] WARNING Stale lock: ")
    assert budgets.utf8(email["email"]) <= budgets.EMAIL_BUDGET and budgets.utf8(email["chat"]) <= budgets.CHAT_BUDGET
    unlock = f"tfjanitor unlock --region {REGION} --table {TABLE} -- {BUCKET}/{KEY}"
    assert f"    {unlock}" in email["email"].splitlines() and "tfjanitor unlock reads the lock itself" in email["email"]
    assert "\\U000e0041" in email["email"] and TAG not in email["email"]  # shown escaped, never raw
    [event] = received(backend, queue)
    finding = event["detail"]["finding"]
    assert (event["detail"]["event"], finding["kind"], finding["key"]) == ("opened", "stale_lock", KEY)
    assert finding["details"]["commands"] == [unlock]
    assert budgets.utf8(json.dumps(event["detail"], ensure_ascii=False)) <= budgets.EVENT_BUDGET
    assert {i["Status"]["S"] for i in notice_items(backend)} == {"delivered"}


def refuse_publishes(boto: boto3.session.Session) -> Counter[str]:
    """SNS refuses every Publish of clients made from ``boto`` as it refuses a message over 256 KB."""
    counts = Counter[str]()

    def refuse(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        counts["refused"] += 1
        error = {
            "Error": {"Code": "InvalidParameter", "Message": "Invalid parameter: Message too long"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        return AWSResponse("https://sns.invalid/", 400, http_headers(), None), error

    boto.events.register(
        "before-call.sns.Publish",
        refuse,  # type: ignore[arg-type]  # a before-call handler returns the call's answer; the stubs say None
    )
    return counts


def test_a_notice_sns_refuses_is_given_up_after_one_compact_try_counted_and_never_retried(
    backend, alerting, monkeypatch, capsys, caplog
) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "tfjanitor")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "TfJanitor")
    from aws_lambda_powertools import Logger, Metrics  # noqa: PLC0415

    from tfjanitor.runtime.telemetry import publish_delivery  # noqa: PLC0415

    stale_lock(backend)
    boto = session()
    refusals = refuse_publishes(boto)
    aws = AwsSession(boto, endpoint_url=backend.url)
    settings = SweeperSettings(**alerting)
    [topic] = alerting["alert_topic_arns"]

    _, first = sweep_and_alert(settings, aws)

    assert refusals["refused"] == 2  # the notice, then its compact form
    [gave_up] = first.gave_up
    assert (gave_up.event, gave_up.destination) == ("opened", topic) and first.sent == [] and first.failed == []
    [item] = notice_items(backend)
    assert item["Status"]["S"] == "undeliverable" and item["GaveUp"]["SS"] == [topic] and "Notice" in item
    assert "Message too long" in item["LastError"]["S"]
    metrics = Metrics(namespace="TfJanitor", service="tfjanitor")
    publish_delivery(first, metrics, Logger(service="tfjanitor"))
    metrics.flush_metrics()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [emf] = [line for line in lines if "_aws" in line]
    assert emf["NotificationsGivenUp"] in (1.0, [1.0]) and "NotificationsFailed" not in emf
    [log] = [r for r in caplog.records if hasattr(r, "notice_given_up")]
    assert log.levelname == "ERROR" and log.notice_given_up["alert"] == gave_up.alert
    assert log.notice_given_up["destination"] == topic

    for _ in range(2):  # later runs: nothing to send, nothing refused again
        _, later = sweep_and_alert(settings, aws)
        assert later.sent == later.failed == later.gave_up == []
    assert refusals["refused"] == 2 and DynamoAlertStore(aws, REGION, "tfjanitor-findings").pending_notices() == []


def test_a_run_whose_deadline_is_spent_sends_nothing_and_leaves_the_notices_pending(backend, alerting) -> None:
    stale_lock(backend)
    failing = session()
    fail_publishes(failing, share=1.0)  # the sweep that opened it could not publish: the notice is pending
    settings = SweeperSettings(**alerting)
    _, first = sweep_and_alert(settings, AwsSession(failing, endpoint_url=backend.url))
    assert first.sent == [] and len(first.failed) == 1

    boto = session()
    sent = publishes(boto)
    aws = AwsSession(boto, endpoint_url=backend.url)
    spent = Deadline(lambda: -1.0, "a spent budget")
    assert deliver_notices(settings, aws, spent).sent == []
    assert sent == [] and captured(backend) == []
    [item] = notice_items(backend)
    assert item["Status"]["S"] == "pending" and "Claim" not in item

    assert [n.event for n in deliver_notices(settings, aws, Deadline(lambda: 30.0, "time")).sent] == ["opened"]
    assert len(sent) == 1 and len(captured(backend)) == 1


def test_a_run_that_ends_sooner_than_one_attempt_sends_nothing_more_and_fails_nothing(backend, alerting) -> None:
    """A Lambda run's last seconds (issue 19): no attempt is sent that could outlast the function's timeout, and
    what is left is pending for the next run, neither failed nor counted as a failure."""
    stale_lock(backend)
    failing = session()
    fail_publishes(failing, share=1.0)
    settings = SweeperSettings(**alerting)
    sweep_and_alert(settings, AwsSession(failing, endpoint_url=backend.url))  # "opened" is pending

    boto = session()
    sent = publishes(boto)
    aws = AwsSession(boto, endpoint_url=backend.url, timeouts=(2.0, 10.0))
    aws.run_until(Deadline(lambda: 11.0, "the function timeout"))  # 11 s left: less than one 12 s attempt
    done = deliver_notices(settings, aws, Deadline(lambda: 30.0, "time"))
    assert done.sent == [] and done.failed == []
    assert sent == [] and aws.counter.attempts == 0  # refused before anything went out
    [item] = notice_items(backend)
    assert item["Status"]["S"] == "pending" and "Claim" not in item

    aws.run_until(Deadline(lambda: 13.0, "the function timeout"))  # time for one attempt: it is sent
    assert [n.event for n in deliver_notices(settings, aws, Deadline(lambda: 30.0, "time")).sent] == ["opened"]
    assert len(sent) == 1 and len(captured(backend)) == 1


class Killed(BaseException):
    """The run is stopped where it stands (a Lambda timeout, an out-of-memory kill)."""


def test_a_sender_killed_between_sns_and_the_bus_then_a_resolve_the_bus_sees_opened_before_resolved(
    backend, alerting, monkeypatch
) -> None:
    # The dead run's claim: its few seconds left (no margin, so that the test need not wait for it).
    monkeypatch.setattr(delivery, "CLAIM_MARGIN", timedelta(0), raising=False)
    queue = event_queue(backend)
    settings = SweeperSettings(**alerting, event_bus_arn=DEFAULT_BUS, account_id=ACCOUNT)
    stale_lock(backend)

    dying = session()

    def kill(**_: Any) -> None:
        raise Killed

    dying.events.register("before-call.events.PutEvents", kill)
    with pytest.raises(Killed):  # SNS took "opened"; the run died before PutEvents
        sweep_and_alert(settings, AwsSession(dying, endpoint_url=backend.url), deadline=Deadline(lambda: 6.0, "a short run"))
    claimed_until = datetime.now(timezone.utc) + timedelta(seconds=6)
    [opened_email] = captured(backend)
    assert opened_email["subject"].startswith("[tfjanitor] WARNING Stale lock")

    release(backend)
    boto = session()
    bus = puts(boto)
    aws = AwsSession(boto, endpoint_url=backend.url)
    _, during = sweep_and_alert(settings, aws)  # resolves while "opened" is still claimed by the dead run
    assert during.sent == [] and bus == [] and received(backend, queue) == []
    [resolved_email] = captured(backend)  # the email of it may go: SNS had "opened" already
    assert resolved_email["subject"].startswith("[tfjanitor] RESOLVED Stale lock")

    time.sleep(max(0.0, (claimed_until - datetime.now(timezone.utc)).total_seconds()) + 0.5)
    after = deliver_notices(settings, aws)
    assert [n.event for n in after.sent] == ["opened", "resolved"]
    assert [d["event"] for d in bus] == ["opened", "resolved"]  # the order the bus saw them in
    assert sorted(e["detail"]["event"] for e in received(backend, queue)) == ["opened", "resolved"]
    assert captured(backend) == []  # SNS never got either twice
    assert {i["Status"]["S"] for i in notice_items(backend)} == {"delivered"}
