"""Alert emails a sleepy on-call engineer can act on (pure: no AWS, no state contents).

Each notice renders to a subject that fits a mail client's list view (SNS allows
100 characters), a body with console links, and the same body without links.

Lock fields and keys are hostile input: every line of prose goes through ``untrusted.shown`` (control
characters escaped, capped) and the subject through ``untrusted.subject_text`` (one ASCII line). Fix
commands are printed one per line exactly as ``commands.shell_line`` quoted them (never escaped: a
quoted command line holds no control character, and escaping would change what it runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from tfjanitor.alerts.lifecycle import Notice
from tfjanitor.commands import printed, s3api_objects, shell_line
from tfjanitor.durations import human_duration
from tfjanitor.untrusted import LINE_LIMIT, shown, subject_text

SUBJECT_LIMIT = 100
_TITLES = {
    "stale_lock": "Stale lock",
    "stale_lockfile": "Stale lock file",
    "digest_drift": "Digest drift",
    "orphan_digest": "Orphan digest",
    "cross_region_bucket": "Cross-region bucket",
    "malformed_item": "Malformed lock item",
    "split_brain_lock": "Split-brain locking",
    "replicated_lock_table": "Replicated lock table",
    "lock_table_schema": "Unusable lock table",
    "table_pitr_disabled": "Lock table without PITR",
    "table_deletion_protection_disabled": "Lock table without deletion protection",
    "table_stream_disabled": "Lock table stream not monitored",
    "bucket_versioning_disabled": "State bucket not versioned",
    "bucket_public_access_open": "State bucket public access not blocked",
    "bucket_tls_not_enforced": "State bucket TLS not enforced",
    "lockfile_versions_accumulating": "Old lock file versions accumulating",
    "lockfile_migration": "Lock file migration",
}
_EVENTS = {"opened": "", "worse": "WORSE: ", "reminder": "Still open: ", "resolved": "RESOLVED: "}


@dataclass(frozen=True)
class Email:
    subject: str
    body: str  # with console links (the SNS "email" message)
    plain: str  # link-free (the SNS "default" message)


def _state(f: dict[str, Any]) -> str:
    if f.get("bucket") and f.get("key"):
        return f"{f['bucket']}/{f['key']}"
    if f.get("bucket"):
        return f"bucket {f['bucket']}"
    return str(f.get("details", {}).get("item_lock_id") or f.get("table") or "-")


def _fit(prefix: str, state: str, suffix: str) -> str:
    room = SUBJECT_LIMIT - 1 - len(prefix) - len(suffix)  # SNS: "less than 100 characters"
    # The end of a key names the state best: keep the tail, escaped and made ASCII, then cut from the left.
    state = subject_text(state[-4 * SUBJECT_LIMIT:], 64 * SUBJECT_LIMIT)
    if len(state) > room:
        state = "..." + state[-(room - 3):]
    return subject_text(f"{prefix}{state}{suffix}", SUBJECT_LIMIT - 1)


def subject(notice: Notice) -> str:
    f = notice.finding
    kind = f.get("kind", "")
    title = _TITLES.get(kind, kind)
    severity = f.get("severity", "warning").upper()
    details = f.get("details", {})
    if notice.event == "resolved":
        how_long = f" after {human_duration((notice.at - notice.opened_at).total_seconds())}"
        return _fit(f"[tfjanitor] RESOLVED {title}: ", _state(f), how_long)
    if notice.event == "released":
        return _fit(f"[tfjanitor] RELEASED {title.lower()}: ", _state(f),
                    f" (held {human_duration(details.get('age_seconds', 0))})")
    if kind in ("stale_lock", "stale_lockfile") and "age_seconds" in details:
        age = details["age_seconds"] + (notice.at - notice.opened_at).total_seconds() * (notice.event == "reminder")
        suffix = f" (held {human_duration(age)})"
    elif notice.event == "reminder":
        suffix = f" (open {human_duration((notice.at - notice.opened_at).total_seconds())})"
    else:
        suffix = ""
    return _fit(f"[tfjanitor] {_EVENTS.get(notice.event, '')}{severity} {title}: ", _state(f), suffix)


def console_links(f: dict[str, Any]) -> list[tuple[str, str]]:
    region, table, bucket, key = f.get("region"), f.get("table"), f.get("bucket"), f.get("key")
    details = f.get("details", {})
    links: list[tuple[str, str]] = []
    item_id = None
    if f.get("kind") in ("digest_drift", "orphan_digest"):
        item_id = details.get("digest_lock_id")
    elif f.get("kind") == "stale_lock" and bucket and key:
        item_id = f"{bucket}/{key}"
    elif f.get("kind") == "malformed_item":
        item_id = details.get("item_lock_id")
    if table and item_id:
        links.append((
            "Lock table item",
            f"https://{region}.console.aws.amazon.com/dynamodbv2/home?region={region}#edit-item?"
            f"table={quote(table, safe='')}&itemMode=2&pk={quote(item_id, safe='')}&sk=&route=ROUTE_ITEM_EXPLORER",
        ))
    if bucket and key:
        obj_key = key + (".tflock" if f.get("kind") == "stale_lockfile" else "")
        links.append((
            "State object" if f.get("kind") != "stale_lockfile" else "Lock object",
            f"https://s3.console.aws.amazon.com/s3/object/{quote(bucket, safe='')}?region={region}"
            f"&bucketType=general&prefix={quote(obj_key, safe='')}",
        ))
        links.append((
            "Object versions",
            f"https://s3.console.aws.amazon.com/s3/buckets/{quote(bucket, safe='')}?region={region}"
            f"&bucketType=general&prefix={quote(key, safe='')}&showversions=true",
        ))
    elif bucket:
        links.append(("Bucket", f"https://s3.console.aws.amazon.com/s3/buckets/{quote(bucket, safe='')}"))
    return links


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def render(notice: Notice) -> Email:
    f = notice.finding
    d = f.get("details", {})
    title = _TITLES.get(f.get("kind", ""), f.get("kind", ""))
    lines: list[str] = []  # prose, raw: escaped line by line below

    def prose() -> list[str]:
        out = [shown(line, LINE_LIMIT) for line in lines]
        lines.clear()
        return out

    text: list[str] = []
    if notice.event == "released":
        what = "lock item" if f.get("kind") == "stale_lock" else "lock object (.tflock)"
        versions = s3api_objects("list-object-versions", str(f.get("region")), None,
                                 {"Bucket": f.get("bucket"), "Prefix": f.get("key")})
        lines += [
            f"RELEASED: {title.lower()} on {_state(f)}",
            "",
            f"tfjanitor released the stale {what} {f.get('lock_id')} held by {d.get('who') or '?'} "
            f"({d.get('operation') or '?'}, Terraform {d.get('version') or '?'}) since {d.get('created', '?')}, "
            f"on {_when(notice.at)}.",
            f"Rule: {notice.extra.get('rule', '')}.",
            "",
            "If that run is still alive, it will fail to write its state. How to check:",
            f"  1. Look for a terraform process or CI job of {d.get('who') or 'the holder'} started around "
            f"{d.get('created', '?')} (the lock's Who is <os user>@<hostname>).",
            "  2. If it is still running, stop it and run it again: it no longer holds the lock, so its "
            "state write or unlock fails.",
            "  3. If in doubt, compare the state's versions:",
        ]
        text += prose() + [f"       {shell_line(versions)}"]
        lines += [
            "",
            "Only the lock was deleted, and only because it was still byte-for-byte the lock observed; digest "
            "items and the state object were not touched. Original lock info (recorded in the findings table):",
            f"  {d.get('raw', '')}",
        ]
    elif notice.event == "resolved":
        lines += [
            f"RESOLVED: {title} on {_state(f)}",
            "",
            f"Resolved {_when(notice.at)} ({notice.resolution or 'no longer seen'}), "
            f"{human_duration((notice.at - notice.opened_at).total_seconds())} after it was opened. "
            "Nothing more to do.",
            "",
            f"It was: {f.get('message', '')}",
        ]
    else:
        head = {"opened": "", "worse": "GOT WORSE - ", "reminder": "STILL OPEN - "}.get(notice.event, "")
        lines += [f"{head}{f.get('severity', '').upper()} {title} on {_state(f)}", "", str(f.get("message", ""))]
        if notice.event == "worse":
            lines += ["", f"Severity rose from {notice.extra.get('was', '?')} to {f.get('severity')}."]
        if notice.event == "reminder":
            lines += ["", f"Open since {_when(notice.opened_at)}; this is a reminder, no new problem."]
    lines += ["", "Where"]
    for label, value in (
        ("Region", f.get("region")), ("Lock table", f.get("table")), ("Bucket", f.get("bucket")),
        ("Key", f.get("key")), ("Lock ID", f.get("lock_id")),
    ):
        if value:
            lines.append(f"  {label + ':':12} {value}")
    if d.get("who") or d.get("operation"):
        since = d.get("created", "?")
        lines.append(
            f"  {'Held by:':12} {d.get('who') or '?'} ({d.get('operation') or '?'}, Terraform {d.get('version') or '?'}) "
            f"since {since}"
        )
    if "stored_md5" in d:
        lines.append(f"  {'Stored MD5:':12} {d['stored_md5']}")
    if d.get("actual_md5"):
        lines.append(f"  {'Actual MD5:':12} {d['actual_md5']}")
    if "bucket_region" in d:
        lines.append(f"  {'Regions:':12} table in {d.get('table_region')}, bucket in {d['bucket_region']}")
    if notice.event not in ("resolved", "released") and (d.get("fix") or d.get("commands")):
        lines += ["", "What to do"]
        for i, step in enumerate(d.get("fix") or [], 1):
            lines.append(f"  {i}. {step}")
        text += prose() + printed(d.get("commands") or [], d.get("alternatives") or [], "  ")
    text += prose()
    footer = ["", "--", f"tfjanitor alert {notice.fingerprint} · {notice.event} {_when(notice.at)} · "
              "state contents are never included in alerts"]
    plain = "\n".join(text + footer) + "\n"
    links = console_links(f)
    with_links = text + (["", "Console"] + [f"  {label}: {url}" for label, url in links] if links else []) + footer
    return Email(subject(notice), "\n".join(with_links) + "\n", plain)
