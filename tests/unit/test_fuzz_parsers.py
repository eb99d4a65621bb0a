"""Property tests: whatever a lock table, a .tflock object or a stream record holds, the parsers and the
stream handler never raise. Malformed input becomes a malformed_item finding or a counted malformed record."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, cast

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.fakes import FakeAlertStore
from tests.support.hostile import REGION, lock_table_items, lock_texts, stream_records
from tfjanitor.aws.backend import Bucket, ObjectEntry
from tfjanitor.aws.session import AwsSession
from tfjanitor.checks import findings as build
from tfjanitor.model import Kind, ScanResult
from tfjanitor.scan.buckets import BucketView
from tfjanitor.scan.reading import Read as _Read
from tfjanitor.scan.stream import FOREIGN, MALFORMED, StreamMonitor, event_from_record
from tfjanitor.scan.sweeper import Sweeper, SweepRequest
from tfjanitor.terraform import BadItem, DigestItem, LockItem, MalformedItem, classify_item, parse_lock_info

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
FUZZ = settings(max_examples=300, deadline=None)


def deliverable(finding_doc: dict[str, Any]) -> None:
    """What alerts and logs do with a finding: JSON, then UTF-8 (a lone surrogate would fail here)."""
    json.dumps(finding_doc, ensure_ascii=False).encode("utf-8")


@FUZZ
@given(lock_texts())
def test_lock_info_parses_or_is_malformed(raw: str) -> None:
    try:
        lock = parse_lock_info(raw)
    except MalformedItem:
        return
    assert lock.operation_class in {"apply", "plan", "other"}
    assert lock.age_seconds(NOW) >= 0
    for text in (lock.id, lock.operation, lock.who, lock.version, lock.path, lock.info):
        text.encode("utf-8")


@FUZZ
@given(lock_table_items())
def test_every_item_is_a_lock_a_digest_or_a_malformed_item_finding(item: Any) -> None:
    got = classify_item(item)
    if isinstance(got, BadItem):
        finding = build.malformed_item(REGION, "t", got.lock_id, got.reason, got.foreign, got.values)
        assert finding.kind is Kind.MALFORMED_ITEM
        deliverable(finding.to_dict())
    elif isinstance(got, LockItem):
        deliverable(build.stale_lock(REGION, "t", got.bucket, got.key, got.lock, NOW, timedelta(hours=1)).to_dict())
    else:
        assert isinstance(got, DigestItem) and len(got.digest) == 32


class OneObject(Bucket):
    """A bucket holding one .tflock object (Sweeper._check_lockfile reads it through read_small); no AWS behind it
    (``Bucket.__init__`` is not run)."""

    name = "b"

    def __init__(self, body: bytes):
        self.body = body

    def read_small(self, key: str, limit: int = 64 * 1024) -> tuple[bytes, str]:
        return self.body, '"etag"'

    def head(self, key: str) -> None:
        return None  # no state object: the lock's only sign of life is its Created


LISTED = ObjectEntry("k", "etag", 1, NOW - timedelta(days=1))  # the .tflock as the listing showed it


@FUZZ
@given(st.one_of(st.binary(max_size=200), lock_texts().map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_every_tflock_body_is_a_lock_or_a_malformed_item_finding(body: bytes) -> None:
    result = ScanResult(REGION, [], ["b"])
    Sweeper(cast(AwsSession, None), now=NOW)._check_lockfile(  # no AWS: the one object is OneObject's
        result, OneObject(body), BucketView(), "k", LISTED, NOW, SweepRequest(REGION, []), None, _Read()
    )
    try:
        parse_lock_info(body.decode("utf-8"))
        valid = True
    except (MalformedItem, UnicodeDecodeError):
        valid = False
    kinds = [f.kind for f in result.findings]
    assert kinds in ([], [Kind.STALE_LOCKFILE]) if valid else kinds == [Kind.MALFORMED_ITEM]
    for finding in result.findings:
        deliverable(finding.to_dict())


class QuietChecker:
    def check_state(self, region: str, table: str, bucket: str, key: str) -> ScanResult:
        return ScanResult(region, [table], [bucket])


@FUZZ
@given(st.lists(stream_records(), min_size=1, max_size=5))
def test_every_stream_record_is_handled_and_malformed_ones_are_counted(records: list[dict[str, Any]]) -> None:
    monitor = StreamMonitor(checker=QuietChecker(), store=FakeAlertStore())
    kinds = []
    for record in records:
        event = event_from_record(DynamoDBRecord(record))
        kinds.append(event.kind)
        monitor.handle(event, NOW)
    assert monitor.summary.malformed == kinds.count(MALFORMED)
    assert monitor.summary.foreign == kinds.count(FOREIGN)
