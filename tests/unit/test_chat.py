"""Chat cards (AWS Chatbot custom notifications): what Slack and Teams show, and that lock fields stay text."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.builders import lock_info
from tests.support.hostile import hostile_text
from tfjanitor.alerts.chat import DESCRIPTION_LIMIT, STEPS_LIMIT, TITLE_LIMIT, card, card_json, inert
from tfjanitor.alerts.emails import Origin
from tfjanitor.alerts.lifecycle import Notice
from tfjanitor.checks import findings as build
from tfjanitor.terraform import parse_lock_info
from tfjanitor.untrusted import is_unsafe

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
LOCK_ID = "d84a6eec-d4d4-7ce7-292b-fdcbac9994b3"
ACCOUNT = "123456789012"
EVENTS = ("opened", "worse", "reminder", "resolved", "released")
MARK = "QZX"  # in every hostile value: it must never reach the card's prose
# What chat markdown obeys: Slack mentions and links, Teams links and images, formatting, a fence, controls.
HOSTILE = [
    "<!channel> <!here> <@U024BE7LH>",
    "<https://evil.example|Click to confirm>",
    "[docs](https://evil.example)",
    "![](https://evil.example/pixel.png)",
    "`tick` ```fence```",
    "*bold* _it_ ~strike~",
    "line\n# RESOLVED",
    "\x1b[2J\u202eevil",
    "@channel &amp; &lt;",
    ":rotating_light:",
    "|",
    "W" * 200_000,
]


def notice(who: str = "ci@runner-7", key: str = "ci/terraform.tfstate", event: str = "opened") -> Notice:
    lock = parse_lock_info(lock_info(f"tfstate-demo/{key}", age=timedelta(hours=3), lock_id=LOCK_ID, now=NOW, who=who))
    f = build.stale_lock("ap-northeast-2", "terraform-state-lock", "tfstate-demo", key, lock, NOW, timedelta(hours=1))
    f.account = ACCOUNT
    extra = {"worse": {"was": "info"}, "released": {"rule": "stale for 3h, grace 30m"}}.get(event, {})
    return Notice(event, f.to_dict(), "fp1", NOW, NOW - timedelta(hours=2), "lock released", extra)


def markdown(doc: dict[str, Any]) -> list[str]:
    content = doc["content"]
    return [content["title"], content["description"], *content.get("nextSteps", [])]


def prose(text: str) -> str:
    """The markdown a chat client reads as markdown: without fenced blocks and code spans."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"```\n[^`]*\n```", "", text))


def spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]*)`", re.sub(r"```\n[^`]*\n```", "", text))


def test_a_card_chatbot_shows_with_the_commands_to_paste() -> None:
    n = notice()
    doc = json.loads(card_json(n, Origin("tfjanitor", "ap-northeast-2", ACCOUNT, "payments-prod")))
    # The fields AWS documents as required, and the optional ones we fill.
    assert (doc["version"], doc["source"], doc["id"]) == ("1.0", "custom", n.id)
    content = doc["content"]
    assert content["textType"] == "client-markdown"
    assert content["title"] == "\u26a0\ufe0f WARNING Stale lock: `ci/terraform.tfstate`"
    assert "*Account:* `123456789012` (`payments-prod`), stack `tfjanitor`" in content["description"].splitlines()
    assert "*Held by:* `ci@runner-7` (`OperationTypeApply`, Terraform `1.11.4`)" in content["description"]
    # Each command in a code span, exactly as printed for a shell, the recommended one first.
    commands = n.finding["details"]["commands"] + [c for a in n.finding["details"]["alternatives"] for c in a["commands"]]
    assert [s for step in content["nextSteps"] for s in spans(step)] == commands
    assert content["nextSteps"][0] == f"Run: `{commands[0]}`"
    assert set(content["keywords"]) >= {"tfjanitor", "warning", "stale_lock", ACCOUNT, "payments-prod"}
    assert doc["metadata"]["eventType"] == "opened" and doc["metadata"]["threadId"] == "tfjanitor-fp1"
    assert doc["metadata"]["summary"].startswith("[tfjanitor] WARNING Stale lock: tfstate-demo/ci/terraform.tfstate")


@pytest.mark.parametrize("event", EVENTS)
def test_every_transition_has_its_card_in_the_alerts_thread(event: str) -> None:
    doc = card(notice(event=event))
    title, description = doc["content"]["title"], doc["content"]["description"]
    assert title.endswith("Stale lock: `ci/terraform.tfstate`") and doc["metadata"]["threadId"] == "tfjanitor-fp1"
    assert {"opened": "WARNING", "worse": "WORSE", "reminder": "Still open", "resolved": "RESOLVED", "released": "RELEASED"}[
        event
    ] in title
    assert "State contents are never sent" in description
    if event == "resolved":
        assert "nextSteps" not in doc["content"] and "Nothing more to do" in description and "lock released" in description
    elif event == "released":
        assert "stale for 3h, grace 30m" in description and "still alive" in doc["content"]["nextSteps"][0]
    else:
        assert "tfjanitor unlock" in doc["content"]["nextSteps"][0]
    if event == "worse":
        assert "Severity rose from info to warning." in description


def check_inert(doc: dict[str, Any]) -> None:
    """Hostile text only inside code spans and fenced blocks, and there only as text."""
    for text in markdown(doc):
        assert not is_unsafe(text.replace("\n", "")), text[:200]  # no raw control or reordering character
        assert MARK not in prose(text), text[:400]  # never where markdown is read
        assert not re.search(r"[<>]", text)  # & < > as the entities Slack requires, everywhere
    assert MARK not in json.dumps(doc["metadata"]["additionalContext"]) and MARK not in "".join(doc["content"]["keywords"])
    summary = doc["metadata"]["summary"]
    assert summary.isascii() and not re.search(r"[<>\n]", summary)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_who_and_key_stay_text(value: str) -> None:
    for event in EVENTS:
        n = notice(who=f"{MARK}{value}{MARK}", key=f"env/{MARK}{value[:500]}{MARK}/terraform.tfstate", event=event)
        doc = card(n)
        check_inert(doc)
        # A command chat would change (a backtick, & < >) is left out, never altered: the email has it.
        for step in doc["content"].get("nextSteps", []):
            for span in spans(step):
                assert span in n.finding["details"]["commands"] + [
                    c for a in n.finding["details"]["alternatives"] for c in a["commands"]
                ]


@settings(max_examples=150, deadline=None)
@given(who=hostile_text, key=hostile_text, event=st.sampled_from(EVENTS))
def test_any_lock_text_stays_text(who: str, key: str, event: str) -> None:
    check_inert(card(notice(who=f"{MARK}{who}{MARK}", key=f"{MARK}{key}{MARK}", event=event)))


def test_a_card_stays_small_whatever_the_lock_holds() -> None:
    """A 200 KB Who, a 1 KB key: the card is cut to what a chat shows in one block, far under SNS's 256 KB."""
    doc = card(notice(who="W" * 200_000, key="k/" * 500 + "terraform.tfstate"))
    content = doc["content"]
    assert len(content["title"]) <= TITLE_LIMIT
    assert len(content["description"]) <= DESCRIPTION_LIMIT
    [held_by] = [line for line in content["description"].splitlines() if line.startswith("*Held by:*")]
    assert len(held_by) < 400 and "WWW...[truncated, " in held_by
    assert sum(map(len, content["nextSteps"])) <= STEPS_LIMIT
    assert len(card_json(notice(who="W" * 200_000)).encode()) < 10 * 1024


def test_prose_with_a_value_in_it_loses_its_markup() -> None:
    assert inert("restore the one whose ETag is *x* [a](b) <!here> `y` ~z~ a_b |c") == (
        "restore the one whose ETag is \u2217x\u2217 \uff3ba\uff3d(b) &lt;!here&gt; \u02cby\u02cb \u223cz\u223c a\uff3fb \u01c0c"
    )
