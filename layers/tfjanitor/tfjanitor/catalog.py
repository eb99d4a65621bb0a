"""The finding kinds: one entry per kind with everything that describes it (pure data, no AWS).

A kind's name is a CLI and JSON contract (``Kind``); its entry says how bad it is by default, what people
call it, what it means, why it matters (what fails next, for whom), how tfjanitor knows, how to fix it, what
to do if it is intended, which check finds it (the sweep or the audit), whether it is about one state, the
CloudWatch metric that counts it, and its docs anchor. Every room reads it from here: the emails (title, why,
how to check, the docs link), the chat cards (title), the events and the CLI (title, docs link), telemetry
(which metric counts which kinds), the wiring (which function may resolve which kinds) and the docs page of
kinds (:func:`markdown`, written to ``docs/kinds.md`` by ``make docs``; a test fails when it is stale).

A kind's check (``checks/findings.py`` for the sweep; ``checks/audit_rules.py``, ``bucket_rules.py``,
``state_rules.py`` for the audit) only decides and fills in the facts of one
finding: its message, details, fix steps and commands. Adding a kind: a ``Kind`` value and an entry here (a
test fails until every kind has one), then its builder and the check that calls it (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from enum import Enum
from urllib.parse import quote

# Where the docs are published (the package's Documentation URL in pyproject.toml, and the template's
# DocsUrl default: tests keep the three equal). A deployment can point DocsUrl at its own copy.
DOCS_URL = "https://tfjanitor.github.io/tfjanitor/"
KINDS_PAGE = "kinds/"  # docs/kinds.md, as the docs site serves it


class Severity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


class Kind(str, Enum):
    """A finding's kind: the names are part of the CLI and JSON contract (never renamed)."""

    STALE_LOCK = "stale_lock"
    STALE_LOCKFILE = "stale_lockfile"
    DIGEST_DRIFT = "digest_drift"
    ORPHAN_DIGEST = "orphan_digest"
    CROSS_REGION_BUCKET = "cross_region_bucket"
    MALFORMED_ITEM = "malformed_item"
    INTERRUPTED_WRITE = "interrupted_write"
    # Region, topology and posture audit (checks/audit_rules.py, bucket_rules.py, state_rules.py).
    SPLIT_BRAIN_LOCK = "split_brain_lock"
    REPLICATED_LOCK_TABLE = "replicated_lock_table"
    LOCK_TABLE_SCHEMA = "lock_table_schema"
    TABLE_PITR_DISABLED = "table_pitr_disabled"
    TABLE_DELETION_PROTECTION_DISABLED = "table_deletion_protection_disabled"
    TABLE_STREAM_DISABLED = "table_stream_disabled"
    BUCKET_VERSIONING_DISABLED = "bucket_versioning_disabled"
    BUCKET_PUBLIC_ACCESS_OPEN = "bucket_public_access_open"
    BUCKET_TLS_NOT_ENFORCED = "bucket_tls_not_enforced"
    LOCKFILE_VERSIONS_ACCUMULATING = "lockfile_versions_accumulating"
    LOCKFILE_MIGRATION = "lockfile_migration"


class Check(str, Enum):
    """Which check finds a kind, and so which function may also close its alerts (neither closes the other's)."""

    SWEEP = "sweep"  # the sweeper (the stream monitor too, for the kinds it sees as they happen); tfjanitor scan
    AUDIT = "audit"  # the auditor (AuditSchedule); tfjanitor scan without --skip-audit


@dataclass(frozen=True)
class Metric:
    """The CloudWatch metric that counts a kind (a count, published while non-zero). Its name is a contract
    of the dashboard and the alarms; several kinds may share one."""

    name: str
    per: str | None = None  # None: one per finding; else the details list whose entries it counts
    why: str = ""  # said in the metric plan (runtime/telemetry.py), when the name does not say it all


@dataclass(frozen=True)
class Entry:
    """One finding kind. The texts are Markdown, one paragraph each; ``why`` is said in every email of the kind."""

    kind: Kind
    severity: Severity  # the builder's default (a kind may be judged lower, e.g. another workload's item)
    title: str  # as people read it: subjects, chat cards, the docs page
    check: Check
    _: KW_ONLY
    means: str  # what it means
    why: str  # why it matters: what fails next, and for whom (the email's "Why it matters")
    knows: str  # how tfjanitor knows
    fix: str  # how to fix it
    intended: str  # what to do if it is intended
    one_state: bool = False  # about one state: a terraform plan from its working directory shows it fixed
    metric: Metric | None = None

    @property
    def anchor(self) -> str:
        """Its section's anchor on the docs page of kinds (the heading is the kind)."""
        return self.kind.value


