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


def put_state(s3, ddb, bucket: str, key: str, body: bytes, table: str = "terraform-state-lock", digest: str | None = None):  # type: ignore[no-untyped-def]
    """What a healthy terraform apply leaves: the object, then its digest."""
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    ddb.put_item(
        TableName=table,
        Item={"LockID": {"S": f"{bucket}/{key}-md5"}, "Digest": {"S": digest or md5(body)}},
    )


def put_lock(ddb, bucket: str, key: str, info: str, table: str = "terraform-state-lock") -> None:  # type: ignore[no-untyped-def]
    ddb.put_item(TableName=table, Item={"LockID": {"S": f"{bucket}/{key}"}, "Info": {"S": info}})
