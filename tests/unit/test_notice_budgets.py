"""Every notice fits every destination, whatever a lock table holds (issue 18.2): the SNS message (every
protocol's text together, as SNS counts it), the queue's copy in SNS's envelope, the email, the chat card
and the EventBridge entry each stay within their budget (``alerts/budgets.py``), and the fix command an
email recommends is either the finding's own, intact, or the tfjanitor line that does the same by reading
the lock itself, said in the text."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.builders import lock_info
from tfjanitor.alerts import budgets, events
from tfjanitor.alerts.chat import card, card_json
from tfjanitor.alerts.delivery import Notifier, TopicMessage, topic_message
from tfjanitor.alerts.emails import Origin, check_commands, fit_commands, render
from tfjanitor.alerts.lifecycle import Notice
from tfjanitor.aws import topic as sns
from tfjanitor.aws.session import AwsError, AwsSession, MessageRefused
from tfjanitor.checks import findings as build
from tfjanitor.cli.main import build_parser
from tfjanitor.commands import shell_line, unlock_command
from tfjanitor.model import Finding
from tfjanitor.terraform import parse_lock_info
from tfjanitor.untrusted import FIELD_LIMIT

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
REGION, TABLE, BUCKET = "ap-northeast-2", "terraform-state-lock", "tfstate-demo"
STACK = Origin("tfjanitor", REGION, "123456789012", "payments-prod")
TAG = "\U000e0041"  # a tag character: escaped to 10 characters in prose, to 16 in a command (4 UTF-8 bytes)
EVENTS = ("opened", "reminder", "resolved", "released")


def lock_raw(lock_id: str, who: str, info: str, key: str = "app/terraform.tfstate") -> str:
    doc = json.loads(lock_info(f"{BUCKET}/{key}", age=timedelta(hours=3), now=NOW))
    doc.update({"ID": lock_id, "Who": who, "Info": info})
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def findings_of(raw: str, key: str = "app/terraform.tfstate") -> list[Finding]:
    """The findings a lock like this one makes: held in the table, held as a .tflock, died mid-write."""
    lock = parse_lock_info(raw)
    stale = build.stale_lock(REGION, TABLE, BUCKET, key, lock, NOW, timedelta(hours=1))
    return [
        stale,
        build.stale_lockfile(REGION, BUCKET, key, "e" * 32, lock, NOW, timedelta(hours=1)),
        build.interrupted_write(stale, lock, "a" * 32, "b" * 32, NOW - timedelta(hours=2)),
        build.malformed_item(REGION, TABLE, f"{BUCKET}/{key}", "Info is not JSON", False, {"Info": raw}),
    ]


def notice(finding: Finding, event: str = "opened") -> Notice:
    extra = {"was": "info", "rule": "stale for 3h, grace 30m"}
    return Notice(event, finding.to_dict(), "fp1", NOW, NOW - timedelta(hours=2), "no longer seen", extra)


def within_budgets(n: Notice) -> TopicMessage:
    """Every destination's rendering of ``n`` stays within its budget; the SNS message as published."""
    message = topic_message(n, STACK)
    size, queued = message.sizes()
    assert size <= budgets.SNS_BUDGET and queued <= budgets.QUEUE_BUDGET, (size, queued)
    assert budgets.utf8(sns.message(message.subject, message.email, message.plain, message.chat)) < budgets.SNS_LIMIT
    assert budgets.utf8(message.email) <= budgets.EMAIL_BUDGET
    assert budgets.utf8(message.chat) <= budgets.CHAT_BUDGET
    email = render(n, STACK)
    assert budgets.utf8(email.body) <= budgets.EMAIL_BUDGET and budgets.utf8(email.plain) <= budgets.EMAIL_BUDGET
    assert budgets.utf8(card_json(n, STACK)) <= budgets.CHAT_BUDGET
    entry = events.entry(n, STACK)
    assert events.entry_size(entry) <= budgets.EVENT_BUDGET
    detail = json.loads(entry["Detail"])
    assert (detail["finding"]["kind"], detail["notice_id"]) == (n.finding["kind"], n.id)  # what a rule routes on
    return message


