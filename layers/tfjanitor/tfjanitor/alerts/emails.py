"""Alert emails a stranger can act on (pure: no AWS, no state contents).

Each notice renders to a subject that fits a mail client's list view (SNS allows 100 characters), a
body with links, and the same body without links (what subscribers other than email get).

A body opens with what happened and one line naming the AWS account (ID and alias), the stack and
the region: someone who watches many accounts knows at once which one it is. Then, in this order:
what is wrong (the finding's sentence); why it matters (what fails next, for whom); what to do (the
fix, each command on a line of its own); how to check it worked (``tfjanitor scan`` and, for one
state, ``terraform plan``); where to look (the place, console links, the stack's dashboard and the
section on the finding's kind of the docs page of kinds). Resolved and released notices keep that order where it
applies. What an email says of a kind beyond the finding (its title, why it matters, which check finds it, whether
it is about one state) is the kind's entry in ``tfjanitor.catalog``.

Lock fields and keys are hostile input: every line of prose goes through ``untrusted.shown`` (control
characters escaped, capped) and the subject through ``untrusted.subject_text`` (one ASCII line). Fix
commands are printed one per line exactly as ``commands.shell_line`` quoted them (never escaped: a
quoted command line holds no control character, and escaping would change what it runs); a line over
``budgets.COMMAND_BUDGET`` is replaced by the tfjanitor line that does the same by reading the lock
itself (:func:`fit_commands`), and the email says so. A body stays within ``budgets.EMAIL_BUDGET``:
:func:`render` cuts prose level by level (``budgets.LEVELS``) down to the compact form.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from tfjanitor import catalog
from tfjanitor.alerts.budgets import COMMAND_BUDGET, COMPACT, COMPACT_COMMAND_BUDGET, EMAIL_BUDGET, LEVELS, LINK_BUDGET, Level, utf8
from tfjanitor.alerts.lifecycle import Notice
from tfjanitor.catalog import DOCS_URL, Check
from tfjanitor.commands import aws_context, option, printed, representable, s3api_objects, shell_line, unlock_command
from tfjanitor.durations import human_duration
from tfjanitor.untrusted import LINE_LIMIT, shown, subject_text

SUBJECT_LIMIT = 100
_EVENTS = {"opened": "", "worse": "WORSE: ", "reminder": "Still open: ", "resolved": "RESOLVED: "}


@dataclass(frozen=True)
class Origin:
    """The stack that sends the alerts: where they come from, named in every email."""

    stack: str | None = None
    region: str | None = None  # the stack's region (its dashboard is "<stack>-<region>")
    account: str | None = None  # the 12-digit account the stack runs in
    account_alias: str | None = None  # the name the team knows the account by (the AccountAlias parameter)
    docs_url: str = DOCS_URL  # the docs site every email links into (the DocsUrl parameter), ending in "/"

    @property
    def dashboard(self) -> str | None:
        return f"{self.stack}-{self.region}" if self.stack and self.region else None


@dataclass(frozen=True)
class Email:
    subject: str
    body: str  # with links (the SNS "email" message)
    plain: str  # link-free (what a queue subscriber shows as text)
    level: int = 0  # the budgets.LEVELS entry it was rendered at

    @property
    def compact(self) -> bool:
        return self.level >= COMPACT


def _state(f: dict[str, Any]) -> str:
    if f.get("bucket") and f.get("key"):
        return f"{f['bucket']}/{f['key']}"
    if f.get("bucket"):
        return f"bucket {f['bucket']}"
    return str(f.get("details", {}).get("item_lock_id") or f.get("table") or "-")


def _fit(prefix: str, state: str, suffix: str) -> str:
    room = SUBJECT_LIMIT - 1 - len(prefix) - len(suffix)  # SNS: "less than 100 characters"
    # The end of a key names the state best: keep the tail, escaped and made ASCII, then cut from the left.
    state = subject_text(state[-4 * SUBJECT_LIMIT :], 64 * SUBJECT_LIMIT)
    if len(state) > room:
        state = "..." + state[-(room - 3) :]
    return subject_text(f"{prefix}{state}{suffix}", SUBJECT_LIMIT - 1)


def subject(notice: Notice) -> str:
    f = notice.finding
    kind = f.get("kind", "")
    title = catalog.title(kind)
    severity = f.get("severity", "warning").upper()
    details = f.get("details", {})
    if notice.event == "resolved":
        how_long = f" after {human_duration((notice.at - notice.opened_at).total_seconds())}"
        return _fit(f"[tfjanitor] RESOLVED {title}: ", _state(f), how_long)
    if notice.event == "released":
        return _fit(f"[tfjanitor] RELEASED {title.lower()}: ", _state(f), f" (held {human_duration(details.get('age_seconds', 0))})")
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
    elif f.get("kind") in ("stale_lock", "interrupted_write") and bucket and key:
        item_id = f"{bucket}/{key}"
    elif f.get("kind") == "malformed_item":
        item_id = details.get("item_lock_id")
    if table and item_id:
        links.append(
            (
                "Lock table item",
                f"https://{region}.console.aws.amazon.com/dynamodbv2/home?region={region}#edit-item?"
                f"table={quote(table, safe='')}&itemMode=2&pk={quote(item_id, safe='')}&sk=&route=ROUTE_ITEM_EXPLORER",
            )
        )
    if bucket and key:
        obj_key = key + (".tflock" if f.get("kind") == "stale_lockfile" else "")
        links.append(
            (
                "State object" if f.get("kind") != "stale_lockfile" else "Lock object",
                f"https://s3.console.aws.amazon.com/s3/object/{quote(bucket, safe='')}?region={region}"
                f"&bucketType=general&prefix={quote(obj_key, safe='')}",
            )
        )
        links.append(
            (
                "Object versions",
                f"https://s3.console.aws.amazon.com/s3/buckets/{quote(bucket, safe='')}?region={region}"
                f"&bucketType=general&prefix={quote(key, safe='')}&showversions=true",
            )
        )
    elif bucket:
        links.append(("Bucket", f"https://s3.console.aws.amazon.com/s3/buckets/{quote(bucket, safe='')}"))
    return links


def dashboard_link(origin: Origin) -> str | None:
    """The stack's CloudWatch dashboard (the template names it "<stack>-<region>")."""
    if origin.dashboard is None:
        return None
    return (
        f"https://{origin.region}.console.aws.amazon.com/cloudwatch/home?region={origin.region}"
        f"#dashboards:name={quote(origin.dashboard, safe='')}"
    )


