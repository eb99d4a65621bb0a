"""Benchmark: tfjanitor's sweep against a naive scanner on the embedded emulator.

    python bench/bench.py [--states 1000 10000] [--output DIR (default bench/bench-output)] [--repeat 3] [--strict]
                          [--latency-ms 30] [--latency-repeat 1] [--import-runs 7]

    Memory at scale: python bench/bench.py --states 50000 100000 --repeat 1 --latency-ms 0

For each N: start a fresh moto server (tfjanitor.local.emulator.MotoServer, loopback),
seed N Terraform states (one lock table, two buckets, ap-northeast-2; 2-40 KB
state bodies; a digest item per state; ~1% drifted; ~0.5% stale locks and a few
fresh ones on healthy states; ~25% workspace keys), probe the lower bound of API
calls, then run tfjanitor (`python -m tfjanitor scan --format json`) and the
naive scanner (bench/naive.py) as child processes, interleaved, each under the
small wrapper bench/measure.py (wall time, exact peak RSS, CPU time).

Writes <output>/results.md and <output>/results.json. Exit status: 1 if a
correctness check fails (tfjanitor or the naive reference did not find exactly
the seeded drifts and stale locks); targets missed only fail with --strict.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tfjanitor.local.emulator import MotoServer
from tfjanitor.local.proxy import EmulatorProxy

HERE = Path(__file__).resolve().parent
REGION = "ap-northeast-2"
TABLE = "terraform-state-lock"
BUCKETS = ("tfstate-bench-platform", "tfstate-bench-apps")
DRIFT_RATE = 0.01
STALE_RATE = 0.005
FRESH_RATE = 0.002
WORKSPACE_RATE = 0.25
MIN_BODY, MAX_BODY = 2 * 1024, 40 * 1024
THREADS = 16
MB = 1024 * 1024

# --------------------------------------------------------------------------- state bodies

_TYPES = [
    ("aws_instance", "i-", "ec2", "instance"),
    ("aws_security_group", "sg-", "ec2", "security-group"),
    ("aws_subnet", "subnet-", "ec2", "subnet"),
    ("aws_iam_role", "", "iam", "role"),
    ("aws_s3_bucket", "", "s3", ""),
    ("aws_lambda_function", "", "lambda", "function"),
    ("aws_route53_record", "Z", "route53", "record"),
    ("aws_db_instance", "db-", "rds", "db"),
]
_TEAMS = ["payments", "search", "identity", "data", "edge", "ml", "core", "growth"]
_COMPONENTS = ["network", "eks", "rds", "iam", "dns", "queues", "cdn", "lambda", "monitoring"]
_WORKSPACES = ["staging", "prod", "qa", "perf"]

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


def hex_id(rng: random.Random) -> str:
    """UUID-shaped random hex, like Terraform's lock IDs and lineages."""
    a, b, c, d, e = (rng.getrandbits(bits) for bits in (32, 16, 16, 16, 48))
    return f"{a:08x}-{b:04x}-{c:04x}-{d:04x}-{e:012x}"


def state_body(rng: random.Random, serial: int, target: int, env: str, team: str) -> bytes:
    """A JSON Terraform state (format 4, Terraform's 2-space layout) of about `target` bytes."""
    lineage = hex_id(rng)
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
        rtype, prefix, svc, kind = _TYPES[rng.randrange(len(_TYPES))]
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
            region=REGION,
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


# --------------------------------------------------------------------------- seeding


@dataclass
class Seeded:
    n: int
    states: list[tuple[str, str]] = field(default_factory=list)  # (bucket, key)
    md5: dict[tuple[str, str], str] = field(default_factory=dict)
    drifted: set[str] = field(default_factory=set)  # "bucket/key"
    stale_locks: set[str] = field(default_factory=set)
    fresh_locks: set[str] = field(default_factory=set)
    workspace_states: int = 0
    body_bytes: int = 0
    seconds: float = 0.0
    generate_seconds: float = 0.0
    per_bucket: Counter[str] = field(default_factory=Counter)


def _lock_info(rng: random.Random, path: str, created: datetime, operation: str) -> str:
    ident = hex_id(rng)
    stamp = created.strftime("%Y-%m-%dT%H:%M:%S") + f".{created.microsecond:06d}{rng.randrange(1000):03d}Z"
    return json.dumps(
        {
            "ID": ident,
            "Operation": operation,
            "Info": "",
            "Who": f"ci@runner-{rng.randrange(100)}",
            "Version": "1.11.4",
            "Created": stamp,
            "Path": path,
        },
        separators=(",", ":"),
    )


def _session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", aws_session_token="test", region_name=REGION)


def _client_config() -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": 8},
        max_pool_connections=THREADS,
        s3={"addressing_style": "path"},
    )


class _Clients:
    def __init__(self, url: str):
        session = _session()  # sessions are not thread-safe: one per thread
        self.s3 = session.client("s3", endpoint_url=url, config=_client_config())
        self.ddb = session.client("dynamodb", endpoint_url=url, config=_client_config())


