"""Fix commands as data first: argument lists, turned into shell text by this one helper.

A command we print is pasted at 3 a.m. into a shell with admin credentials, and its arguments
(lock IDs, keys, bucket and table names) were written by whoever ran Terraform. Never build a
command line by formatting strings: build ``argv`` and call :func:`shell_line`.

Quoting is POSIX: ``shlex.quote`` (single quotes) for ordinary text; an argument holding control
or text-reordering characters becomes a dollar-single-quoted string (``$'...'``, POSIX.1-2024,
bash, zsh, ksh) with those characters as ``\\xHH`` UTF-8 byte escapes, so no raw control byte is
ever printed and pasting passes exactly the original bytes.

The AWS CLI has two traps of its own for untrusted values: a value that starts with ``-`` reads as an
option (:func:`option` writes ``--name=value`` then), and a bare value that starts with ``file://``,
``fileb://``, ``http://`` or ``https://`` is replaced by that file's or URL's contents. S3 object keys
can start with anything, so commands about objects pass their parameters in ``--cli-input-json``
(:func:`s3api_objects`), whose values the CLI takes literally; every other untrusted value (a lock
table item's key, ``Info``, a digest) travels inside a JSON argument.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from typing import Any

from tfjanitor.untrusted import LINE_LIMIT, is_unsafe, shown

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def quote(arg: str) -> str:
    if not is_unsafe(arg):
        return shlex.quote(arg)
    out = []
    for ch in arg:
        if ch in "\\'":
            out.append("\\" + ch)
        elif is_unsafe(ch):
            out.append("".join(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass")))
        else:
            out.append(ch)
    return "$'" + "".join(out) + "'"


def representable(argv: Sequence[str]) -> bool:
    """Whether a command line can pass ``argv`` at all: no program's argument can hold a NUL or a lone surrogate
    (not text: it has no UTF-8 bytes), and argparse (so the AWS CLI and ``tfjanitor``) drops an option value that
    is exactly ``--``."""
    return not any("\x00" in a or _LONE_SURROGATE.search(a) or (a.startswith("--") and a.endswith("=--")) for a in map(str, argv))


def shell_line(argv: Sequence[str]) -> str:
    """One command line that runs exactly ``argv``."""
    if not representable(argv):
        raise ValueError("an argument holds a NUL character or a lone surrogate: no command line can pass it")
    return " ".join(quote(str(a)) for a in argv)


def option(name: str, value: str) -> list[str]:
    """``name value``, or ``name=value`` when the value starts with ``-`` (argparse, and so the AWS CLI
    and ``tfjanitor``, would read it as an option)."""
    return [f"{name}={value}"] if value.startswith("-") else [name, value]


def json_arg(doc: Any) -> str:
    """A compact JSON argument (AWS CLI structures, ``--cli-input-json``)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def aws(service: str, operation: str, region: str, profile: str | None, *args: str) -> list[str]:
    """``aws SERVICE OPERATION --region R [--profile P] ARGS...``."""
    return ["aws", service, operation, *aws_context(region, profile), *args]


def s3api_objects(operation: str, region: str, profile: str | None, params: dict[str, Any]) -> list[str]:
    """An ``aws s3api`` command about objects: its parameters (API names) in ``--cli-input-json``."""
    return aws("s3api", operation, region, profile, "--cli-input-json", json_arg(params))


def aws_context(region: str, profile: str | None = None) -> list[str]:
    """The context the user ran with, for every ``aws`` / ``tfjanitor`` command we print."""
    return [*option("--region", region), *(option("--profile", profile) if profile else [])]


def unlock_command(region: str, profile: str | None, bucket: str, key: str, lock_id: str | None, table: str | None) -> list[str]:
    """``tfjanitor unlock``: shows the lock, asks, and deletes it only if it is still exactly the one it read;
    with ``lock_id``, only if it is that lock (without: whatever lock it finds there, shown before it asks)."""
    where = (
        [*option("--table", table), "--", f"{bucket}/{key}"]
        if table is not None
        else [*option("--bucket", bucket), "--lockfile", "--", key]
    )
    guard = option("--id", lock_id) if lock_id is not None else []
    return ["tfjanitor", "unlock", *aws_context(region, profile), *guard, *where]


def printed(commands: Sequence[str], alternatives: Sequence[dict[str, Any]], indent: str) -> list[str]:
    """A finding's command lines for a person: each on a line of its own, the recommended ones first, then
    each alternative under its label. The lines are printed as quoted, never escaped (escaping would change
    what they run; a quoted line holds no control character)."""
    out = []
    if commands:
        out.append(f"{indent}Run, in order:")
        out += [f"{indent}  {line}" for line in commands]
    for alternative in alternatives:
        out.append(f"{indent}Or: {shown(str(alternative.get('label', '')), LINE_LIMIT)}:")
        out += [f"{indent}  {line}" for line in alternative.get("commands", [])]
    return out
