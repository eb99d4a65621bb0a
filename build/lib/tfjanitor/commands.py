"""Fix commands as data first: argument lists, turned into shell text by this one helper.

A command we print is pasted at 3 a.m. into a shell with admin credentials, and its arguments
(lock IDs, keys, bucket and table names) were written by whoever ran Terraform. Never build a
command line by formatting strings: build ``argv`` and call :func:`shell_line`.

Quoting is POSIX: ``shlex.quote`` (single quotes) for ordinary text; an argument holding control
or text-reordering characters becomes a dollar-single-quoted string (``$'...'``, POSIX.1-2024,
bash, zsh, ksh) with those characters as ``\\xHH`` UTF-8 byte escapes, so no raw control byte is
ever printed and pasting passes exactly the original bytes.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from tfjanitor.untrusted import is_unsafe


def quote(arg: str) -> str:
    if not is_unsafe(arg):
        return shlex.quote(arg)
    out = []
    for ch in arg:
        if ch in "\\'":
            out.append("\\" + ch)
        elif is_unsafe(ch):
            out.append("".join(f"\\x{b:02x}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "$'" + "".join(out) + "'"


def shell_line(argv: Sequence[str]) -> str:
    """One command line that runs exactly ``argv``."""
    return " ".join(quote(str(a)) for a in argv)


def aws_context(region: str, profile: str | None = None) -> list[str]:
    """The context the user ran with, for every ``aws`` / ``tfjanitor`` command we print."""
    return ["--region", region, *(["--profile", profile] if profile else [])]
