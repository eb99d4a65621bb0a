"""AWS reads for the region and posture audit (an adapter: only this and adapters.py call AWS).

Every call is read-only, counted by the run's :class:`AwsSession`, and made at most once per
run for a given table or bucket (the reader caches answers *and* failures). "Not configured"
answers (no bucket policy, no public access block, no lifecycle rules) are values, not errors;
every other failure is an :class:`AwsError` for the caller to record as an incomplete check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from botocore.exceptions import BotoCoreError, ClientError

from tfjanitor.aws.backend import LockTable
from tfjanitor.aws.session import AwsError, AwsSession, _translate
from tfjanitor.model import ObjectVersion, TableFacts

if TYPE_CHECKING:  # the stubs, for the checker only
    from mypy_boto3_s3.type_defs import ListObjectVersionsOutputTypeDef

T = TypeVar("T")

# Error codes that mean "this configuration is not set" rather than "the call failed".
NO_POLICY = "NoSuchBucketPolicy"
NO_PUBLIC_ACCESS_BLOCK = "NoSuchPublicAccessBlockConfiguration"
NO_LIFECYCLE = "NoSuchLifecycleConfiguration"


def table_facts(region: str, table: Mapping[str, Any]) -> TableFacts:
    """A DescribeTable ``Table`` as the audit judges it (also used on pinned responses in tests)."""
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    key_schema = tuple((k["AttributeName"], k["KeyType"], types.get(k["AttributeName"], "?")) for k in table.get("KeySchema", []))
    stream = table.get("StreamSpecification") or {}
    return TableFacts(
        name=table.get("TableName", ""),
        region=region,
        key_schema=key_schema,
        status=table.get("TableStatus", ""),
        deletion_protection=bool(table.get("DeletionProtectionEnabled", False)),
        replicas=tuple((r.get("RegionName", "?"), r.get("ReplicaStatus", "?")) for r in table.get("Replicas", [])),
        multi_region_consistency=table.get("MultiRegionConsistency"),
        global_table_version=table.get("GlobalTableVersion"),
        stream_enabled=bool(stream.get("StreamEnabled", False)),
        stream_view_type=stream.get("StreamViewType"),
        latest_stream_arn=table.get("LatestStreamArn"),
    )


class PostureReader:
    """Cached, read-only posture calls for one run."""

    def __init__(self, aws: AwsSession):
        self._aws = aws
        self._cache: dict[tuple[str, ...], Any] = {}

    def _once(self, key: tuple[str, ...], call: Callable[[], T]) -> T:
        if key not in self._cache:
            try:
                self._cache[key] = call()
            except AwsError as exc:
                self._cache[key] = exc
        value = self._cache[key]
        if isinstance(value, AwsError):
            raise value
        return cast(T, value)  # the cache holds what call() returned for this key

    # -- DynamoDB ----------------------------------------------------------------------

    def describe_table(self, region: str, table: str) -> TableFacts:
        def call() -> TableFacts:
            try:
                resp = self._aws.dynamodb(region).describe_table(TableName=table)
            except (ClientError, BotoCoreError) as exc:
                raise _translate("DescribeTable", exc) from exc
            return table_facts(region, resp["Table"])

        return self._once(("describe_table", region, table), call)

    def point_in_time_recovery(self, region: str, table: str) -> str:
        """ENABLED | DISABLED (PointInTimeRecoveryStatus)."""

        def call() -> str:
            try:
                resp = self._aws.dynamodb(region).describe_continuous_backups(TableName=table)
            except (ClientError, BotoCoreError) as exc:
                raise _translate("DescribeContinuousBackups", exc) from exc
            desc = resp.get("ContinuousBackupsDescription", {})
            return str(desc.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus", "DISABLED"))

        return self._once(("continuous_backups", region, table), call)

    def table_items(self, region: str, table: str) -> list[dict[str, Any]]:
        """Every item of a (peer region's) table: one paginated consistent Scan."""
        return self._once(("scan", region, table), lambda: list(LockTable(self._aws, region, table).scan()))

    # -- S3 ------------------------------------------------------------------------------

    def _s3_call(self, operation: str, region: str, call: Callable[[Any], T], absent: str | None = None) -> T | None:
        try:
            return call(self._aws.s3(region))
        except (ClientError, BotoCoreError) as exc:
            err = _translate(operation, exc)
            if absent is not None and err.code == absent:
                return None
            raise err from exc

    def bucket_versioning(self, region: str, bucket: str) -> str | None:
        def call() -> str | None:
            resp = self._s3_call("GetBucketVersioning", region, lambda c: c.get_bucket_versioning(Bucket=bucket))
            return (resp or {}).get("Status") or None

        return self._once(("versioning", bucket), call)

    def public_access_block(self, region: str, bucket: str) -> dict[str, bool] | None:
        def call() -> dict[str, bool] | None:
            resp = self._s3_call(
                "GetPublicAccessBlock", region, lambda c: c.get_public_access_block(Bucket=bucket), absent=NO_PUBLIC_ACCESS_BLOCK
            )
            return None if resp is None else dict(resp.get("PublicAccessBlockConfiguration", {}))

        return self._once(("public_access_block", bucket), call)

    def bucket_policy(self, region: str, bucket: str) -> str | None:
        def call() -> str | None:
            resp = self._s3_call("GetBucketPolicy", region, lambda c: c.get_bucket_policy(Bucket=bucket), absent=NO_POLICY)
            return None if resp is None else str(resp.get("Policy") or "") or None

        return self._once(("policy", bucket), call)

    def lifecycle_rules(self, region: str, bucket: str) -> list[dict[str, Any]]:
        def call() -> list[dict[str, Any]]:
            resp = self._s3_call(
                "GetBucketLifecycleConfiguration",
                region,
                lambda c: c.get_bucket_lifecycle_configuration(Bucket=bucket),
                absent=NO_LIFECYCLE,
            )
            return list((resp or {}).get("Rules", []))

        return self._once(("lifecycle", bucket), call)

    def object_versions(self, region: str, bucket: str, keep: Callable[[str], bool]) -> list[ObjectVersion]:
        """Versions and delete markers whose key ``keep`` accepts (the rest are not kept in memory)."""

        def pages() -> Iterator[ListObjectVersionsOutputTypeDef]:
            client = self._aws.s3(region)
            kwargs: dict[str, Any] = {"Bucket": bucket}
            while True:
                try:
                    page = client.list_object_versions(**kwargs)
                except (ClientError, BotoCoreError) as exc:
                    raise _translate("ListObjectVersions", exc) from exc
                yield page
                if not page.get("IsTruncated"):
                    return
                kwargs["KeyMarker"] = page.get("NextKeyMarker", "")
                kwargs["VersionIdMarker"] = page.get("NextVersionIdMarker", "")

        def call() -> list[ObjectVersion]:
            kept: list[ObjectVersion] = []
            for page in pages():
                for v in page.get("Versions", []):
                    if keep(v["Key"]):
                        kept.append(
                            ObjectVersion(
                                v["Key"],
                                v.get("VersionId", "null"),
                                bool(v.get("IsLatest")),
                                v["LastModified"],
                                False,
                                int(v.get("Size", 0)),
                            )
                        )
                for m in page.get("DeleteMarkers", []):
                    if keep(m["Key"]):
                        kept.append(
                            ObjectVersion(m["Key"], m.get("VersionId", "null"), bool(m.get("IsLatest")), m["LastModified"], True, 0)
                        )
            return kept

        return self._once(("versions", bucket), call)