def seed(url: str, n: int, seed_value: int) -> Seeded:
    started = time.perf_counter()
    rng = random.Random(seed_value * 1_000_003 + n)
    out = Seeded(n=n)
    admin = _session()
    ddb = admin.client("dynamodb", endpoint_url=url, config=_client_config())
    s3 = admin.client("s3", endpoint_url=url, config=_client_config())
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for b in BUCKETS:
        s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": REGION})

    # Which states are drifted, stale-locked, freshly locked (disjoint; locks only on healthy states).
    indices = list(range(n))
    n_drift = max(1, round(n * DRIFT_RATE))
    n_stale = max(1, round(n * STALE_RATE))
    n_fresh = max(1, round(n * FRESH_RATE))
    picked = rng.sample(indices, n_drift + n_stale + n_fresh)
    drift_idx = set(picked[:n_drift])
    stale_idx = set(picked[n_drift : n_drift + n_stale])
    fresh_idx = set(picked[n_drift + n_stale :])

    now = datetime.now(timezone.utc)
    lock_items: list[dict[str, Any]] = []
    states: list[tuple[int, str, str, int, str, str, bool]] = []
    for i in range(n):
        bucket = BUCKETS[i % len(BUCKETS)]
        team = _TEAMS[rng.randrange(len(_TEAMS))]
        comp = _COMPONENTS[rng.randrange(len(_COMPONENTS))]
        base = f"{team}/{comp}-{i:05d}/terraform.tfstate"
        workspace = rng.random() < WORKSPACE_RATE
        env = _WORKSPACES[rng.randrange(len(_WORKSPACES))] if workspace else "default"
        key = f"env:/{env}/{base}" if workspace else base
        out.workspace_states += workspace
        out.states.append((bucket, key))
        out.per_bucket[bucket] += 1
        states.append((i, bucket, key, rng.randrange(MIN_BODY, MAX_BODY + 1), env, team, i in drift_idx))
        path = f"{bucket}/{key}"
        if i in stale_idx:
            # The first run of a new state, killed a day ago before it wrote anything: no sign of life since.
            # (A lock over this state's object, written just now, would be a live run's: the object is its write.)
            path = f"{bucket}/{team}/{comp}-{i:05d}-next/terraform.tfstate"
            op = "OperationTypeApply" if len(out.stale_locks) % 3 else "OperationTypePlan"
            created = now - timedelta(days=1, seconds=rng.randrange(3600))
            lock_items.append({"LockID": {"S": path}, "Info": {"S": _lock_info(rng, path, created, op)}})
            out.stale_locks.add(path)
        elif i in fresh_idx:
            created = now - timedelta(minutes=2)
            info = _lock_info(rng, path, created, "OperationTypeApply")
            lock_items.append({"LockID": {"S": path}, "Info": {"S": info}})
            out.fresh_locks.add(path)

    local = threading.local()

    def thread_clients() -> _Clients:
        c = getattr(local, "c", None)
        if c is None:
            c = local.c = _Clients(url)
        return c

    gen_seconds = [0.0]
    gen_lock = threading.Lock()
    digest_items: list[dict[str, Any]] = [None] * n  # type: ignore[list-item]
    body_sizes = [0] * n

    def put_state(spec: tuple[int, str, str, int, str, str, bool]) -> None:
        i, bucket, key, size, env, team, drift = spec
        t0 = time.thread_time()  # CPU of this thread: GIL waits are not counted
        body = state_body(random.Random(f"{seed_value}:{n}:{i}"), serial=1 + i % 97, target=size, env=env, team=team)
        md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
        # Drift: the table keeps the digest of other bytes (e.g. a hand-edited or rolled-back object).
        digest = hashlib.md5(body + b"\n", usedforsecurity=False).hexdigest() if drift else md5
        with gen_lock:
            gen_seconds[0] += time.thread_time() - t0
        thread_clients().s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        digest_items[i] = {"LockID": {"S": f"{bucket}/{key}-md5"}, "Digest": {"S": digest}}
        body_sizes[i] = len(body)
        out.md5[(bucket, key)] = md5
        if drift:
            out.drifted.add(f"{bucket}/{key}")

    def write_batch(batch: list[dict[str, Any]]) -> None:
        request = {TABLE: [{"PutRequest": {"Item": it}} for it in batch]}
        ddb_t = thread_clients().ddb
        for attempt in range(20):
            resp = ddb_t.batch_write_item(RequestItems=request)
            request = resp.get("UnprocessedItems") or {}
            if not request:
                return
            time.sleep(0.05 * (attempt + 1))
        raise RuntimeError("batch_write_item left unprocessed items")

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(put_state, states, chunksize=16))
        items = digest_items + lock_items
        batches = [items[i : i + 25] for i in range(0, len(items), 25)]
        list(pool.map(write_batch, batches))
    out.body_bytes = sum(body_sizes)
    out.generate_seconds = gen_seconds[0]
    out.seconds = time.perf_counter() - started
    return out


# --------------------------------------------------------------------------- lower bound probe


def probe(url: str, seeded: Seeded) -> dict[str, Any]:
    """Count the pages the server needs (same Scan shape as the engine: consistent, no Limit)."""
    session = _session()
    ddb = session.client("dynamodb", endpoint_url=url, config=_client_config())
    s3 = session.client("s3", endpoint_url=url, config=_client_config())
    scan_pages = items = 0
    kwargs: dict[str, Any] = {"TableName": TABLE, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        scan_pages += 1
        items += len(page.get("Items", []))
        if not page.get("LastEvaluatedKey"):
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    list_pages: dict[str, int] = {}
    etag_mismatch = 0
    objects = 0
    for b in BUCKETS:
        pages = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b):
            pages += 1
            for obj in page.get("Contents", []):
                objects += 1
                if obj["ETag"].strip('"') != seeded.md5.get((b, obj["Key"])):
                    etag_mismatch += 1
        list_pages[b] = pages
    n_tables, n_buckets = 1, len(BUCKETS)
    lb = scan_pages + sum(list_pages.values()) + n_buckets + n_tables
    return {
        "scan_pages": scan_pages,
        "table_items": items,
        "list_pages": list_pages,
        "objects": objects,
        "etag_not_md5": etag_mismatch,
        "tables": n_tables,
        "buckets": n_buckets,
        "lower_bound": lb,
        "theoretical_list_pages": sum(math.ceil(c / 1000) for c in seeded.per_bucket.values()),
    }


