"""Seeding the emulator: N Terraform states as Terraform writes them, and the crowded bucket.

The items and bodies are tests/support/builders.py's (Terraform's formats); what is seeded where, and how much of
it is drifted or locked, is decided here, from one seed.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
from botocore.config import Config

from tests.support.builders import lock_info, md5, random_id, resources_state_body

REGION = "ap-northeast-2"
TABLE = "terraform-state-lock"
BUCKETS = ("tfstate-bench-platform", "tfstate-bench-apps")
CROWDED_BUCKET = "tfstate-bench-crowded"
DRIFT_RATE = 0.01
STALE_RATE = 0.005
FRESH_RATE = 0.002
WORKSPACE_RATE = 0.25
MIN_BODY, MAX_BODY = 2 * 1024, 40 * 1024
THREADS = 16
MB = 1024 * 1024

_TEAMS = ["payments", "search", "identity", "data", "edge", "ml", "core", "growth"]
_COMPONENTS = ["network", "eks", "rds", "iam", "dns", "queues", "cdn", "lambda", "monitoring"]
_WORKSPACES = ["staging", "prod", "qa", "perf"]

# (index, bucket, key, body size, workspace, team, drifted): one state to write
StateSpec = tuple[int, str, str, int, str, str, bool]


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


def session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", aws_session_token="test", region_name=REGION)


def client_config() -> Config:
    return Config(retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=THREADS, s3={"addressing_style": "path"})


class _Clients:
    def __init__(self, url: str):
        s = session()  # sessions are not thread-safe: one per thread
        self.s3 = s.client("s3", endpoint_url=url, config=client_config())
        self.ddb = s.client("dynamodb", endpoint_url=url, config=client_config())


def _create_table(ddb: Any) -> None:
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _lock_item(rng: random.Random, path: str, created: datetime, operation: str) -> dict[str, Any]:
    """A lock item as Terraform writes it (builders.lock_info), its ID and holder drawn from ``rng``."""
    lock_id = random_id(rng)
    rng.randrange(1000)  # the draw the Created stamp's nanoseconds once took: a seed still seeds the same states
    who = f"ci@runner-{rng.randrange(100)}"
    info = lock_info(path, operation=operation, lock_id=lock_id, who=who, now=created)
    return {"LockID": {"S": path}, "Info": {"S": info}}


def _plan(rng: random.Random, out: Seeded) -> tuple[list[StateSpec], list[dict[str, Any]]]:
    """Which states go where, and the lock items: drifted, stale-locked and freshly locked states are disjoint
    (locks only on healthy states)."""
    n = out.n
    n_drift = max(1, round(n * DRIFT_RATE))
    n_stale = max(1, round(n * STALE_RATE))
    n_fresh = max(1, round(n * FRESH_RATE))
    picked = rng.sample(list(range(n)), n_drift + n_stale + n_fresh)
    drift_idx = set(picked[:n_drift])
    stale_idx = set(picked[n_drift : n_drift + n_stale])
    fresh_idx = set(picked[n_drift + n_stale :])

    now = datetime.now(timezone.utc)
    lock_items: list[dict[str, Any]] = []
    states: list[StateSpec] = []
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
            lock_items.append(_lock_item(rng, path, created, op))
            out.stale_locks.add(path)
        elif i in fresh_idx:
            lock_items.append(_lock_item(rng, path, now - timedelta(minutes=2), "OperationTypeApply"))
            out.fresh_locks.add(path)
    return states, lock_items


class _Writer:
    """Writes the planned states and items from a thread pool, a pair of clients per thread."""

    def __init__(self, url: str, seed_value: int, out: Seeded):
        self.url, self.seed_value, self.out = url, seed_value, out
        self.local = threading.local()
        self.gen_seconds = 0.0
        self.gen_lock = threading.Lock()
        self.digest_items: list[dict[str, Any]] = [{}] * out.n  # each slot replaced by its state's item
        self.body_sizes = [0] * out.n

    def clients(self) -> _Clients:
        c = getattr(self.local, "c", None)
        if c is None:
            c = self.local.c = _Clients(self.url)
        return c

    def put_state(self, spec: StateSpec) -> None:
        i, bucket, key, size, env, team, drift = spec
        out = self.out
        t0 = time.thread_time()  # CPU of this thread: GIL waits are not counted
        body = resources_state_body(
            random.Random(f"{self.seed_value}:{out.n}:{i}"), serial=1 + i % 97, target=size, env=env, team=team, region=REGION
        )
        body_md5 = md5(body)
        # Drift: the table keeps the digest of other bytes (e.g. a hand-edited or rolled-back object).
        digest = md5(body + b"\n") if drift else body_md5
        with self.gen_lock:
            self.gen_seconds += time.thread_time() - t0
        self.clients().s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        self.digest_items[i] = {"LockID": {"S": f"{bucket}/{key}-md5"}, "Digest": {"S": digest}}
        self.body_sizes[i] = len(body)
        out.md5[(bucket, key)] = body_md5
        if drift:
            out.drifted.add(f"{bucket}/{key}")

    def write_batch(self, batch: list[dict[str, Any]]) -> None:
        request = {TABLE: [{"PutRequest": {"Item": it}} for it in batch]}
        ddb = self.clients().ddb
        for attempt in range(20):
            resp = ddb.batch_write_item(RequestItems=request)
            request = resp.get("UnprocessedItems") or {}
            if not request:
                return
            time.sleep(0.05 * (attempt + 1))
        raise RuntimeError("batch_write_item left unprocessed items")


def seed(url: str, n: int, seed_value: int) -> Seeded:
    """``n`` states in BUCKETS and their digests and locks in TABLE, at the emulator at ``url``."""
    started = time.perf_counter()
    rng = random.Random(seed_value * 1_000_003 + n)
    out = Seeded(n=n)
    admin = session()
    _create_table(admin.client("dynamodb", endpoint_url=url, config=client_config()))
    s3 = admin.client("s3", endpoint_url=url, config=client_config())
    for b in BUCKETS:
        s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": REGION})

    states, lock_items = _plan(rng, out)
    writer = _Writer(url, seed_value, out)
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(writer.put_state, states, chunksize=16))
        items = writer.digest_items + lock_items
        batches = [items[i : i + 25] for i in range(0, len(items), 25)]
        list(pool.map(writer.write_batch, batches))
    out.body_bytes = sum(writer.body_sizes)
    out.generate_seconds = writer.gen_seconds
    out.seconds = time.perf_counter() - started
    return out


def seed_crowded(url: str, objects: int, states: int, seed_value: int) -> dict[str, Any]:
    """One bucket of build output (``objects`` small objects) with ``states`` healthy states scattered among them
    (random keys: S3's order puts them anywhere), and a lock table holding their digests. The other objects go
    straight into the in-process emulator's store (200,000 PUTs over HTTP would take ten minutes); the states and
    digests are written over HTTP as Terraform writes them."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    started = time.perf_counter()
    rng = random.Random(seed_value)
    admin = session()
    ddb = admin.client("dynamodb", endpoint_url=url, config=client_config())
    s3 = admin.client("s3", endpoint_url=url, config=client_config())
    _create_table(ddb)
    s3.create_bucket(Bucket=CROWDED_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    store = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for _ in range(objects):
        store.put_object(CROWDED_BUCKET, f"builds/{rng.getrandbits(48):012x}/artifact.log", b"ok\n", disable_notification=True)
    for _ in range(states):
        key = f"builds/{rng.getrandbits(48):012x}/terraform.tfstate"
        body = resources_state_body(random.Random(key), 1, 4096, "default", "ci", region=REGION)
        s3.put_object(Bucket=CROWDED_BUCKET, Key=key, Body=body)
        ddb.put_item(TableName=TABLE, Item={"LockID": {"S": f"{CROWDED_BUCKET}/{key}-md5"}, "Digest": {"S": md5(body)}})
    return {
        "objects": objects,
        "states": states,
        "seconds": time.perf_counter() - started,
        "list_pages": math.ceil((objects + states) / 1000),
    }