def printed_commands(email: str) -> list[str]:
    """The command lines of an email's "What to do" (indented under "Run, in order:" or an "Or: ...:" label)."""
    lines = email.splitlines()
    start, end = lines.index("What to do"), lines.index("How to check it worked")
    return [line.strip() for line in lines[start:end] if line.startswith("    ")]


def check_the_fix(n: Notice, finding: Finding, email: str) -> None:
    """Each command printed is one of the finding's own lines, intact, or the line that reads the lock itself
    (and then the text says why)."""
    own = finding.command_lines() + [c for a in finding.alternative_lines() for c in a["commands"]]
    f = n.finding
    reading_unlock = unlock_command(REGION, None, BUCKET, str(f["key"]), None, TABLE if f["kind"] == "stale_lock" else None)
    scan = [shell_line(argv) for argv in check_commands(f) if argv[0] == "tfjanitor"]
    for line in printed_commands(email):
        assert line in own or line == shell_line(reading_unlock) or line in scan, line[:300]
        assert budgets.utf8(line) <= budgets.COMMAND_BUDGET
    recommended = finding.command_lines()
    shown = printed_commands(email)
    if recommended and recommended[0] not in shown:
        assert "too long to print safely" in email or "short form" in email
        assert shown and shown[0] in (shell_line(reading_unlock), *scan)


# -- the issue's lock ----------------------------------------------------------------------------------

ISSUE_RAW = lock_raw(TAG * 1000, TAG * 1000, TAG * 2471)


def test_the_issues_lock_makes_notices_within_every_budget() -> None:
    """ID and Who under the 1,024-character cap, Info 2,471 characters, all escaping: the email was 99.5 KB
    and the SNS message 437 KB (SNS refuses over 256 KB), so the notice stayed pending forever."""
    stale = findings_of(ISSUE_RAW)[0]
    assert budgets.utf8(stale.command_lines()[0]) > 3 * budgets.COMMAND_BUDGET  # the fix's own line: 16 KB
    n = notice(stale)
    message = within_budgets(n)
    # The recommended release is the line that reads the lock itself (no --id: the ID is 16 KB escaped).
    line = f"tfjanitor unlock --region {REGION} --table {TABLE} -- {BUCKET}/app/terraform.tfstate"
    assert printed_commands(message.email)[0] == line
    assert "too long to print safely" in message.email and "tfjanitor unlock reads the lock itself" in message.email
    card_doc = json.loads(message.chat)
    assert card_doc["content"]["nextSteps"][0] == f"Run: `{line}`"
    detail = json.loads(events.entry(n, STACK)["Detail"])
    assert detail["finding"]["details"]["commands"] == [line]
    assert detail["finding"]["details"]["commands_fitted"]["replaced"] == 1


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("paste")
    stub = root / "tfjanitor"
    stub.write_text('#!/bin/bash\nprintf \'%s\\0\' "$@" > "$ARGV_RECORD"\n')
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    return root


@pytest.mark.parametrize("key", ["app/terraform.tfstate", "env:/prod/$(touch pwned) 'x'\u202e/terraform.tfstate"])
def test_the_line_printed_instead_runs_the_unlock_it_says(sandbox: Path, key: str) -> None:
    """Pasted into bash, the replacement runs tfjanitor unlock of exactly that state, without --id."""
    n = notice(findings_of(lock_raw(TAG * 1000, TAG * 1000, TAG * 2471, key), key)[0])
    [line, *_] = printed_commands(render(n, STACK).body)
    record = sandbox / "argv"
    env = {"PATH": f"{sandbox}:/usr/bin:/bin", "ARGV_RECORD": str(record), "LC_ALL": "C.UTF-8"}
    subprocess.run(["bash", "-c", line], cwd=sandbox, env=env, capture_output=True, timeout=10, check=True)
    argv = [w.decode() for w in record.read_bytes().split(b"\0")[:-1]]
    args = build_parser().parse_args(argv)
    assert (args.command, args.region, args.table, args.state, args.lock_id) == ("unlock", REGION, TABLE, f"{BUCKET}/{key}", None)
    assert sorted(os.listdir(sandbox)) == ["argv", "tfjanitor"]  # nothing else ran


