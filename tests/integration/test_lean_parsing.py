"""The sweep's bulk calls parse only what it reads (aws/lean.py): exactly what botocore would give, for hostile
keys and items too, and only for the sweep's own calls."""

from __future__ import annotations

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.integration.conftest import session
from tfjanitor.aws.backend import Bucket, LockTable
from tfjanitor.aws.session import AwsSession
from tfjanitor.local.emulator import MotoServer

KEYS = [
    "plain/terraform.tfstate",
    "a b/c+d/terraform.tfstate",
    "percent%20/x%2Fy.tfstate",
    "ünï ✓/팀/terraform.tfstate",
    "esc\x1b[31m/ctl\x07.tfstate",
    "amp&lt;<>'\"/k.tfstate",
    "trailing space /k ",
    "env:/staging/dev/terraform.tfstate",
]


def test_a_lean_listing_is_what_botocore_parses(backend: MotoServer) -> None:
    s3 = client("s3", backend)
    for i, key in enumerate(KEYS):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * (i + 1))
    botocore_view = {o["Key"]: (o["ETag"], o["Size"], o["LastModified"]) for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    aws = AwsSession(session(), endpoint_url=backend.url)
    bucket = Bucket(aws, REGION, BUCKET)
    lean = {e.key: (e.etag, e.size, e.last_modified) for page, _ in bucket.list_pages() for e in page}
    assert lean == botocore_view and set(lean) == set(KEYS)
    offsets = [when.utcoffset() for _, _, when in lean.values()]
    assert all(offset is not None and offset.total_seconds() == 0 for offset in offsets)
    # Any other call of the same client is parsed as ever.
    assert len(aws.s3(REGION).list_objects_v2(Bucket=BUCKET)["Contents"]) == len(KEYS)


def test_a_lean_listing_pages_and_starts_after_as_botocore(backend: MotoServer) -> None:
    s3 = client("s3", backend)
    keys = [f"k/{i:04d}" for i in range(2100)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=BUCKET, Key=k, Body=b""), keys))
    bucket = Bucket(AwsSession(session(), endpoint_url=backend.url), REGION, BUCKET)
    pages = [([e.key for e in page], more) for page, more in bucket.list_pages(start_after="k/0099")]
    assert [len(p) for p, _ in pages] == [1000, 1000] and [m for _, m in pages] == [True, False]
    assert [k for p, _ in pages for k in p] == keys[100:]


def test_a_lean_scan_is_what_botocore_parses(backend: MotoServer) -> None:
    ddb = client("dynamodb", backend)
    items = [{"LockID": {"S": f"{BUCKET}/k{i}"}, "Info": {"S": "{}"}} for i in range(5)] + [
        {
            "LockID": {"S": "foreign/1"},
            "Qty": {"N": "1.50"},
            "Tags": {"SS": ["a", "b"]},
            "Ok": {"BOOL": True},
            "Nothing": {"NULL": True},
            "Doc": {"M": {"x": {"L": [{"S": "y"}]}}},
        }
    ]
    for item in items:
        ddb.put_item(TableName=TABLE, Item=item)
    seen: list[dict] = []
    LockTable(AwsSession(session(), endpoint_url=backend.url), REGION, TABLE).read(seen.append)
    by_id = {i["LockID"]["S"]: i for i in seen}
    assert by_id == {i["LockID"]["S"]: i for i in ddb.scan(TableName=TABLE)["Items"]}
