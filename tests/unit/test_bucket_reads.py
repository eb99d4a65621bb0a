"""Issue 13.3: each bucket is read for at most 1.2 x the cheaper of its two bounds (one ListObjectsV2 per 1,000
objects; one HeadObject per named state), whatever lies around the states, and what was looked at for lock
files is what the coverage says (scan/buckets.py). A fake bucket pages like S3 (UTF-8 binary order, 1,000 a page,
StartAfter, Prefix) and counts calls."""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from tfjanitor.aws.backend import Bucket, ObjectEntry
from tfjanitor.aws.session import AwsSession
from tfjanitor.model import BucketSpec, LockfileCoverage
from tfjanitor.runtime.settings import SettingsError, SweeperSettings
from tfjanitor.scan.buckets import PROVEN, BucketRead, just_before, read_bucket

WHEN = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def etag_of(key: str) -> str:
    return f"{abs(hash(key)):032x}"[:32]


class FakeBucket(Bucket):
    """A Bucket with no AWS behind it (``Bucket.__init__`` is not run): what ``read_bucket`` calls, faked."""

    name = "tfstate"

    def __init__(self, keys: list[str]):
        self.keys = sorted(keys)
        self.pages = 0
        self.heads = 0

    def location(self) -> str:
        return "eu-west-1"

    def list_pages(self, prefix: str = "", start_after: str = "") -> Iterator[tuple[Iterator[ObjectEntry], bool]]:
        i = bisect_right(self.keys, start_after) if start_after else 0
        while True:
            self.pages += 1
            page: list[ObjectEntry] = []
            while i < len(self.keys) and len(page) < 1000:
                key = self.keys[i]
                i += 1
                if key.startswith(prefix):
                    page.append(ObjectEntry(key, f'"{etag_of(key)}"', 10, WHEN))
                elif key > prefix:
                    i = len(self.keys)
            more = i < len(self.keys)
            yield iter(page), more
            if not more:
                return

    def head(self, key: str) -> ObjectEntry | None:
        self.heads += 1
        j = bisect_right(self.keys, key) - 1
        if j >= 0 and self.keys[j] == key:
            return ObjectEntry(key, f'"{etag_of(key)}"', 10, WHEN)
        return None


def layouts() -> dict[str, tuple[list[str], list[str]]]:
    """(every key, the named states): 100 states and 200,000 objects that are not states."""
    rng = random.Random(13)
    states_dirs = [f"team-{i:03d}/terraform.tfstate" for i in range(100)]
    out: dict[str, tuple[list[str], list[str]]] = {}
    # States in a folder of their own, artifacts sorting before and after them.
    states = [f"states/{s}" for s in states_dirs]
    out["apart"] = (
        [f"artifacts/{i:06d}.zip" for i in range(100_000)] + states + [f"zz-logs/{i:06d}.log" for i in range(100_000)],
        states,
    )
    # States spread at random among build output.
    names = sorted(f"build/{rng.getrandbits(64):016x}/out.log" for _ in range(200_000))
    states = sorted(f"build/{rng.getrandbits(64):016x}/terraform.tfstate" for _ in range(100))
    out["scattered"] = (names + states, states)
    # Each state next to 2,000 files of its team.
    states = [f"team-{i:03d}/terraform.tfstate" for i in range(100)]
    out["with-their-team"] = ([f"team-{i:03d}/artifacts/{j:05d}" for i in range(100) for j in range(2000)] + states, states)
    # A state bucket with nothing else (today's bench shape), and some lock files.
    states = [f"env-{i:05d}/terraform.tfstate" for i in range(10_000)]
    out["only-states"] = (states + [s + ".tflock" for s in states[::50]], states)
    return out


