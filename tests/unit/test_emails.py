"""Alert emails a stranger understands: which account and stack, what is wrong, why it matters, what to
run, how to check, where to look (the docs section on the kind included); subjects that fit a list
view; never state contents; every message under SNS's 256 KB whatever a lock table holds."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import pytest

from tests.support.builders import lock_info
from tests.support.cfn import ROOT, Rendered, load_template
from tfjanitor import catalog
from tfjanitor.alerts.delivery import Notifier, sns_subject
from tfjanitor.alerts.emails import SUBJECT_LIMIT, Origin, render
from tfjanitor.alerts.lifecycle import Notice
from tfjanitor.aws.session import AwsSession
from tfjanitor.aws.topic import Topic
from tfjanitor.catalog import Check, found_by
from tfjanitor.checks import audit_rules as audit
from tfjanitor.checks import bucket_rules, state_rules
from tfjanitor.checks import findings as build
from tfjanitor.cli.main import build_parser
from tfjanitor.model import Finding, Kind, ObjectFacts, ObjectVersion, TableFacts
from tfjanitor.runtime.settings import FunctionSettings
from tfjanitor.runtime.wiring import origin
from tfjanitor.terraform import parse_lock_info

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
LOCK_ID = "d84a6eec-d4d4-7ce7-292b-fdcbac9994b3"
REGION, TABLE, BUCKET = "ap-northeast-2", "terraform-state-lock", "tfstate-demo"
STACK = Origin("tfjanitor", REGION, "123456789012", "payments-prod")
SNS_LIMIT = 256 * 1024  # bytes of one message (the JSON of every protocol's text)

OPEN = ["What is wrong", "Why it matters", "What to do", "How to check it worked", "Where to look"]
RESOLVED = ["What changed", "What to do", "Where to look"]
RELEASED = ["What happened", "Why it matters", "What to do", "How to check it worked", "Where to look"]
HEADINGS = set(OPEN + RESOLVED + RELEASED)


def stale_notice(key: str = "ci/terraform.tfstate", event: str = "opened") -> Notice:
    lock = parse_lock_info(lock_info(f"tfstate-demo/{key}", age=timedelta(hours=3), lock_id=LOCK_ID, now=NOW))
    f = build.stale_lock(REGION, TABLE, BUCKET, key, lock, NOW, timedelta(hours=1))
    return Notice(event, f.to_dict(), "fp1", NOW, NOW - timedelta(hours=2), "lock released")


def every_kind(key: str = "app/terraform.tfstate", who: str = "ci@runner-7") -> dict[str, Finding]:
    """One finding of every kind, made by the builders the sweep and the audit use."""
    lock = parse_lock_info(lock_info(f"{BUCKET}/{key}", age=timedelta(hours=3), lock_id=LOCK_ID, who=who, now=NOW))
    table = TableFacts(
        TABLE,
        REGION,
        (("LockID", "HASH", "S"),),
        deletion_protection=False,
        replicas=((REGION, "ACTIVE"), ("us-east-1", "ACTIVE")),
        stream_enabled=False,
    )
    t0 = NOW - timedelta(days=1)
    versions = [
        ObjectVersion(f"{key}.tflock", "v1", False, t0, size=230),
        ObjectVersion(f"{key}.tflock", "v2", True, t0 + timedelta(seconds=5), delete_marker=True),
    ]
    hold = (t0 - timedelta(seconds=1), t0 + timedelta(seconds=3))
    evidence = [
        state_rules.StateEvidence(key, {TABLE: "a" * 32}, obj=ObjectFacts("b" * 32, 100, t0), lock_holds=[hold]),
        state_rules.StateEvidence("other/terraform.tfstate", {TABLE: "c" * 32}, obj=ObjectFacts("c" * 32, 100, t0)),
    ]
    stale = build.stale_lock(REGION, TABLE, BUCKET, key, lock, NOW, timedelta(hours=1))
    found = [
        stale,
        build.interrupted_write(stale, lock, "a" * 32, "b" * 32, NOW - timedelta(hours=2, minutes=50)),
        build.stale_lockfile(REGION, BUCKET, key, "e" * 32, lock, NOW, timedelta(hours=1)),
        build.digest_drift(REGION, TABLE, BUCKET, key, "a" * 32, "b" * 32, "b" * 32, 123),
        build.orphan_digest(REGION, TABLE, BUCKET, key, "a" * 32),
        build.cross_region_bucket(REGION, TABLE, BUCKET, "us-east-1", 3, [2048]),
        build.malformed_item(REGION, TABLE, f"{BUCKET}/{key}", "Info is not JSON", False, {"Info": "{"}),
        state_rules.split_brain_lock(
            REGION,
            TABLE,
            BUCKET,
            key,
            {REGION: state_rules.Holder(digest="a" * 32), "us-east-1": state_rules.Holder(digest="b" * 32)},
            ObjectFacts("a" * 32, 100, t0),
            "a" * 32,
            REGION,
        ),
        audit.replicated_lock_table(table),
        audit.lock_table_missing(REGION, TABLE),
        audit.pitr_disabled(REGION, TABLE, "DISABLED"),
        audit.deletion_protection_disabled(table),
        audit.stream_disabled(table, f"arn:aws:dynamodb:{REGION}:123456789012:table/{TABLE}/stream/2026-11-01T00:00:00.000"),
        bucket_rules.versioning_disabled(REGION, BUCKET, REGION, None),
        bucket_rules.public_access_open(REGION, BUCKET, REGION, None),
        bucket_rules.tls_not_enforced(REGION, BUCKET, REGION, None),
        bucket_rules.lockfile_versions_accumulating(REGION, BUCKET, REGION, "Enabled", versions, []),
        state_rules.lockfile_migration(REGION, BUCKET, evidence),
    ]
    kinds = {f.kind.value: f for f in found if f is not None}
    assert set(kinds) == {k.value for k in Kind}, "a new kind needs a finding here and a catalog entry"
    return kinds


def notices(finding: Finding) -> list[Notice]:
    doc = finding.to_dict()
    events = ["opened", "worse", "reminder", "resolved"]
    if finding.kind in (Kind.STALE_LOCK, Kind.STALE_LOCKFILE):
        events.append("released")  # auto-release
    return [
        Notice(
            e,
            doc,
            "fp",
            NOW,
            NOW - timedelta(hours=26),
            "no longer seen",
            extra={"was": "warning", "rule": "plan lock, stale for 3h00m, seen by 2 sweeps"},
        )
        for e in events
    ]


def section(text: str, heading: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i] in HEADINGS or lines[i] == "--"), len(lines))
    return [line for line in lines[start:end] if line]


def page_anchors() -> set[str]:
    """The anchors the docs site makes for docs/kinds.md's headings (Python-Markdown's toc, as GitHub does):
    lowercase, punctuation but - and _ dropped, spaces as dashes."""
    anchors = set()
    for line in (ROOT / "docs" / "kinds.md").read_text().splitlines():
        if match := re.match(r"^#{1,6} (.+)$", line):
            anchors.add(re.sub(r"[^\w\- ]", "", match[1].strip().lower()).replace(" ", "-"))
    return anchors


class CapturingSns:
    """Stands in for AwsSession: records what Topic.publish would send to SNS."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def sns(self, region: str) -> CapturingSns:
        return self

    def publish(self, **request: Any) -> dict[str, str]:
        self.published.append(request)
        return {"MessageId": f"m-{len(self.published)}"}


