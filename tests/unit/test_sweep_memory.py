"""What a sweep keeps from a bucket listing: the sweeper Lambda has 128 MB for 100,000 states, so a state proven
by its ETag keeps no listing entry, and only what a later check reads is kept (issue 13.2)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

from tfjanitor.aws.backend import Bucket, ObjectEntry
from tfjanitor.aws.session import AwsSession
from tfjanitor.scan.buckets import PROVEN, BucketRead, read_bucket

WHEN = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
STATES = 5000


def md5_of(i: int) -> str:
    return f"{i:032x}"


class Listing(Bucket):
    """A bucket in the scan's region whose listing is given in S3's order (UTF-8 binary); no AWS behind it
    (``Bucket.__init__`` is not run)."""

    name = "tfstate"

    def __init__(self, entries: list[ObjectEntry]):
        self._entries = sorted(entries, key=lambda e: e.key.encode())

    def location(self) -> str:
        return "eu-west-1"

    def list_pages(self, prefix: str = "", start_after: str = "") -> Iterator[tuple[Iterator[ObjectEntry], bool]]:
        entries = [e for e in self._entries if e.key.startswith(prefix) and e.key.encode() > start_after.encode()]
        yield iter(entries), False


def survey(listing: Listing, wanted: dict[str, str | None], keep_all: bool, scan_region: str):
    """The whole-bucket read (the audit's, and a bucket given without prefix)."""
    return read_bucket(AwsSession(), BucketRead(listing, wanted, [""], keep_all=keep_all, scan_region=scan_region))


def state(key: str, md5: str) -> ObjectEntry:
    return ObjectEntry(key, f'"{md5}"', 2048, WHEN)


def test_a_state_proven_by_its_etag_keeps_no_listing_entry_unless_a_check_reads_it() -> None:
    wanted: dict[str, str | None] = {f"team/s{i:05d}/terraform.tfstate": md5_of(i) for i in range(STATES)}
    wanted["locked/terraform.tfstate"] = None  # a held lock: its liveness reads the object's LastModified
    wanted["drifted/terraform.tfstate"] = md5_of(1)
    wanted["both/terraform.tfstate"] = md5_of(2)  # proven, and a .tflock follows a sibling key
    entries = [state(k, d or md5_of(3)) for k, d in wanted.items() if not k.startswith("drifted")]
    entries += [
        state("drifted/terraform.tfstate", md5_of(4)),
        state("both/terraform.tfstate-backup", md5_of(5)),  # sorts between the state and its .tflock
        state("both/terraform.tfstate.tflock", md5_of(6)),
        state("unrelated/build.log", md5_of(7)),
    ]

    view, region, errors = survey(Listing(entries), wanted, keep_all=False, scan_region="eu-west-1")

    assert (region, errors, view.listed, view.objects_seen) == ("eu-west-1", [], True, STATES + 6)
    assert sorted(view.objects) == ["both/terraform.tfstate", "drifted/terraform.tfstate", "locked/terraform.tfstate"]
    assert sum(1 for v in wanted.values() if v == PROVEN) == STATES + 1
    assert list(view.lockfiles) == ["both/terraform.tfstate"]


def test_the_audit_and_a_bucket_in_another_region_keep_every_listed_state() -> None:
    for keep_all, scan_region in ((True, "eu-west-1"), (False, "us-east-1")):
        wanted: dict[str, str | None] = {f"s{i}": md5_of(i) for i in range(50)}
        view, _, _ = survey(
            Listing([state(k, d or "") for k, d in wanted.items()]), dict(wanted), keep_all=keep_all, scan_region=scan_region
        )
        assert len(view.objects) == 50
