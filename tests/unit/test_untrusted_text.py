"""The two shared helpers for untrusted text: shell quoting from argument lists, and escaping/capping."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from tfjanitor.alerts.emails import SUBJECT_LIMIT, render
from tfjanitor.alerts.lifecycle import Notice
from tfjanitor.checks import findings as build
from tfjanitor.cli.output import to_json, to_table
from tfjanitor.commands import aws_context, shell_line
from tfjanitor.model import Finding, ScanError, ScanResult
from tfjanitor.terraform import parse_lock_info
from tfjanitor.untrusted import FIELD_LIMIT, cap, is_capped, shown, subject_text

HOSTILE = [
    "a b",
    "it's",
    "$(touch pwned)",
    "`touch pwned`",
    "x;touch pwned",
    "line\nbreak",
    "esc\x1b[31mred",
    "-rf",
    "ünïcødé ✓",
    "\u202eevil",
    "back\\slash'q\"",
    "c1\x85x",
    "",
    "bell\x07",
    "cr\rret",
    "tab\tx",
    "*",
    "~",
]


def test_shell_line_passes_exactly_the_argument_vector(tmp_path) -> None:
    line = shell_line(["printf", "%s\\0", *HOSTILE])
    out = subprocess.run(["bash", "-c", line], capture_output=True, cwd=tmp_path, check=True).stdout
    assert out.split(b"\0")[:-1] == [v.encode() for v in HOSTILE]
    assert list(tmp_path.iterdir()) == []  # nothing was executed
    assert "\x1b" not in line and "\n" not in line and "\u202e" not in line  # nothing raw reaches a terminal


def test_aws_context_carries_the_profile_only_when_given() -> None:
    assert aws_context("ap-northeast-2") == ["--region", "ap-northeast-2"]
    assert aws_context("us-east-1", "prod admin") == ["--region", "us-east-1", "--profile", "prod admin"]


@pytest.mark.parametrize("raw", ["\x1b]0;pwned\x07", "a\rb", "x\x9by", "\u202etxt.exe"])
def test_shown_escapes_controls(raw: str) -> None:
    text = shown(raw)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in text)


def test_cap_and_shown_bound_the_length() -> None:
    huge = "W" * 200_000
    assert len(cap(huge)) < FIELD_LIMIT + 50 and is_capped(cap(huge)) and "200000" in cap(huge)
    assert len(shown("\x1b" * 200_000)) < FIELD_LIMIT + 50
    assert cap("short") == "short" and not is_capped("short")


def test_subject_text_is_one_ascii_line() -> None:
    s = subject_text("Stale lock: ünï\r\nBcc: x@example.com \x1b[2J" + "k" * 500, 90)
    assert s.isascii() and "\n" not in s and "\r" not in s and len(s) <= 90


# -- where lock-table text meets a person: emails, the scan table ------------------------------------

# Raw characters a terminal or mail reader would obey: C0 but the line feed, DEL, C1, bidi overrides.
OBEYED = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
EVIL = "\x1b]0;pwned\x07\x1b[2J\r\x85\x9b31m\u202e"
NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)


def hostile_stale_lock() -> Finding:
    key = f"dev/{EVIL}/terraform.tfstate"
    raw = json.dumps(
        {
            "ID": f"id-{EVIL}",
            "Operation": f"OperationTypeApply{EVIL}",
            "Info": "",
            "Who": f"ci{EVIL}@host",
            "Version": f"1.11{EVIL}",
            "Created": "2026-11-25T00:00:00Z",
            "Path": f"tfstate-demo/{key}",
        }
    )
    return build.stale_lock(
        "ap-northeast-2", "terraform-state-lock", "tfstate-demo", key, parse_lock_info(raw), NOW, timedelta(hours=1)
    )


def test_emails_show_lock_fields_escaped_and_subjects_are_one_ascii_line() -> None:
    doc = hostile_stale_lock().to_dict()
    for event in ("opened", "reminder", "released", "resolved"):
        email = render(Notice(event, doc, "fp", NOW, NOW - timedelta(hours=1), "gone", extra={"rule": "r"}))
        for text in (email.body, email.plain):
            assert not OBEYED.search(text), (event, [c for c in text if OBEYED.match(c)])
            assert "\\x1b]0;pwned\\x07" in text  # shown, not hidden
        assert email.subject.isascii() and email.subject.isprintable() and len(email.subject) < SUBJECT_LIMIT
        if event == "opened":  # the commands are still exact: quoted, one per line
            lines = email.plain.splitlines()
            assert all(f"    {line}" in lines for line in doc["details"]["commands"])


def test_scan_table_shows_lock_fields_escaped_and_each_command_on_its_own_line() -> None:
    finding = hostile_stale_lock()
    result = ScanResult(
        "ap-northeast-2",
        ["terraform-state-lock"],
        [f"tfstate{EVIL}"],
        findings=[finding],
        errors=[ScanError("read_state", f"tfstate-demo/{EVIL}", "AccessDenied", f"cannot read {EVIL}")],
    )
    text = to_table(result)
    assert not OBEYED.search(text), [c for c in text if OBEYED.match(c)]
    lines = text.splitlines()
    for line in [*finding.command_lines(), *(c for a in finding.alternative_lines() for c in a["commands"])]:
        assert f"      {line}" in lines
    assert json.loads(to_json(result))["findings"][0]["details"]["who"] == f"ci{EVIL}@host"  # JSON: raw, JSON-escaped


# -- every character a terminal would draw as nothing or obey ------------------------------------------


def _code_points(*categories: str) -> list[str]:
    import sys
    import unicodedata

    return [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in categories]


INVISIBLE = _code_points("Cc", "Cf", "Zl", "Zp")


def test_every_control_format_and_separator_character_is_escaped() -> None:
    """Every code point of categories Cc, Cf, Zl and Zp of the running Python's Unicode database: shown as a visible
    escape, so a hostile key never prints identical to a real one."""
    assert len(INVISIBLE) > 200  # 65 controls, 97 tag characters, the rest
    real = "tfstate/prod/terraform.tfstate"
    for ch in INVISIBLE:
        hostile = real[:5] + ch + real[5:]
        text = shown(hostile)
        assert not any(c in INVISIBLE for c in text), f"U+{ord(ch):04X} reached the terminal"
        assert text != shown(real), f"U+{ord(ch):04X} prints like the real key"
        assert f"{ord(ch):x}" in text.lower() or ch in "\n\r\t"


@pytest.mark.parametrize(
    "code",
    [0xAD, 0x61C, 0x180E, 0x2060, 0x2064, 0x206A, 0x206F, 0xFFF9, 0xFFFB, 0xE0000, 0xE0041, 0xE007F, 0x2028, 0x2029, 0x034F, 0x3164],
)
def test_named_invisible_characters_are_escaped_unambiguously(code: int) -> None:
    text = shown(f"a{chr(code)}b")
    expected = f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    assert text == f"a{expected}b"


def test_commands_quote_format_characters_as_bytes(tmp_path) -> None:
    """A shell line holding a tag or soft-hyphen character still passes exactly those bytes, but prints them escaped."""
    values = ["dev\u00adkey", "x\U000e0041y", "a\u2063b", "p\u2029q"]
    line = shell_line(["printf", "%s\\0", *values])
    assert not any(c in INVISIBLE for c in line)
    out = subprocess.run(["bash", "-c", line], capture_output=True, cwd=tmp_path, check=True).stdout
    assert out.split(b"\0")[:-1] == [v.encode() for v in values]
