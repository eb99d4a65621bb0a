"""The two shared helpers for untrusted text: shell quoting from argument lists, and escaping/capping."""

from __future__ import annotations

import subprocess

import pytest

from tfjanitor.commands import aws_context, shell_line
from tfjanitor.untrusted import FIELD_LIMIT, cap, is_capped, shown, subject_text

HOSTILE = [
    "a b", "it's", "$(touch pwned)", "`touch pwned`", "x;touch pwned", "line\nbreak", "esc\x1b[31mred",
    "-rf", "ünïcødé ✓", "\u202eevil", "back\\slash'q\"", "c1\x85x", "", "bell\x07", "cr\rret", "tab\tx", "*", "~",
]


def test_shell_line_passes_exactly_the_argument_vector(tmp_path) -> None:  # type: ignore[no-untyped-def]
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
