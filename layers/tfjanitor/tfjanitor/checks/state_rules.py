"""The audit's rules on how each state locks: lockfile migration, split brain across regions (pure code).

Inputs are what the sweep and the bucket's history show about a state (StateEvidence), and what same-named
tables in peer regions hold for it (Holder); outputs are Findings whose commands list versions and put or
delete digests, each only if unchanged. Severities as in ``checks/audit_rules.py``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tfjanitor.checks.fixes import Argv, digest_delete, digest_put, list_versions, with_fix
from tfjanitor.commands import representable, shell_line
from tfjanitor.model import Finding, Kind, ObjectFacts, ObjectVersion, Severity
from tfjanitor.terraform import DIGEST_SUFFIX, DigestItem, LockItem, classify_item

WRITE_RATE_WINDOW = timedelta(days=30)

# -- lockfile migration --------------------------------------------------------------------------

DYNAMODB, BOTH, LOCKFILE = "dynamodb", "both", "lockfile"


@dataclass
class StateEvidence:
    """What the sweep and the bucket's history show about how one state locks."""

    key: str
    digests: dict[str, str] = field(default_factory=dict)  # table -> Digest
    locked_in_table: bool = False
    lockfile_now: bool = False
    lock_holds: list[tuple[datetime, datetime | None]] = field(default_factory=list)  # .tflock put -> release
    obj: ObjectFacts | None = None
    md5: str | None = None  # the object's MD5 when the sweep proved or computed it
    peer_digests: set[str] = field(default_factory=set)  # same-named tables in peer regions (split brain)

    @property
    def lockfile_seen(self) -> bool:
        return self.lockfile_now or bool(self.lock_holds)

    def digest_matches(self) -> bool | None:
        """Does a digest equal the object's MD5? None: cannot tell.

        Proof of a match: the MD5 (hashed by the sweep) or an ETag equal to a digest. Proof of a
        mismatch: the MD5, or a plain 32-hex ETag (single-part upload; the auditor cannot hash, and
        an SSE-KMS ETag would fool it: findings say which proof they used). A multipart ETag proves nothing.
        """
        if not self.digests:
            return None
        # A peer region's digest that matches means a DynamoDB-locking run wrote the object (split brain).
        values = {d.lower() for d in (*self.digests.values(), *self.peer_digests)}  # hex.DecodeString: any case
        if self.md5:
            return self.md5 in values
        if self.obj is not None and self.obj.etag in values:
            return True  # an ETag equal to a digest proves it
        return None if self.obj is not None and not re.fullmatch(r"[0-9a-f]{32}", self.obj.etag) else False

    def written_under_lockfile(self) -> bool:
        if self.obj is None:
            return False
        at = self.obj.last_modified
        return any(start <= at and (end is None or at <= end) for start, end in self.lock_holds)


def lock_holds(versions: list[ObjectVersion]) -> list[tuple[datetime, datetime | None]]:
    """Intervals a .tflock existed, from its versions (a version starts one, the next entry ends it)."""
    ordered = sorted(versions, key=lambda v: (v.last_modified, v.delete_marker))
    holds: list[tuple[datetime, datetime | None]] = []
    for i, v in enumerate(ordered):
        if v.delete_marker:
            continue
        end = ordered[i + 1].last_modified if i + 1 < len(ordered) else None
        holds.append((v.last_modified, end))
    return holds


def classify_state(ev: StateEvidence) -> tuple[str | None, bool]:
    """(mode, digest is a leftover). Mode None: no evidence of either mechanism."""
    if not ev.digests:
        return (LOCKFILE if ev.lockfile_seen else None), False
    if not ev.lockfile_seen:
        return DYNAMODB, False
    match = ev.digest_matches()
    if match or match is None or ev.locked_in_table or ev.lockfile_now:
        # A matching digest, no proof of a mismatch, or a run in progress: not a leftover.
        return BOTH, False
    if ev.written_under_lockfile():
        # Terraform wrote this object under a file lock and wrote no digest for it: dynamodb_table is gone.
        return LOCKFILE, True
    return BOTH, False  # a mismatch written outside any lock: drift (the sweep reports it), not migration