@pytest.mark.parametrize("kind", sorted(k.value for k in Kind))
def test_every_kind_and_event_says_where_what_why_what_to_do_how_to_check_and_where_to_look(kind: str) -> None:
    finding = every_kind()[kind]
    for notice in notices(finding):
        email = render(notice, STACK)
        expected = {"resolved": RESOLVED, "released": RELEASED}.get(notice.event, OPEN)
        for text in (email.body, email.plain):
            lines = text.splitlines()
            assert [line for line in lines if line in HEADINGS] == expected, (notice.event, text)
            # Which account (ID and alias), which stack and region: the line under the title.
            assert lines[1] == "Account 123456789012 (payments-prod), stack tfjanitor, region ap-northeast-2"
            where = section(text, "Where to look")
            if finding.table:
                assert f"  Lock table:  {finding.table}" in where
            if finding.bucket:
                assert f"  Bucket:      {finding.bucket}" in where
        if notice.event in ("opened", "worse", "reminder"):
            # What is wrong: the finding's one sentence; why it matters: what fails next, for whom.
            assert section(email.plain, "What is wrong") == [f"  {finding.message}"]
            assert section(email.plain, "Why it matters") == [f"  {catalog.ENTRIES[kind].why}"]
            todo = section(email.plain, "What to do")
            assert all(f"    {line}" in todo for line in finding.command_lines())  # each on a line of its own
            for alternative in finding.alternative_lines():
                assert f"  Or: {alternative['label']}:" in todo
                assert all(f"    {line}" in todo for line in alternative["commands"])
        # The docs section on the kind, by an anchor docs/kinds.md really has; the plain text names it.
        assert f"  About {kind}: {catalog.DOCS_URL}kinds/#{kind}" in section(email.body, "Where to look")
        assert kind in page_anchors()
        assert f"  About it:    the tfjanitor docs, page Finding kinds, section {kind}" in section(email.plain, "Where to look")
        assert "https://" not in email.plain
        subject = sns_subject(email.subject)
        assert subject == email.subject and subject.isascii() and subject.isprintable() and len(subject) < SUBJECT_LIMIT