def test_a_key_too_long_for_the_unlock_line_gets_the_scan_that_prints_the_fix() -> None:
    key = (TAG * FIELD_LIMIT)[:FIELD_LIMIT]
    stale = findings_of(lock_raw("L1", "ci@runner-7", "", key), key)[0]
    email = within_budgets(notice(stale)).email
    assert printed_commands(email)[0] == f"tfjanitor scan --region {REGION} --table {TABLE} --skip-audit"
    assert "the tfjanitor scan above reads the table itself and prints the whole fix" in email


def test_terraforms_own_locks_keep_their_commands_whole() -> None:
    """The longest key S3 allows, in plain text: every command of every kind is printed as the finding has it."""
    key = ("deep/" * 300)[:1000] + "terraform.tfstate"
    for finding in findings_of(lock_raw("d84a6eec-d4d4-7ce7-292b-fdcbac9994b3", "ci@runner-7", "", key), key):
        n = notice(finding)
        assert fit_commands(n.finding) is n.finding
        email = render(n, STACK)
        assert email.level == 0
        own = finding.command_lines() + [c for a in finding.alternative_lines() for c in a["commands"]]
        assert printed_commands(email.body) == own


def test_the_compact_form_is_small_whatever_the_fields() -> None:
    for finding in findings_of(lock_raw(TAG * 1023, "\U0001f600" * 1023, TAG * 3000, TAG * 1000), TAG * 1000):
        for event in EVENTS:
            n = notice(finding, event)
            message = topic_message(n, STACK, compact=True)
            assert message.sizes()[0] < 48 * 1024
            assert render(n, STACK, budgets.COMPACT).compact and "short form" in message.email
            assert len(json.dumps(card(n, STACK, compact=True)).encode()) < 8 * 1024
            assert events.entry_size(events.entry(n, STACK, compact=True)) < 16 * 1024


# -- any lock -------------------------------------------------------------------------------------------

# Characters that grow the most where they are shown: escapes of 10 characters (tag, above U+FFFF), 6 (bidi
# controls), 4 and 2 (C0, C1, new line: doubled by each layer of JSON), quotes and backslashes (doubled by JSON and
# by the shell), text shown as it is in 4 UTF-8 bytes (an emoji) or 3, markup chat neutralises, plain letters.
GROWERS = [TAG, "\U000e007f", "\u202e", "\u2066", "\x1b", "\x85", "\n", "\\", '"', "'", "\U0001f600", "팀", "<", "&", "`", "x", "/"]
lengths = st.one_of(
    st.sampled_from([0, 1, 200, FIELD_LIMIT - 1, FIELD_LIMIT, FIELD_LIMIT + 1, 2471]), st.integers(0, FIELD_LIMIT + 200)
)
field_text = st.one_of(
    st.tuples(st.sampled_from(GROWERS), lengths).map(lambda t: t[0] * t[1]),  # one character, often at the cap
    st.lists(st.sampled_from(GROWERS), max_size=FIELD_LIMIT + 50).map("".join),
    st.text(max_size=40),
)