@pytest.mark.parametrize("layout", ["apart", "scattered", "with-their-team", "only-states"])
def test_a_bucket_costs_at_most_1_2_times_the_cheaper_bound(layout: str) -> None:
    keys, states = layouts()[layout]
    bucket = FakeBucket(keys)
    wanted: dict[str, str | None] = {s: etag_of(s) for s in states}
    view, _, errors = read_bucket(AwsSession(), BucketRead(bucket, wanted, scan_region="eu-west-1"))
    assert errors == [] and view.listed
    calls = bucket.pages + bucket.heads
    cheaper = min(-(-len(keys) // 1000), len(states))
    assert calls <= 1.2 * cheaper, (layout, view.report(), cheaper)
    assert all(v == PROVEN for v in wanted.values())  # every state was seen and proven by its ETag
    assert (view.pages, view.heads) == (bucket.pages, bucket.heads)


def test_what_the_heads_find_is_what_a_listing_finds() -> None:
    """Missing, drifted and locked states, read by HeadObject among 50,000 other objects."""
    states = [f"build/{i:05d}/terraform.tfstate" for i in range(0, 50_000, 5_000)]
    keys = [f"build/{i:05d}/out.log" for i in range(50_000)] + states[1:]  # the first state's object is gone
    keys += [states[2] + ".tflock", states[4] + ".tflock"]
    bucket = FakeBucket(keys)
    wanted: dict[str, str | None] = {s: etag_of(s) for s in states}
    wanted[states[3]] = "0" * 32  # its digest does not match
    wanted[states[2]] = None  # a held lock
    view, _, _ = read_bucket(AwsSession(), BucketRead(bucket, wanted, scan_region="eu-west-1"))
    how = view.report()["how"]
    assert isinstance(how, str) and "head" in how
    assert states[0] not in view.objects and wanted[states[0]] == etag_of(states[0])  # missing: not proven
    assert set(view.objects) == {states[2], states[3]}  # the kept entries: a lock, a mismatch
    assert set(view.lockfiles) == {states[2]}  # looked for only where it matters
    assert view.coverage is not None
    assert view.coverage.covers(states[2]) and view.coverage.covers(states[3])
    assert not view.coverage.covers(states[4])  # its lock file was not looked at: its alert stays as it is
    assert wanted[states[5]] == PROVEN


def test_a_prefix_bounds_the_lock_file_search_and_rechecks_reach_the_rest() -> None:
    keys = [f"ci/{i}/terraform.tfstate.tflock" for i in range(3)] + ["other/x/terraform.tfstate.tflock"]
    keys += [f"junk/{i:05d}" for i in range(5000)]
    bucket = FakeBucket(keys)
    view, _, _ = read_bucket(AwsSession(), BucketRead(bucket, {}, ["ci/"], recheck={"other/x/terraform.tfstate"}))
    assert sorted(view.lockfiles) == [f"ci/{i}/terraform.tfstate" for i in range(3)] + ["other/x/terraform.tfstate"]
    assert (bucket.pages, bucket.heads) == (1, 1)
    assert view.coverage == LockfileCoverage(prefixes=["ci/"], keys={"other/x/terraform.tfstate"})
    assert not view.coverage.covers("junk/00001")


def test_the_whole_bucket_for_a_bucket_given_without_prefix() -> None:
    bucket = FakeBucket([f"k{i:05d}" for i in range(2500)] + ["lone/terraform.tfstate.tflock"])
    view, _, _ = read_bucket(AwsSession(), BucketRead(bucket, {}, [""]))
    assert view.coverage is None and list(view.lockfiles) == ["lone/terraform.tfstate"] and bucket.pages == 3


@pytest.mark.parametrize("key", ["a", "env/terraform.tfstate", "x\u00e9/\U0001f600", "k!", "k\x1b[2J/x", "\x85k"])
def test_just_before_lists_the_key_first(key: str) -> None:
    """Only keys that start with the lower neighbour of its last character sort between (none in practice); a key
    S3 could not echo back in XML starts the range at its longest prefix it can."""
    after = just_before(key)
    assert after < key and all(0x20 <= ord(c) < 0x7F or ord(c) >= 0xA0 for c in after)
    listed = [e.key for e in next(FakeBucket([key[:-1], key, key + "x"]).list_pages(start_after=after))[0]]
    assert listed[0] == key if after else key in listed


@pytest.mark.parametrize(
    ("text", "spec"),
    [("tfstate", ("tfstate", "")), ("tfstate/ci/", ("tfstate", "ci/")), ("tf.state-1/env:/prod", ("tf.state-1", "env:/prod"))],
)
def test_a_bucket_is_given_as_name_or_name_slash_prefix(text: str, spec: tuple[str, str]) -> None:
    parsed = BucketSpec.parse(text)
    assert (parsed.name, parsed.prefix) == spec and str(parsed) == text


@pytest.mark.parametrize("text", ["", "ab", "Bad_Name", "tfstate/", "s3://tfstate", "/ci"])
def test_anything_else_is_refused_with_the_form_to_use(text: str) -> None:
    with pytest.raises(ValueError, match="NAME or NAME/PREFIX|prefix after the slash"):
        BucketSpec.parse(text)
    if not text:
        return  # a blank entry of a comma-separated list is dropped
    with pytest.raises(SettingsError, match="EXTRA_BUCKETS"):
        SweeperSettings(region="eu-west-1", lock_tables=["locks"], extra_buckets=["tfstate", text])


def test_regions_read_four_at_a_time_chain_on_the_worker_that_takes_them() -> None:
    from tfjanitor.scan.fleet import _critical_path

    assert _critical_path([5] * 5) == 10 and _critical_path([9, 1, 1, 1, 1, 1]) == 9 and _critical_path([]) == 0


def test_a_key_s3_cannot_hold_is_missing_and_never_sent() -> None:
    """Hostile lock items: an overlong key, a lone surrogate, control characters. None may fail the bucket's read:
    each is a state whose object does not exist (as a whole listing shows), the real states are still proven."""
    hostile = ["a" * 1100 + "/terraform.tfstate", "x\ud800/terraform.tfstate", "\x1b[2J\x85/terraform.tfstate"]
    real = [f"ok/{i:05d}/terraform.tfstate" for i in range(3)]
    bucket = FakeBucket([f"ok/{i:05d}/x.log" for i in range(3000)] + real)
    wanted: dict[str, str | None] = {k: etag_of(k) for k in hostile + real}
    view, _, errors = read_bucket(AwsSession(), BucketRead(bucket, wanted, scan_region="eu-west-1"))
    assert errors == [] and view.listed and all(wanted[k] == PROVEN for k in real)
    assert all(wanted[k] == etag_of(k) and k not in view.objects for k in hostile)


def test_a_state_answered_400_by_head_object_is_unreadable_never_missing() -> None:
    """SSE-C states answer HeadObject with 400 without their key (issue 18.6): the state is there and cannot be
    checked. Read by HeadObject (a crowded bucket), it is recorded as unreadable, never as no such object."""
    from tfjanitor.aws.session import AwsError

    sealed = "build/02500/terraform.tfstate"

    class Sealed(FakeBucket):
        def head(self, key: str) -> ObjectEntry | None:
            if key == sealed:
                self.heads += 1
                raise AwsError("HeadObject", "BadRequest", "Bad Request")
            return super().head(key)

    keys = [f"build/{i:05d}/out.log" for i in range(5000)]
    states = [f"build/{i:05d}/terraform.tfstate" for i in (0, 2500, 3500, 4800)]
    bucket = Sealed(keys + states)
    wanted: dict[str, str | None] = dict.fromkeys(states, "0" * 32)
    view, _, errors = read_bucket(AwsSession(), BucketRead(bucket, wanted))
    assert errors == [] and view.listed and "head" in view.how
    assert view.unreadable == {sealed: "BadRequest"}
    assert sealed not in view.objects and wanted[sealed] != PROVEN