@pytest.mark.parametrize("kind", sorted(k.value for k in Kind))
def test_how_to_check_is_a_scan_the_cli_accepts_for_this_finding_and_a_plan_for_one_state(kind: str) -> None:
    finding = every_kind()[kind]
    email = render(notices(finding)[0], STACK)
    check = section(email.plain, "How to check it worked")
    [scan] = [shlex.split(line) for line in check if line.startswith("    tfjanitor scan ")]
    args = build_parser().parse_args(scan[1:])
    assert args.regions == [REGION]
    assert args.tables == ([finding.table] if finding.table else []) and args.discover_tables == (not finding.table)
    if not finding.table:
        assert args.buckets == [finding.bucket]
    assert args.skip_audit == (kind not in {k.value for k in found_by(Check.AUDIT)})  # the audit finds audit kinds
    if kind == "split_brain_lock":
        assert args.peer_regions == ["us-east-1"]
    assert ("    terraform plan" in check) == (finding.key is not None and kind != "malformed_item")


@pytest.mark.parametrize("kind", sorted(k.value for k in Kind))
def test_every_message_stays_under_snss_limit_whatever_the_lock_table_holds(kind: str) -> None:
    # The longest key S3 allows, full of what a terminal would obey; a Who of 200 KB (capped when parsed).
    key = ("\x1b[2J\u202e$(rm -rf ~)'\"`;" * 40 + "k" * 1024)[:1024]
    finding = every_kind(key=key, who="\x1b]0;x\x07" + "W" * 200_000)[kind]
    sns = CapturingSns()
    aws = cast(AwsSession, sns)  # a stand-in: Topic calls only aws.sns(region).publish
    sender = Notifier([Topic(aws, REGION, "arn:aws:sns:ap-northeast-2:123456789012:alerts")], origin=STACK)
    for notice in notices(finding):
        sender.send(notice, sender.arns[0])
    for request in sns.published:
        assert len(request["Message"].encode()) < SNS_LIMIT, (kind, len(request["Message"]))
        assert "\n" not in request["Subject"] and request["Subject"].isascii() and len(request["Subject"]) < SUBJECT_LIMIT
        email = json.loads(request["Message"])["email"]
        assert "Account 123456789012 (payments-prod), stack tfjanitor" in email  # the stack sending named in each
        chat = json.loads(json.loads(request["Message"])["default"])  # and the card Chatbot shows
        assert (chat["version"], chat["source"]) == ("1.0", "custom") and "`payments-prod`" in chat["content"]["description"]


def test_the_docs_the_emails_link_to_are_the_packages_documentation_url_and_the_templates_default() -> None:
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    owner, repo = urls["Homepage"].removeprefix("https://github.com/").split("/")
    assert urls["Documentation"] == catalog.DOCS_URL == f"https://{owner}.github.io/{repo}/"  # the project's own site
    assert load_template()["Parameters"]["DocsUrl"]["Default"] == catalog.DOCS_URL


def test_a_stacks_docs_url_is_where_its_emails_link() -> None:
    template = load_template()
    stack = Rendered(
        template,
        {"StateBucketNames": BUCKET, "AlertEmail": "oncall@example.com", "DocsUrl": "https://docs.example.com/platform/tfjanitor/"},
        region=REGION,
    )
    env = stack.value(template["Globals"]["Function"]["Environment"]["Variables"])
    settings = FunctionSettings.from_env({**{k: str(v) for k, v in env.items()}, "AWS_REGION": REGION})
    email = render(stale_notice(), origin(settings))
    assert "  About stale_lock: https://docs.example.com/platform/tfjanitor/kinds/#stale_lock" in email.body.splitlines()
    assert "docs.example.com" not in email.plain  # the link-free copy names the page instead


