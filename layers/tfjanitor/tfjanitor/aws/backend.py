"""Terraform's own lock tables and state buckets: bulk reads, and the conditional lock deletes."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast
from xml.etree.ElementTree import ParseError

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:  # pragma: no cover
    from mypy_boto3_s3 import S3Client

from tfjanitor.aws import lean
from tfjanitor.aws.items import batch_get
from tfjanitor.aws.session import CALL_ERRORS, AwsError, AwsSession, _translate
from tfjanitor.model import ObjectVersion
from tfjanitor.terraform import normalize_etag

CHUNK_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    key: str
    etag: str
    size: int
    last_modified: datetime


def _consumed(items: list[Any]) -> Iterator[Any]:
    """A page's entries in order, each dropped from the page once yielded."""
    items.reverse()
    while items:
        yield items.pop()


def _utc(when: datetime) -> datetime:
    """botocore gives each parsed timestamp a tz object of its own (a few hundred bytes): share one."""
    return when.astimezone(timezone.utc)


# Pages each table's last full Scan took, in this process (a warm Lambda's next sweep, the bench's second run):
# a table known to span several pages is read in parallel segments (remembering costs no call).
_PAGES_SEEN: dict[tuple[str, str, str], int] = {}
MAX_SEGMENTS = 2  # each segment holds a parsed page (MBs) at a time. Measured at 100,000 states (11 pages): peak RSS
# 122.9 MB read page by page, 125.4 MB with 2 segments, 127.4 MB with 4; the critical path 217, 208 and 205 calls
# (listing and downloads dominate it). Two keep the 128 MB sweeper's margin for most of the gain.
PARALLEL_FROM = 6  # pages: below this, the first page let go and DescribeTable cost the round trips segments save


