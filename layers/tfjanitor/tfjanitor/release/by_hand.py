"""`tfjanitor unlock`: release one state's lock by hand, conditionally on exactly what was shown.

What it prints at a terminal (the lock's fields, the state's key, the prompt) comes from a lock table
that anyone running Terraform writes: every line goes through ``untrusted.shown``. The JSON output is
not escaped (JSON escapes by itself).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import IO, Any

from tfjanitor.aws.backend import LockWriter
from tfjanitor.aws.session import AwsError, AwsSession
from tfjanitor.durations import human_duration
from tfjanitor.release.locks import DYNAMODB, LOCKFILE, ObservedLock, ReleaseResult, observe, release
from tfjanitor.untrusted import LINE_LIMIT, shown

EXIT_OK, EXIT_NOT_RELEASED, EXIT_INCOMPLETE = 0, 1, 2


def _lines(locks: list[ObservedLock], now: datetime) -> list[str]:
    out = []
    for lock in locks:
        where = (f"DynamoDB item {lock.bucket}/{lock.key} in {lock.table}" if lock.source == DYNAMODB
                 else f"s3://{lock.bucket}/{lock.key}.tflock (ETag {lock.etag})")
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


def _choose(locks: list[ObservedLock], table: str | None, lockfile: bool, want_id: str | None) -> tuple[list[ObservedLock], str]:
    """Which of the observed locks to release, or why none."""
    if want_id is not None:
        chosen = [lock for lock in locks if lock.lock_id == want_id]
        if not chosen:
            held = ", ".join(sorted({lock.lock_id or "unreadable" for lock in locks}))
            return [], f"refusing: the lock ID is {held}, not {want_id}"
        return chosen, ""
    requested = [lock for lock in locks if (lock.source == DYNAMODB and table) or (lock.source == LOCKFILE and lockfile)]
    if not requested:
        return [], "no lock of the requested kind"
    ids = {lock.lock_id for lock in requested if lock.lock_id}
    # With both dynamodb_table and use_lockfile, Terraform holds both locks with the same ID: release both.
    companions = [lock for lock in locks if lock not in requested and lock.lock_id and lock.lock_id in ids]
    return requested + companions, ""


def run_unlock(
    session: Any, region: str, endpoint_url: str | None, bucket: str, key: str, table: str | None, lockfile: bool,
    want_id: str | None, yes: bool, fmt: str, stdin: IO[str], stdout: IO[str], stderr: IO[str],
) -> int:
    now = datetime.now(timezone.utc)
    writer = LockWriter(AwsSession(session, endpoint_url=endpoint_url), region)
    state = f"{bucket}/{key}"
    doc: dict[str, Any] = {"region": region, "state": state, "complete": True, "locks": [], "released": [],
                           "not_released": [], "errors": []}
    notes: list[str] = []

    def say(lines: list[str]) -> str:
        return "".join(shown(line, LINE_LIMIT) + "\n" for line in lines)

    def finish(code: int, message: str | list[str]) -> int:
        lines = [message] if isinstance(message, str) else message
        doc["complete"] = not doc["errors"]
        doc["message"] = "\n".join(lines)
        if fmt == "json":
            stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        else:
            stdout.write(say([f"note: {note}" for note in notes] + lines))
        return code

    try:
        locks = observe(writer, bucket, key, table, lockfile=False) if table else []
    except AwsError as exc:
        doc["errors"].append({"check": "read_lock_item", "target": table, "code": exc.code, "message": str(exc)})
        return finish(EXIT_INCOMPLETE, f"could not read the lock item of {state} in {table}: {exc.code}: {exc.message}")
    try:
        locks += observe(writer, bucket, key, None, lockfile=True)
    except AwsError as exc:
        if lockfile:
            doc["errors"].append({"check": "read_lockfile", "target": state, "code": exc.code, "message": str(exc)})
            return finish(EXIT_INCOMPLETE, f"could not read s3://{state}.tflock: {exc.code}: {exc.message}")
        notes.append(f"could not look for s3://{state}.tflock ({exc.code}); only the DynamoDB lock is considered")

    doc["locks"] = [lock.describe(now) for lock in locks]
    if not locks:
        return finish(EXIT_NOT_RELEASED, f"No lock on {state}: nothing to release.")
    chosen, why_not = _choose(locks, table, lockfile, want_id)
    if fmt != "json":
        stdout.write(say([f"Lock{'s' if len(locks) > 1 else ''} on {state}:", *_lines(locks, now)]))
    if not chosen:
        return finish(EXIT_NOT_RELEASED, why_not.capitalize() + "; nothing was deleted.")

    if not yes:
        if not stdin.isatty():
            doc["errors"].append({"check": "confirm", "target": state, "code": "NoTerminal",
                                  "message": "no terminal to confirm on"})
            return finish(EXIT_INCOMPLETE, "No terminal to confirm on: re-run with --yes to release without asking.")
        stderr.write(
            "If the run that took this lock is still alive, releasing it lets another run write the same state.\n"
            + shown(f"Release {len(chosen)} lock{'s' if len(chosen) > 1 else ''} on {state}? ", LINE_LIMIT)
            + "Only 'yes' releases: "
        )
        stderr.flush()
        if stdin.readline().strip().lower() != "yes":
            return finish(EXIT_NOT_RELEASED, "Not released (not confirmed); nothing was deleted.")

    results: list[ReleaseResult] = []
    for lock in chosen:
        try:
            results.append(release(writer, lock))
        except AwsError as exc:
            doc["errors"].append({"check": "release", "target": lock.source, "code": exc.code, "message": str(exc)})
    for result in results:
        (doc["released"] if result.released else doc["not_released"]).append(result.to_dict(now))
    lines = [("released: " if r.released else "NOT released: ") + r.reason for r in results]
    lines += [f"error: {e['message']}" for e in doc["errors"]]
    if doc["errors"]:
        return finish(EXIT_INCOMPLETE, lines)
    if all(r.released for r in results):
        lines.append("Digest items and state objects were not touched.")
        return finish(EXIT_OK, lines)
    return finish(EXIT_NOT_RELEASED, lines)