@st.composite
def hostile_locks(draw: st.DrawFn) -> tuple[str, str, str, str]:
    """ID, Who, Info and key of a lock: each field on its own, or all of one growing character (the worst case)."""
    if draw(st.booleans()):
        ch, n = draw(st.sampled_from(GROWERS)), draw(lengths)
        lock_id, who, key, info = ch * n, ch * n, ch * n, ch * max(n, draw(lengths))
    else:
        lock_id, who, key = draw(field_text), draw(field_text), draw(field_text)
        info = draw(st.one_of(field_text, st.just(TAG * 2471)))
    key = (key.replace("\x00", "").lstrip("/") or "k")[:FIELD_LIMIT]
    return lock_id or "L", who, info, key


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lock=hostile_locks(), which=st.integers(0, 3), event=st.sampled_from(EVENTS))
def test_any_lock_makes_notices_within_every_budget(lock: tuple[str, str, str, str], which: int, event: str) -> None:
    lock_id, who, info, key = lock
    try:
        finding = findings_of(lock_raw(lock_id, who, info, key), key)[which]
    except ValueError:  # not a lock Terraform could read back (a lone surrogate in an escape...): no such notice
        return
    n = notice(finding, event)
    message = within_budgets(n)
    if event in ("opened", "reminder"):
        check_the_fix(n, finding, message.email)


# -- a destination that refuses the full form ------------------------------------------------------------


class Refusing:
    """Stands in for AwsSession: SNS refuses any message over ``limit`` bytes, as it does over 256 KB."""

    def __init__(self, limit: int) -> None:
        self.limit, self.refused = limit, 0
        self.published: list[dict[str, Any]] = []

    def sns(self, region: str) -> Refusing:
        return self

    def publish(self, **request: Any) -> dict[str, str]:
        if len(request["Message"].encode()) > self.limit:
            self.refused += 1
            raise ClientError({"Error": {"Code": "InvalidParameter", "Message": "Invalid parameter: Message too long"}}, "Publish")
        self.published.append(request)
        return {"MessageId": f"m-{len(self.published)}"}


def test_a_message_sns_refuses_is_a_refusal_and_its_compact_form_goes() -> None:
    n = notice(findings_of(ISSUE_RAW)[0])
    full = topic_message(n, STACK)
    sns_stub = Refusing(limit=budgets.utf8(sns.message(full.subject, full.email, full.plain, full.chat)) - 1)
    aws = cast(AwsSession, sns_stub)  # a stand-in: Topic calls only aws.sns(region).publish
    sender = Notifier([sns.Topic(aws, REGION, "arn:aws:sns:ap-northeast-2:123456789012:alerts")], origin=STACK)
    with pytest.raises(MessageRefused) as refused:
        sender.send(n, sender.arns[0])
    assert refused.value.code == "InvalidParameter"
    assert sender.send(n, sender.arns[0], compact=True) == "m-1"
    [request] = sns_stub.published
    assert "short form" in json.loads(request["Message"])["email"]


@pytest.mark.parametrize(
    ("code", "message", "refusal"),
    [
        ("InvalidParameter", "Invalid parameter: Message too long", True),
        ("InvalidParameter", "Invalid parameter: Message Structure - JSON message body failed to parse", True),
        ("InvalidParameterValue", "Invalid parameter: Subject", True),
        ("InvalidParameter", "Invalid parameter: TopicArn", False),  # a setting: fixed once, every notice goes
        ("Throttling", "Rate exceeded", False),
        ("InternalError", "boom", False),
        ("KMSThrottling", "slow down", False),
        ("KMSAccessDeniedException", "key policy", False),
        ("AuthorizationError", "not allowed", False),
        ("NotFound", "Topic does not exist", False),
    ],
)
def test_which_sns_answers_are_refusals_of_the_message(code: str, message: str, refusal: bool) -> None:
    assert sns.refused(AwsError("Publish", code, message)) is refusal


def test_cards_and_events_use_the_emails_commands() -> None:
    n = notice(findings_of(ISSUE_RAW)[0])
    steps = card(n, STACK)["content"]["nextSteps"]
    assert steps[0].startswith("Run: `tfjanitor unlock --region ap-northeast-2 --table ")
    assert "reads the lock itself" in steps[-1]