def docs_link(kind: str, origin: Origin) -> str:
    """The section on ``kind`` of the docs page of kinds, on the docs site the stack links to."""
    return catalog.docs_link(kind, origin.docs_url)


def check_commands(f: dict[str, Any]) -> list[list[str]]:
    """How to check the fix worked: the scan that finds this kind (it no longer lists the finding) and, for
    one state, a terraform plan (it takes the lock and checks the digest)."""
    kind, table, bucket = f.get("kind", ""), f.get("table"), f.get("bucket")
    about = catalog.entry(kind)
    scan = ["tfjanitor", "scan", *aws_context(str(f.get("region") or ""))]
    scan += option("--table", table) if table else ["--discover-tables", *(option("--bucket", bucket) if bucket else [])]
    if kind == "split_brain_lock":
        for peer in sorted(f.get("details", {}).get("regions") or {}):
            if peer != f.get("region"):
                scan += option("--peer-region", peer)
    if about is None or about.check is not Check.AUDIT:
        scan.append("--skip-audit")
    commands = [scan, ["terraform", "plan"]] if about is not None and about.one_state else [scan]
    return [argv for argv in commands if representable(argv)]


LOCK_KINDS = ("stale_lock", "stale_lockfile")  # kinds whose whole fix is releasing the lock


def reading_commands(f: dict[str, Any], budget: int = COMMAND_BUDGET) -> list[str]:
    """The fix as one tfjanitor line that reads what it needs itself: for a stale lock, ``tfjanitor unlock``
    without ``--id`` (it shows the lock it finds and asks before it deletes exactly that one); else, or if
    even that line is over ``budget``, the scan that finds this finding and prints its fix in full."""
    bucket, key = f.get("bucket"), f.get("key")
    if f.get("kind") in LOCK_KINDS and bucket and key:
        table = f.get("table") if f.get("kind") == "stale_lock" else None
        argv = unlock_command(str(f.get("region") or ""), None, str(bucket), str(key), None, str(table) if table else None)
        if representable(argv) and utf8(line := shell_line(argv)) <= budget:
            return [line]
    return [shell_line(argv) for argv in check_commands(f) if argv[0] == "tfjanitor"]