CATALOG: tuple[Entry, ...] = (
    Entry(
        Kind.STALE_LOCK,
        Severity.WARNING,
        "Stale lock",
        Check.SWEEP,
        means=(
            "a state's DynamoDB lock item has shown no sign of life for longer than its threshold (`StaleAfter`, "
            "default `1h`; `ReadOnlyStaleAfter`, `15m`, for plans; or the threshold learned from the state's own "
            "runs): the run that took it almost surely died (a killed CI job, a closed laptop), and every plan and "
            'apply of that state fails with "Error acquiring the state lock".'
        ),
        why=(
            "Every terraform plan and apply of this state, by a person or a CI pipeline, waits for the lock and then "
            'fails with "Error acquiring the state lock": nobody can change what this state manages until the lock is '
            "released. Other states are not affected."
        ),
        knows=(
            "each sweep takes each lock's last sign of life (its `Created`, a later write of its state object, a "
            "digest write seen on the stream: see *How staleness is decided*); `details.last_sign_of_life` and "
            "`details.threshold` say which, and why the threshold is what it is."
        ),
        fix=(
            "make sure the holder (`Who`: `user@host`) is gone, then `tfjanitor unlock --region R --table T --id ID "
            "BUCKET/KEY` (it deletes only that exact lock), or `terraform force-unlock -force ID` from the "
            "configuration's directory. `terraform plan` then works."
        ),
        intended=(
            "a run that really stays silent longer (a big EKS or database apply that writes nothing for an hour): "
            "raise `StaleAfter` above its longest silence (CLI: `--stale-after`), and keep such states from "
            "auto-release with `ProtectedKeyPatterns`."
        ),
        one_state=True,
        metric=Metric("StaleLocks"),
    ),
    Entry(
        Kind.STALE_LOCKFILE,
        Severity.WARNING,
        "Stale lock file",
        Check.SWEEP,
        means="the same for a `<key>.tflock` object (backends with `use_lockfile = true`).",
        why=(
            "Every terraform plan and apply of this state, by a person or a CI pipeline, fails to lock while the "
            ".tflock object exists: nobody can change what this state manages until it is released. Other states are "
            "not affected."
        ),
        knows=(
            "each sweep lists the bucket, and reads the lock objects older than the shortest threshold (a few hundred bytes each)."
        ),
        fix=(
            "as for `stale_lock`; `tfjanitor unlock --region R --bucket B --lockfile --id ID KEY` deletes the object "
            "only if its ETag is unchanged."
        ),
        intended="as for `stale_lock`: the thresholds and `ProtectedKeyPatterns`.",
        one_state=True,
        metric=Metric("StaleLockfiles"),
    ),
    Entry(
        Kind.DIGEST_DRIFT,
        Severity.CRITICAL,
        "Digest drift",
        Check.SWEEP,
        means=(
            "the MD5 Terraform keeps for the state (`<bucket>/<key>-md5` in the lock table) is not the MD5 of the "
            'state object: the next plan or apply fails with "state data in S3 does not have the expected content". '
            "Someone edited or pushed the state outside Terraform, or an upload failed halfway."
        ),
        why=(
            "The next terraform plan or apply of this state, whoever runs it, retries for about 10 seconds and then "
            'fails with "state data in S3 does not have the expected content": nobody can deploy it until the digest '
            "and the object agree. If the object is not what Terraform last wrote, a run would act on the wrong "
            "state."
        ),
        knows=(
            "the ETag proves the MD5 when it can; otherwise the object is streamed through MD5 (never kept or "
            "logged), the digest re-read consistently, a locked state judged as above. A digest in any case counts "
            "(`hex.DecodeString`); a 0-byte object is no state: no digest matches it (restore, or remove the digest)."
        ),
        fix=(
            "find out which is right. In a versioned bucket the email names Terraform's last write (the newest "
            "version whose content is the stored digest, `details.matching_version`) and when it was overwritten "
            "(`details.overwritten_at`). If the object is right, store its digest (the conditional `aws dynamodb "
            "put-item` in the email); if not, restore that version (the alternative: a copy conditional on the "
            "current object's ETag, S3 `CopyObject` with `If-Match`)."
        ),
        intended=(
            "never; if the state now locks with `use_lockfile` only, the digest is a leftover: delete it (the email's "
            "last alternative)."
        ),
        one_state=True,
        metric=Metric("DigestDrift"),
    ),
    Entry(
        Kind.ORPHAN_DIGEST,
        Severity.WARNING,
        "Orphan digest",
        Check.SWEEP,
        means=(
            "a digest item whose state object (or bucket) does not exist: `init` and `plan` of that state fail their checksum check."
        ),
        why=(
            "A terraform init, plan or apply of this state fails its checksum check for whoever runs it next. If the "
            "state was deleted by mistake, Terraform has also lost track of every resource it managed."
        ),
        knows="the digest's key is missing from the bucket listing (or the bucket is gone).",
        fix=(
            "if the state was deleted on purpose, delete the digest (conditional on its value); if by mistake, remove "
            "the delete marker on top of its versions."
        ),
        intended="deleting a state on purpose leaves its digest behind: delete the digest as above.",
        one_state=True,
        metric=Metric("OrphanDigests"),
    ),
    Entry(
        Kind.CROSS_REGION_BUCKET,
        Severity.WARNING,
        "Cross-region bucket",
        Check.SWEEP,
        means=(
            "the lock table is in another region than a bucket its items name: every lock and digest operation "
            "crosses regions (slower, paid transfer, and locking fails when either region is impaired)."
        ),
        why=(
            "Every lock and digest operation of these states crosses regions: each plan and apply is slower, pays "
            "cross-region transfer, and cannot lock when either region is impaired."
        ),
        knows=(
            "`GetBucketLocation` of each bucket the table names, compared with the table's region; the estimate uses "
            "the state sizes seen and the write rate from object versions."
        ),
        fix=(
            "create a lock table in the bucket's region, point the backends at it (`region` in the backend block) "
            "with `terraform init -migrate-state`, then delete the old digests; or move to `use_lockfile`."
        ),
        intended=(
            "no switch: a deliberate central table keeps this alert open (one reminder per `ReminderInterval`). "
            "Moving those states to `use_lockfile` makes the table irrelevant."
        ),
        metric=Metric("CrossRegionBuckets"),
    ),
    Entry(
        Kind.MALFORMED_ITEM,
        Severity.WARNING,
        "Malformed lock item",
        Check.SWEEP,
        means=(
            "an item in the lock table (or a `.tflock` object) that is neither a valid lock nor a valid digest: where "
            "a state's lock or digest belongs, every run of that state fails."
        ),
        why=(
            "Where a state's lock or digest belongs, an item Terraform cannot read makes every run of that state fail "
            "(to lock, or its checksum check) until it is removed; anything else writing the lock table can also "
            "overwrite Terraform's own locks and digests."
        ),
        knows=(
            "every item is parsed as Terraform writes it (`Info` JSON with `ID`, `Operation`, `Who`, `Created`; a "
            "32-hex `Digest`, any case, on a `-md5` key). An item with neither belongs to another workload (`info`), "
            "unless its `LockID` is the lock slot of a state tfjanitor knows: then it blocks every run of that state "
            "(`warning`, deleted only if exactly as seen). Items with no `LockID` at all mean another key schema (old "
            "Terragrunt's `StateFileId`): one `lock_table_schema` finding, never one per item."
        ),
        fix="inspect it (the email's `get-item`), then delete it only if unchanged (the conditional delete).",
        intended="give the other workload a table of its own; Terraform's lock table holds only Terraform's items.",
        metric=Metric("MalformedItems"),
    ),
    Entry(
        Kind.INTERRUPTED_WRITE,
        Severity.CRITICAL,
        "Interrupted write",
        Check.SWEEP,
        means=(
            "a stale lock whose run wrote the state object after taking the lock and died before writing its digest "
            "(Terraform writes the object, then the digest). The state holds what the dead run had applied so far; "
            "releasing the lock alone makes the next run fail its checksum check."
        ),
        why=(
            "Every terraform run of this state is blocked by the dead run's lock, and releasing the lock alone is not "
            'enough: the next run then fails its checksum check ("state data in S3 does not have the expected '
            'content") until the digest is set to the state the dead run wrote. Other states are not affected.'
        ),
        knows=(
            "the lock is stale, its state object was written after the lock was taken, and that object's MD5 is not "
            "the stored digest (re-read consistently: the lock still the same, the digest unchanged). Reported "
            "instead of `stale_lock`; never released automatically."
        ),
        fix=(
            "the email's commands, in order: `tfjanitor unlock ... --id ID` (that lock only), the conditional `aws "
            "dynamodb put-item` that stores the object's MD5 (only if the digest is still the old one), then "
            "`terraform plan` from the configuration's directory: it shows what the dead run had not applied yet."
        ),
        intended="never.",
        one_state=True,
        metric=Metric("InterruptedWrites", why="stale locks whose run died between its state and digest writes"),
    ),
    Entry(
        Kind.SPLIT_BRAIN_LOCK,
        Severity.CRITICAL,
        "Split-brain locking",
        Check.AUDIT,
        means=(
            'same-named lock tables in two regions both hold lock data for one state: configurations that name "the" '
            "table from different regions do not lock each other out, so two runs can write the state at once."
        ),
        why=(
            "Two runs can write this state at once, one through each region's table, and the later write silently "
            "drops the other's changes (resources Terraform no longer knows about, or created twice); runs through a "
            "table whose digest is stale fail their checksum check."
        ),
        knows=(
            "the audit scans the same-named table in each `PeerRegions` region (`--peer-region`) and compares each "
            "state's locks and digests with the object."
        ),
        fix=(
            "look for a lost write (the object's versions), make every configuration of that state lock through one "
            "region (or `use_lockfile = true`), then delete the other region's digest."
        ),
        intended="never; a second region for other states is fine: only the same `bucket/key` in both is reported.",
        one_state=True,
        metric=Metric("SplitBrainLocks"),
    ),
    Entry(
        Kind.REPLICATED_LOCK_TABLE,
        Severity.WARNING,
        "Replicated lock table",
        Check.AUDIT,
        means=(
            "the lock table is a global table. Under MREC (eventual consistency) two runs through different regions "
            "can both take one lock; under MRSC every lock waits for replication."
        ),
        why=(
            "Under eventual consistency two runs writing through different regions can both take the same lock and "
            "overwrite each other's state; under strong consistency every lock waits for replication, and a region "
            "cut off from its quorum cannot lock at all."
        ),
        knows="`DescribeTable` lists replicas and the consistency mode.",
        fix="remove the replicas (the commands in the email), or lock with `use_lockfile` and drop `dynamodb_table`.",
        intended=("safe only if every writer uses one region; there is no switch: the alert stays open while the replicas exist."),
        metric=Metric("LockTableProblems"),
    ),
    Entry(
        Kind.LOCK_TABLE_SCHEMA,
        Severity.CRITICAL,
        "Unusable lock table",
        Check.AUDIT,
        means="the lock table is missing, or its key is not `LockID` (HASH, String): no run that names it can lock.",
        why=("Every terraform run whose backend names this table fails to lock: nobody can plan or apply any state that uses it."),
        knows="`DescribeTable` (`ResourceNotFoundException` for a missing table, which also makes the scan incomplete).",
        fix=("create a table with Terraform's key (the `create-table` command in the email) and point the backends at it."),
        intended="a table that is gone for good: remove it from `LockTableNames` (CLI: `--table`).",
        metric=Metric("LockTableProblems"),
    ),
    Entry(
        Kind.TABLE_PITR_DISABLED,
        Severity.INFO,
        "Lock table without PITR",
        Check.AUDIT,
        means="point-in-time recovery is off on the lock table: a bad write or delete of digests cannot be undone.",
        why=(
            "A bad write or delete of the table's digests cannot be undone: each state whose digest is lost or wrong "
            "fails its checksum check until someone rebuilds the digest by hand."
        ),
        knows="`DescribeContinuousBackups`.",
        fix="`aws dynamodb update-continuous-backups` (the command in `details.commands`).",
        intended="it is `info`: never emailed, never exit code 1.",
        metric=Metric("TablePostureFindings"),
    ),
    Entry(
        Kind.TABLE_DELETION_PROTECTION_DISABLED,
        Severity.WARNING,
        "Lock table without deletion protection",
        Check.AUDIT,
        means=(
            "the lock table can be deleted in one call: cleanup tools delete idle-looking tables, and then nothing "
            "can lock and every digest is gone."
        ),
        why=(
            "One mistaken delete (a cleanup script, a console click) removes every lock and digest at once: every "
            "terraform run of every state that uses the table then fails to lock until it is re-created."
        ),
        knows="`DescribeTable`'s `DeletionProtectionEnabled`.",
        fix="`aws dynamodb update-table --deletion-protection-enabled` (the command in the email).",
        intended="no switch: turn the protection on (it only blocks `DeleteTable`).",
        metric=Metric("TablePostureFindings"),
    ),
    Entry(
        Kind.TABLE_STREAM_DISABLED,
        Severity.WARNING,
        "Lock table stream not monitored",
        Check.AUDIT,
        means=(
            "the stack's stream monitor reads a stream the table no longer has (disabled, wrong view type, "
            "re-created): lock metrics stop and drift waits for the next sweep."
        ),
        why=(
            "The stack's stream monitor receives nothing: lock metrics stop, and digest drift is found only at the "
            "next scheduled sweep instead of the moment it happens."
        ),
        knows="the audit compares `LockTableStreamArn` with `DescribeTable`'s stream.",
        fix=(
            "enable the stream with `NEW_AND_OLD_IMAGES`, then deploy with `LockTableStreamArn` set to the ARN the "
            "email's last command prints."
        ),
        intended="you no longer want the stream monitor: deploy with `LockTableStreamArn` empty.",
        metric=Metric("TablePostureFindings"),
    ),
    Entry(
        Kind.BUCKET_VERSIONING_DISABLED,
        Severity.WARNING,
        "State bucket not versioned",
        Check.AUDIT,
        means="the state bucket keeps no old versions: a bad state write cannot be undone.",
        why=(
            "A bad state write (a botched apply, a state push, a hand edit, a deleted workspace) cannot be undone: "
            "there is no earlier version to restore, and Terraform loses track of what it manages."
        ),
        knows="`GetBucketVersioning`.",
        fix=("`aws s3api put-bucket-versioning` (the command in the email), then a lifecycle rule that expires old versions."),
        intended="no switch: versioning is Terraform's own recommendation for state buckets.",
        metric=Metric("BucketPostureFindings"),
    ),
    Entry(
        Kind.BUCKET_PUBLIC_ACCESS_OPEN,
        Severity.WARNING,
        "State bucket public access not blocked",
        Check.AUDIT,
        means=(
            "the bucket's own public access block is not fully on: one ACL or policy change can make states (and the "
            "secrets in them) public."
        ),
        why=(
            "States hold secrets (passwords, keys, tokens) in plain text: one ACL or bucket policy change, by anyone "
            "allowed to make it, can expose them to the internet."
        ),
        knows="`GetPublicAccessBlock` on the bucket.",
        fix="`aws s3api put-public-access-block` with all four settings on (the command in the email).",
        intended=(
            "no switch. An account-level block protects the bucket too (`aws s3control get-public-access-block`), but "
            "can be lifted for every bucket at once: turn the bucket's own block on as well."
        ),
        metric=Metric("BucketPostureFindings"),
    ),
    Entry(
        Kind.BUCKET_TLS_NOT_ENFORCED,
        Severity.INFO,
        "State bucket TLS not enforced",
        Check.AUDIT,
        means="the bucket policy does not deny requests without TLS (`aws:SecureTransport = false`).",
        why=(
            "A client configured with an http:// endpoint would move states, and their secrets, in clear text: "
            "nothing in the bucket refuses it."
        ),
        knows="`GetBucketPolicy`, looking for a Deny for every principal on every object.",
        fix=("`aws s3api put-bucket-policy` with the current policy plus that statement (the command in `details.commands`)."),
        intended="it is `info`: never emailed, never exit code 1.",
        metric=Metric("BucketPostureFindings"),
    ),
    Entry(
        Kind.LOCKFILE_VERSIONS_ACCUMULATING,
        Severity.INFO,
        "Old lock file versions accumulating",
        Check.AUDIT,
        means="a versioned bucket keeps every old `.tflock` version and delete marker, forever.",
        why=(
            "Every lock adds a version and a delete marker that are never removed: storage, and the time to list the "
            "bucket, grow with every run."
        ),
        knows="`ListObjectVersions` and `GetBucketLifecycleConfiguration`.",
        fix="add the lifecycle rule in `details.commands` (it keeps every current rule).",
        intended="it is `info`: never emailed, never exit code 1.",
        metric=Metric("BucketPostureFindings"),
    ),
    Entry(
        Kind.LOCKFILE_MIGRATION,
        Severity.INFO,
        "Lock file migration",
        Check.AUDIT,
        means=(
            "states in a bucket are moving to `use_lockfile`: some lock with DynamoDB, some with both, some with the "
            "lock file only, and digests may be left over."
        ),
        why=(
            "While states lock both ways or leave digests behind, a configuration that still names the table can fail "
            "its checksum check on a leftover digest."
        ),
        knows="the audit combines the lock table's digests with the bucket's `.tflock` history (`ListObjectVersions`).",
        fix=(
            "finish the migration (`use_lockfile = true`, then drop `dynamodb_table`) and delete the leftover digests "
            "(`details.commands`)."
        ),
        intended="it is `info`: never emailed, never exit code 1.",
        metric=Metric("LeftoverDigests", per="leftover_digests"),
    ),
)
ENTRIES: dict[str, Entry] = {e.kind.value: e for e in CATALOG}  # by the kind's name, as a finding's JSON has it


