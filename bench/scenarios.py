"""The scenarios: a run per N (seed, probe the lower bound, run both scanners, with added latency too), the
crowded bucket, and the handlers' cold start. Each returns its part of results.json."""

from __future__ import annotations

import argparse
import json
import logging
import math
import socket
from pathlib import Path
from typing import Any

from bench import report, targets
from bench.runner import HERE, import_seconds, measured, naive_cmd, run_scanners, summarize, tfjanitor_cmd
from bench.seeding import BUCKETS, MB, TABLE, Seeded, client_config, seed, seed_crowded, session
from tfjanitor.local.emulator import MotoServer
from tfjanitor.local.proxy import EmulatorProxy

HANDLERS = ("sweeper", "auditor", "stream_monitor")

# --------------------------------------------------------------------------- one N


def probe(url: str, seeded: Seeded) -> dict[str, Any]:
    """Count the pages the server needs (same Scan shape as the engine: consistent, no Limit)."""
    s = session()
    ddb = s.client("dynamodb", endpoint_url=url, config=client_config())
    s3 = s.client("s3", endpoint_url=url, config=client_config())
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


def sweep_size(args: argparse.Namespace, n: int, outdir: Path, workdir: Path) -> dict[str, Any]:
    """N states in a fresh moto server: seeded, probed, swept by both scanners (then through the latency proxy)."""
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
    return _size(n, args.latency_ms, seeded, moto_rss, lb, ran, latency)


def _size(
    n: int, latency_ms: float, seeded: Seeded, moto_rss: float, lb: dict[str, Any], ran: dict[str, Any], latency: dict[str, Any] | None
) -> dict[str, Any]:
    """One N's entry in results.json's ``sizes``."""
    summary = {name: summarize(r) for name, r in ran["runs"].items()}
    tfj, naive = ran["outputs"]["tfjanitor"], ran["outputs"]["naive"]
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
        "outputs": report.kept_outputs(tfj, naive),
        "summary": summary,
        "runs": ran["runs"],
        "correctness": targets.check_correctness(seeded, tfj, naive),
        "targets": targets.targets(n, lb, tfj, naive, summary["tfjanitor"], summary["naive"], seeded),
    }
    if latency is not None:
        lat_summary = {name: summarize(r) for name, r in latency["runs"].items()}
        size["latency"] = {
            "outputs": report.kept_outputs(latency["outputs"]["tfjanitor"], latency["outputs"]["naive"]),
            "summary": lat_summary,
            "runs": latency["runs"],
        }
        size["targets"] += targets.latency_targets(n, latency_ms, lat_summary["tfjanitor"], lat_summary["naive"])
    return size


def _rss_of_server(server: MotoServer) -> float:
    try:
        import psutil

        proc = server._proc  # noqa: SLF001 (read-only peek for the report)
        return psutil.Process(proc.pid).memory_info().rss / MB if proc else float("nan")
    except Exception:  # noqa: BLE001
        return float("nan")


# --------------------------------------------------------------------------- a crowded bucket


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
    for mode, run in runs.items():
        out["runs"][mode] = _crowded_run(mode, run, naive_runs[mode])
    out["targets"] = targets.crowded_targets(seeded, out["runs"]["plain"])
    return out


def _crowded_run(mode: str, run: tuple[dict[str, Any], str], naive_run: tuple[dict[str, Any], str]) -> dict[str, Any]:
    """One sweep of the crowded bucket by each scanner, as results.json keeps it."""
    m, text = run
    doc = json.loads(text) if text.strip() else {}
    stats = doc.get("stats", {})
    calls = stats.get("api_calls", {})
    reads = calls.get("ListObjectsV2", 0) + calls.get("HeadObject", 0)
    naive_m, naive_text = naive_run
    naive_doc = json.loads(naive_text) if naive_text.strip() else {}
    print(
        f"  crowded [{mode}] tfjanitor: {reads} bucket reads ({stats.get('bucket_reads')}), "
        f"{stats.get('total_api_calls')} calls, critical path {stats.get('critical_path_calls')}, "
        f"wall {m['wall_seconds']:.2f}s; naive {naive_doc.get('total_api_calls')} calls, "
        f"wall {naive_m['wall_seconds']:.2f}s",
        flush=True,
    )
    return {
        "measure": m,
        "stats": stats,
        "findings": len(doc.get("findings", [])),
        "complete": doc.get("complete"),
        "bucket_reads": reads,
        "naive": {
            "measure": naive_m,
            "api_calls": naive_doc.get("api_calls", {}),
            "total_api_calls": naive_doc.get("total_api_calls", 0),
        },
    }


# --------------------------------------------------------------------------- cold start


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
