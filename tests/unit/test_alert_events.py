"""Alert transitions as EventBridge events: the detail contract, the size limit, and the bus as one more
destination under the same at-least-once rules as email."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tests.support.builders import lock_info
from tests.support.fakes import FakeAlertStore
from tfjanitor.alerts import events
from tfjanitor.alerts.delivery import Notifier, deliver
from tfjanitor.alerts.emails import Origin
from tfjanitor.alerts.lifecycle import Notice, process_findings
from tfjanitor.aws.bus import EventBus
from tfjanitor.aws.session import AwsError, AwsSession
from tfjanitor.aws.topic import Topic
from tfjanitor.checks import findings as build
from tfjanitor.terraform import parse_lock_info

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
REGION, TABLE, BUCKET = "ap-northeast-2", "terraform-state-lock", "tfstate-demo"
BUS = "arn:aws:events:eu-west-1:111122223333:event-bus/org-findings"
TOPIC = f"arn:aws:sns:{REGION}:123456789012:tfjanitor-alerts"


def stale(key: str = "ci/terraform.tfstate", who: str = "ci@runner-7"):
    lock = parse_lock_info(lock_info(f"{BUCKET}/{key}", age=timedelta(hours=3), lock_id="L1", now=T0, who=who))
    return build.stale_lock(REGION, TABLE, BUCKET, key, lock, T0, timedelta(hours=1))


@pytest.mark.parametrize("event", ["opened", "worse", "reminder", "resolved", "released"])
def test_each_transition_is_an_event_carrying_the_finding(event: str) -> None:
    f = stale()
    f.account = "123456789012"
    notice = Notice(event, f.to_dict(), "fp1", T0, T0 - timedelta(hours=1), "lock released" * (event == "resolved"))
    entry = events.entry(notice)
    assert (entry["Source"], entry["DetailType"], entry["Time"]) == ("tfjanitor", "tfjanitor alert", T0)
    detail = json.loads(entry["Detail"])
    assert detail["event"] == event and detail["alert_id"] == "fp1" and detail["notice_id"] == notice.id
    assert detail["finding"] == json.loads(json.dumps(f.to_dict()))  # the finding JSON, as scan --format json has it
    assert (detail["finding"]["account"], detail["finding"]["region"], detail["finding"]["kind"]) == (
        "123456789012",
        REGION,
        "stale_lock",
    )
    assert detail.get("resolution") == ("lock released" if event == "resolved" else None)


def test_an_event_stays_under_eventbridges_256_kb() -> None:
    """Lock fields are capped where they are parsed: a 200 KB Who makes a small event. A finding too big
    anyway (none is) still goes, without its details."""
    notice = Notice("opened", stale(who="W" * 200_000).to_dict(), "fp1", T0, T0)
    assert events.entry_size(events.entry(notice)) < 32 * 1024
    huge = {**notice.finding, "details": {"blob": "x" * 300_000}}
    entry = events.entry(Notice("opened", huge, "fp1", T0, T0))
    assert events.entry_size(entry) < events.ENTRY_LIMIT
    finding = json.loads(entry["Detail"])["finding"]
    assert finding["kind"] == "stale_lock" and finding["key"] == "ci/terraform.tfstate" and "blob" not in finding["details"]


class FakeTopic(Topic):
    """The alert topic, recording each message's subject and card; no AWS behind it (``Topic.__init__`` is not run)."""

    def __init__(self, arn: str) -> None:
        self.arn = arn
        self.sent: list[tuple[str, Any]] = []

    def publish(self, subject: str, email: str, plain: str | None, chat: str) -> str:
        self.sent.append((subject, json.loads(chat)))
        return f"msg-{len(self.sent)}"


class FakeBus(EventBus):
    """Refuses the first ``refuse`` entries the way PutEvents does (an ErrorCode for the entry); no AWS behind it
    (``EventBus.__init__`` is not run)."""

    def __init__(self, refuse: int = 0) -> None:
        self.arn, self.refuse = BUS, refuse
        self.put_entries: list[Any] = []

    def put(self, entry: dict[str, Any]) -> str:
        if self.refuse:
            self.refuse -= 1
            raise AwsError("PutEvents", "ThrottlingException", "Rate exceeded")
        self.put_entries.append(json.loads(entry["Detail"]))
        return f"event-{len(self.put_entries)}"


def test_a_notice_is_delivered_once_the_topic_and_the_bus_accepted_it() -> None:
    store, topic, bus = FakeAlertStore(), FakeTopic(TOPIC), FakeBus(refuse=1)
    origin = Origin("tfjanitor", REGION, "123456789012", "payments-prod")
    notifier = Notifier([topic], bus, origin)
    [notice] = process_findings([stale()], {f"table:{REGION}:{TABLE}"}, store, T0)

    first = deliver(store, notifier, T0)
    assert first.sent == [] and len(first.failed) == 1 and BUS in first.failed[0] and "ThrottlingException" in first.failed[0]
    assert len(topic.sent) == 1 and [n.id for n in store.pending_notices()] == [notice.id]  # emailed, not yet delivered

    later = deliver(store, notifier, T0 + timedelta(minutes=5))
    assert [n.id for n in later.sent] == [notice.id] and store.pending_notices() == []
    assert len(topic.sent) == 1  # the topic that had it never gets it twice
    [detail] = bus.put_entries
    assert detail["notice_id"] == notice.id and detail["event"] == "opened"
    # The stack's account, on a finding that did not name one: in the event and on the card alike.
    assert detail["finding"]["account"] == "123456789012"
    assert detail["stack"] == {"name": "tfjanitor", "region": REGION, "account": "123456789012", "account_alias": "payments-prod"}
    assert "123456789012" in topic.sent[0][1]["content"]["description"]


def test_a_refused_entry_is_a_failed_delivery_not_a_success() -> None:
    """PutEvents answers HTTP 200 with FailedEntryCount for an entry it refused: that is no delivery."""
    aws = AwsSession(boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name=REGION))
    bus = EventBus(aws, BUS)
    entry = events.entry(Notice("opened", stale().to_dict(), "fp1", T0, T0))
    with Stubber(aws.client("events", "eu-west-1")) as stub:  # the bus's own region
        expected = {"Entries": [{**entry, "EventBusName": BUS}]}
        stub.add_response(
            "put_events",
            {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "NotAuthorizedForSourceException", "ErrorMessage": "not for this source"}],
            },
            expected,
        )
        stub.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]}, expected)
        with pytest.raises(AwsError) as refused:
            bus.put(entry)
        assert refused.value.code == "NotAuthorizedForSourceException"
        assert bus.put(entry) == "e-1"