def entry(kind: Kind | str) -> Entry | None:
    """The entry of ``kind`` (a ``Kind`` or its name, as a finding's JSON has it); None for a name this version
    does not know (an alert recorded by another version)."""
    return ENTRIES.get(kind.value if isinstance(kind, Kind) else str(kind))


def title(kind: Kind | str) -> str:
    """A finding kind as people read it; an unknown kind's own name."""
    found = entry(kind)
    return found.title if found else str(kind.value if isinstance(kind, Kind) else kind)


def found_by(check: Check) -> frozenset[Kind]:
    """The kinds ``check`` finds: the only ones its function may resolve."""
    return frozenset(e.kind for e in CATALOG if e.check is check)


def metrics(check: Check) -> tuple[Metric, ...]:
    """The metrics that count ``check``'s kinds, each once, in catalog order."""
    seen: dict[str, Metric] = {}
    for e in CATALOG:
        if e.check is check and e.metric is not None:
            seen.setdefault(e.metric.name, e.metric)
    return tuple(seen.values())


def docs_link(kind: Kind | str, base: str = DOCS_URL) -> str:
    """The section on ``kind`` of the docs page of kinds, under the docs site ``base`` (ending in ``/``)."""
    name = kind.value if isinstance(kind, Kind) else str(kind)
    return f"{base}{KINDS_PAGE}#{quote(name, safe='')}"