# --------------------------------------------------------------------------- a crowded bucket

CROWDED_BUCKET = "tfstate-bench-crowded"


def seed_crowded(url: str, objects: int, states: int, seed_value: int) -> dict[str, Any]:
    """One bucket of build output (``objects`` small objects) with ``states`` healthy states scattered among them
    (random keys: S3's order puts them anywhere), and a lock table holding their digests. The other objects go
    straight into the in-process emulator's store (200,000 PUTs over HTTP would take ten minutes); the states and
    digests are written over HTTP as Terraform writes them."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    started = time.perf_counter()
    rng = random.Random(seed_value)
    admin = _session()
    ddb = admin.client("dynamodb", endpoint_url=url, config=_client_config())
    s3 = admin.client("s3", endpoint_url=url, config=_client_config())
    ddb.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    s3.create_bucket(Bucket=CROWDED_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    store = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for _ in range(objects):
        store.put_object(CROWDED_BUCKET, f"builds/{rng.getrandbits(48):012x}/artifact.log", b"ok\n",
                         disable_notification=True)
    for _ in range(states):
        key = f"builds/{rng.getrandbits(48):012x}/terraform.tfstate"
        body = state_body(random.Random(key), 1, 4096, "default", "ci")
        s3.put_object(Bucket=CROWDED_BUCKET, Key=key, Body=body)
        ddb.put_item(TableName=TABLE, Item={"LockID": {"S": f"{CROWDED_BUCKET}/{key}-md5"},
                                            "Digest": {"S": hashlib.md5(body, usedforsecurity=False).hexdigest()}})
    return {"objects": objects, "states": states, "seconds": time.perf_counter() - started,
            "list_pages": math.ceil((objects + states) / 1000)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def crowded_scenario(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """tfjanitor's sweep of the crowded bucket (no added latency, then with it): its reads of the bucket against
    the two bounds, one ListObjectsV2 per 1,000 objects and one HeadObject per state."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)  # in this process: see seed_crowded
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        print(f"crowded bucket: seeding {args.crowded_objects:,} objects and {args.crowded_states} states...", flush=True)
        seeded = seed_crowded(url, args.crowded_objects, args.crowded_states, args.seed)
        print(f"crowded bucket: seeded in {seeded['seconds']:.0f}s", flush=True)
        runs = {"plain": measured(tfjanitor_cmd(url), url, workdir, "tfjanitor-crowded")}
        naive_runs = {"plain": measured(naive_cmd(url), url, workdir, "naive-crowded")}
        if args.latency_ms:
            with EmulatorProxy(url, delay_seconds=args.latency_ms / 1000) as proxy:
                runs["latency"] = measured(tfjanitor_cmd(proxy.url), proxy.url, workdir, "tfjanitor-crowded-latency")
                naive_runs["latency"] = measured(naive_cmd(proxy.url), proxy.url, workdir, "naive-crowded-latency")
    finally:
        server.stop()
    out: dict[str, Any] = {"seed": seeded, "runs": {}}
    for mode, (m, text) in runs.items():
        doc = json.loads(text) if text.strip() else {}
        stats = doc.get("stats", {})
        calls = stats.get("api_calls", {})
        reads = calls.get("ListObjectsV2", 0) + calls.get("HeadObject", 0)
        naive_m, naive_text = naive_runs[mode]
        naive_doc = json.loads(naive_text) if naive_text.strip() else {}
        out["runs"][mode] = {
            "measure": m, "stats": stats, "findings": len(doc.get("findings", [])), "complete": doc.get("complete"),
            "bucket_reads": reads, "naive": {"measure": naive_m, "api_calls": naive_doc.get("api_calls", {}),
                                             "total_api_calls": naive_doc.get("total_api_calls", 0)},
        }
        print(f"  crowded [{mode}] tfjanitor: {reads} bucket reads ({stats.get('bucket_reads')}), "
              f"{stats.get('total_api_calls')} calls, critical path {stats.get('critical_path_calls')}, "
              f"wall {m['wall_seconds']:.2f}s; naive {naive_doc.get('total_api_calls')} calls, "
              f"wall {naive_m['wall_seconds']:.2f}s", flush=True)
    plain = out["runs"]["plain"]
    cheaper = min(seeded["list_pages"], seeded["states"])
    out["targets"] = [{
        "target": (f"bucket reads <= 1.2 x the cheaper bound ({seeded['objects']:,} other objects, "
                   f"{seeded['states']} states)"),
        "holds": plain["bucket_reads"] <= 1.2 * cheaper and plain["complete"] and plain["findings"] == 0,
        "detail": (f"{plain['bucket_reads']} ListObjectsV2 + HeadObject <= 1.2 x min({seeded['list_pages']} pages, "
                   f"{seeded['states']} HeadObject) = {1.2 * cheaper:.0f}; read as {plain['stats'].get('bucket_reads')}"),
    }]
    return out