def lockfile_migration(region: str, bucket: str, evidence: list[StateEvidence], profile: str | None = None) -> Finding | None:
    rows = []
    leftovers = []
    for ev in sorted(evidence, key=lambda e: e.key):
        mode, leftover = classify_state(ev)
        if mode is None:
            continue
        rows.append(
            {
                "key": ev.key,
                "mode": mode,
                "digest_tables": sorted(ev.digests),
                "leftover_digest": leftover,
                "mismatch_proven_by": ("md5" if ev.md5 else "etag") if leftover else None,
            }
        )
        if leftover:
            for table, digest in sorted(ev.digests.items()):
                leftovers.append({"table": table, "lock_id": f"{bucket}/{ev.key}{DIGEST_SUFFIX}", "digest": digest})
    modes = Counter(r["mode"] for r in rows)
    if not (modes[BOTH] or leftovers or (modes[DYNAMODB] and modes[LOCKFILE])):
        return None  # nothing migrating: all on one mechanism, nothing left over
    parts = [
        f"{modes[m]} {label}"
        for m, label in ((DYNAMODB, "lock with DynamoDB only"), (BOTH, "with both"), (LOCKFILE, "with the lock file only"))
        if modes[m]
    ]
    left = (
        (
            f"; {len(leftovers)} digest item{'s are' if len(leftovers) != 1 else ' is'} left over from states "
            "that moved to lockfile-only: nothing updates them, and any configuration still naming the table "
            "fails its checksum check"
        )
        if leftovers
        else ""
    )
    fix = []
    if leftovers:
        fix.append("Delete the leftover digests (the commands below, one per digest: each only if unchanged).")
    if modes[BOTH]:
        fix.append(
            "States on both: once every configuration of a state has use_lockfile = true, remove "
            "dynamodb_table from its backend block and run terraform init -reconfigure, then delete its "
            "digest item as above."
        )
    if modes[DYNAMODB]:
        fix.append(
            "States on DynamoDB only (Terraform 1.11 deprecates dynamodb_table): add use_lockfile = true "
            "next to dynamodb_table and run terraform init -reconfigure; remove dynamodb_table once every "
            "configuration has it."
        )
    return with_fix(
        Finding(
            Kind.LOCKFILE_MIGRATION,
            Severity.INFO,
            region,
            None,
            bucket,
            None,
            None,
            f"s3://{bucket}: {len(rows)} state{'s' if len(rows) != 1 else ''} seen, {', '.join(parts)}{left}.",
            {"states": rows, "counts": {m: modes[m] for m in (DYNAMODB, BOTH, LOCKFILE)}, "leftover_digests": leftovers},
            fix,
        ),
        (
            "Delete the leftover digests",
            [digest_delete(region, profile, item["table"], item["lock_id"], item["digest"]) for item in leftovers],
        ),
    )


# -- split brain -----------------------------------------------------------------------------------


@dataclass
class Holder:
    """What one region's same-named table holds for one state."""

    lock: dict[str, Any] | None = None  # LockInfo summary
    digest: str | None = None


def peer_holders(items: list[dict[str, Any]]) -> dict[tuple[str, str], Holder]:
    """A peer table's raw items by state (lock and digest items only; foreign items are ignored)."""
    held: dict[tuple[str, str], Holder] = {}
    for raw in items:
        item = classify_item(raw)
        if isinstance(item, LockItem):
            held.setdefault((item.bucket, item.key), Holder()).lock = item.lock.summary()
        elif isinstance(item, DigestItem):
            held.setdefault((item.bucket, item.key), Holder()).digest = item.stored  # exact: deletes are conditional on it
    return held


