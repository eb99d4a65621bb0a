"""The naive scanner the benchmark compares tfjanitor against.

What a hand-written script would do: a paginated Scan of the lock table, then,
for every digest item, GetObject of the state it names, read fully, MD5 it and
compare with the stored Digest. Stale locks are judged from the Scan (no extra
call). Sequential, one client per service, the same retry settings as
tfjanitor. Every API call is counted by operation through botocore's
``before-call`` event; bytes downloaded are the bytes actually read.

Usage: python naive.py --region R --table T [--endpoint-url URL] [--stale-after-seconds 3600]
Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import boto3
from botocore.config import Config

READ_ONLY = {"OperationTypePlan", "migration source state"}  # as tfjanitor: the rest may write state


def _created(text: str) -> datetime:
    # Terraform writes up to 9 fractional digits; fromisoformat (3.11) wants <= 6.
    base, _, frac = text.rstrip("Zz").partition(".")
    frac = (frac[:6]).ljust(6, "0") if frac else "000000"
    return datetime.fromisoformat(f"{base}.{frac}+00:00")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--region", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--endpoint-url")
    parser.add_argument("--stale-after-seconds", type=float, default=3600.0)
    parser.add_argument("--read-only-stale-after-seconds", type=float, default=900.0)
    args = parser.parse_args()

    started = time.monotonic()
    calls: Counter[str] = Counter()

    def count(model: Any = None, **_: Any) -> None:
        calls[model.name if model is not None else "Unknown"] += 1

    config = Config(retries={"mode": "standard", "max_attempts": 5}, s3={"addressing_style": "path"} if args.endpoint_url else None)
    session = boto3.session.Session(region_name=args.region)
    ddb = session.client("dynamodb", endpoint_url=args.endpoint_url, config=config)
    s3 = session.client("s3", endpoint_url=args.endpoint_url, config=config)
    for client in (ddb, s3):
        client.meta.events.register("before-call", count)

    now = datetime.now(timezone.utc)
    digests: list[tuple[str, str, str]] = []
    stale: list[str] = []
    items = 0
    kwargs: dict = {"TableName": args.table}
    while True:
        page = ddb.scan(**kwargs)
        for item in page.get("Items", []):
            items += 1
            lock_id = item["LockID"]["S"]
            bucket, _, key = lock_id.partition("/")
            if "Digest" in item:
                digests.append((bucket, key[: -len("-md5")], item["Digest"]["S"]))
            elif "Info" in item:
                info = json.loads(item["Info"]["S"])
                limit = args.read_only_stale_after_seconds if info.get("Operation") in READ_ONLY else args.stale_after_seconds
                if (now - _created(info["Created"])).total_seconds() > limit:
                    stale.append(lock_id)
        last = page.get("LastEvaluatedKey")
        if not last:
            break
        kwargs["ExclusiveStartKey"] = last

    drifts: list[str] = []
    missing: list[str] = []
    downloaded = 0
    for bucket, key, digest in digests:
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            missing.append(f"{bucket}/{key}")
            continue
        downloaded += len(body)
        if hashlib.md5(body, usedforsecurity=False).hexdigest() != digest:
            drifts.append(f"{bucket}/{key}")

    json.dump(
        {
            "items": items,
            "digest_items": len(digests),
            "downloads": len(digests) - len(missing),
            "bytes_downloaded": downloaded,
            "api_calls": dict(sorted(calls.items())),
            "total_api_calls": sum(calls.values()),
            "drifts": sorted(drifts),
            "missing": sorted(missing),
            "stale_locks": sorted(stale),
            "duration_seconds": round(time.monotonic() - started, 3),
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
