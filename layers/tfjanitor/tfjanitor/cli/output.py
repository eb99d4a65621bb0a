"""How a sweep looks to people (table) and to programs (json).

The table is for a terminal: names, keys, lock IDs and messages come from lock tables and buckets, so
every cell and line of prose goes through ``untrusted.shown``. Each finding ends with its kind's title and
docs section (``tfjanitor.catalog``). Fix commands are printed one per line as
``commands.shell_line`` quoted them (never escaped). JSON escapes by itself: nothing is escaped there.
"""

from __future__ import annotations

import json
from collections import Counter

from tfjanitor import catalog
from tfjanitor.commands import printed
from tfjanitor.durations import human_duration
from tfjanitor.model import Finding, ScanResult
from tfjanitor.untrusted import LINE_LIMIT, shown


def _say(text: str) -> str:
    return shown(text, LINE_LIMIT)


def to_json(result: ScanResult) -> str:
    return json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _state(f: Finding) -> str:
    if f.bucket and f.key:
        return f"{f.bucket}/{f.key}"
    if f.bucket:
        return f"bucket {f.bucket}"
    if f.details.get("item_lock_id"):
        return str(f.details["item_lock_id"])
    return f"table {f.table}" if f.table else "-"


def _age(f: Finding) -> str:
    age = f.details.get("age_seconds")
    return human_duration(age) if isinstance(age, (int, float)) else "-"