def _split_brain_fix(
    region: str,
    profile: str | None,
    table: str,
    bucket: str,
    key: str,
    held: dict[str, Holder],
    keep: str | None,
    known: str | None,
    to_fix: list[str],
    bucket_region: str | None,
) -> tuple[list[str], list[Argv]]:
    """The way out of split-brain locking: look for a lost write, keep one region's table (its digest made right),
    point every configuration at it, then remove the other regions' digests."""
    digest_id = f"{bucket}/{key}{DIGEST_SUFFIX}"
    fix = [
        "First look for a lost write (two runs may have written this state at once), and keep the object only "
        "if it is the state you want: the first command lists its versions."
    ]
    commands = [list_versions(bucket_region or region, profile, bucket, key)]
    kept = held[keep].digest if keep else None
    if keep and known and kept and kept.lower() != known:
        fix.append(
            f"Then store the object's digest in {keep}'s table (its own is stale, so a configuration switched to "
            "it would fail its checksum check): the next command, only if that digest is unchanged."
        )
        commands.append(digest_put(keep, profile, table, digest_id, known, kept))
    grep = ["grep", "-rnF", "--include=*.tf", "--include=*.tfbackend", "-e", key, "."]
    find = f" To find the configurations, run in your repositories: {shell_line(grep)}" if representable(grep) else ""
    fix.append(
        f'In every configuration with bucket = "{bucket}" and key = "{key}", lock through one table: set '
        f'region = "{keep or "<one region>"}" in the backend block (and remove any endpoints.dynamodb / '
        "dynamodb_endpoint override pointing elsewhere), or set use_lockfile = true everywhere (Terraform >= "
        f"1.10: the lock lives next to the state); then terraform init -reconfigure.{find}"
    )
    removals = [digest_delete(r, profile, table, digest_id, digest) for r in to_fix if (digest := held[r].digest)]
    if removals:
        fix.append(
            f"After that, remove the digests in {', '.join(r for r in to_fix if held[r].digest)} "
            "(the last commands: each only if unchanged)."
        )
    commands += removals
    return fix, commands


def split_brain_lock(
    region: str,
    table: str,
    bucket: str,
    key: str,
    holders: dict[str, Holder],
    obj: ObjectFacts | None,
    md5: str | None,
    bucket_region: str | None,
    profile: str | None = None,
) -> Finding | None:
    """``holders``: region -> what that region's table named ``table`` holds for bucket/key."""
    held = {r: h for r, h in holders.items() if h.lock or h.digest}
    if len(held) < 2:
        return None
    known = md5 or (obj.etag if obj is not None and obj.etag in {(h.digest or "").lower() for h in held.values()} else None)
    regions: dict[str, Any] = {}
    said = []
    for r in sorted(held):
        h = held[r]
        matches = None if known is None or h.digest is None else h.digest.lower() == known
        regions[r] = {"lock": h.lock, "digest": h.digest, "digest_matches_object": matches}
        what = []
        if h.digest:
            what.append(
                "a digest "
                + {True: "that matches the object", False: "that does not match the object", None: "(match unknown)"}[matches]
            )
        if h.lock:
            what.append(
                f"a lock by {h.lock.get('who') or '?'} ({h.lock.get('operation') or '?'}) since {h.lock.get('created') or '?'}"
            )
        said.append(f"{r} holds {' and '.join(what)}")
    matching = sorted(r for r, v in regions.items() if v["digest_matches_object"])
    keep = bucket_region if bucket_region in held else (matching[0] if len(matching) == 1 else None)
    to_fix = sorted(r for r in held if r != keep) if keep else sorted(held)
    state = f"{bucket}/{key}"
    digest_id = f"{state}{DIGEST_SUFFIX}"
    if keep:
        which = (
            f"Fix the configurations whose backend uses the {table} table in {', '.join(to_fix)}: keep "
            f"{keep}{' (the bucket is there)' if keep == bucket_region else ''}."
        )
    else:
        which = "No region is the obvious keeper: pick one for every configuration (or use_lockfile)."
    fix, commands = _split_brain_fix(region, profile, table, bucket, key, held, keep, known, to_fix, bucket_region)
    return with_fix(
        Finding(
            Kind.SPLIT_BRAIN_LOCK,
            Severity.CRITICAL,
            region,
            table,
            bucket,
            key,
            None,
            f"Split-brain locking on {state}: same-named tables {table} in {len(held)} regions hold its lock data "
            f"({'; '.join(said)}). A lock taken in one table does not exclude writers using the other, so two runs "
            f"can write this state at once, and each table keeps its own digest. {which}",
            {
                "regions": regions,
                "object_md5": known,
                "digest_matches_in": matching,
                "bucket_region": bucket_region,
                "keep_region": keep,
                "regions_to_fix": to_fix,
                "digest_lock_id": digest_id,
            },
            fix,
        ),
        ("", commands),
    )


def versions_per_month(versions: list[ObjectVersion], keys: set[str], now: datetime) -> float | None:
    """State writes per month for ``keys``, from their object versions in the last 30 days."""
    if not keys:
        return None
    recent = [v for v in versions if v.key in keys and not v.delete_marker and now - v.last_modified <= WRITE_RATE_WINDOW]
    return len(recent) * (timedelta(days=30) / WRITE_RATE_WINDOW)