def fit_commands(f: dict[str, Any], budget: int = COMMAND_BUDGET) -> dict[str, Any]:
    """``f`` with every command line within ``budget`` bytes: a recommended fix with a longer line becomes
    :func:`reading_commands` (a fix runs in order: never half of it), an alternative with one is left out.
    What changed is kept in ``details.commands_fitted`` (``replaced``: lines, ``left_out``: alternatives, and
    the ``longest`` line in bytes), so every destination can say so. ``f`` itself is never changed."""
    d = f.get("details") or {}
    commands = [str(c) for c in d.get("commands") or []]
    alternatives = list(d.get("alternatives") or [])
    too_long = [c for c in commands if utf8(c) > budget]
    kept = [a for a in alternatives if all(utf8(str(c)) <= budget for c in a.get("commands", []))]
    if not too_long and len(kept) == len(alternatives):
        return f
    lines = commands + [str(c) for a in alternatives for c in a.get("commands", [])]
    details = {
        **d,
        "alternatives": kept,
        "commands_fitted": {
            "replaced": len(too_long),
            "left_out": len(alternatives) - len(kept),
            "budget": budget,
            "longest": max(map(utf8, lines), default=0),
        },
    }
    if too_long:
        details["commands"] = reading_commands(f, budget)
    return {**f, "details": details}


def compact_finding(f: dict[str, Any]) -> dict[str, Any]:
    """The finding as the compact form shows it: the fix as the one :func:`reading_commands` line."""
    d = f.get("details") or {}
    lines = [str(c) for c in d.get("commands") or []]
    alternatives = d.get("alternatives") or []
    details = {
        **d,
        "commands": reading_commands(f, COMPACT_COMMAND_BUDGET) if lines or alternatives else [],
        "alternatives": [],
        "commands_fitted": {
            "compact": True,
            "replaced": len(lines),
            "left_out": len(alternatives),
            "budget": COMPACT_COMMAND_BUDGET,
            "longest": max((utf8(str(c)) for c in lines), default=0),
        },
    }
    return {**f, "details": details}


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _origin_line(f: dict[str, Any], origin: Origin) -> str:
    account = f.get("account") or origin.account
    alias = f" ({origin.account_alias})" if origin.account_alias and account == origin.account else ""
    parts = [f"Account {account}{alias}" if account else "Account unknown"]
    if origin.stack:
        parts.append(f"stack {origin.stack}")
    parts.append(f"region {f.get('region') or origin.region or '?'}")
    return ", ".join(parts)


def _facts(f: dict[str, Any]) -> list[str]:
    d = f.get("details", {})
    lines = []
    for label, value in (
        ("Lock table", f.get("table")),
        ("Bucket", f.get("bucket")),
        ("Key", f.get("key")),
        ("Lock ID", f.get("lock_id")),
    ):
        if value:
            lines.append(f"  {label + ':':12} {value}")
    if d.get("who") or d.get("operation"):
        lines.append(
            f"  {'Held by:':12} {d.get('who') or '?'} ({d.get('operation') or '?'}, Terraform {d.get('version') or '?'}) "
            f"since {d.get('created', '?')}"
        )
    if "stored_md5" in d:
        lines.append(f"  {'Stored MD5:':12} {d['stored_md5']}")
    if d.get("actual_md5"):
        lines.append(f"  {'Actual MD5:':12} {d['actual_md5']}")
    if "bucket_region" in d:
        lines.append(f"  {'Regions:':12} table in {d.get('table_region') or f.get('region')}, bucket in {d['bucket_region']}")
    return lines


class _Text:
    """Lines of an email: prose escaped and cut (to the level's limits) as it is added, commands kept
    exactly as quoted."""

    def __init__(self, level: Level = LEVELS[0]) -> None:
        self.lines: list[str] = []
        self.level = level

    def say(self, *lines: str) -> None:
        """The essentials: what happened, what is wrong, what to do."""
        self.lines += [shown(line, self.level.essential) for line in lines]

    def tell(self, *lines: str) -> None:
        """The rest: facts, the lock as stored; cut first."""
        self.lines += [shown(line, self.level.detail) for line in lines]

    def run(self, commands: list[str], indent: str = "    ") -> None:
        self.lines += [f"{indent}{line}" for line in commands]

    def section(self, heading: str) -> None:
        self.lines += ["", heading]


