"""Small builders for lock-table items and state bodies, in Terraform's exact formats."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta, timezone


def lock_info(
    path: str,
    *,
    age: timedelta = timedelta(0),
    operation: str = "OperationTypeApply",
    lock_id: str | None = None,
    who: str = "ci@runner-7",
    now: datetime | None = None,
) -> str:
    created = (now or datetime.now(timezone.utc)) - age
    # Terraform writes nanoseconds: 9 fractional digits.
    stamp = created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{created.microsecond:06d}123Z"
    return json.dumps(
        {
            "ID": lock_id or str(uuid.uuid4()),
            "Operation": operation,
            "Info": "",
            "Who": who,
            "Version": "1.11.4",
            "Created": stamp,
            "Path": path,
        },
        separators=(",", ":"),
    )


def state_body(serial: int = 1, secret: str = "s3cr3t-value", size: int = 0) -> bytes:
    doc = {
        "version": 4,
        "terraform_version": "1.11.4",
        "serial": serial,
        "lineage": "3f2c1b7e-0000-4000-8000-000000000000",
        "outputs": {"db_password": {"value": secret, "type": "string", "sensitive": True}},
        "resources": [],
        "check_results": None,
    }
    body = json.dumps(doc, indent=2).encode()
    if size > len(body):
        doc["padding"] = "x" * (size - len(body))
        body = json.dumps(doc, indent=2).encode()
    return body


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324 (Terraform's digest)


def put_state(s3, ddb, bucket: str, key: str, body: bytes, table: str = "terraform-state-lock", digest: str | None = None):
    """What a healthy terraform apply leaves: the object, then its digest."""
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    ddb.put_item(
        TableName=table,
        Item={"LockID": {"S": f"{bucket}/{key}-md5"}, "Digest": {"S": digest or md5(body)}},
    )


def put_lock(ddb, bucket: str, key: str, info: str, table: str = "terraform-state-lock") -> None:
    ddb.put_item(TableName=table, Item={"LockID": {"S": f"{bucket}/{key}"}, "Info": {"S": info}})


def seed_states(s3, ddb, bucket: str, n: int, *, drift_every: int = 100, stale: int = 5,
                table: str = "terraform-state-lock") -> dict[str, int]:
    """``n`` healthy states (object + digest) in ``bucket``, every ``drift_every``-th drifted (its digest is of other
    bytes), and ``stale`` locks left by runs killed hours ago on states that never got written. Counts returned."""
    from concurrent.futures import ThreadPoolExecutor

    keys = [f"team-{i % 17}/component-{i:05d}/terraform.tfstate" for i in range(n)]
    drifted = set(keys[::drift_every]) if drift_every else set()

    def put(key: str) -> dict:
        body = state_body(1 + len(key) % 7)
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        return {"LockID": {"S": f"{bucket}/{key}-md5"}, "Digest": {"S": md5(body + b"\n" if key in drifted else body)}}

    with ThreadPoolExecutor(16) as pool:
        items = list(pool.map(put, keys))
        items += [{"LockID": {"S": f"{bucket}/abandoned-{i}/terraform.tfstate"},
                   "Info": {"S": lock_info(f"{bucket}/abandoned-{i}/terraform.tfstate", age=timedelta(hours=5))}}
                  for i in range(stale)]

        def write(batch: list[dict]) -> None:
            request = {table: [{"PutRequest": {"Item": item}} for item in batch]}
            while request:
                request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

        list(pool.map(write, [items[i:i + 25] for i in range(0, len(items), 25)]))
    return {"states": n, "drifted": len(drifted), "stale": stale}
