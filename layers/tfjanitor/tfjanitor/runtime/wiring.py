"""Wiring used by the functions and the local runner: settings in, adapters built, one call out."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone

from tfjanitor.alerts.delivery import Delivery, Notifier, deliver
from tfjanitor.alerts.emails import Origin
from tfjanitor.alerts.lifecycle import AlertRecord, Notice, covered_scopes, process_findings
from tfjanitor.alerts.store import DynamoAlertStore
from tfjanitor.aws.backend import LockWriter
from tfjanitor.aws.bus import EventBus
from tfjanitor.aws.history import History
from tfjanitor.aws.session import LAMBDA_TIMEOUTS, AwsError, AwsSession
from tfjanitor.aws.topic import Topic
from tfjanitor.catalog import Check, found_by
from tfjanitor.durations import Deadline
from tfjanitor.model import ScanError, ScanResult
from tfjanitor.release.auto import auto_release
from tfjanitor.runtime.lease import Lease, held_until
from tfjanitor.runtime.settings import AuditorSettings, FunctionSettings, SweeperSettings
from tfjanitor.scan.auditor import Auditor, AuditRequest
from tfjanitor.scan.stream import StreamMonitor
from tfjanitor.scan.sweeper import Sweeper, SweepRequest

# Seconds of a Lambda run kept after its notices are sent: a call started just before may take one whole attempt
# (no attempt is sent later: AwsSession.run_until), then the run publishes its metrics and returns.
AFTER_DELIVERY = sum(LAMBDA_TIMEOUTS) + 1.0


def delivery_deadline(deadline: Deadline | None) -> Deadline | None:
    """Until when a run sends notices: the reserve its deadline kept for alerts and metrics, all but
    :data:`AFTER_DELIVERY` (a sweep that used all its own time still sends its notices)."""
    return None if deadline is None else deadline.later(deadline.reserve - AFTER_DELIVERY)


def origin(settings: FunctionSettings) -> Origin:
    """The stack every alert email, chat card and event names: its account (and alias), name and region, and
    the docs site its emails link into."""
    return Origin(
        stack=settings.stack_name,
        region=settings.region,
        account=settings.account_id,
        account_alias=settings.account_alias,
        docs_url=settings.docs_url,
    )


def alerting(settings: FunctionSettings, aws: AwsSession) -> tuple[DynamoAlertStore, Notifier] | tuple[None, None]:
    if not settings.alerts_enabled or settings.findings_table is None:  # alerts_enabled: a findings table too
        return None, None
    store = DynamoAlertStore(aws, settings.region, settings.findings_table)
    # A topic named by AlertTopicArn, or the bus EventBusArn names, may live in another region: send where it is.
    topics = [Topic(aws, arn.split(":")[3] or settings.region, arn) for arn in settings.alert_topic_arns]
    bus = EventBus(aws, settings.event_bus_arn) if settings.event_bus_arn else None
    return store, Notifier(topics, bus, origin(settings))


def _alert(
    result: ScanResult,
    settings: FunctionSettings,
    aws: AwsSession,
    now: datetime,
    check: Check,
    then: Callable[[DynamoAlertStore], list[Notice]] | None = None,
    recheck: Callable[[list[AlertRecord]], ScanResult] | None = None,
    deadline: Deadline | None = None,
) -> Delivery:
    """Open / escalate / remind / resolve the alerts of ``check``'s kinds (the catalog says which: it sees them
    whole, so it may also close them; neither check closes the other's alerts), then send every pending
    notice (this run's and any an earlier run could not send) until the run's ``deadline``. With ``recheck``,
    the open alerts the check did not look at (lock files in a bucket it did not list whole) are looked at
    now, and reconciled too."""
    if settings.account_id:  # the stack's own account: on every finding (the CLI asks STS instead)
        result.set_account(settings.account_id)
    store, notifier = alerting(settings, aws)
    if store is None or notifier is None:
        return Delivery()
    kinds = set(found_by(check))
    until = delivery_deadline(deadline)  # transitions and deliveries share the time the sweep kept for them
    try:
        missed: list[AlertRecord] = []
        process_findings(
            result.findings,
            covered_scopes(result),
            store,
            now,
            settings.reminder_interval,
            resolvable_kinds=kinds,
            evidence_at=result.read_at,
            unverified={(u.table, u.bucket, u.key) for u in result.unverified},
            not_looked_at=missed,
            deadline=until,
        )
        if recheck is not None and missed:
            again = recheck(missed)
            if settings.account_id:
                again.set_account(settings.account_id)
            result.merge_recheck(again)
            process_findings(
                again.findings,
                covered_scopes(again),
                store,
                now,
                settings.reminder_interval,
                resolvable_kinds=kinds,
                evidence_at=again.read_at,
                deadline=until,
            )
        if then is not None:
            then(store)
    except AwsError as exc:
        if not exc.run_ending:  # else the run's time is up: the next run makes the rest of the transitions
            result.errors.append(
                ScanError("alerts", store.table, exc.code, f"alert lifecycle: {exc.operation} {exc.code}: {exc.message}")
            )
    return deliver(store, notifier, deadline=until)


def deliver_notices(settings: FunctionSettings, aws: AwsSession, deadline: Deadline | None = None) -> Delivery:
    """Send every pending notice (the stream monitor's, after each batch) until the run's ``deadline``;
    never raises."""
    store, notifier = alerting(settings, aws)
    if store is None or notifier is None:
        return Delivery()
    return deliver(store, notifier, deadline=delivery_deadline(deadline))


def one_at_a_time(
    name: str,
    settings: FunctionSettings,
    aws: AwsSession,
    now: datetime,
    deadline: Deadline | None,
    run: Callable[[], tuple[ScanResult, Delivery]],
    tables: list[str],
) -> tuple[ScanResult, Delivery]:
    """``run`` under the function's lease (runtime/lease.py): a run that finds another still running is skipped."""
    if not settings.findings_table:
        return run()
    lease = Lease.of(aws, settings.region, settings.findings_table, name)
    try:
        taken = lease.take(now, held_until(now, deadline.ends_in() if deadline is not None else None))
    except AwsError:
        taken = True  # the table cannot be written: run anyway (its alerts will say why), never skip blindly
        lease.token = ""
    if not taken:
        skipped = ScanResult(region=settings.region, tables=list(tables), buckets=[], read_at=now)
        skipped.skipped = f"another {name} run holds the lease: it is still running"
        return skipped, Delivery()
    try:
        return run()
    finally:
        with contextlib.suppress(AwsError):  # else it runs out at that run's end
            lease.give_back()


def sweep_and_alert(
    settings: SweeperSettings,
    aws: AwsSession,
    now: datetime | None = None,
    sweep_id: str | None = None,
    deadline: Deadline | None = None,
) -> tuple[ScanResult, Delivery]:
    """One scheduled sweep: find, alert, and (opt-in) release stale locks. With a ``deadline``, the
    sweep stops in time (incomplete: it resolves nothing) and still alerts. One sweep at a time (its lease)."""
    now = now or datetime.now(timezone.utc)
    return one_at_a_time(
        "sweeper", settings, aws, now, deadline, lambda: _sweep_and_alert(settings, aws, now, sweep_id, deadline), settings.lock_tables
    )


def _sweep_and_alert(
    settings: SweeperSettings, aws: AwsSession, now: datetime, sweep_id: str | None, deadline: Deadline | None
) -> tuple[ScanResult, Delivery]:
    request = SweepRequest(
        settings.region,
        settings.lock_tables,
        settings.extra_buckets,
        settings.policy,
        deadline,
        findings_table=settings.findings_table,
    )
    sweeper = Sweeper(aws, now=now)
    result = sweeper.sweep(request)

    def recheck(missed: list[AlertRecord]) -> ScanResult:
        """The lock files open alerts are about that this sweep's reads did not cover (scan/buckets.py)."""
        keys = frozenset((str(r.finding.get("bucket")), str(r.finding.get("key"))) for r in missed)
        return sweeper.sweep(replace(request, tables=[], buckets=[], recheck=keys))

    def release_stale(store: DynamoAlertStore) -> list[Notice]:
        if not settings.auto_release:
            return []
        released, decisions = auto_release(
            result.findings,
            store,
            LockWriter(aws, settings.region),
            settings.release_policy,
            now,
            sweep_id=sweep_id or now.isoformat(),
        )
        result.releases = [
            {
                "lock_id": d.observed.lock_id,
                "key": d.observed.key,
                "source": d.observed.source,
                "release": d.release,
                "rule": d.rule,
                **d.details,
            }
            for d in decisions
        ]
        return released

    return result, _alert(result, settings, aws, now, Check.SWEEP, then=release_stale, recheck=recheck, deadline=deadline)


def audit_and_alert(
    settings: AuditorSettings, aws: AwsSession, now: datetime | None = None, deadline: Deadline | None = None
) -> tuple[ScanResult, Delivery]:
    """One scheduled audit (no state object is read): region, topology and posture findings, then
    the same alert lifecycle as the sweeper's, opening and closing only the audit's kinds. One at a time."""
    now = now or datetime.now(timezone.utc)
    return one_at_a_time(
        "auditor", settings, aws, now, deadline, lambda: _audit_and_alert(settings, aws, now, deadline), settings.lock_tables
    )


def _audit_and_alert(
    settings: AuditorSettings, aws: AwsSession, now: datetime, deadline: Deadline | None
) -> tuple[ScanResult, Delivery]:
    request = SweepRequest(settings.region, settings.lock_tables, settings.extra_buckets, deadline=deadline)
    streams = [settings.lock_table_stream_arn] if settings.lock_table_stream_arn else []
    result = Sweeper(aws, now=now).survey(request)
    Auditor(aws, now=now).audit(
        AuditRequest(settings.region, settings.lock_tables, settings.peer_regions, streams), result, deadline
    )  # a survey judges nothing: every finding is one the audit finds
    return result, _alert(result, settings, aws, now, Check.AUDIT, deadline=deadline)


def stream_monitor(settings: FunctionSettings, aws: AwsSession, log: object = None) -> StreamMonitor:
    """The monitor queues its notices in the findings table; :func:`deliver_notices` sends them. It keeps each
    state's digest writes and hold times there too (aws.history)."""
    store, _ = alerting(settings, aws)
    life = History(aws, settings.region, settings.findings_table) if settings.findings_table else None
    return StreamMonitor(checker=Sweeper(aws), store=store, log=log, life=life)
