"""Chat cards: each notice as an AWS Chatbot (Amazon Q Developer in chat applications) custom notification
(pure: no AWS, no state contents).

Slack and Microsoft Teams channels get alerts through Chatbot, which subscribes to the alert topic with
protocol ``https`` and shows a message in its custom notification format as a card; any other message
it does not show. The format, as AWS documents it ("Custom notifications using Amazon Q Developer in chat
applications"): ``version`` ("1.0") and ``source`` ("custom") are required; ``id``, ``content``
(``textType`` "client-markdown", the only one, rendered in the chat platform's own markdown; ``title``,
``description``, ``nextSteps``, ``keywords``) and ``metadata`` (``threadId``, ``summary``, ``eventType``,
``additionalContext``) are optional.

Lock fields, keys and digests are hostile, and chat markdown obeys more than a mail reader does: Slack
reads ``<!channel>``, ``<@U123>`` and ``<url|text>`` as mentions and disguised links, Teams
``[text](url)`` and ``![](url)``. So untrusted text only ever appears inside a code span or a fenced
block (:func:`code`, :func:`block`: no formatting, link or emoji is read there), after
``untrusted.shown`` (control characters escaped: no new line), with a backtick (the one character that
would end the span) replaced by a look-alike and ``& < >`` written as the entities Slack requires.
The rest (:func:`inert`: a fix's label) is our prose, neutralised the same way where a value slipped in.
A fix command is printed only if chat shows it exactly as ``commands.shell_line`` quoted it (no
backtick, ``&``, ``<`` or ``>``, short enough); otherwise the card says the email has it. Commands are the
email's (``emails.fit_commands``: a line over its budget is the tfjanitor line that reads the lock itself),
and a card over ``budgets.CHAT_BUDGET`` is sent in its compact form.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from tfjanitor import catalog
from tfjanitor.alerts.budgets import CHAT_BUDGET, utf8
from tfjanitor.alerts.emails import Origin, compact_finding, fit_commands, subject
from tfjanitor.alerts.lifecycle import Notice
from tfjanitor.durations import human_duration
from tfjanitor.untrusted import shown

# Kept well inside what Slack shows in one block (3,000 characters of text), so a card is never cut; the
# email carries the rest. A whole card stays under 10 KB, and SNS's 256 KB holds it next to the email.
TITLE_LIMIT = 250
DESCRIPTION_LIMIT = 3000
STEPS_LIMIT = 3000
FIELD_LIMIT = 120  # characters of one untrusted field shown
MESSAGE_LIMIT = 1200
COMMAND_LIMIT = 1500
NOTE_ROOM = 32  # room for "...[truncated, N chars]" after a capped value
_ICONS = {"worse": "\U0001f53a", "reminder": "\U0001f501", "resolved": "\u2705", "released": "\U0001f513"}
_OPENED = {"critical": "\U0001f6a8"}  # else a warning sign
_HEADS = {"worse": "WORSE: ", "reminder": "Still open: ", "resolved": "RESOLVED ", "released": "RELEASED "}
_MARKUP = str.maketrans({"`": "\u02cb", "*": "\u2217", "_": "\uff3f", "~": "\u223c", "[": "\uff3b", "]": "\uff3d", "|": "\u01c0"})
_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_SPAN_BREAKER = str.maketrans({"`": "\u02cb"})
_UNSHOWABLE = re.compile("[`&<>]")


def _bounded(text: str, limit: int) -> str:
    """At most ``limit`` characters (and ``untrusted.shown``'s truncation note), never ending inside an entity."""
    limit += NOTE_ROOM
    return text if len(text) <= limit else re.sub(r"&[a-z]*$", "", text[: limit - 1]) + "\u2026"


def _plain(text: object, limit: int) -> str:
    """One line, control characters escaped and capped, backticks made look-alikes, ``& < >`` as entities."""
    return _bounded(shown(str(text), limit).translate(_SPAN_BREAKER).translate(_ENTITIES), limit)


def code(text: object, limit: int = FIELD_LIMIT) -> str:
    """Untrusted text as an inline code span: shown, never read as markdown."""
    return f"`{_plain(text, limit) or ' '}`"


def block(text: object, limit: int = MESSAGE_LIMIT) -> str:
    """Untrusted text as a fenced block (one line: the fence cannot be closed from inside)."""
    return f"```\n{_plain(text, limit)}\n```"


def inert(text: object, limit: int = FIELD_LIMIT * 2) -> str:
    """Our prose with a value in it: every character with a meaning in Slack's or Teams' markdown made a
    look-alike (``* _ ~ ` [ ] |``) or an entity (``& < >``)."""
    return _bounded(shown(str(text), limit).translate(_MARKUP).translate(_ENTITIES), limit)


def showable(line: str) -> bool:
    """Whether chat shows this command line exactly as it must be pasted."""
    return len(line) <= COMMAND_LIMIT and not _UNSHOWABLE.search(line)


def _where(f: dict[str, Any]) -> str:
    return str(f.get("key") or f.get("bucket") or f.get("details", {}).get("item_lock_id") or f.get("table") or "-")


def _title(notice: Notice) -> str:
    f = notice.finding
    severity = str(f.get("severity", "warning"))
    icon = _ICONS.get(notice.event) or _OPENED.get(severity, "\u26a0\ufe0f")
    head = _HEADS.get(notice.event, "")
    level = "" if notice.event in ("resolved", "released") else f"{inert(severity.upper(), 20)} "
    kind = str(f.get("kind", ""))
    title = f"{icon} {head}{level}{inert(catalog.title(kind), 80)}: "
    return title + code(_where(f), TITLE_LIMIT - len(title) - 2 - NOTE_ROOM)


def _fields(notice: Notice, origin: Origin, limit: int = FIELD_LIMIT) -> list[str]:
    f = notice.finding
    d = f.get("details", {})
    account = f.get("account") or origin.account
    lines = [
        f"*Account:* {code(account or 'unknown')}"
        + (f" ({code(origin.account_alias)})" if origin.account_alias and account == origin.account else "")
        + (f", stack {code(origin.stack)}" if origin.stack else "")
    ]
    lines += [
        f"*{label}:* {code(value, limit)}"
        for label, value in (
            ("Region", f.get("region")),
            ("Lock table", f.get("table")),
            ("Bucket", f.get("bucket")),
            ("Key", f.get("key")),
            ("Lock ID", f.get("lock_id")),
        )
        if value
    ]
    if d.get("who") or d.get("operation"):
        lines.append(
            f"*Held by:* {code(d.get('who') or '?', limit)} ({code(d.get('operation') or '?', limit)}, "
            f"Terraform {code(d.get('version') or '?', 40)}) since {code(d.get('created', '?'), 40)}"
        )
    for label, name in (("Stored MD5", "stored_md5"), ("Actual MD5", "actual_md5")):
        if d.get(name):
            lines.append(f"*{label}:* {code(d[name], 64)}")
    return lines


def _when(notice: Notice) -> str:
    return notice.at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _description(notice: Notice, origin: Origin, compact: bool = False) -> str:
    f = notice.finding
    message = MESSAGE_LIMIT // 4 if compact else MESSAGE_LIMIT
    open_for = human_duration((notice.at - notice.opened_at).total_seconds())
    if notice.event == "resolved":
        head = [
            f"Resolved {_when(notice)} ({inert(notice.resolution or 'no longer seen')}), {open_for} after it "
            "was opened. Nothing more to do. It was:",
            block(f.get("message", ""), message),
        ]
    elif notice.event == "released":
        head = [
            f"tfjanitor released this stale lock on {_when(notice)} (rule: "
            f"{inert(notice.extra.get('rule', '?'))}). Only the lock was deleted, and only because it was still "
            "byte-for-byte the lock observed.",
            block(f.get("message", ""), message),
        ]
    else:
        head = [block(f.get("message", ""), message)]
        if notice.event == "worse":
            head.append(f"Severity rose from {inert(notice.extra.get('was', '?'), 20)} to {inert(f.get('severity', '?'), 20)}.")
        if notice.event == "reminder":
            head.append(f"Open for {open_for}: a reminder, no new problem.")
    footer = f"Alert {code(notice.fingerprint, 64)}; the email has every detail. State contents are never sent."
    if compact:
        footer = (
            f"Alert {code(notice.fingerprint, 64)}: the short form (the full card would not fit); every value is "
            "cut short. `tfjanitor scan` shows the finding in full. State contents are never sent."
        )
    out: list[str] = []
    fields = _fields(notice, origin, FIELD_LIMIT // 3 if compact else FIELD_LIMIT)
    for part in [*head, *fields, footer]:  # whole parts only: a fenced block is never cut open
        if sum(len(p) + 1 for p in out) + len(part) > DESCRIPTION_LIMIT - 60:
            out.append("(more in the email)")
            break
        out.append(part)
    return "\n".join(out)


def _next_steps(notice: Notice) -> list[str]:
    d = notice.finding.get("details", {})
    if notice.event == "released":
        return [
            "If the run that held it is still alive, stop it and run it again: its state write or unlock "
            "fails now. The email says how to check."
        ]
    if notice.event == "resolved":
        return []
    wanted = [("Run", line) for line in d.get("commands") or []]
    for alternative in d.get("alternatives") or []:
        wanted += [(f"Or: {inert(alternative.get('label', ''))}", line) for line in alternative.get("commands", [])]
    steps: list[str] = []
    left_out = 0
    for label, line in wanted:
        step = f"{label}: `{line}`"
        if not showable(str(line)) or sum(map(len, steps)) + len(step) > STEPS_LIMIT - 120:
            left_out += 1
            continue
        steps.append(step)
    if left_out:
        steps.append(
            f"{left_out} more command{'s' * (left_out > 1)} in the email (too long for chat, or holding "
            "a character chat would change)."
        )
    fitted = d.get("commands_fitted") or {}
    if steps and fitted.get("compact"):
        steps.append("The short form: this one line reads what it needs itself and shows the whole fix.")
    elif steps and fitted.get("replaced"):
        steps.append("This line reads the lock itself: the fix's own commands are too long to print (the email says more).")
    return steps


def _keyword(value: object) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "", str(value))[:40]


def card(notice: Notice, origin: Origin | None = None, compact: bool = False) -> dict[str, Any]:
    """The custom notification of one notice, from the stack ``origin`` (its account, alias and name); its
    compact form if asked for or if the full one is over ``budgets.CHAT_BUDGET``."""
    origin = origin or Origin()
    full = _card(replace(notice, finding=fit_commands(notice.finding)), origin, False) if not compact else None
    if full is not None and utf8(json.dumps(full, ensure_ascii=False)) <= CHAT_BUDGET:
        return full
    return _card(replace(notice, finding=compact_finding(fit_commands(notice.finding))), origin, True)


def _card(notice: Notice, origin: Origin, compact: bool) -> dict[str, Any]:
    f = notice.finding
    account = f.get("account") or origin.account
    context = {
        "alert_id": notice.fingerprint,
        "kind": f.get("kind"),
        "severity": f.get("severity"),
        "region": f.get("region"),
        "account": account,
        "stack": origin.stack,
    }
    content: dict[str, Any] = {
        "textType": "client-markdown",
        "title": _title(notice),
        "description": _description(notice, origin, compact),
        "keywords": [
            k
            for k in map(_keyword, ("tfjanitor", f.get("severity"), f.get("kind"), f.get("region"), account, origin.account_alias))
            if k
        ],
    }
    steps = _next_steps(notice)
    if steps:
        content["nextSteps"] = steps
    return {
        "version": "1.0",
        "source": "custom",
        "id": notice.id,
        "content": content,
        "metadata": {
            # One thread per alert: its opening, reminders and resolution together (if the channel threads).
            "threadId": f"tfjanitor-{notice.fingerprint}",
            "summary": subject(notice).translate(_ENTITIES),  # one ASCII line already
            "eventType": notice.event,
            "additionalContext": {k: _keyword(v) for k, v in context.items() if v},
        },
    }


def card_json(notice: Notice, origin: Origin | None = None, compact: bool = False) -> str:
    return json.dumps(card(notice, origin, compact), ensure_ascii=False)