# --------------------------------------------------------------------------- running the scanners


def child_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_SESSION_TOKEN="test",
        AWS_CONFIG_FILE="/nonexistent/aws-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def measured(cmd: list[str], url: str, workdir: Path, tag: str) -> tuple[dict[str, Any], str]:
    stdout, stderr = workdir / f"{tag}.stdout", workdir / f"{tag}.stderr"
    wrapper = [sys.executable, str(HERE / "measure.py"), "--stdout", str(stdout), "--stderr", str(stderr), "--", *cmd]
    proc = subprocess.run(wrapper, env=child_env(url), capture_output=True, text=True, check=True)
    return json.loads(proc.stdout), stdout.read_text()


def tfjanitor_cmd(url: str) -> list[str]:
    # The sweep path (what the sweeper Lambda runs every few minutes). The posture/region audit
    # adds a fixed handful of calls per table and bucket, whatever the number of states.
    return [
        sys.executable,
        "-m",
        "tfjanitor",
        "scan",
        "--skip-audit",
        "--region",
        REGION,
        "--table",
        TABLE,
        "--format",
        "json",
        "--endpoint-url",
        url,
    ]


def naive_cmd(url: str) -> list[str]:
    return [sys.executable, str(HERE / "naive.py"), "--region", REGION, "--table", TABLE, "--endpoint-url", url]


BASELINE_CODE = (
    "import boto3; s=boto3.session.Session(region_name='ap-northeast-2'); "
    "s.client('dynamodb', endpoint_url='http://127.0.0.1:9'); s.client('s3', endpoint_url='http://127.0.0.1:9')"
)


def run_scanners(url: str, repeat: int, workdir: Path, n: int, tag: str = "") -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"tfjanitor": [], "naive": [], "baseline": []}
    outputs: dict[str, dict[str, Any]] = {}
    for r in range(repeat):
        for name, cmd in (("tfjanitor", tfjanitor_cmd(url)), ("naive", naive_cmd(url))):
            m, text = measured(cmd, url, workdir, f"{name}{tag}-{n}-{r}")
            doc = json.loads(text) if text.strip() else {}
            m["internal_seconds"] = (doc.get("stats", doc) or {}).get("duration_seconds")
            runs[name].append(m)
            if r == 0:
                outputs[name] = doc
            print(
                f"  [{n}{tag}] run {r + 1}/{repeat} {name:9s} exit {m['returncode']} wall {m['wall_seconds']:.2f}s "
                f"(internal {m['internal_seconds']}s) cpu {m['cpu_user_seconds'] + m['cpu_sys_seconds']:.2f}s "
                f"maxrss {m['maxrss_kb'] / 1024:.1f} MB",
                flush=True,
            )
    # Floor: a Python process that only imports boto3 and makes the two clients.
    m, _ = measured([sys.executable, "-c", BASELINE_CODE], url, workdir, f"baseline{tag}-{n}")
    runs["baseline"].append(m)
    return {"runs": runs, "outputs": outputs}


HANDLERS = ("sweeper", "auditor", "stream_monitor")


def import_seconds(code: str, runs: int, cwd: Path | None = None) -> float:
    """Median wall time of ``python -c code`` in fresh interpreters (bytecode cached after a warm-up run)."""
    env = {**child_env("http://127.0.0.1:9"), "AWS_REGION": REGION, "POWERTOOLS_TRACE_DISABLED": "true"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    times = []
    for i in range(runs + 1):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, check=True, capture_output=True)
        if i:  # the first run only warms the bytecode cache
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def cold_start(runs: int) -> dict[str, Any]:
    """Importing each handler module vs importing boto3 alone (what a cold start pays before the first line)."""
    root = HERE.parent
    base = import_seconds("import boto3", runs)
    out: dict[str, Any] = {"runs": runs, "boto3_seconds": base, "handlers": {}}
    for name in HANDLERS:
        code = f"import sys; sys.path.insert(0, {str(root / 'functions' / name)!r}); import app"
        secs = import_seconds(code, runs)
        out["handlers"][name] = {"seconds": secs, "ratio": secs / base}
    return out


# --------------------------------------------------------------------------- verdicts


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wall_seconds"] for r in runs]
    internal = [r["internal_seconds"] for r in runs if r.get("internal_seconds") is not None]
    cpu = [r["cpu_user_seconds"] + r["cpu_sys_seconds"] for r in runs]
    return {
        "wall_seconds_median": statistics.median(walls),
        "wall_seconds_min": min(walls),
        "wall_seconds_all": [round(w, 3) for w in walls],
        "internal_seconds_median": statistics.median(internal) if internal else None,
        "cpu_seconds_median": statistics.median(cpu),
        "peak_rss_mb": max(r["maxrss_kb"] for r in runs) / 1024,
        "polled_peak_rss_mb": max(r["polled_peak_kb"] for r in runs) / 1024,
        "returncodes": [r["returncode"] for r in runs],
    }


