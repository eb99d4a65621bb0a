"""Alert transitions as EventBridge events (pure: no AWS).

Every notice (opened, worse, reminder, resolved, released) becomes one ``PutEvents`` entry:
``source`` ``tfjanitor``, ``detail-type`` ``tfjanitor alert``, and a ``detail`` of
``{"event", "alert_id", "finding", ...}`` where ``finding`` is the finding's JSON (``account`` and
``region`` included), so a rule on a central bus can route the whole organisation's findings by
``detail.finding.severity``, ``detail.finding.kind`` or ``detail.finding.account``; ``stack`` names the
stack that sent it (its name, region, account and alias: ``AccountAlias``).

``notice_id`` is the transition's own id: delivery is at least once (a notice whose delivery failed
part-way is sent again), so a consumer that must not act twice keys on it.
"""

from __future__ import annotations

import json
from typing import Any

from tfjanitor.alerts.emails import Origin
from tfjanitor.alerts.lifecycle import Notice

SOURCE = "tfjanitor"
DETAIL_TYPE = "tfjanitor alert"
# EventBridge refuses an entry over 256 KB (Time, Source, DetailType, Detail and Resources, UTF-8). Untrusted
# fields are capped where they are parsed, so a finding stays far under this; the cut below is the backstop.
ENTRY_LIMIT = 256 * 1024
TIME_SIZE = 14  # what EventBridge counts for an entry's Time


def detail(notice: Notice, origin: Origin | None = None) -> dict[str, Any]:
    origin = origin or Origin()
    doc: dict[str, Any] = {
        "event": notice.event,
        "alert_id": notice.fingerprint,
        "finding": notice.finding,
        "notice_id": notice.id,
        "at": notice.at.isoformat(),
        "opened_at": notice.opened_at.isoformat(),
        "stack": {"name": origin.stack, "region": origin.region, "account": origin.account,
                  "account_alias": origin.account_alias},
    }
    if notice.resolution:
        doc["resolution"] = notice.resolution
    return doc


def entry_size(entry: dict[str, Any]) -> int:
    """The size EventBridge counts for one ``PutEvents`` entry."""
    size = TIME_SIZE if "Time" in entry else 0
    for name in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(name, "")).encode("utf-8"))
    return size + sum(len(r.encode("utf-8")) for r in entry.get("Resources", []))


def entry(notice: Notice, origin: Origin | None = None) -> dict[str, Any]:
    """The ``PutEvents`` entry of one notice (without ``EventBusName``: the bus adds it)."""
    doc = detail(notice, origin)
    out = {"Source": SOURCE, "DetailType": DETAIL_TYPE, "Time": notice.at,
           "Detail": json.dumps(doc, ensure_ascii=False, default=str)}
    if entry_size(out) >= ENTRY_LIMIT:  # never reached by a capped finding: the event still goes, without details
        doc["finding"] = {**notice.finding, "details": {"truncated": "over EventBridge's 256 KB: see the email"}}
        out["Detail"] = json.dumps(doc, ensure_ascii=False, default=str)
    return out