def _table(rows: list[list[str]]) -> list[str]:
    rows = [[shown(cell) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def to_table(result: ScanResult) -> str:
    out = _scan_summary(result)
    out.append("")
    if result.findings:
        out += _findings(result)
    elif result.complete and not result.unverified:
        posture = (
            ", and the tables and buckets are set up as recommended"
            if result.audited
            else (" (the tables' and buckets' set-up was not checked: --skip-audit)")
        )
        out.append(f"No findings: no stale lock, every digest matches its state, every bucket is in the table's region{posture}.")
    ahead = [lock for lock in result.locks if lock.clock_ahead_seconds]
    if ahead:
        out.append(
            f"{len(ahead)} held lock{'s have' if len(ahead) != 1 else ' has'} a Created ahead of this clock "
            "(its holder's clock is wrong): silence is counted from when tfjanitor first saw it "
            "(tfjanitor locks shows each)."
        )
    out += _unverified(result)
    out += _errors(result)
    return "\n".join(out) + "\n"


def _scan_summary(result: ScanResult) -> list[str]:
    """What was swept, how many findings, and what the sweep read."""
    s = result.stats
    out: list[str] = []
    out.append(
        _say(
            f"tfjanitor scan  {'account ' + result.account + '  ' if result.account else ''}"
            f"region{'s' if len(result.regions) > 1 else ''} {', '.join(result.regions or [result.region])}  "
            f"tables {', '.join(result.tables) or '-'}  "
            f"buckets {', '.join(result.buckets) or '-'}"
        )
    )
    by_sev = Counter(f.severity.value for f in result.findings)
    counts = ", ".join(f"{by_sev[k]} {k}" for k in ("critical", "warning", "info") if by_sev[k])
    status = "sweep complete" if result.complete else "SWEEP INCOMPLETE"
    out.append(
        f"{len(result.findings)} finding{'s' if len(result.findings) != 1 else ''}{f' ({counts})' if counts else ''} - {status}"
    )
    out.append(
        f"read {s.items} items, {s.states} states, {s.objects_listed} objects listed; "
        f"{s.total_api_calls} API calls ({s.critical_path_calls} one after another), {s.downloads} downloads "
        f"({_size(s.bytes_downloaded)}), "
        f"{s.duration_seconds:.2f}s"
    )
    return out


def _findings(result: ScanResult) -> list[str]:
    """The findings' table, then each finding: its message, its fix and what it is."""
    out: list[str] = []
    rows = [["#", "SEVERITY", "KIND", "STATE", "LOCK ID", "AGE"]]
    for i, f in enumerate(result.findings, 1):
        rows.append([str(i), f.severity.value, f.kind.value, _state(f), f.lock_id or "-", _age(f)])
    out += _table(rows)
    for i, f in enumerate(result.findings, 1):
        out.append("")
        where = f"table {f.table}" if f.table else f"region {f.region}"
        if len(result.regions) > 1:
            where += f", {f.region}"
        out.append(_say(f"[{i}] {f.severity.value.upper()} {f.kind.value} ({where})"))
        out.append(_say(f"    {f.message}"))
        for step in f.fix:
            out.append(_say(f"    fix: {step}"))
        out += printed(f.command_lines(), f.alternative_lines(), "    ")
        out.append(_say(f"    about: {catalog.title(f.kind)}, {catalog.docs_link(f.kind)}"))
    return out


def _unverified(result: ScanResult) -> list[str]:
    """The digests and locks that could not be verified, if any."""
    out: list[str] = []
    if result.unverified:
        n = len(result.unverified)
        what = "digest" if all(u.table for u in result.unverified) else "digest or lock"
        out.append("")
        out.append(
            f"{n} {what}{'s were' if n != 1 else ' was'} NOT verified (neither drift nor healthy: a later scan judges "
            f"{'them' if n != 1 else 'it'}):"
        )
        for u in result.unverified:
            where = f"table {shown(u.table)}" if u.table else "lock file"
            out.append(f"  - {shown(u.bucket)}/{shown(u.key)} ({where}): {shown(u.reason, 2000)}")
    return out


def _errors(result: ScanResult) -> list[str]:
    """The checks that could not run, if any: the sweep is incomplete."""
    out: list[str] = []
    if result.errors:
        out.append("")
        out.append(
            f"SWEEP INCOMPLETE: {len(result.errors)} check{'s' if len(result.errors) != 1 else ''} could not run, "
            "so what they cover is NOT known to be healthy:"
        )
        out += [
            "  " + line
            for line in _table(
                [["CHECK", "REGION", "TARGET", "ERROR"]]
                + [[e.check, e.region or result.region, e.target, e.code] for e in result.errors]
            )
        ]
        for e in result.errors:
            out.append(_say(f"  - {e.message}"))
    return out


def locks_json(result: ScanResult) -> str:
    """``tfjanitor locks --format json``: every lock held, and what could not be read."""
    doc = {
        "region": result.region,
        "account": result.account,
        "regions": result.regions or [result.region],
        "complete": result.complete,
        "locks": [lock.to_dict() for lock in result.locks],
        "errors": [e.to_dict() for e in result.errors],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str)


_SIGNS = {"created": "lock taken", "state_written": "state written", "digest_written": "digest written"}


def locks_table(result: ScanResult) -> str:
    """``tfjanitor locks``: one row a lock, then why each threshold is what it is."""
    out = [
        _say(
            f"tfjanitor locks  {'account ' + result.account + '  ' if result.account else ''}"
            f"region{'s' if len(result.regions) > 1 else ''} {', '.join(result.regions or [result.region])}  "
            f"tables {', '.join(result.tables) or '-'}"
        )
    ]
    verdicts = Counter(lock.verdict for lock in result.locks)
    summary = ", ".join(f"{verdicts[v]} {v}" for v in ("stale", "quiet", "alive") if verdicts[v])
    out.append(
        f"{len(result.locks)} lock{'s' if len(result.locks) != 1 else ''} held"
        f"{f' ({summary})' if summary else ''}{'' if result.complete else ' - READ INCOMPLETE'}"
    )
    if result.locks:
        rows = [["#", "VERDICT", "STATE", "LOCK", "ID", "OPERATION", "WHO", "SINCE", "LAST SIGN OF LIFE", "THRESHOLD"]]
        for i, lock in enumerate(result.locks, 1):
            sign = lock.last_sign_of_life
            rows.append(
                [
                    str(i),
                    lock.verdict.upper() if lock.verdict == "stale" else lock.verdict,
                    shown(f"{lock.bucket}/{lock.key}", 200),
                    shown(f"table {lock.table}", 200) if lock.table else ".tflock",
                    shown(lock.lock.get("id"), 80),
                    shown(lock.lock.get("operation"), 80),
                    shown(lock.lock.get("who"), 80),
                    str(lock.lock.get("created")),
                    f"{_SIGNS.get(sign.get('what', ''), sign.get('what'))} {human_duration(lock.quiet_seconds)} ago",
                    f"{human_duration(lock.threshold.get('seconds') or 0)}"
                    f" ({'learned' if lock.threshold.get('learned') else 'fixed'})",
                ]
            )
        out += [""] + _table(rows) + [""]
        for i, lock in enumerate(result.locks, 1):
            note = (
                " INTERRUPTED WRITE: the run died between its state and digest writes (see tfjanitor scan)"
                if lock.interrupted_write
                else ""
            )
            if lock.clock_ahead_seconds:
                note += (
                    f" CLOCK AHEAD: its Created is {human_duration(lock.clock_ahead_seconds)} ahead of this "
                    "machine's clock (the holder's clock is wrong): its silence counts from when it was first seen"
                )
            out.append(_say(f"[{i}] threshold {lock.threshold.get('why')}{note}"))
    if result.errors:
        out.append("")
        out.append(
            f"READ INCOMPLETE: {len(result.errors)} read{'s' if len(result.errors) != 1 else ''} failed, so locks may be missing:"
        )
        out += [_say(f"  - {e.message}") for e in result.errors]
    return "\n".join(out) + "\n"
