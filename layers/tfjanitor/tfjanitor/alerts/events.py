"""Alert transitions as EventBridge events (pure: no AWS).

Every notice (opened, worse, reminder, resolved, released) becomes one ``PutEvents`` entry:
``source`` ``tfjanitor``, ``detail-type`` ``tfjanitor alert``, and a ``detail`` of
``{"event", "alert_id", "finding", ...}`` where ``finding`` is the finding's JSON (``account`` and
``region`` included), so a rule on a central bus can route the whole organisation's findings by
``detail.finding.severity``, ``detail.finding.kind`` or ``detail.finding.account``; ``stack`` names the
stack that sent it (its name, region, account and alias: ``AccountAlias``); ``about`` the finding's kind as
people read it (``title``) and its section of the docs page of kinds (``docs``), from ``tfjanitor.catalog``.

``notice_id`` is the transition's own id: delivery is at least once (a notice whose delivery failed
part-way is sent again), so a consumer that must not act twice keys on it.

An entry stays within ``budgets.EVENT_BUDGET`` (a quarter of what EventBridge accepts): commands are the
email's (``emails.fit_commands``), and a finding too large anyway goes without its details but what to do
(``details.truncated`` says so), or in its compact form.
"""

from __future__ import annotations

import json
from typing import Any

from tfjanitor import catalog
from tfjanitor.alerts.budgets import EVENT_BUDGET, EVENT_LIMIT, utf8
from tfjanitor.alerts.emails import Origin, compact_finding, fit_commands
from tfjanitor.alerts.lifecycle import Notice
from tfjanitor.untrusted import FIELD_LIMIT, cap

SOURCE = "tfjanitor"
DETAIL_TYPE = "tfjanitor alert"
ENTRY_LIMIT = EVENT_LIMIT  # what EventBridge refuses beyond (budgets.py says how it counts)
TIME_SIZE = 14  # what EventBridge counts for an entry's Time
_IDENTITY = ("kind", "severity", "region", "account", "table", "bucket", "key", "lock_id", "message")


def detail(notice: Notice, origin: Origin | None = None) -> dict[str, Any]:
    origin = origin or Origin()
    kind = str(notice.finding.get("kind", ""))
    doc: dict[str, Any] = {
        "event": notice.event,
        "alert_id": notice.fingerprint,
        "finding": fit_commands(notice.finding),
        "notice_id": notice.id,
        "at": notice.at.isoformat(),
        "opened_at": notice.opened_at.isoformat(),
        "stack": {"name": origin.stack, "region": origin.region, "account": origin.account, "account_alias": origin.account_alias},
        "about": {"title": catalog.title(kind), "docs": catalog.docs_link(kind, origin.docs_url)},
    }
    if notice.resolution:
        doc["resolution"] = notice.resolution
    return doc


def entry_size(entry: dict[str, Any]) -> int:
    """The size EventBridge counts for one ``PutEvents`` entry."""
    size = TIME_SIZE if "Time" in entry else 0
    for name in ("Source", "DetailType", "Detail"):
        size += utf8(str(entry.get(name, "")))
    return size + sum(utf8(r) for r in entry.get("Resources", []))


def _essentials(finding: dict[str, Any]) -> dict[str, Any]:
    """The finding without its details but what to do (each value cut to a field): where it is, what is
    wrong, the fix steps and commands (already within their budget)."""
    d = finding.get("details") or {}
    out = {k: cap(v) if isinstance(v, str) else v for k, v in finding.items() if k != "details"}
    out["details"] = {
        "truncated": f"over the event budget ({EVENT_BUDGET // 1024} KB): the email has every detail",
        "fix": [cap(str(step)) for step in d.get("fix") or []],
        "commands": d.get("commands") or [],
        "alternatives": d.get("alternatives") or [],
        **({"commands_fitted": d["commands_fitted"]} if "commands_fitted" in d else {}),
    }
    return out


def _compact(finding: dict[str, Any]) -> dict[str, Any]:
    """What a rule routes on (kind, severity, where) and the one tfjanitor line that shows the rest."""
    short = compact_finding(finding)
    out = {k: cap(finding[k], FIELD_LIMIT // 4) if isinstance(finding[k], str) else finding[k] for k in _IDENTITY if k in finding}
    out["details"] = {
        "truncated": "the compact form: every value cut short; tfjanitor scan shows the finding in full",
        "commands": short["details"]["commands"],
        "commands_fitted": short["details"]["commands_fitted"],
    }
    return out


def entry(notice: Notice, origin: Origin | None = None, compact: bool = False) -> dict[str, Any]:
    """The ``PutEvents`` entry of one notice (without ``EventBusName``: the bus adds it), within
    ``budgets.EVENT_BUDGET``: the finding whole, else its essentials, else (or if ``compact``) its compact form."""
    doc = detail(notice, origin)
    whole = doc["finding"]
    out: dict[str, Any] = {}
    for shape in ([] if compact else [lambda f: f, _essentials]) + [_compact]:
        doc["finding"] = shape(whole)
        out = {
            "Source": SOURCE,
            "DetailType": DETAIL_TYPE,
            "Time": notice.at,
            "Detail": json.dumps(doc, ensure_ascii=False, default=str),
        }
        if entry_size(out) <= EVENT_BUDGET:
            break
    return out
