"""Text from a lock table or a bucket (lock IDs, ``Who``, ``Info``, keys): written by whoever runs
Terraform, so capped before it is stored or sent, and escaped where it meets a terminal or an email.

- :func:`cap` bounds a field (about 1 KB) and says it was truncated.
- :func:`shown` is what a person sees: control characters (C0, DEL, C1) and bidirectional
  overrides become visible escapes (``\\x1b``, ``\\n``, ``\\u202e``), then the text is capped.
- :func:`subject_text` is one ASCII line, for email subjects.
"""

from __future__ import annotations

import re
import unicodedata

FIELD_LIMIT = 1024  # characters kept of one untrusted field
LINE_LIMIT = 8 * FIELD_LIMIT  # characters kept of one line of prose that holds a few untrusted fields
TRUNCATED = "...[truncated, {n} chars]"

# C0 controls, DEL, C1 controls, and the Unicode format characters that reorder or hide text.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def is_unsafe(text: str) -> bool:
    """Whether ``text`` has a character a terminal or mail reader would obey rather than show."""
    return _UNSAFE.search(text) is not None


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def cap(text: str | None, limit: int = FIELD_LIMIT) -> str:
    """At most ``limit`` characters of ``text`` (plus a marker saying how long it was)."""
    if text is None:
        return ""
    if len(text) <= limit:
        return text
    return text[:limit] + TRUNCATED.format(n=len(text))


def is_capped(text: str) -> bool:
    return re.search(r"\.\.\.\[truncated, \d+ chars\]$", text) is not None


def shown(text: str | None, limit: int = FIELD_LIMIT) -> str:
    """``text`` made safe to print: control and reordering characters escaped, then capped."""
    if text is None:
        return ""
    escaped = _UNSAFE.sub(_escape, text[:limit])
    if len(text) <= limit and len(escaped) <= limit:
        return escaped
    return escaped[:limit] + TRUNCATED.format(n=len(text))


def subject_text(text: str, limit: int) -> str:
    """One printable ASCII line of at most ``limit`` characters (accents dropped, the rest as ``?``)."""
    flat = unicodedata.normalize("NFKD", shown(text, limit * 4))
    ascii_only = "".join(ch if 32 <= ord(ch) < 127 else ("" if unicodedata.combining(ch) else "?") for ch in flat)
    return ascii_only if len(ascii_only) <= limit else ascii_only[: limit - 3] + "..."
