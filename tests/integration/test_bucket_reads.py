"""Issue 13.3 against the emulator: a bucket crowded with other objects is read by HeadObject and finds what a
whole listing finds; ``--bucket NAME/PREFIX`` bounds the lock-file search; an alert on a lock file the sweep's reads
did not cover is looked at by name (never resolved unseen, never stuck open); a table of several pages is read in
parallel Scan segments, and ``stats.critical_path_calls`` shows it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.integration.conftest import captured, session
from tests.support.builders import lock_info, md5, put_lock, put_state, state_body
from tfjanitor.aws.session import AwsSession
from tfjanitor.local.emulator import MotoServer
from tfjanitor.model import Kind, StalePolicy
from tfjanitor.runtime.settings import SweeperSettings
from tfjanitor.runtime.wiring import sweep_and_alert
from tfjanitor.scan.sweeper import Sweeper, SweepRequest

ROOT = Path(__file__).resolve().parents[2]
JUNK = 1500  # objects that are not states, sorting among them


def put_junk(server: MotoServer, keys: list[str]) -> None:
    s3 = client("s3", server)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=BUCKET, Key=k, Body=b"x"), keys))


def findings(result) -> list[tuple[str, str | None, str | None]]:
    return sorted((f.kind.value, f.key, f.lock_id) for f in result.findings)


def test_a_crowded_bucket_is_read_by_head_and_finds_what_a_whole_listing_finds(backend) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_junk(backend, [f"build/{i:05d}/out.log" for i in range(JUNK)])
    keys = [f"build/{i:05d}/terraform.tfstate" for i in (0, 700, 1400, 1100)]
    put_state(s3, ddb, BUCKET, keys[0], state_body(1))
    put_state(s3, ddb, BUCKET, keys[1], state_body(2))
    s3.put_object(Bucket=BUCKET, Key=keys[1], Body=state_body(3))  # edited by hand: drift
    put_state(s3, ddb, BUCKET, keys[2], state_body(4))
    s3.delete_object(Bucket=BUCKET, Key=keys[2])  # a digest left behind
    info = lock_info(f"{BUCKET}/{keys[3]}", age=timedelta(hours=3), lock_id="dead-1")
    put_lock(ddb, BUCKET, keys[3], info)  # a first apply killed with both locks held, before any state write
    s3.put_object(Bucket=BUCKET, Key=keys[3] + ".tflock", Body=info.encode())
    aws = AwsSession(session(), endpoint_url=backend.url)
    policy = StalePolicy(default=timedelta(hours=1))

    planned = Sweeper(aws).sweep(SweepRequest(REGION, [TABLE], policy=policy))
    whole = Sweeper(aws).sweep(SweepRequest(REGION, [TABLE], [BUCKET], policy=policy))  # listed whole
    assert planned.complete and whole.complete
    assert (
        findings(planned)
        == findings(whole)
        == [("digest_drift", keys[1], None), ("orphan_digest", keys[2], None), ("stale_lock", keys[3], "dead-1")]
    )
    assert planned.stats.lockfiles == whole.stats.lockfiles == 1  # seen (just written: too fresh to read)
    # The first page holds two states; the two others by HeadObject, each missing, so its .tflock looked for too.
    assert planned.stats.bucket_reads[BUCKET] == {"how": "range+head", "pages": 1, "heads": 4}
    assert whole.stats.bucket_reads[BUCKET]["how"] == "bucket" and whole.stats.api_calls["ListObjectsV2"] == 2
    assert planned.stats.api_calls["ListObjectsV2"] == 1


def run_cli(server: MotoServer, *args: str) -> dict:
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfjanitor",
            "scan",
            "--region",
            REGION,
            "--table",
            TABLE,
            "--skip-audit",
            "--endpoint-url",
            server.url,
            "--format",
            "json",
            "--stale-after",
            "1s",
            "--read-only-stale-after",
            "1s",
            "--min-stale-after",
            "1s",
            *args,
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def test_bucket_with_a_prefix_looks_for_lock_files_there_only(backend) -> None:
    s3 = client("s3", backend)
    put_junk(backend, [f"artifacts/{i:05d}.zip" for i in range(JUNK)])
    for key in ("ci/app/terraform.tfstate", "elsewhere/terraform.tfstate"):
        info = lock_info(f"{BUCKET}/{key}", age=timedelta(hours=3), lock_id=f"dead-{key[:2]}")
        s3.put_object(Bucket=BUCKET, Key=key + ".tflock", Body=info.encode())
    time.sleep(1.5)  # older than the thresholds: worth reading

    scoped = run_cli(backend, "--bucket", f"{BUCKET}/ci/")
    assert [(f["kind"], f["key"]) for f in scoped["findings"]] == [("stale_lockfile", "ci/app/terraform.tfstate")]
    assert scoped["stats"]["api_calls"]["ListObjectsV2"] == 1
    assert scoped["stats"]["bucket_reads"] == {BUCKET: {"how": "prefix", "pages": 1, "heads": 0}}
    whole = run_cli(backend, "--bucket", BUCKET)
    assert sorted(f["key"] for f in whole["findings"]) == ["ci/app/terraform.tfstate", "elsewhere/terraform.tfstate"]
    assert whole["stats"]["api_calls"]["ListObjectsV2"] == 2

    bad = subprocess.run(
        [sys.executable, "-m", "tfjanitor", "scan", "--table", TABLE, "--bucket", "Bad_Name/x"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert bad.returncode == 2 and "NAME or NAME/PREFIX" in bad.stderr and "Traceback" not in bad.stderr


def test_a_lock_file_alert_outside_the_reads_is_looked_at_by_name(backend, alerting) -> None:
    """Opened while the bucket was read whole; then only ci/ is searched: the alert stays open while its lock is
    there (looked at by name), and is resolved once it is gone."""
    s3 = client("s3", backend)
    key = "elsewhere/terraform.tfstate"
    info = lock_info(f"{BUCKET}/{key}", age=timedelta(hours=3), lock_id="dead-e")
    s3.put_object(Bucket=BUCKET, Key=key + ".tflock", Body=info.encode())
    aws = AwsSession(session(), endpoint_url=backend.url)
    time.sleep(1.5)  # older than the thresholds: worth reading

    def sweep(buckets: str):
        # As the environment writes them (strings): __post_init__ converts each by its field's type.
        env: dict[str, Any] = {"extra_buckets": buckets, "stale_after": "1s", "read_only_stale_after": "1s", "min_stale_after": "1s"}
        settings = SweeperSettings(**alerting, **env)
        return sweep_and_alert(settings, aws, datetime.now(timezone.utc))

    result, delivery = sweep(BUCKET)
    assert [n.event for n in delivery.sent] == ["opened"] and result.stats.bucket_reads[BUCKET]["how"] == "bucket"
    captured(backend)
    result, delivery = sweep(f"{BUCKET}/ci/")
    assert delivery.sent == [] and result.stats.api_calls["HeadObject"] >= 1  # looked at by name: still there
    assert [f.kind for f in result.findings] == [Kind.STALE_LOCKFILE]
    s3.delete_object(Bucket=BUCKET, Key=key + ".tflock")
    result, delivery = sweep(f"{BUCKET}/ci/")
    assert [n.event for n in delivery.sent] == ["resolved"] and result.findings == []
    result, delivery = sweep(f"{BUCKET}/ci/")
    assert delivery.sent == [] and "HeadObject" not in result.stats.api_calls  # nothing open: nothing to look at


def test_a_table_of_several_pages_is_read_in_parallel_segments(backend) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    pad = "p" * 10_000  # ~100 items a 1 MB page: 800 items, 8 pages
    bodies = {f"s{i:04d}/terraform.tfstate": state_body(i) for i in range(800)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=BUCKET, Key=kv[0], Body=kv[1]), bodies.items()))
    for start in range(0, len(bodies), 25):
        batch = list(bodies.items())[start : start + 25]
        ddb.batch_write_item(
            RequestItems={
                TABLE: [
                    {"PutRequest": {"Item": {"LockID": {"S": f"{BUCKET}/{k}-md5"}, "Digest": {"S": md5(b)}, "Pad": {"S": pad}}}}
                    for k, b in batch
                ]
            }
        )
    aws = AwsSession(session(), endpoint_url=backend.url)
    cold, warm = (Sweeper(aws).sweep(SweepRequest(REGION, [TABLE])) for _ in range(2))
    assert cold.stats.api_calls["DescribeTable"] == 1 and "DescribeTable" not in warm.stats.api_calls
    for result in (cold, warm):
        assert result.complete and result.findings == [] and result.stats.etag_proven == 800
    # Cold: the first page, DescribeTable's ItemCount, then the segments at once; warm: the segments at once. Read
    # page by page, the chain would be every Scan page, then the bucket's location and its listing.
    assert cold.stats.critical_path_calls < cold.stats.total_api_calls
    assert warm.stats.critical_path_calls <= warm.stats.api_calls["Scan"] + 2 - 3
