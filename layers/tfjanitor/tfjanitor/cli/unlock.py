"""`tfjanitor unlock` at a terminal: the locks shown, the prompt, the answer, the table or JSON.

What it prints (the lock's fields, the state's key, the prompt) comes from a lock table that anyone running
Terraform writes: every line goes through ``untrusted.shown``. The JSON output is not escaped (JSON escapes by
itself). The decisions and the release are ``release/by_hand.py``'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Protocol

from tfjanitor.aws.backend import LockWriter
from tfjanitor.durations import human_duration
from tfjanitor.release.by_hand import EXIT_INCOMPLETE, EXIT_NOT_RELEASED, Unlock, UnlockRequest, choose, read_locks, release_all
from tfjanitor.release.locks import DYNAMODB, ObservedLock
from tfjanitor.untrusted import LINE_LIMIT, shown


class Writer(Protocol):
    """Where the report goes: a text stream, or the CLI's stdout that outlives a closed pipe."""

    def write(self, text: str, /) -> int: ...


@dataclass(frozen=True)
class Console:
    """Where a person is: stdin (answers the prompt, if a terminal), stdout (the report), stderr (the prompt)."""

    stdin: IO[str]
    stdout: Writer
    stderr: IO[str]


def lock_lines(locks: list[ObservedLock], now: datetime) -> list[str]:
    out = []
    for lock in locks:
        where = (
            f"DynamoDB item {lock.bucket}/{lock.key} in {lock.table}"
            if lock.source == DYNAMODB
            else f"s3://{lock.bucket}/{lock.key}.tflock (ETag {lock.etag})"
        )
        out.append(f"  {where}")
        if lock.lock:
            info = lock.lock
            out.append(f"    ID:        {info.id}")
            out.append(f"    Operation: {info.operation}")
            out.append(f"    Who:       {info.who}")
            out.append(f"    Version:   {info.version}")
            out.append(f"    Since:     {info.created:%Y-%m-%d %H:%M:%S} UTC ({human_duration(info.age_seconds(now))} ago)")
        else:
            out.append("    not a valid Terraform lock (terraform force-unlock cannot read it)")
    return out


def _say(lines: list[str]) -> str:
    return "".join(shown(line, LINE_LIMIT) + "\n" for line in lines)


def _finish(console: Console, unlock: Unlock, region: str, now: datetime, fmt: str, code: int, message: str | list[str]) -> int:
    lines = [message] if isinstance(message, str) else message
    if fmt == "json":
        console.stdout.write(
            json.dumps({**unlock.to_dict(region, now), "message": "\n".join(lines)}, indent=2, ensure_ascii=False) + "\n"
        )
    else:
        console.stdout.write(_say([f"note: {note}" for note in unlock.notes] + lines))
    return code


def _confirmed(console: Console, unlock: Unlock, chosen: list[ObservedLock]) -> bool:
    state = unlock.request.state
    console.stderr.write(
        "If the run that took this lock is still alive, releasing it lets another run write the same state.\n"
        + shown(f"Release {len(chosen)} lock{'s' if len(chosen) > 1 else ''} on {state}? ", LINE_LIMIT)
        + "Only 'yes' releases: "
    )
    console.stderr.flush()
    return console.stdin.readline().strip().lower() == "yes"


def run_unlock(writer: LockWriter, region: str, request: UnlockRequest, yes: bool, fmt: str, console: Console) -> int:
    """Show the state's locks, ask (unless ``yes``), release exactly what was shown; the exit code."""
    now = datetime.now(timezone.utc)
    unlock = read_locks(writer, request)
    state = request.state
    if unlock.errors:
        error = unlock.errors[0]
        where = f"the lock item of {state} in {request.table}" if error["check"] == "read_lock_item" else f"s3://{state}.tflock"
        return _finish(
            console,
            unlock,
            region,
            now,
            fmt,
            EXIT_INCOMPLETE,
            f"could not read {where}: {error['code']}: {error['message'].split(': ', 2)[-1]}",
        )
    if not unlock.locks:
        return _finish(console, unlock, region, now, fmt, EXIT_NOT_RELEASED, f"No lock on {state}: nothing to release.")
    chosen, why_not = choose(unlock)
    if fmt != "json":
        console.stdout.write(_say([f"Lock{'s' if len(unlock.locks) > 1 else ''} on {state}:", *lock_lines(unlock.locks, now)]))
    if not chosen:
        return _finish(console, unlock, region, now, fmt, EXIT_NOT_RELEASED, why_not.capitalize() + "; nothing was deleted.")
    if not yes:
        if not console.stdin.isatty():
            unlock.errors.append({"check": "confirm", "target": state, "code": "NoTerminal", "message": "no terminal to confirm on"})
            return _finish(
                console,
                unlock,
                region,
                now,
                fmt,
                EXIT_INCOMPLETE,
                "No terminal to confirm on: re-run with --yes to release without asking.",
            )
        if not _confirmed(console, unlock, chosen):
            return _finish(console, unlock, region, now, fmt, EXIT_NOT_RELEASED, "Not released (not confirmed); nothing was deleted.")
    code = release_all(writer, unlock, chosen)
    lines = [("released: " if r.released else "NOT released: ") + r.reason for r in unlock.results]
    lines += [f"error: {e['message']}" for e in unlock.errors]
    if code == 0:
        lines.append("Digest items and state objects were not touched.")
    return _finish(console, unlock, region, now, fmt, code, lines)