def _how_to_check(text: _Text, f: dict[str, Any]) -> None:
    about = catalog.entry(f.get("kind", ""))
    checks = check_commands(f)
    scan = [shell_line(argv) for argv in checks if argv[0] == "tfjanitor"]
    plan = [shell_line(argv) for argv in checks if argv[0] == "terraform"]
    text.section("How to check it worked")
    if scan:
        text.say("  The scan no longer lists it (exit 0 once nothing else is wrong):")
        text.run(scan)
    if plan:
        text.say(
            "  From the working directory of the configuration whose backend has this bucket and key (select its "
            "workspace first), a plan takes the lock and checks the digest:"
        )
        text.run(plan)
    audit = about is not None and about.check is Check.AUDIT
    who = "auditor at its next run (AuditSchedule)" if audit else "sweeper at its next sweep"
    text.say(f"  The stack's {who} sees it too and sends a RESOLVED email.")


def _released(text: _Text, notice: Notice) -> None:
    f, d = notice.finding, notice.finding.get("details", {})
    what = "lock item" if f.get("kind") == "stale_lock" else "lock object (.tflock)"
    holder = d.get("who") or "the holder"
    text.section("What happened")
    text.say(
        f"  tfjanitor released the stale {what} {f.get('lock_id')} held by {d.get('who') or '?'} "
        f"({d.get('operation') or '?'}, Terraform {d.get('version') or '?'}) since {d.get('created', '?')}, on "
        f"{_when(notice.at)}, by the rule: {notice.extra.get('rule', '')}. Only the lock was deleted, and only because "
        "it was still byte-for-byte the lock observed; digest items and the state object were not touched."
    )
    text.section("Why it matters")
    text.say(
        "  If that run is still alive, it will fail to write its state: it no longer holds the lock, so its "
        "next state write or its unlock fails, and what it applied may be missing from the state."
    )
    text.section("What to do")
    text.say(
        f"  1. Look for a terraform process or CI job of {holder} started around {d.get('created', '?')} (the "
        "lock's Who is <os user>@<hostname>).",
        "  2. If it is still running, stop it and run it again.",
        "  3. If in doubt, compare the state's versions:",
    )
    versions = shell_line(
        s3api_objects("list-object-versions", str(f.get("region")), None, {"Bucket": f.get("bucket"), "Prefix": f.get("key")})
    )
    if utf8(versions) <= (COMPACT_COMMAND_BUDGET if text.level.compact else COMMAND_BUDGET):
        text.run([versions], "       ")
    else:
        text.say(
            f"     (the command is a line of {utf8(versions):,} bytes with this key, too long to print here: "
            "the state's Object versions in the S3 console show them)"
        )
    _how_to_check(text, f)


def _resolved(text: _Text, notice: Notice) -> None:
    f = notice.finding
    text.section("What changed")
    text.say(
        f"  Resolved {_when(notice.at)} ({notice.resolution or 'no longer seen'}), "
        f"{human_duration((notice.at - notice.opened_at).total_seconds())} after it was opened.",
        f"  It was: {f.get('message', '')}",
    )
    text.section("What to do")
    text.say("  Nothing more to do: the alert is closed. If it happens again, a new alert opens.")


def _open(text: _Text, notice: Notice) -> None:
    f, d = notice.finding, notice.finding.get("details", {})
    text.section("What is wrong")
    text.say(f"  {f.get('message', '')}")
    text.section("Why it matters")
    about = catalog.entry(f.get("kind", ""))
    text.say(f"  {about.why if about else 'The docs page on this kind (below) says why.'}")
    text.section("What to do")
    text.say(*(f"  {i}. {step}" for i, step in enumerate(d.get("fix") or [], 1)))
    text.lines += printed(d.get("commands") or [], d.get("alternatives") or [], "  ")
    _fitted_note(text, d)
    if not (d.get("fix") or d.get("commands") or d.get("alternatives")):
        text.say("  The docs page on this kind (below) says how to fix it.")
    _how_to_check(text, f)