def check_correctness(seeded: Seeded, tfj: dict[str, Any], naive: dict[str, Any]) -> dict[str, Any]:
    findings = tfj.get("findings", [])
    drift = {f"{f['bucket']}/{f['key']}" for f in findings if f["kind"] == "digest_drift"}
    stale = {f"{f['bucket']}/{f['key']}" for f in findings if f["kind"] == "stale_lock"}
    other = Counter(f["kind"] for f in findings if f["kind"] not in ("digest_drift", "stale_lock"))
    stats = tfj.get("stats", {})
    problems: list[str] = []
    if not tfj:
        problems.append("tfjanitor produced no JSON")
    if tfj and not tfj.get("complete"):
        problems.append(f"tfjanitor sweep incomplete: {tfj.get('errors')}")
    if drift != seeded.drifted:
        problems.append(
            f"tfjanitor drift: {len(drift & seeded.drifted)}/{len(seeded.drifted)} seeded found, "
            f"{len(drift - seeded.drifted)} extra, missing e.g. {sorted(seeded.drifted - drift)[:3]}"
        )
    if stale != seeded.stale_locks:
        problems.append(
            f"tfjanitor stale locks: {len(stale & seeded.stale_locks)}/{len(seeded.stale_locks)} found, "
            f"{len(stale - seeded.stale_locks)} extra (fresh locks wrongly reported: "
            f"{len(stale & seeded.fresh_locks)})"
        )
    if other:
        problems.append(f"tfjanitor unexpected findings: {dict(other)}")
    if stats.get("digest_items") != seeded.n or stats.get("lock_items") != len(seeded.stale_locks) + len(seeded.fresh_locks):
        problems.append(f"tfjanitor item counts off: {stats.get('digest_items')} digests, {stats.get('lock_items')} locks")
    if set(naive.get("drifts", [])) != seeded.drifted or set(naive.get("stale_locks", [])) != seeded.stale_locks:
        problems.append(f"naive reference wrong: {len(naive.get('drifts', []))} drifts, {len(naive.get('stale_locks', []))} stale")
    return {
        "ok": not problems,
        "problems": problems,
        "drifts_found": len(drift),
        "stale_locks_found": len(stale),
        "drifts_seeded": len(seeded.drifted),
        "stale_locks_seeded": len(seeded.stale_locks),
        "fresh_locks_seeded": len(seeded.fresh_locks),
    }


def targets(
    n: int,
    lb: dict[str, Any],
    tfj: dict[str, Any],
    naive: dict[str, Any],
    tfj_sum: dict[str, Any],
    naive_sum: dict[str, Any],
    seeded: Seeded,
) -> list[dict[str, Any]]:
    stats = tfj.get("stats", {})
    total = stats.get("total_api_calls", 0)
    downloads = stats.get("downloads", 0)
    # Drift forensics: one GetBucketVersioning per bucket holding a drift (these buckets are not versioned,
    # so no ListObjectVersions follows).
    forensics = len({path.partition("/")[0] for path in seeded.drifted})
    allowed = 1.2 * lb["lower_bound"] + downloads + forensics
    out = [
        {
            "target": "API calls <= 1.2 x lower bound + downloads + a versioning check per bucket with a drift",
            "holds": total <= allowed,
            "detail": (f"{total} calls <= 1.2 x {lb['lower_bound']} + {downloads} + {forensics} = {allowed:.1f}; "
                       f"retries {stats.get('retries')}"),
        },
        {
            "target": "downloads only for drifted states",
            "holds": downloads == len(seeded.drifted) and stats.get("etag_proven") == seeded.n - len(seeded.drifted),
            "detail": (
                f"{downloads} downloads ({stats.get('bytes_downloaded', 0)} B) for {len(seeded.drifted)} drifted states; "
                f"{stats.get('etag_proven')} proven by ETag"
            ),
        },
    ]
    if n == 1000:
        ratio_calls = naive.get("total_api_calls", 0) / max(1, total)
        ratio_wall = naive_sum["wall_seconds_median"] / tfj_sum["wall_seconds_median"]
        ratio_internal = (
            naive_sum["internal_seconds_median"] / tfj_sum["internal_seconds_median"]
            if naive_sum["internal_seconds_median"] and tfj_sum["internal_seconds_median"]
            else float("nan")
        )
        out.append(
            {
                "target": ">= 20x fewer API calls than naive (1,000 states)",
                "holds": ratio_calls >= 20,
                "detail": f"{naive.get('total_api_calls')} / {total} = {ratio_calls:.1f}x",
            }
        )
        out.append(
            {
                "target": ">= 5x less wall time than naive (1,000 states, whole process)",
                "holds": ratio_wall >= 5,
                "detail": (
                    f"median {naive_sum['wall_seconds_median']:.2f}s / {tfj_sum['wall_seconds_median']:.2f}s = "
                    f"{ratio_wall:.1f}x (sweep only, excluding interpreter start and imports: {ratio_internal:.1f}x)"
                ),
            }
        )
    if n >= 10000:
        out.append(
            {
                "target": f"peak memory <= 128 MB ({n:,} states)",
                "holds": tfj_sum["peak_rss_mb"] <= 128,
                "detail": f"max RSS {tfj_sum['peak_rss_mb']:.1f} MB (psutil polled {tfj_sum['polled_peak_rss_mb']:.1f} MB)",
            }
        )
    return out


def latency_targets(n: int, delay_ms: float, tfj_sum: dict[str, Any], naive_sum: dict[str, Any]) -> list[dict[str, Any]]:
    if n != 10000:
        return []
    ratio = naive_sum["wall_seconds_median"] / tfj_sum["wall_seconds_median"]
    return [{
        "target": f">= 20x less wall time than naive with {delay_ms:.0f} ms per request (10,000 states)",
        "holds": ratio >= 20,
        "detail": f"median {naive_sum['wall_seconds_median']:.1f}s / {tfj_sum['wall_seconds_median']:.2f}s = {ratio:.1f}x",
    }]


