"""Every notice fits, against the emulator (issue 18.2): moto refuses an SNS message over 256 KB as SNS does."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.integration.conftest import captured, event_queue, received, session
from tests.support.builders import lock_info, put_lock
from tfjanitor.alerts import budgets
from tfjanitor.aws.session import AwsSession
from tfjanitor.runtime.settings import SweeperSettings
from tfjanitor.runtime.wiring import sweep_and_alert

KEY = "app/terraform.tfstate"
ACCOUNT = "123456789012"  # the emulator's default account
DEFAULT_BUS = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"
TAG = "\U000e0041"  # escaped to 10 characters where shown, to 16 in a command: 4 UTF-8 bytes


def stale_lock(server, lock_id: str = "stale-1", who: str = "ci@runner-7", info: str = "") -> None:  # type: ignore[no-untyped-def]
    """A run killed three hours ago before any state write: no sign of life since."""
    doc = json.loads(lock_info(f"{BUCKET}/{KEY}", age=timedelta(hours=3)))
    doc.update({"ID": lock_id, "Who": who, "Info": info})
    put_lock(client("dynamodb", server), BUCKET, KEY, json.dumps(doc, ensure_ascii=False, separators=(",", ":")))


def notice_items(server) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    items = client("dynamodb", server).scan(TableName="tfjanitor-findings")["Items"]
    return [i for i in items if i["Fingerprint"]["S"].startswith("notice#")]


def publishes(boto: boto3.session.Session) -> list[dict[str, Any]]:
    """Every Publish request clients made from ``boto`` send from now on (its parameters)."""
    seen: list[dict[str, Any]] = []
    boto.events.register("before-parameter-build.sns.Publish", lambda params, **_: seen.append(dict(params)))
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

    assert [n.event for n in done.sent] == ["opened"] and done.failed == []
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
