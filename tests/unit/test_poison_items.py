"""Nobody can silence alerting with one item: untrusted lock fields are capped before they are stored or sent."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.builders import lock_info
from tests.support.fakes import FakeAlertStore
from tfjanitor.alerts.emails import render
from tfjanitor.alerts.lifecycle import Notice, process_findings
from tfjanitor.aws.backend import LockWriter
from tfjanitor.checks import findings as build
from tfjanitor.release.auto import ReleasePolicy, auto_release
from tfjanitor.terraform import BadItem, LockItem, classify_item, parse_lock_info
from tfjanitor.untrusted import FIELD_LIMIT, is_capped

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
HUGE = 200_000
KB = 1024


def item(info: str, lock_id: str = "tfstate-demo/ci/terraform.tfstate") -> dict:
    return {"LockID": {"S": lock_id}, "Info": {"S": info}}


def hostile(field: str) -> str:
    doc = json.loads(lock_info("tfstate-demo/ci/terraform.tfstate", age=timedelta(hours=3), now=NOW))
    doc[field] = "\x1b[2J" + "W" * HUGE
    return json.dumps(doc)


@pytest.mark.parametrize("field", ["Who", "ID", "Operation", "Version", "Path", "Info"])
def test_a_huge_lock_field_is_capped_in_the_finding_the_record_and_the_email(field: str) -> None:
    parsed = classify_item(item(hostile(field)))
    assert isinstance(parsed, LockItem)
    finding = build.stale_lock(
        "ap-northeast-2", "terraform-state-lock", "tfstate-demo", "ci/terraform.tfstate", parsed.lock, NOW, timedelta(hours=1)
    )
    doc = finding.to_dict()
    assert len(json.dumps(doc, ensure_ascii=False)) < 16 * KB  # it was > 4 x 200 KB
    assert is_capped(doc["details"]["raw"]) and len(doc["details"]["raw"]) < FIELD_LIMIT + 50
    assert len(doc["details"]["raw_sha256"]) == 64
    summary = parsed.lock.summary()
    shown = {"Who": "who", "ID": "id", "Operation": "operation", "Version": "version", "Path": "path"}.get(field)
    if shown:
        assert is_capped(summary[shown]) and f"{HUGE + 4} chars" in summary[shown]
    email = render(Notice("opened", doc, "fp", NOW, NOW))
    assert len(email.body.encode()) + len(email.plain.encode()) < 32 * KB

    store = FakeAlertStore()  # and it goes through the lifecycle like any other alert
    [opened] = process_findings([finding], {"table:ap-northeast-2:terraform-state-lock"}, store, NOW)
    assert opened.event == "opened" and len(json.dumps(opened.finding)) < 16 * KB


def test_a_huge_created_is_a_capped_malformed_item() -> None:
    doc = json.loads(lock_info("b/k", now=NOW))
    doc["Created"] = "x" * HUGE
    bad = classify_item(item(json.dumps(doc), "b/k"))
    assert isinstance(bad, BadItem) and len(bad.reason) < 2 * FIELD_LIMIT
    finding = build.malformed_item("ap-northeast-2", "t", bad.lock_id, bad.reason, bad.foreign, bad.values)
    assert len(json.dumps(finding.to_dict())) < 8 * KB  # no command carries the 200 KB Info
    assert finding.commands and "get-item" in " ".join(finding.commands[0])  # it can still be inspected


class Writer(LockWriter):
    """The lock table as auto-release sees it: reads of the one item it holds, conditional deletes; no AWS behind it
    (``LockWriter.__init__`` is not run)."""

    def __init__(self, raw: str) -> None:
        self.raw: str | None = raw
        self.deleted: list[str] = []

    def read_lock_item(self, table: str, lock_id: str) -> str | None:
        return self.raw

    def delete_lock_item(self, table: str, lock_id: str, info: str) -> None:
        assert info == self.raw  # DynamoDB's Info = :info
        self.deleted.append(info)


@pytest.mark.parametrize("changed", [False, True])
def test_auto_release_matches_the_whole_lock_by_hash_though_the_finding_keeps_it_capped(changed: bool) -> None:
    key = "team/" + "very-deep/" * 150 + "terraform.tfstate"  # a legal 1.5 KB key: Info is over the cap
    raw = lock_info(f"tfstate-demo/{key}", age=timedelta(hours=3), operation="OperationTypePlan", now=NOW)
    policy = ReleasePolicy(enabled=True, grace=timedelta(0), min_sightings=1)
    store = FakeAlertStore()
    # The lock as read again at release time; changed: it differs only past the kilobyte the finding kept.
    now_held = raw.replace('terraform.tfstate"}', 'terraform.tfstatX"}') if changed else raw
    assert now_held[:FIELD_LIMIT] == raw[:FIELD_LIMIT] and (now_held == raw) is not changed
    writer = Writer(now_held)
    for now in (NOW, NOW + timedelta(minutes=61)):  # tfjanitor must itself see it held for the 1h threshold
        finding = build.stale_lock("ap-northeast-2", "t", "tfstate-demo", key, parse_lock_info(raw), now, timedelta(hours=1))
        assert is_capped(finding.details["raw"])  # what is stored and shown
        process_findings([finding], {"table:ap-northeast-2:t"}, store, now)
        notices, decisions = auto_release([finding], store, writer, policy, now, sweep_id="s")

    if changed:  # not the lock that was judged
        assert writer.deleted == [] and notices == [] and decisions == []
    else:
        assert writer.deleted == [raw] and [n.event for n in notices] == ["released"]  # conditional on all of it
        assert decisions[0].details["released"] is True
