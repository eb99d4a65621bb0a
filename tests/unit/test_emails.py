"""Alert emails: subjects that fit a list view, bodies that say what to run, never state contents."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.support.builders import lock_info
from tfjanitor.alerts.delivery import sns_subject
from tfjanitor.alerts.emails import SUBJECT_LIMIT, render
from tfjanitor.alerts.lifecycle import Notice
from tfjanitor.checks import findings as build
from tfjanitor.terraform import parse_lock_info

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
LOCK_ID = "d84a6eec-d4d4-7ce7-292b-fdcbac9994b3"


def stale_notice(key: str = "ci/terraform.tfstate", event: str = "opened") -> Notice:
    lock = parse_lock_info(lock_info(f"tfstate-demo/{key}", age=timedelta(hours=3), lock_id=LOCK_ID, now=NOW))
    f = build.stale_lock("ap-northeast-2", "terraform-state-lock", "tfstate-demo", key, lock, NOW, timedelta(hours=1))
    return Notice(event, f.to_dict(), "fp1", NOW, NOW - timedelta(hours=2), "lock released")


def test_stale_lock_email_says_who_since_when_and_how_to_fix() -> None:
    email = render(stale_notice())
    assert email.subject == "[tfjanitor] WARNING Stale lock: tfstate-demo/ci/terraform.tfstate (held 3h00m)"
    for text in (email.body, email.plain):
        lines = text.splitlines()
        # Each command on a line of its own: the recommended release, then the alternatives.
        assert (f"    tfjanitor unlock --region ap-northeast-2 --id {LOCK_ID} --table terraform-state-lock "
                "-- tfstate-demo/ci/terraform.tfstate") in lines
        assert any(line.startswith("    aws dynamodb delete-item ") and "'Info = :info'" in line for line in lines)
        assert f"    terraform force-unlock -force -- {LOCK_ID}" in lines
        assert "run from the working directory of the configuration whose backend has this bucket and key" in text
        assert "ci@runner-7" in text and "OperationTypeApply" in text
    assert "https://ap-northeast-2.console.aws.amazon.com/dynamodbv2/" in email.body
    assert "https://" not in email.plain


def test_resolved_email_is_short_and_says_how_long_it_was_open() -> None:
    email = render(stale_notice(event="resolved"))
    assert email.subject.startswith("[tfjanitor] RESOLVED Stale lock: tfstate-demo/ci/terraform.tfstate after 2h00m")
    assert "lock released" in email.plain and "What to do" not in email.plain


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