class LockTable:
    """Read access to one Terraform lock table."""

    def __init__(self, aws: AwsSession, region: str, name: str):
        self._aws = aws
        self.region = region
        self.name = name
        self.pages = 0  # Scan calls this reader made (all segments)
        self._lock = threading.Lock()

    def _memo_key(self) -> tuple[str, str, str]:
        return (self._aws.endpoint_url or "", self.region, self.name)

    def segments(self) -> int:
        """How many parallel Scan segments to read this table with: one unless it is known to span several pages."""
        return max(1, min(MAX_SEGMENTS, _PAGES_SEEN.get(self._memo_key(), 1)))

    def read(self, take: Callable[[dict[str, Any]], None]) -> None:
        """Every item to ``take`` (from several threads at once when the table is read in segments).

        A table known to span several pages is read in parallel segments. Otherwise the first page tells: if more
        follow and the table's ItemCount (DescribeTable) says at least ``PARALLEL_FROM`` pages of such items, that
        page is let go and the table is read in segments; else the Scan goes on page by page. A one-page table
        costs one Scan, as ever."""
        total = self.segments()
        if total == 1:
            first = self._page({})
            last, items = first.get("LastEvaluatedKey"), first.pop("Items", [])
            del first
            if last is not None and MAX_SEGMENTS > 1 and (estimate := self._pages_estimate(len(items))) >= PARALLEL_FROM:
                del items
                self.pages, total = 0, min(MAX_SEGMENTS, estimate)
            else:
                for raw in _consumed(items):
                    take(raw)
                if last is not None:
                    for raw in self.scan(start=last):
                        take(raw)
                _PAGES_SEEN[self._memo_key()] = self.pages  # what the next read in this process plans with
                return

        def segment(n: int) -> None:
            for raw in self.scan(n, total):
                take(raw)

        self._aws.in_parallel(segment, range(total), workers=total)
        _PAGES_SEEN[self._memo_key()] = self.pages

    def _pages_estimate(self, per_page: int) -> int:
        """Pages of ``per_page`` items the whole table holds, by its ItemCount (updated about every six hours)."""
        try:
            count = self._aws.dynamodb(self.region).describe_table(TableName=self.name)["Table"].get("ItemCount", 0)
        except CALL_ERRORS:
            return 1  # not known: page by page
        return -(-int(count) // max(1, per_page))

    def _page(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            with lean.lean():
                # A plain dict: the lean hooks (aws/lean.py) add ENTRIES, a key the stubs' TypedDict has not.
                page = cast(dict[str, Any], self._aws.dynamodb(self.region).scan(TableName=self.name, ConsistentRead=True, **kwargs))
        except (ClientError, BotoCoreError) as exc:
            raise _translate("Scan", exc) from exc
        if lean.ENTRIES in page:
            page["Items"] = page.pop(lean.ENTRIES)
        with self._lock:
            self.pages += 1
        return page

    def scan(self, segment: int = 0, total: int = 1, start: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item (of one segment of ``total``; after ``start``), page by page (strongly consistent, low-level
        typed). Each item is let go as it is consumed: a 1 MB page parses into several MB of dicts, and a segment
        never holds two pages at once."""
        kwargs: dict[str, Any] = {"Segment": segment, "TotalSegments": total} if total > 1 else {}
        if start:
            kwargs["ExclusiveStartKey"] = start
        while True:
            page = self._page(kwargs)
            last = page.get("LastEvaluatedKey")
            yield from _consumed(page.pop("Items", []))
            del page
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def get_many(self, lock_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Consistent BatchGetItem of the given LockIDs; absent ones are left out."""
        return batch_get(self._aws.dynamodb(self.region), self.name, "LockID", lock_ids)


def storable(key: str) -> bool:
    """Whether S3 can hold an object under this key (1 to 1,024 bytes of UTF-8). A lock table may name any text:
    a key S3 cannot hold names no object, and is never sent (as a StartAfter, it would fail the listing)."""
    try:
        return 0 < len(key.encode("utf-8")) <= 1024
    except UnicodeEncodeError:
        return False


class Bucket:
    """Read access to one state bucket (never a write: the janitor does not touch state)."""

    def __init__(self, aws: AwsSession, scan_region: str, name: str):
        self._aws = aws
        self._scan_region = scan_region
        self.name = name
        self.region: str | None = None  # known after location()

    def location(self) -> str:
        try:
            resp = self._aws.s3(self._scan_region).get_bucket_location(Bucket=self.name)
        except CALL_ERRORS as exc:
            raise _translate("GetBucketLocation", exc) from exc
        except ParseError as exc:  # botocore's own GetBucketLocation handler parses the body as XML
            raise AwsError("GetBucketLocation", "MalformedResponse", "the response is not S3's XML") from exc
        constraint = resp.get("LocationConstraint")
        # An empty location means us-east-1; "EU" is the legacy name of eu-west-1.
        self.region = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(constraint, constraint)
        return self.region

    @property
    def home_region(self) -> str:
        """Where its calls go: its own region once located, else the scan's."""
        return self.region or self._scan_region

    def _s3(self) -> S3Client:
        return self._aws.s3(self.home_region)

    def list_pages(self, prefix: str = "", start_after: str = "") -> Iterator[tuple[Iterator[ObjectEntry], bool]]:
        """The listing page by page: (its entries, each let go as it is consumed; whether more pages follow).
        A reader that stops early (a key range read, a plan that turns to HeadObject) makes no further call."""
        client = self._s3()
        kwargs: dict[str, Any] = {"Bucket": self.name}
        if prefix:
            kwargs["Prefix"] = prefix
        if start_after:
            kwargs["StartAfter"] = start_after
        while True:
            try:
                with lean.lean():
                    page = cast(dict[str, Any], client.list_objects_v2(**kwargs))  # the lean hooks add ENTRIES
            except (ClientError, BotoCoreError) as exc:
                raise _translate("ListObjectsV2", exc) from exc
            token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
            if lean.ENTRIES in page:  # parsed the lean way (aws/lean.py)
                taken = page.pop(lean.ENTRIES)
                del page
                yield (
                    (ObjectEntry(key, etag, size, lean.timestamp(when)) for key, etag, size, when in _consumed(taken)),
                    token is not None,
                )
            else:
                contents = page.pop("Contents", [])
                del page
                yield (
                    (ObjectEntry(o["Key"], o.get("ETag", ""), o.get("Size", 0), _utc(o["LastModified"])) for o in _consumed(contents)),
                    token is not None,
                )
            if not token:
                return
            kwargs["ContinuationToken"] = token

    def head(self, key: str) -> ObjectEntry | None:
        """One object's listing entry, or None if it does not exist. Keys come from lock tables: one S3 cannot
        hold (not UTF-8, too long) names no object, as a listing would show, and is never sent. Any other 400 is
        not "no such object" (an SSE-C object asked for without its key): an :class:`AwsError` whose
        ``unreadable`` is true."""
        if not storable(key):
            return None
        try:
            resp = self._s3().head_object(Bucket=self.name, Key=key)
        except (ClientError, BotoCoreError) as exc:
            err = _translate("HeadObject", exc)
            if err.not_found or err.code in {"KeyTooLongError", "InvalidArgument", "InvalidURI"}:
                return None
            raise err from exc
        return ObjectEntry(key, resp.get("ETag", ""), resp.get("ContentLength", 0), _utc(resp["LastModified"]))

    def md5(self, key: str, version_id: str | None = None) -> tuple[str, int, datetime]:
        """Stream the object (or one version of it) through MD5 in chunks: (hex digest, bytes read, its
        LastModified). Never kept."""
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        try:
            resp = (
                self._s3().get_object(Bucket=self.name, Key=key, VersionId=version_id)
                if version_id
                else self._s3().get_object(Bucket=self.name, Key=key)
            )
            body, written = resp["Body"], resp["LastModified"]
            try:
                for chunk in body.iter_chunks(CHUNK_SIZE):
                    digest.update(chunk)
                    size += len(chunk)
            finally:
                body.close()
        except (ClientError, BotoCoreError) as exc:
            raise _translate("GetObject", exc) from exc
        return digest.hexdigest(), size, written

    def versions(self, key: str) -> list[ObjectVersion]:
        """The versions and delete markers of exactly ``key``, newest first: one ListObjectVersions call
        with the key as prefix (its first 1,000 entries). An unversioned bucket shows one ``null`` version."""
        try:
            page = self._s3().list_object_versions(Bucket=self.name, Prefix=key)
        except CALL_ERRORS as exc:
            raise _translate("ListObjectVersions", exc) from exc
        found = [
            ObjectVersion(
                v["Key"],
                v.get("VersionId") or "null",
                bool(v.get("IsLatest")),
                v["LastModified"],
                False,
                int(v.get("Size", 0)),
                normalize_etag(v.get("ETag")),
            )
            for v in page.get("Versions", [])
            if v.get("Key") == key
        ] + [
            ObjectVersion(m["Key"], m.get("VersionId") or "null", bool(m.get("IsLatest")), m["LastModified"], True)
            for m in page.get("DeleteMarkers", [])
            if m.get("Key") == key
        ]
        return sorted(found, key=lambda v: (v.is_latest, v.last_modified), reverse=True)

    def read_small(self, key: str, limit: int = 64 * 1024) -> tuple[bytes, str]:
        """A lock object's body (lock info is tiny; larger bodies are cut) and its ETag."""
        try:
            resp = self._s3().get_object(Bucket=self.name, Key=key)
            body = resp["Body"]
            try:
                data = body.read(limit)
            finally:
                body.close()
        except (ClientError, BotoCoreError) as exc:
            raise _translate("GetObject", exc) from exc
        return data, resp.get("ETag", "")


class LockGone(Exception):
    """A conditional delete found the lock changed or gone: nothing was deleted."""


def _is_condition_failure(exc: ClientError) -> bool:
    err = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return err.get("Code") in {"ConditionalCheckFailedException", "PreconditionFailed"} or status == 412


class LockWriter:
    """The only code that deletes Terraform locks: each delete is conditional on the exact lock observed.

    Never touches digest items or state objects: DynamoDB deletes require ``Info`` to equal
    what was read (a digest item has no Info), S3 deletes only ``*.tflock`` keys and require
    the ETag that was read.
    """

    def __init__(self, aws: AwsSession, region: str):
        self._aws = aws
        self._region = region

    def read_lock_item(self, table: str, lock_id: str) -> str | None:
        """The lock item's raw Info (consistent read), or None if there is no lock item."""
        try:
            resp = self._aws.dynamodb(self._region).get_item(TableName=table, Key={"LockID": {"S": lock_id}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise _translate("GetItem", exc) from exc
        info = resp.get("Item", {}).get("Info", {})
        return info.get("S") if isinstance(info, dict) else None

    def delete_lock_item(self, table: str, lock_id: str, info: str) -> None:
        try:
            self._aws.dynamodb(self._region).delete_item(
                TableName=table,
                Key={"LockID": {"S": lock_id}},
                ConditionExpression="Info = :info",
                ExpressionAttributeValues={":info": {"S": info}},
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise LockGone(f"the lock item {lock_id} changed or was released since it was read") from exc
            raise _translate("DeleteItem", exc) from exc
        except BotoCoreError as exc:
            raise _translate("DeleteItem", exc) from exc

    def read_lockfile(self, bucket: str, key: str, region: str | None = None) -> tuple[bytes, str] | None:
        """A ``.tflock`` object's body and ETag, or None if it does not exist."""
        try:
            return Bucket(self._aws, region or self._region, bucket).read_small(key)
        except AwsError as exc:
            if exc.not_found:
                return None
            raise

    def delete_lockfile(self, bucket: str, key: str, etag: str, region: str | None = None) -> None:
        if not key.endswith(".tflock"):
            raise ValueError(f"refusing to delete {key!r}: only .tflock lock objects are ever deleted")
        try:
            self._aws.s3(region or self._region).delete_object(Bucket=bucket, Key=key, IfMatch=etag)
        except ClientError as exc:
            if _is_condition_failure(exc) or _translate("DeleteObject", exc).not_found:
                raise LockGone(f"s3://{bucket}/{key} changed or was released since it was read") from exc
            raise _translate("DeleteObject", exc) from exc
        except BotoCoreError as exc:
            raise _translate("DeleteObject", exc) from exc