def cold_start_targets(cs: dict[str, Any]) -> list[dict[str, Any]]:
    worst = max(cs["handlers"].items(), key=lambda kv: kv[1]["ratio"])
    return [{
        "target": "importing a handler <= 1.5 x importing boto3 alone",
        "holds": worst[1]["ratio"] <= 1.5,
        "detail": ", ".join(f"{k} {v['seconds'] * 1000:.0f} ms ({v['ratio']:.2f}x)" for k, v in cs["handlers"].items())
                  + f"; boto3 alone {cs['boto3_seconds'] * 1000:.0f} ms (median of {cs['runs']} fresh interpreters)",
    }]


# --------------------------------------------------------------------------- report


def _calls(doc: dict[str, Any]) -> str:
    calls = doc.get("api_calls", {})
    return ", ".join(f"{k} {v}" for k, v in sorted(calls.items())) or "-"


def render(report: dict[str, Any]) -> str:
    lines = ["# tfjanitor benchmark", ""]
    lines.append(
        f"moto server (tfjanitor.local.emulator.MotoServer) on loopback, region {REGION}, table {TABLE}, "
        f"buckets {', '.join(BUCKETS)}. Each scanner is a child process measured by bench/measure.py; "
        f"wall = median of {report['repeat']} interleaved runs, peak RSS = max ru_maxrss over runs. "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs (shared, noisy). tfjanitor at {report['code']}."
    )
    lines.append("")
    lines.append(
        "| N | scanner | API calls by operation | total calls | critical path | lower bound | downloads "
        "| bytes downloaded | wall s (median) | sweep s (in-process) | CPU s | peak RSS MB |"
    )
    lines.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in report["sizes"]:
        n = size["n"]
        for name in ("tfjanitor", "naive"):
            doc = size["outputs"][name]
            stats = doc.get("stats", doc)
            s = size["summary"][name]
            internal = s["internal_seconds_median"]
            lines.append(
                f"| {n:,} | {name} | {_calls(stats)} | {stats.get('total_api_calls', 0):,} | "
                f"{stats.get('critical_path_calls', stats.get('total_api_calls', 0)):,} | "
                f"{size['lower_bound']['lower_bound'] if name == 'tfjanitor' else ''} | {stats.get('downloads', 0):,} | "
                f"{stats.get('bytes_downloaded', 0):,} | {s['wall_seconds_median']:.2f} | "
                f"{internal if internal is not None else '-'} | {s['cpu_seconds_median']:.2f} | {s['peak_rss_mb']:.1f} |"
            )
        b = size["summary"]["baseline"]
        lines.append(
            f"| {n:,} | floor: python + boto3 + 2 clients | - | - | - | | - | - | {b['wall_seconds_median']:.2f} | - | "
            f"{b['cpu_seconds_median']:.2f} | {b['peak_rss_mb']:.1f} |"
        )
    if any(s.get("latency") for s in report["sizes"]):
        lines.append("")
        lines.append(f"## With {report['latency_ms']:.0f} ms added per request (a loopback proxy, like an in-region AWS call)")
        lines.append("")
        lines.append("| N | scanner | total calls | critical path calls | wall s (median) | peak RSS MB |")
        lines.append("|---|---|---:|---:|---:|---:|")
        for size in report["sizes"]:
            lat = size.get("latency")
            if not lat:
                continue
            for name in ("tfjanitor", "naive"):
                stats = lat["outputs"][name].get("stats", lat["outputs"][name])
                s = lat["summary"][name]
                lines.append(
                    f"| {size['n']:,} | {name} | {stats.get('total_api_calls', 0):,} | "
                    f"{stats.get('critical_path_calls', stats.get('total_api_calls', 0)):,} | "
                    f"{s['wall_seconds_median']:.2f} | {s['peak_rss_mb']:.1f} |"
                )
    crowded = report.get("crowded")
    if crowded:
        sd = crowded["seed"]
        lines.append("")
        lines.append(f"## A crowded bucket: {sd['objects']:,} other objects, {sd['states']} states among them")
        lines.append("")
        lines.append(f"Bounds: listing it takes {sd['list_pages']} ListObjectsV2 calls, asking for each state "
                     f"{sd['states']} HeadObject calls (seeded in {sd['seconds']:.0f} s).")
        lines.append("")
        lines.append("| added latency | scanner | API calls by operation | total calls | critical path | bucket reads "
                     "| wall s | peak RSS MB |")
        lines.append("|---|---|---|---:|---:|---:|---:|---:|")
        for mode, run in crowded["runs"].items():
            delay = f"{report['latency_ms']:.0f} ms" if mode == "latency" else "none"
            st, m = run["stats"], run["measure"]
            lines.append(f"| {delay} | tfjanitor | {_calls(st)} | {st.get('total_api_calls', 0):,} | "
                         f"{st.get('critical_path_calls', 0):,} | {run['bucket_reads']} ({st.get('bucket_reads')}) | "
                         f"{m['wall_seconds']:.2f} | {m['maxrss_kb'] / 1024:.1f} |")
            nv, nm = run["naive"], run["naive"]["measure"]
            lines.append(f"| {delay} | naive | {_calls(nv)} | {nv['total_api_calls']:,} | {nv['total_api_calls']:,} | "
                         f"- | {nm['wall_seconds']:.2f} | {nm['maxrss_kb'] / 1024:.1f} |")
    cs = report.get("cold_start")
    if cs:
        lines.append("")
        lines.append("## Cold start: importing each handler")
        lines.append("")
        lines.append("| module | import s (median) | x boto3 alone |")
        lines.append("|---|---:|---:|")
        lines.append(f"| boto3 | {cs['boto3_seconds']:.3f} | 1.00 |")
        for name, h in cs["handlers"].items():
            lines.append(f"| functions/{name}/app.py | {h['seconds']:.3f} | {h['ratio']:.2f} |")
    lines.append("")
    lines.append("## Seeding and lower bound")
    lines.append("")
    lines.append(
        "| N | seed s | of which body generation (CPU s) | state bytes | workspace keys | drifted | stale locks "
        "| fresh locks | Scan pages | ListObjectsV2 pages | lower bound |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in report["sizes"]:
        sd, lb = size["seed"], size["lower_bound"]
        lines.append(
            f"| {size['n']:,} | {sd['seconds']:.1f} | {sd['generate_seconds']:.1f} | {sd['body_bytes']:,} | "
            f"{sd['workspace_states']} | {sd['drifted']} | {sd['stale_locks']} | {sd['fresh_locks']} | "
            f"{lb['scan_pages']} | {sum(lb['list_pages'].values())} | {lb['lower_bound']} |"
        )
    lines.append("")
    lines.append(
        "Lower bound = Scan pages + ListObjectsV2 pages + 1 GetBucketLocation per bucket + 1 per table "
        "(pages counted by a probe with the engine's Scan shape: ConsistentRead, no Limit)."
    )
    lines.append("")
    lines.append("## Verdicts")
    lines.append("")
    for size in report["sizes"]:
        c = size["correctness"]
        lines.append(
            f"- **N={size['n']:,} correctness: {'PASS' if c['ok'] else 'FAIL'}** - drifts {c['drifts_found']}/"
            f"{c['drifts_seeded']}, stale locks {c['stale_locks_found']}/{c['stale_locks_seeded']} "
            f"({c['fresh_locks_seeded']} fresh locks not reported)" + ("".join(f"\n  - {p}" for p in c["problems"]))
        )
        for t in size["targets"]:
            lines.append(f"- N={size['n']:,} {t['target']}: **{'HOLDS' if t['holds'] else 'MISSED'}** ({t['detail']})")
    for t in report.get("global_targets", []):
        lines.append(f"- {t['target']}: **{'HOLDS' if t['holds'] else 'MISSED'}** ({t['detail']})")
    lines.append("")
    lines.append("## How to read it")
    lines.append("")
    lines.append(
        "- *wall s*: the whole child process (interpreter start, imports, client creation, sweep, JSON output), "
        "median of the interleaved runs; *sweep s*: the scanner's own timer (tfjanitor `stats.duration_seconds`, "
        "naive's equivalent; both include creating the boto3 clients); *CPU s*: user+sys of the child."
    )
    lines.append(
        "- *peak RSS*: `ru_maxrss` of the child, reaped by a small wrapper process (bench/measure.py) so the "
        "benchmark's own memory is not folded in; cross-checked by psutil polling every 10 ms (results.json)."
    )
    lines.append(
        "- *floor*: a Python process that only imports boto3 and creates the DynamoDB and S3 clients: "
        "the fixed cost any boto3-based scanner pays before its first call."
    )
    lines.append(
        "- API calls are counted with botocore's `before-call` event (one per logical call; HTTP retries are "
        "reported separately by tfjanitor as `stats.retries`)."
    )
    lines.append("")
    lines.append(f"Total benchmark time: {report['total_seconds']:.1f}s")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument(
        "--output",
        default=str(HERE / "bench-output"),
        help="directory for results.md, results.json, moto logs and raw run output (default: bench/bench-output)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs of each scanner per N (default 3)")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a performance target is missed")
    parser.add_argument("--latency-ms", type=float, default=30.0,
                        help="also run both scanners through a proxy adding this delay per request (0: skip)")
    parser.add_argument("--latency-repeat", type=int, default=1, help="runs of each scanner with added latency")
    parser.add_argument("--latency-max-states", type=int, default=10000,
                        help="skip the latency runs above this N (the naive scanner needs N x delay seconds)")
    parser.add_argument("--import-runs", type=int, default=7, help="fresh interpreters per cold-start measurement")
    parser.add_argument("--crowded-objects", type=int, default=200_000,
                        help="objects that are not states in the crowded-bucket run (0: skip it)")
    parser.add_argument("--crowded-states", type=int, default=100, help="states scattered among them")
    args = parser.parse_args()

    started = time.perf_counter()
    outdir = Path(args.output)
    outdir.mkdir(parents=True, exist_ok=True)
    workdir = outdir / "runs"
    workdir.mkdir(exist_ok=True)
    report: dict[str, Any] = {"repeat": args.repeat, "code": _code_version(), "sizes": [], "latency_ms": args.latency_ms,
                              "date": f"{datetime.now(timezone.utc):%Y-%m-%d}", "python": sys.version.split()[0],
                              "cpus": os.cpu_count()}
    if args.import_runs:
        print("cold start: importing each handler vs boto3 alone...", flush=True)
        report["cold_start"] = cold_start(args.import_runs)
        report["global_targets"] = cold_start_targets(report["cold_start"])

    if args.crowded_objects:
        report["crowded"] = crowded_scenario(args, workdir)
        report.setdefault("global_targets", []).extend(report["crowded"]["targets"])

    for n in args.states:
        log = outdir / f"moto-{n}.log"
        log.unlink(missing_ok=True)  # MotoServer appends: keep one run's access log
        server = MotoServer(log_path=str(log))
        server.start()
        try:
            print(f"N={n}: moto server at {server.url}; seeding...", flush=True)
            seeded = seed(server.url, n, args.seed)
            moto_rss = _rss_of_server(server)
            print(
                f"N={n}: seeded {n} states ({seeded.body_bytes / MB:.1f} MB, {len(seeded.drifted)} drifted, "
                f"{len(seeded.stale_locks)} stale + {len(seeded.fresh_locks)} fresh locks, "
                f"{seeded.workspace_states} workspace keys) in {seeded.seconds:.1f}s "
                f"({n / seeded.seconds:.0f} states/s; body generation {seeded.generate_seconds:.1f} CPU-s); "
                f"moto RSS {moto_rss:.0f} MB",
                flush=True,
            )
            lb = probe(server.url, seeded)
            print(f"N={n}: lower bound {lb}", flush=True)
            if lb["etag_not_md5"]:
                print(f"N={n}: WARNING {lb['etag_not_md5']} listed ETags are not the body MD5", flush=True)
            ran = run_scanners(server.url, args.repeat, workdir, n)
            latency = None
            if args.latency_ms and n <= args.latency_max_states:
                with EmulatorProxy(server.url, delay_seconds=args.latency_ms / 1000) as proxy:
                    print(f"N={n}: with {args.latency_ms:.0f} ms per request through {proxy.url}", flush=True)
                    latency = run_scanners(proxy.url, args.latency_repeat, workdir, n, tag="-latency")
        finally:
            server.stop()
        summary = {name: summarize(r) for name, r in ran["runs"].items()}
        tfj, naive = ran["outputs"]["tfjanitor"], ran["outputs"]["naive"]
        correctness = check_correctness(seeded, tfj, naive)
        size = {
            "n": n,
            "seed": {
                "seconds": seeded.seconds,
                "generate_seconds": seeded.generate_seconds,
                "body_bytes": seeded.body_bytes,
                "workspace_states": seeded.workspace_states,
                "drifted": len(seeded.drifted),
                "stale_locks": len(seeded.stale_locks),
                "fresh_locks": len(seeded.fresh_locks),
                "moto_rss_mb_after_seed": moto_rss,
            },
            "lower_bound": lb,
            "outputs": _outputs(tfj, naive),
            "summary": summary,
            "runs": ran["runs"],
            "correctness": correctness,
            "targets": targets(n, lb, tfj, naive, summary["tfjanitor"], summary["naive"], seeded),
        }
        if latency is not None:
            lat_summary = {name: summarize(r) for name, r in latency["runs"].items()}
            size["latency"] = {"outputs": _outputs(latency["outputs"]["tfjanitor"], latency["outputs"]["naive"]),
                               "summary": lat_summary, "runs": latency["runs"]}
            size["targets"] += latency_targets(n, args.latency_ms, lat_summary["tfjanitor"], lat_summary["naive"])
        report["sizes"].append(size)

    report["total_seconds"] = time.perf_counter() - started
    text = render(report)
    print()
    print(text)
    (outdir / "results.md").write_text(text)
    (outdir / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {outdir / 'results.md'} and {outdir / 'results.json'}")

    if not all(s["correctness"]["ok"] for s in report["sizes"]):
        print("CORRECTNESS CHECK FAILED", file=sys.stderr)
        return 1
    missed = [t["target"] for s in report["sizes"] for t in s["targets"] if not t["holds"]]
    if missed:
        print(f"targets missed: {missed}" + ("" if args.strict else " (exit 0 without --strict)"), file=sys.stderr)
        return 1 if args.strict else 0
    return 0


def _outputs(tfj: dict[str, Any], naive: dict[str, Any]) -> dict[str, Any]:
    """What results.json keeps of each scanner's output: its counts, not its findings (the raw output is in runs/)."""
    return {
        "tfjanitor": {
            "stats": tfj.get("stats", {}),
            "complete": tfj.get("complete"),
            "errors": tfj.get("errors"),
            "finding_kinds": dict(Counter(f["kind"] for f in tfj.get("findings", []))),
        },
        "naive": {k: v for k, v in naive.items() if k not in ("drifts", "stale_locks", "missing")},
    }


def _code_version() -> str:
    """The commit the scanner was run from, and whether its package had uncommitted edits."""
    try:
        run = lambda *cmd: subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, check=True).stdout.strip()  # noqa: E731
        commit = run("git", "rev-parse", "--short", "HEAD")
        dirty = run("git", "status", "--porcelain", "--", "../layers/tfjanitor")
        return commit + (" (uncommitted edits in layers/tfjanitor)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _rss_of_server(server: MotoServer) -> float:
    try:
        import psutil

        proc = server._proc  # noqa: SLF001 (read-only peek for the report)
        return psutil.Process(proc.pid).memory_info().rss / MB if proc else float("nan")
    except Exception:  # noqa: BLE001
        return float("nan")


if __name__ == "__main__":
    sys.exit(main())
