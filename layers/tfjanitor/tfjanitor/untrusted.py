"""Text from a lock table or a bucket (lock IDs, ``Who``, ``Info``, keys): written by whoever runs
Terraform, so capped before it is stored or sent, and escaped where it meets a terminal or an email.

- :func:`cap` bounds a field (about 1 KB) and says it was truncated.
- :func:`shown` is what a person sees: control, format and invisible characters (see ``_UNSAFE``) become
  visible escapes (``\\x1b``, ``\\n``, ``\\u202e``, ``\\U000e0041``), then the text is capped.
- :func:`subject_text` is one ASCII line, for email subjects.
"""

from __future__ import annotations

import re
import unicodedata

FIELD_LIMIT = 1024  # characters kept of one untrusted field
LINE_LIMIT = 8 * FIELD_LIMIT  # characters kept of one line of prose that holds a few untrusted fields
TRUNCATED = "...[truncated, {n} chars]"

# What a terminal or mail reader would obey, or draw as nothing, rather than show: every control character
# (C0, DEL, C1: Unicode category Cc), every format character (category Cf: soft hyphen, bidirectional marks and
# overrides, zero-width characters, invisible operators, interlinear annotations, tag characters ...), the line and
# paragraph separators (Zl, Zp), lone surrogates (Cs: not text at all), and characters that render as nothing although
# Unicode files them elsewhere (combining grapheme joiner, Hangul fillers, Khmer inherent vowels, Mongolian free
# variation selectors). Emoji variation selectors (U+FE00-U+FE0F) stay: our own cards use them. The Cf ranges are
# the union over Unicode 14.0 to 15.1 (Python 3.11 to 3.13); tests/unit/test_untrusted_text.py checks every code
# point of those categories in the running Python.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160"
    "\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\u3164\ud800-\udfff"
    "\ufeff\uffa0\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e007f]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def is_unsafe(text: str) -> bool:
    """Whether ``text`` has a character a terminal or mail reader would obey rather than show."""
    return _UNSAFE.search(text) is not None


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


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