def _fitted_note(text: _Text, d: dict[str, Any]) -> None:
    """Say which commands this email does not print, and what the line printed instead does."""
    fitted = d.get("commands_fitted") or {}
    first = next(iter(d.get("commands") or []), "")
    how = (
        "tfjanitor unlock reads the lock itself: it shows the lock it finds and asks before it deletes it "
        "(only if it is still that lock), so check it is the one this alert is about"
        if str(first).startswith("tfjanitor unlock ")
        else "the tfjanitor scan above reads the table itself and prints the whole fix"
    )
    if fitted.get("compact"):
        if first:
            text.say(f"  (This short form prints the fix as that one line; {how}.)")
        return
    if fitted.get("replaced"):
        text.say(
            f"  (The fix's own command{'s' * (fitted['replaced'] > 1)} would be a line of "
            f"{fitted.get('longest', 0):,} bytes here, too long to print safely: the lock's text is escaped to "
            f"paste exactly. Instead, {how}.)"
        )
    if fitted.get("left_out"):
        n = fitted["left_out"]
        text.say(
            f"  ({n} other way{'s' * (n > 1)} to fix it {'are' if n > 1 else 'is'} left out here: "
            f"{'their' if n > 1 else 'its'} commands are too long for this message. tfjanitor scan prints "
            f"{'them' if n > 1 else 'it'}.)"
        )


def render(notice: Notice, origin: Origin | None = None, level: int = 0) -> Email:
    """The email of ``notice``: the first of ``budgets.LEVELS`` from ``level`` on whose body and link-free
    copy fit ``budgets.EMAIL_BUDGET`` (the compact form at the latest: it always fits)."""
    origin = origin or Origin()
    fitted = replace(notice, finding=fit_commands(notice.finding))
    for index in range(min(max(level, 0), COMPACT), COMPACT + 1):
        email = _render(fitted, origin, index)
        if utf8(email.body) <= EMAIL_BUDGET and utf8(email.plain) <= EMAIL_BUDGET:
            break
    return email


def _render(notice: Notice, origin: Origin, index: int) -> Email:
    level = LEVELS[index]
    if level.compact:
        notice = replace(notice, finding=compact_finding(notice.finding))
    f = notice.finding
    kind = f.get("kind", "")
    title = catalog.title(kind)
    text = _Text(level)
    if notice.event == "released":
        text.say(f"RELEASED: {title.lower()} on {_state(f)}", _origin_line(f, origin))
        _short_form(text)
        _released(text, notice)
    elif notice.event == "resolved":
        text.say(f"RESOLVED: {title} on {_state(f)}", _origin_line(f, origin))
        _short_form(text)
        _resolved(text, notice)
    else:
        head = {"opened": "", "worse": "GOT WORSE - ", "reminder": "STILL OPEN - "}.get(notice.event, "")
        text.say(f"{head}{f.get('severity', '').upper()} {title} on {_state(f)}", _origin_line(f, origin))
        _short_form(text)
        if notice.event == "worse":
            text.say(f"Severity rose from {notice.extra.get('was', '?')} to {f.get('severity')}.")
        if notice.event == "reminder":
            text.say(f"Open since {_when(notice.opened_at)}; this is a reminder, no new problem.")
        _open(text, notice)
    text.section("Where to look")
    text.tell(*_facts(f))
    if notice.event == "released" and not level.compact:
        text.tell(f"  {'Lock info:':12} {f.get('details', {}).get('raw', '')} (recorded in the findings table)")
    # Links in the email; the link-free text names the same places. A link too long to survive a mail
    # scanner is left out (the facts above name the place); the compact form keeps only the stack's own.
    dashboard = dashboard_link(origin)
    links = [
        *([("Dashboard", dashboard)] if dashboard else []),
        *([] if level.compact else console_links(f)),
        (f"About {kind}", docs_link(kind, origin)),
    ]
    names = [f"  {'Dashboard:':12} {origin.dashboard} (CloudWatch, {origin.region})"] if origin.dashboard else []
    names.append(f"  {'About it:':12} the tfjanitor docs, page Finding kinds, section {kind}")
    footer = [
        "",
        "--",
        f"tfjanitor alert {notice.fingerprint} · {notice.event} {_when(notice.at)} · state contents are never included in alerts",
    ]
    linked = [
        shown(f"  {label}: {url}", LINE_LIMIT)
        if len(url) <= LINK_BUDGET
        else f"  {label}: link left out ({len(url):,} characters, too long to survive mail scanners)"
        for label, url in links
    ]
    body = text.lines + linked + footer
    plain = text.lines + [shown(line, level.detail) for line in names] + footer
    return Email(subject(notice), "\n".join(body) + "\n", "\n".join(plain) + "\n", index)


def _short_form(text: _Text) -> None:
    if text.level.compact:
        text.say(
            "This is the short form of this alert: the full one would not fit in one message. Every value is "
            "cut short, and tfjanitor scan (below) shows the finding and its fix in full."
        )
