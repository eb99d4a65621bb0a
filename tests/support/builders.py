"""Small builders for lock-table items and state bodies, in Terraform's exact formats."""

from __future__ import annotations

import hashlib
import json
import random
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


def random_id(rng: random.Random) -> str:
    """UUID-shaped random hex, like Terraform's lock IDs and lineages, drawn from ``rng`` (so a seed repeats it)."""
    a, b, c, d, e = (rng.getrandbits(bits) for bits in (32, 16, 16, 16, 48))
    return f"{a:08x}-{b:04x}-{c:04x}-{d:04x}-{e:012x}"


_RESOURCE_TYPES = [
    ("aws_instance", "i-", "ec2", "instance"),
    ("aws_security_group", "sg-", "ec2", "security-group"),
    ("aws_subnet", "subnet-", "ec2", "subnet"),
    ("aws_iam_role", "", "iam", "role"),
    ("aws_s3_bucket", "", "s3", ""),
    ("aws_lambda_function", "", "lambda", "function"),
    ("aws_route53_record", "Z", "route53", "record"),
    ("aws_db_instance", "db-", "rds", "db"),
]

_RESOURCE = """    {{
      "mode": "managed",
      "type": "{type}",
      "name": "{name}",
      "provider": "provider[\\"registry.terraform.io/hashicorp/aws\\"]",
      "instances": [
        {{
          "schema_version": {schema},
          "attributes": {{
            "arn": "arn:aws:{svc}:{region}:{account}:{kind}/{rid}",
            "id": "{rid}",
            "tags": {{
              "Environment": "{env}",
              "ManagedBy": "terraform",
              "Owner": "{team}"
            }},
            "tags_all": {{
              "Environment": "{env}",
              "ManagedBy": "terraform",
              "Owner": "{team}"
            }},
            "description": "{desc}",
            "timeouts": null
          }},
          "sensitive_attributes": [],
          "private": "{private}",
          "dependencies": [{deps}]
        }}
      ]
    }}"""


def resources_state_body(rng: random.Random, serial: int, target: int, env: str, team: str, region: str = "ap-northeast-2") -> bytes:
    """A JSON Terraform state (format 4, Terraform's 2-space layout) of about ``target`` bytes, with resources
    (random AWS resources tagged ``env`` and ``team``): what the benchmark seeds. The same ``rng`` state makes the
    same bytes."""
    lineage = random_id(rng)
    account = str(rng.randrange(10**11, 10**12))
    head = (
        '{\n  "version": 4,\n  "terraform_version": "1.11.4",\n'
        f'  "serial": {serial},\n  "lineage": "{lineage}",\n'
        '  "outputs": {\n    "vpc_id": {\n'
        f'      "value": "vpc-{rng.getrandbits(68):017x}",\n      "type": "string"\n    }}\n  }},\n'
        '  "resources": [\n'
    )
    tail = '\n  ],\n  "check_results": null\n}\n'
    parts: list[str] = []
    size = len(head) + len(tail)
    names: list[str] = []
    i = 0
    while size < target:
        rtype, prefix, svc, kind = _RESOURCE_TYPES[rng.randrange(len(_RESOURCE_TYPES))]
        name = f"{rtype.split('_', 1)[1]}_{i}"
        rid = f"{prefix}{rng.getrandbits(68):017x}"
        # base64-looking "private" blob: most of the bytes, sized to land on target
        room = max(16, min(1600, target - size - 900))
        private = rng.randbytes(room * 3 // 4).hex()[:room]
        deps = ", ".join(f'"{rtype}.{n}"' for n in names[-2:])
        block = _RESOURCE.format(
            type=rtype,
            name=name,
            schema=rng.randrange(3),
            svc=svc,
            region=region,
            account=account,
            kind=kind,
            rid=rid,
            env=env,
            team=team,
            desc=f"{team} {name} managed by terraform",
            private=private,
            deps=deps,
        )
        parts.append(block)
        size += len(block) + 2
        names.append(name)
        i += 1
    return (head + ",\n".join(parts) + tail).encode()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324 (Terraform's digest)


def put_state(s3, ddb, bucket: str, key: str, body: bytes, table: str = "terraform-state-lock", digest: str | None = None):
    """What a healthy terraform apply leaves: the object, then its digest."""
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    ddb.put_item(TableName=table, Item={"LockID": {"S": f"{bucket}/{key}-md5"}, "Digest": {"S": digest or md5(body)}})


def put_lock(ddb, bucket: str, key: str, info: str, table: str = "terraform-state-lock") -> None:
    ddb.put_item(TableName=table, Item={"LockID": {"S": f"{bucket}/{key}"}, "Info": {"S": info}})


def seed_states(
    s3, ddb, bucket: str, n: int, *, drift_every: int = 100, stale: int = 5, table: str = "terraform-state-lock"
) -> dict[str, int]:
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
        items += [
            {
                "LockID": {"S": f"{bucket}/abandoned-{i}/terraform.tfstate"},
                "Info": {"S": lock_info(f"{bucket}/abandoned-{i}/terraform.tfstate", age=timedelta(hours=5))},
            }
            for i in range(stale)
        ]

        def write(batch: list[dict]) -> None:
            request = {table: [{"PutRequest": {"Item": item}} for item in batch]}
            while request:
                request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

        list(pool.map(write, [items[i : i + 25] for i in range(0, len(items), 25)]))
    return {"states": n, "drifted": len(drifted), "stale": stale}