def test_the_stack_the_template_deploys_is_the_one_the_emails_name_with_its_dashboard() -> None:
    template = load_template()
    stack = Rendered(
        template, {"StateBucketNames": BUCKET, "AlertEmail": "oncall@example.com", "AccountAlias": "payments-prod"}, region=REGION
    )
    env = stack.value(template["Globals"]["Function"]["Environment"]["Variables"])
    settings = FunctionSettings.from_env({**{k: str(v) for k, v in env.items()}, "AWS_REGION": REGION})
    email = render(stale_notice(), origin(settings))
    assert email.body.splitlines()[1] == "Account 123456789012 (payments-prod), stack tfjanitor, region ap-northeast-2"
    # The link is the dashboard the template creates (its DashboardUrl output; a dashboard's Ref is its name).
    name = stack.value(template["Resources"]["Dashboard"]["Properties"]["DashboardName"])
    assert f"  Dashboard: {str(stack.output('DashboardUrl')).replace('${Dashboard}', name)}" in email.body.splitlines()
    # No alias chosen: the ID alone.
    bare = Rendered(template, {"StateBucketNames": BUCKET, "AlertEmail": "oncall@example.com"}, region=REGION)
    env = {k: str(v) for k, v in bare.value(template["Globals"]["Function"]["Environment"]["Variables"]).items()}
    email = render(stale_notice(), origin(FunctionSettings.from_env({**env, "AWS_REGION": REGION})))
    assert email.plain.splitlines()[1] == "Account 123456789012, stack tfjanitor, region ap-northeast-2"


def test_a_findings_own_account_is_named_and_the_stacks_alias_only_for_the_stacks_account() -> None:
    doc = stale_notice().finding | {"account": "222222222222"}
    email = render(Notice("opened", doc, "fp", NOW, NOW), STACK)
    assert email.plain.splitlines()[1] == "Account 222222222222, stack tfjanitor, region ap-northeast-2"
    assert render(stale_notice()).plain.splitlines()[1] == "Account unknown, region ap-northeast-2"


def test_stale_lock_email_says_who_since_when_and_how_to_fix() -> None:
    email = render(stale_notice(), STACK)
    assert email.subject == "[tfjanitor] WARNING Stale lock: tfstate-demo/ci/terraform.tfstate (held 3h00m)"
    for text in (email.body, email.plain):
        lines = text.splitlines()
        # Each command on a line of its own: the recommended release, then the alternatives.
        assert (
            f"    tfjanitor unlock --region ap-northeast-2 --id {LOCK_ID} --table terraform-state-lock "
            "-- tfstate-demo/ci/terraform.tfstate"
        ) in lines
        assert any(line.startswith("    aws dynamodb delete-item ") and "'Info = :info'" in line for line in lines)
        assert f"    terraform force-unlock -force -- {LOCK_ID}" in lines
        assert (
            'run from the working directory of the configuration whose backend has bucket = "tfstate-demo" '
            'and key = "ci/terraform.tfstate"'
        ) in text
        assert "ci@runner-7" in text and "OperationTypeApply" in text
    assert "https://ap-northeast-2.console.aws.amazon.com/dynamodbv2/" in email.body
    assert "https://" not in email.plain


def test_resolved_email_says_what_changed_and_that_nothing_needs_doing() -> None:
    email = render(stale_notice(event="resolved"), STACK)
    assert email.subject.startswith("[tfjanitor] RESOLVED Stale lock: tfstate-demo/ci/terraform.tfstate after 2h00m")
    assert section(email.plain, "What changed")[0] == "  Resolved 2026-11-25 03:00:00 UTC (lock released), 2h00m after it was opened."
    assert section(email.plain, "What to do") == ["  Nothing more to do: the alert is closed. If it happens again, a new alert opens."]
    assert "tfjanitor unlock" not in email.plain  # no command to run


def test_long_and_unicode_keys_fit_the_sns_subject() -> None:
    key = "팀/" + "deep/" * 40 + "terraform.tfstate"
    subject = sns_subject(render(stale_notice(key)).subject)
    assert len(subject) < SUBJECT_LIMIT and subject.isascii()
    assert subject.endswith("terraform.tfstate (held 3h00m)")


def test_drift_email_carries_digests_not_contents() -> None:
    f = build.digest_drift("ap-northeast-2", "t", "b", "k", "a" * 32, "b" * 32, "b" * 32, 123)
    email = render(Notice("opened", f.to_dict(), "fp", NOW, NOW))
    assert email.subject == "[tfjanitor] CRITICAL Digest drift: b/k"
    assert "Stored MD5:  " + "a" * 32 in email.plain
    assert f"    {f.command_lines()[0]}" in email.plain.splitlines() and "aws dynamodb put-item" in email.plain
