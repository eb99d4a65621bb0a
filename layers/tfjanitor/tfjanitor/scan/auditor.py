"""The audit run: read posture and peer regions through aws/posture.py, judge with checks/audit_rules.py,
bucket_rules.py and state_rules.py.

It extends a sweep's :class:`ScanResult` (``tfjanitor scan``: after the sweep) or a survey's
(the auditor function: tables scanned and buckets listed, no state read) with the audit's
findings and errors. Reads cost one call per table or bucket (cached for the run), one Scan
per peer region and table, and, for versioned buckets only, one paginated ListObjectVersions.
A check that cannot run is a ScanError (the run is incomplete), never a silent pass.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

from tfjanitor.aws.posture import PostureReader
from tfjanitor.aws.session import AwsError, AwsSession
from tfjanitor.checks import audit_rules as audit
from tfjanitor.checks import bucket_rules, state_rules
from tfjanitor.checks import findings as build
from tfjanitor.durations import Deadline, OutOfTime, in_time
from tfjanitor.model import (
    BucketFacts,
    BucketPosture,
    Finding,
    Inventory,
    Kind,
    ObjectVersion,
    ScanError,
    ScanResult,
    bucket_scope,
    table_scope,
)
from tfjanitor.scan.sweeper import describe_error
from tfjanitor.terraform import LOCKFILE_SUFFIX

CONNECTION_ERRORS = frozenset({"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"})


@dataclass(frozen=True)
class AuditRequest:
    region: str
    tables: list[str]
    peer_regions: list[str] = field(default_factory=list)
    stream_arns: list[str] = field(default_factory=list)  # streams the stack's monitor reads
    profile: str | None = None  # the CLI's --profile: fix commands carry it (the Lambda has none)


def stream_table(arn: str) -> tuple[str, str] | None:
    """(region, table) of a DynamoDB stream ARN: arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or not parts[5].startswith("table/"):
        return None
    return parts[3], parts[5].split("/")[1]


