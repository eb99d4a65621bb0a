"""Several regions of one account, read concurrently: the CLI's ``--region`` (repeatable),
``--all-regions`` and ``--discover-tables``.

Each region is read by its own sweep (and audit) in a session of its own; a region that cannot be
read (disabled, unreachable, access denied) is an error of that region, never the end of the scan.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tfjanitor.aws.identity import discover_lock_tables
from tfjanitor.aws.session import AwsError, AwsSession
from tfjanitor.durations import Deadline
from tfjanitor.model import ScanError, ScanResult, StalePolicy, Stats
from tfjanitor.scan.auditor import Auditor, AuditRequest
from tfjanitor.scan.sweeper import Sweeper, SweepRequest, describe_error

REGION_WORKERS = 4  # regions read at once (each also reads its buckets a few at a time)


@dataclass(frozen=True)
class FleetRequest:
    regions: list[str]
    tables: list[str] = field(default_factory=list)
    buckets: list[str] = field(default_factory=list)
    discover_tables: bool = False
    peer_regions: list[str] = field(default_factory=list)
    policy: StalePolicy = field(default_factory=StalePolicy)
    audit: bool = True
    deadline: Deadline | None = None
    profile: str | None = None  # the CLI's --profile: fix commands carry it
    findings_table: str | None = None  # read in each region scanned (the stack's table there)
    all_lockfiles: bool = False


def scan_region(aws: AwsSession, region: str, request: FleetRequest, account: str | None = None) -> ScanResult:
    """One region: its lock tables (named, and discovered by key schema), swept and audited."""
    tables = list(dict.fromkeys(request.tables))
    unknown: list[ScanError] = []
    if request.discover_tables:
        try:
            found, undescribed = discover_lock_tables(aws, region)
        except AwsError as exc:
            if not tables:
                result = ScanResult(region=region, tables=tables, buckets=[])
                result.errors.append(
                    ScanError(
                        "discover_tables", region, exc.code, describe_error(exc, "region", region) + ": its lock tables are unknown"
                    )
                )
                return _stamp(result, account, several=True)
            found, undescribed = [], []  # the named tables are still swept; the others are unknown
            unknown.append(
                ScanError(
                    "discover_tables",
                    region,
                    exc.code,
                    describe_error(exc, "region", region) + ": lock tables other than those named are unknown",
                )
            )
        tables += [t for t in found if t not in tables]
        unknown += [
            ScanError(
                "discover_tables",
                name,
                exc.code,
                describe_error(exc, "table", name).replace("its checks did not run", "whether it is a lock table is unknown"),
            )
            for name, exc in undescribed
            if name not in tables
        ]
    sweep = SweepRequest(
        region,
        tables,
        list(request.buckets),
        request.policy,
        request.deadline,
        request.profile,
        request.findings_table,
        request.all_lockfiles,
        for_audit=request.audit,
    )
    result = Sweeper(aws).sweep(sweep)
    result.errors += unknown
    if request.audit:
        peers = [p for p in request.peer_regions if p != region]
        Auditor(aws).audit(AuditRequest(region, tables, peers, profile=request.profile), result, request.deadline)
    return _stamp(result, account, several=len(request.regions) > 1)


def _stamp(result: ScanResult, account: str | None, several: bool) -> ScanResult:
    result.set_account(account)
    if several:
        result.errors = [dataclasses.replace(e, region=result.region) for e in result.errors]
    return result


def scan_regions(aws: AwsSession, request: FleetRequest, account: str | None = None) -> ScanResult:
    """Every region of ``request``, at most :data:`REGION_WORKERS` at a time, as one result."""
    regions = list(dict.fromkeys(request.regions))
    if len(regions) == 1:
        return scan_region(aws, regions[0], request, account)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=min(REGION_WORKERS, len(regions))) as pool:
        results = list(pool.map(lambda r: scan_region(aws.fork(), r, request, account), regions))
    merged = ScanResult(region=regions[0], tables=[], buckets=[], account=account, regions=regions)
    for r in results:
        merged.tables += [t for t in r.tables if t not in merged.tables]
        merged.buckets += [b for b in r.buckets if b not in merged.buckets]
        merged.findings += r.findings
        merged.errors += r.errors
        merged.unverified += r.unverified
        merged.locks += r.locks
        _add(merged.stats, r.stats, r.region)
    merged.stats.critical_path_calls = _critical_path([r.stats.critical_path_calls for r in results])
    merged.stats.duration_seconds = time.monotonic() - started
    merged.findings.sort(key=lambda f: (-f.severity.rank, f.kind.value, f.region, f.bucket or "", f.key or ""))
    return merged


def _add(total: Stats, part: Stats, region: str) -> None:
    for f in dataclasses.fields(Stats):
        value = getattr(part, f.name)
        if f.name == "tables":
            total.tables.update({f"{region}/{name}": t for name, t in value.items()})
        elif f.name == "api_calls":
            total.api_calls.update(value)
        elif f.name == "bucket_reads":
            total.bucket_reads.update({f"{region}/{name}": how for name, how in value.items()})
        elif isinstance(value, (int, float)) and f.name != "duration_seconds":
            setattr(total, f.name, getattr(total, f.name) + value)


def _critical_path(per_region: list[int]) -> int:
    """Regions are read :data:`REGION_WORKERS` at a time, each taken by the first worker free: the longest chain of
    calls is that of the worker that finishes last."""
    workers = [0] * min(REGION_WORKERS, len(per_region))
    for calls in per_region:
        workers[workers.index(min(workers))] += calls
    return max(workers, default=0)