# -- the docs page of kinds (docs/kinds.md) ----------------------------------------------------------------

PAGE_INTRO = (
    "One section per kind: what it means, why it matters, how tfjanitor knows, how to fix it, and what to do if "
    "it is intended. Every alert email links to its kind's section. `info` kinds are never emailed and never make "
    "`scan` exit 1. There is no switch to mute one alert: an open alert is re-sent once per `ReminderInterval` "
    "(default `24h`) until what it reports is gone."
)
_FOUND_BY = {
    Check.SWEEP: "the sweep (the sweeper, `tfjanitor scan`)",
    Check.AUDIT: "the audit (the auditor, `tfjanitor scan` without `--skip-audit`)",
}


def _counted(e: Entry) -> str:
    if e.metric is None:
        return "no metric"
    shared = [f"`{o.kind.value}`" for o in CATALOG if o.metric and o.metric.name == e.metric.name and o is not e]
    how = f", one per entry of `details.{e.metric.per}`" if e.metric.per else ""
    return f"`{e.metric.name}`{how}" + (f" (with {', '.join(shared)})" if shared else "")


def _section(e: Entry) -> list[str]:
    return [
        f"## `{e.kind.value}`",
        "",
        f"**{e.title}** · severity `{e.severity.value}` · found by {_FOUND_BY[e.check]} · metric {_counted(e)}",
        "",
        f"- **Means:** {e.means}",
        f"- **Why it matters:** {e.why}",
        f"- **How it knows:** {e.knows}",
        f"- **Fix:** {e.fix}",
        f"- **If intended:** {e.intended}",
    ]


def markdown() -> str:
    """The docs page of kinds (``docs/kinds.md``): a table of every kind, then one section per kind whose
    heading is the kind (its anchor: ``#stale_lock``, what :func:`docs_link` links to)."""
    lines = [
        "# Finding kinds",
        "",
        "<!-- Generated from layers/tfjanitor/tfjanitor/catalog.py by `make docs`: edit the catalog, not this page. -->",
        "",
        PAGE_INTRO,
        "",
        "| kind | title | severity | found by | metric |",
        "|---|---|---|---|---|",
        *(
            f"| [`{e.kind.value}`](#{e.anchor}) | {e.title} | {e.severity.value} | {e.check.value} | "
            f"{f'`{e.metric.name}`' if e.metric else '-'} |"
            for e in CATALOG
        ),
    ]
    for e in CATALOG:
        lines += ["", *_section(e)]
    return "\n".join(lines) + "\n"