class Auditor:
    def __init__(self, aws: AwsSession, now: datetime | None = None):
        self._aws = aws
        self._now = now
        self._reader = PostureReader(aws)
        self._peer_digests: dict[tuple[str, str], set[str]] = defaultdict(set)

    def audit(self, request: AuditRequest, result: ScanResult, deadline: Deadline | None = None) -> ScanResult:
        """Add the audit's findings and errors to ``result`` (a sweep's or a survey's) and return it."""
        started = time.monotonic()
        calls_before = dict(self._aws.counter.calls)
        result.audited = True
        try:
            self._audit(request, result, deadline)
        except OutOfTime as exc:
            result.errors.append(ScanError.out_of_time(",".join(request.tables) or request.region, "audit", exc))
        for op, n in self._aws.counter.calls.items():
            if n > calls_before.get(op, 0):
                result.stats.api_calls[op] += n - calls_before.get(op, 0)
        result.stats.duration_seconds += time.monotonic() - started
        result.findings.sort(key=lambda f: (-f.severity.rank, f.kind.value, f.bucket or "", f.key or ""))
        return result

    def _audit(self, request: AuditRequest, result: ScanResult, deadline: Deadline | None) -> None:
        now = self._now or datetime.now(timezone.utc)
        inventory = result.inventory or Inventory()
        tables = list(dict.fromkeys(request.tables))
        streams = {t: arn for arn in request.stream_arns if (t := stream_table(arn)) is not None}

        # Where the sweep could not even connect, every call would fail the same way after its retries:
        # that part of the run is already incomplete (an error), so its posture checks are skipped.
        unreachable = {e.target.partition("/")[0] for e in result.errors if e.code in CONNECTION_ERRORS}
        covered: set[str] = set()  # what every check of the audit read: only these may resolve its alerts
        for table in tables:
            if table not in unreachable:
                in_time(deadline)
                if self._table(result, table, streams.get((request.region, table)), request.profile):
                    covered.add(table_scope(request.region, table))
        peers = [p for p in dict.fromkeys(request.peer_regions) if p and p != request.region]
        for table in tables:
            if table not in inventory.tables_read:
                covered.discard(table_scope(request.region, table))  # its split-brain check had nothing to compare
                continue
            for peer in peers:
                in_time(deadline)
                if not self._split_brain(result, inventory, table, peer, request.profile):
                    covered.discard(table_scope(request.region, table))
        for name, facts in inventory.buckets.items():
            # Missing: an orphan finding; no region or unreachable: already an error.
            if facts.exists and facts.region and name not in unreachable:
                in_time(deadline)
                if self._bucket(result, inventory, name, facts, now, request.profile) and facts.listed:
                    covered.add(bucket_scope(request.region, name))
        result.finished(covered)

    # -- one lock table ---------------------------------------------------------------------

    def _error(self, result: ScanResult, check: str, target: str, exc: AwsError, what: str, name: str) -> None:
        result.errors.append(ScanError(check, target, exc.code, describe_error(exc, what, name)))

    def _table(self, result: ScanResult, table: str, stream_arn: str | None, profile: str | None) -> bool:
        """The table's checks; whether each of them ran."""
        region = result.region
        try:
            facts = self._reader.describe_table(region, table)
        except AwsError as exc:
            if exc.not_found:
                result.findings.append(audit.lock_table_missing(region, table, profile))
                return True
            self._error(result, "describe_table", table, exc, "table", table)
            return False
        seen = {(f.kind, f.table) for f in result.findings}  # the sweep reports a table of another key schema too
        for finding in (
            audit.lock_table_schema(facts, profile),
            audit.replicated_lock_table(facts, profile),
            audit.deletion_protection_disabled(facts, profile),
        ):
            if finding is not None and (finding.kind, finding.table) not in seen:
                result.findings.append(finding)
        if stream_arn:
            finding = audit.stream_disabled(facts, stream_arn, profile)
            if finding is not None:
                result.findings.append(finding)
        try:
            finding = audit.pitr_disabled(region, table, self._reader.point_in_time_recovery(region, table), profile)
        except AwsError as exc:
            self._error(result, "continuous_backups", table, exc, "table", table)
            return False
        if finding is not None:
            result.findings.append(finding)
        return True

    # -- split brain ----------------------------------------------------------------------------

    def _split_brain(self, result: ScanResult, inventory: Inventory, table: str, peer: str, profile: str | None) -> bool:
        """Compare the table with its namesake in ``peer``; whether the peer could be read."""
        try:
            items = self._reader.table_items(peer, table)
        except AwsError as exc:
            if exc.not_found:
                return True  # no same-named table there: nothing to split
            result.errors.append(
                ScanError(
                    "scan_peer_table",
                    table,
                    exc.code,
                    describe_error(exc, "peer table", f"{table} in {peer}") + " (split-brain check)",
                )
            )
            return False
        for (bucket, key), holder in state_rules.peer_holders(items).items():
            if holder.digest:
                self._peer_digests[(bucket, key)].add(holder.digest)
            home = state_rules.Holder(
                lock=inventory.locks.get((bucket, key), {}).get(table), digest=inventory.digests.get((bucket, key), {}).get(table)
            )
            if not (home.lock or home.digest):
                continue
            facts = inventory.buckets.get(bucket, BucketFacts())
            existing = next(
                (
                    f
                    for f in result.findings
                    if f.kind is Kind.SPLIT_BRAIN_LOCK and f.table == table and f.bucket == bucket and f.key == key
                ),
                None,
            )
            holders = {result.region: home, peer: holder}
            if existing is not None:  # a third region: rebuild with every holder
                for r, v in existing.details["regions"].items():
                    holders.setdefault(r, state_rules.Holder(lock=v["lock"], digest=v["digest"]))
                result.findings.remove(existing)
            finding = state_rules.split_brain_lock(
                result.region,
                table,
                bucket,
                key,
                holders,
                facts.objects.get(key),
                inventory.md5.get((bucket, key)),
                facts.region,
                profile,
            )
            if finding is not None:
                result.findings.append(finding)
        return True

    # -- one bucket --------------------------------------------------------------------------------

    def _bucket(
        self, result: ScanResult, inventory: Inventory, name: str, facts: BucketFacts, now: datetime, profile: str | None
    ) -> bool:
        """The bucket's checks; whether each of them ran."""
        region, where = result.region, facts.region or result.region
        posture = BucketPosture()
        ok = {}
        for check, attr, read in (
            ("bucket_versioning", "versioning", self._reader.bucket_versioning),
            ("public_access_block", "public_access_block", self._reader.public_access_block),
            ("bucket_policy", "policy", self._reader.bucket_policy),
            ("bucket_lifecycle", "lifecycle_rules", self._reader.lifecycle_rules),
        ):
            try:
                setattr(posture, attr, read(where, name))
                ok[check] = True
            except AwsError as exc:
                ok[check] = False
                self._error(result, check, name, exc, "bucket", name)
        states = {k for (b, k) in set(inventory.digests) | set(inventory.locks) if b == name}
        states |= facts.lockfiles
        versions: list[ObjectVersion] = []
        history = False
        if ok["bucket_versioning"] and posture.versioning in ("Enabled", "Suspended"):
            try:
                versions = self._reader.object_versions(where, name, lambda key: key.endswith(LOCKFILE_SUFFIX) or key in states)
                history = True
            except AwsError as exc:
                self._error(result, "list_versions", name, exc, "bucket", name)

        found: list[Finding | None] = []
        if ok["bucket_versioning"]:
            found.append(bucket_rules.versioning_disabled(region, name, where, posture.versioning, profile))
        if ok["public_access_block"]:
            found.append(bucket_rules.public_access_open(region, name, where, posture.public_access_block, profile))
        if ok["bucket_policy"]:
            found.append(bucket_rules.tls_not_enforced(region, name, where, posture.policy, profile))
        if history and ok["bucket_lifecycle"]:
            found.append(
                bucket_rules.lockfile_versions_accumulating(
                    region, name, where, posture.versioning, versions, posture.lifecycle_rules, profile
                )
            )
        unversioned = ok["bucket_versioning"] and posture.versioning not in ("Enabled", "Suspended")
        if facts.listed and (history or unversioned):  # a failed read is an error already, not a guess
            found.append(state_rules.lockfile_migration(region, name, self._evidence(inventory, name, facts, versions), profile))
        result.findings += [f for f in found if f is not None]
        if history:
            self._measured_rates(result, inventory, name, versions, now, profile)
        return all(ok.values()) and (history or unversioned)

    def _evidence(
        self, inventory: Inventory, name: str, facts: BucketFacts, versions: list[ObjectVersion]
    ) -> list[state_rules.StateEvidence]:
        by_lock: dict[str, list[ObjectVersion]] = defaultdict(list)
        for v in versions:
            if v.key.endswith(LOCKFILE_SUFFIX):
                by_lock[v.key[: -len(LOCKFILE_SUFFIX)]].append(v)
        keys = {k for (b, k) in set(inventory.digests) | set(inventory.locks) if b == name}
        keys |= facts.lockfiles | set(by_lock)
        evidence = []
        for key in keys:
            evidence.append(
                state_rules.StateEvidence(
                    key=key,
                    digests=dict(inventory.digests.get((name, key), {})),
                    locked_in_table=bool(inventory.locks.get((name, key))),
                    lockfile_now=key in facts.lockfiles,
                    lock_holds=state_rules.lock_holds(by_lock.get(key, [])),
                    obj=facts.objects.get(key),
                    md5=inventory.md5.get((name, key)),
                    peer_digests=set(self._peer_digests.get((name, key), set())),
                )
            )
        return evidence

    def _measured_rates(
        self, result: ScanResult, inventory: Inventory, name: str, versions: list[ObjectVersion], now: datetime, profile: str | None
    ) -> None:
        """Rebuild a cross-region finding for this bucket with the write rate its versions show."""
        for i, f in enumerate(result.findings):
            if f.kind is not Kind.CROSS_REGION_BUCKET or f.bucket != name or f.table is None:
                continue
            keys = {k for (b, k), by_table in inventory.digests.items() if b == name and f.table in by_table}
            keys |= {k for (b, k), by_table in inventory.locks.items() if b == name and f.table in by_table}
            rate = state_rules.versions_per_month(versions, keys, now)
            if rate is None:
                continue
            facts = inventory.buckets[name]
            sizes = [facts.objects[k].size for k in keys if k in facts.objects]
            result.findings[i] = build.cross_region_bucket(
                f.region,
                f.table,
                name,
                f.details["bucket_region"],
                f.details["states"],
                state_sizes=sizes,
                applies_per_month=rate,
                rate_source=f"measured: {rate:g} state versions in the last 30 days",
                profile=profile,
            )
