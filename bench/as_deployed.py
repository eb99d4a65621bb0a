"""The sweeper as deployed: ``sam build``'s artefacts in a Lambda box at the template's MemorySize and CPU share.

    python -m bench.as_deployed [--states 1000 10000 100000] [--warm 20] [--warm-large 2] [--init-runs 3]
                                [--output DIR (default bench/bench-output)]

(from the repository's root; ``python bench/as_deployed.py`` takes the same arguments.)

Runs what ``sam deploy`` ships under the real runtime interface client (tfjanitor.local.lambda_box): init with
and without the layer's compiled bytecode, then per N a fresh moto server seeded as ``python -m bench`` seeds it,
one cold and several warm invocations of the sweeper in one execution environment (alerting on, as deployed),
each with its duration, RSS, cgroup peak and CPU-seconds. Prints which of issue 19's targets hold and writes
<output>/as-deployed/results.json. The machine is shared: CPU-share figures vary with its load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if not __package__:  # run as `python bench/as_deployed.py`: the repository's root, not bench/, first on the path
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import boto3

from bench.seeding import BUCKETS, REGION, TABLE, seed  # the same seeded tables as make bench's
from tfjanitor.local.emulator import MotoServer
from tfjanitor.local.lambda_box import BoxFunction, LambdaBox, built_function
from tfjanitor.local.runtimes import sam_build

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNTIME_DIR = ROOT / ".cache" / "lambda-box"
EVENT = json.loads((ROOT / "events" / "schedule.json").read_text())
PARAMETERS = {"StateBucketNames": ",".join(BUCKETS), "LockTableNames": TABLE, "AlertEmail": "oncall@example.com"}
FLAT_MB = 2.0
INIT_TARGET_SECONDS = 5.0


def stack(server: MotoServer, suffix: str = "") -> dict[str, str]:
    """The stack's own findings table and topic in the emulator (one per memory size measured: each starts with no
    alert open); the box's environment overrides."""

    def c(service: str) -> Any:
        return boto3.client(
            service, region_name=REGION, endpoint_url=server.url, aws_access_key_id="test", aws_secret_access_key="test"
        )

    c("dynamodb").create_table(
        TableName=f"tfjanitor-findings{suffix}",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "Fingerprint", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Fingerprint", "AttributeType": "S"}],
    )
    topic = c("sns").create_topic(Name=f"tfjanitor-alerts{suffix}")["TopicArn"]
    return {**server.env(), "FINDINGS_TABLE": f"tfjanitor-findings{suffix}", "ALERT_TOPIC_ARN": topic}


def spread(values: list[float]) -> dict[str, float] | None:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else None


def measure_init(fn: BoxFunction, runs: int) -> dict[str, Any]:
    inits = []
    for _ in range(runs):
        with LambdaBox(fn, runtime_dir=RUNTIME_DIR, profile_imports=True) as box:
            report = box.start()
            inits.append(
                {
                    "seconds": report.seconds,
                    "handler_import_seconds": report.handler_import_seconds,
                    "cpu_seconds": report.cpu_seconds,
                    "rss_mb": report.rss_mb,
                    "error": report.error,
                    "limits": str(box.limits),
                }
            )
    return {
        "runs": inits,
        "seconds": spread([i["seconds"] for i in inits]),
        "handler_import_seconds": spread([i["handler_import_seconds"] for i in inits if i["handler_import_seconds"]]),
    }


def sweep_stats(logs: list[str]) -> dict[str, Any] | None:
    """The "sweep finished" log line's stats: the sweep's own duration and calls, before alerting."""
    for line in logs:
        if '"sweep finished"' in line:
            try:
                stats: dict[str, Any] | None = json.loads(line).get("stats")
                return stats
            except ValueError:
                return None
    return None


def sweep_size(fn: BoxFunction, n: int, warm: int, seed_value: int, memories: list[int]) -> list[dict[str, Any]]:
    """One seeded emulator of ``n`` states, swept at each memory size (a findings table of its own for each)."""
    out = []
    with MotoServer() as server:
        started = time.perf_counter()
        seeded = seed(server.url, n, seed_value)
        print(
            f"N={n}: seeded in {time.perf_counter() - started:.0f}s ({len(seeded.drifted)} drifted, {len(seeded.stale_locks)} stale)",
            flush=True,
        )
        for memory in memories:
            out.append(_sweeps(fn, server, n, warm, memory, len(seeded.drifted) + len(seeded.stale_locks)))
    return out


def _sweeps(fn: BoxFunction, server: MotoServer, n: int, warm: int, memory: int, expected: int) -> dict[str, Any]:
    with LambdaBox(
        fn, {**stack(server, f"-{memory}"), "POWERTOOLS_LOG_LEVEL": "INFO"}, memory_mb=memory, runtime_dir=RUNTIME_DIR
    ) as box:
        runs = []
        for i in range(1 + warm):
            inv = box.invoke(EVENT)
            doc = inv.as_dict()
            stats = sweep_stats(inv.logs) or {}
            doc["sweep_seconds"] = stats.get("duration_seconds")
            doc["critical_path_calls"] = stats.get("critical_path_calls")
            runs.append(doc)
            print(
                f"N={n} {memory} MB: {'cold' if inv.cold else 'warm'} #{i}: {inv.status} {inv.duration_seconds:.1f}s "
                f"(sweep {doc['sweep_seconds']}s) rss {inv.rss_mb or 0:.1f} MB peak {inv.cgroup_peak_mb or 0:.1f} MB "
                f"cpu {inv.cpu_seconds or 0:.2f}s"
                + (f" init {inv.init.seconds:.1f}s" if inv.init else "")
                + (f" {inv.error}" if not inv.ok else ""),
                flush=True,
            )
            if not inv.ok:
                break  # a timed-out or killed sweep: the next is cold, and as slow
        limits = str(box.limits)
    cold = runs[0]
    warm_ok = [r for r in runs[1:] if r["status"] == "success"]
    rss = [r["rss_mb"] for r in warm_ok]
    return {
        "n": n,
        "memory_mb": memory,
        "limits": limits,
        "runs": runs,
        "expected_findings": expected,
        "cold_seconds": cold["duration_seconds"] if cold["status"] == "success" else None,
        "cold_status": cold["status"],
        "cold_sweep_seconds": cold.get("sweep_seconds"),
        "warm_seconds": spread([r["duration_seconds"] for r in warm_ok]),
        "warm_sweep_seconds": spread([r["sweep_seconds"] for r in warm_ok if r.get("sweep_seconds")]),
        "warm_statuses": [r["status"] for r in runs[1:]],
        "peak_rss_mb": max((r["peak_rss_mb"] or 0 for r in runs), default=None),
        "cgroup_peak_mb": max((r["cgroup_peak_mb"] or 0 for r in runs), default=None),
        "cpu_seconds_per_state_warm": statistics.median([r["cpu_seconds"] / n for r in warm_ok]) if warm_ok else None,
        "cpu_seconds_per_state_cold": cold["cpu_seconds"] / n if cold.get("cpu_seconds") else None,
        "warm_rss_mb": rss,
        "warm_growth_after_third_mb": (max(rss[2:]) - rss[2]) if len(rss) >= 3 else None,
    }


def targets(report: dict[str, Any], timeout: float, memory_mb: int) -> list[dict[str, Any]]:
    by_n = {s["n"]: s for s in report["sizes"] if s["memory_mb"] == memory_mb}
    out = []
    init = report["init"]["with_pyc"]["seconds"]
    out.append(
        {
            "target": f"init within {INIT_TARGET_SECONDS:g} s at {memory_mb} MB (median, with the layer's .pyc)",
            "measured": init and round(init["median"], 2),
            "holds": bool(init and init["median"] <= INIT_TARGET_SECONDS),
        }
    )
    big = by_n.get(100_000)
    warm = big and big["warm_seconds"]
    out.append(
        {
            "target": f"warm 100,000-state sweep within half the Timeout ({timeout / 2:g} s)",
            "measured": warm and round(warm["max"], 1) if warm else ("not measured" if not big else big["warm_statuses"]),
            "holds": bool(warm and warm["max"] <= timeout / 2),
        }
    )
    out.append(
        {
            "target": f"cold 100,000-state sweep within the Timeout ({timeout:g} s)",
            "measured": (
                round(big["cold_seconds"], 1) if big and big["cold_seconds"] else ("not measured" if not big else big["cold_status"])
            ),
            "holds": bool(big and big["cold_seconds"] and big["cold_seconds"] <= timeout),
        }
    )
    long_runs = [s for s in report["sizes"] if len(s["warm_rss_mb"]) >= 20]
    growth = long_runs[0]["warm_growth_after_third_mb"] if long_runs else None
    out.append(
        {
            "target": f"memory flat over twenty warm invocations (RSS within {FLAT_MB:g} MB of the third's)",
            "measured": round(growth, 2) if growth is not None else "fewer than 20 warm invocations",
            "holds": growth is not None and growth < FLAT_MB,
        }
    )
    # Where 100,000 states were not run: what the measured CPU per state says a warm sweep would take.
    per_state = [s["cpu_seconds_per_state_warm"] for s in report["sizes"] if s["cpu_seconds_per_state_warm"]]
    if not big and per_state:
        share = memory_mb / 1769
        out.append(
            {
                "target": "(estimate) warm 100,000 states from the largest N's CPU-seconds per state / CPU share",
                "measured": round(per_state[-1] * 100_000 / share, 0),
                "holds": per_state[-1] * 100_000 / share <= timeout / 2,
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--warm", type=int, default=20, help="warm invocations at the smallest N (memory over time)")
    parser.add_argument("--warm-large", type=int, default=2, help="warm invocations at each larger N")
    parser.add_argument("--init-runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument(
        "--memory",
        type=int,
        nargs="*",
        default=None,
        help="MemorySize values to sweep each N at (default: the template's); CPU follows memory",
    )
    parser.add_argument("--output", default=str(HERE / "bench-output"))
    args = parser.parse_args()

    out = Path(args.output) / "as-deployed"
    out.mkdir(parents=True, exist_ok=True)
    build = out / "build"
    shutil.rmtree(build, ignore_errors=True)
    print(f"sam build into {build} ...", flush=True)
    sam_build(ROOT, build)
    fn = built_function(build, "SweeperFunction", PARAMETERS)
    # The same layer without its bytecode: what BuildMethod python3.13 shipped (compiled at every cold start).
    bare = out / "layer-without-pyc"
    shutil.rmtree(bare, ignore_errors=True)
    shutil.copytree(fn.layers[0], bare, ignore=shutil.ignore_patterns("__pycache__"))
    without = BoxFunction(**{**vars(fn), "layers": [bare]})
    report: dict[str, Any] = {
        "function": fn.name,
        "memory_mb": fn.memory_mb,
        "timeout": fn.timeout,
        "cpu_share": fn.memory_mb / 1769,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "sizes": [],
    }
    print("init, with and without the layer's .pyc ...", flush=True)
    report["init"] = {"with_pyc": measure_init(fn, args.init_runs), "without_pyc": measure_init(without, args.init_runs)}
    for label, doc in report["init"].items():
        print(f"init {label}: {doc['seconds']} handler import {doc['handler_import_seconds']}", flush=True)
    for i, n in enumerate(args.states):
        report["sizes"] += sweep_size(fn, n, args.warm if i == 0 else args.warm_large, args.seed, args.memory or [fn.memory_mb])
    report["targets"] = targets(report, fn.timeout, fn.memory_mb)

    print(f"\nSweeper as deployed: {fn.memory_mb} MB, {fn.memory_mb / 1769:.3f} CPU, Timeout {fn.timeout:g} s")
    print(
        f"{'states':>8} {'MB':>5} {'cold s':>8} {'warm s (median, min-max)':>26} {'warm sweep s':>12} "
        f"{'peak RSS MB':>12} {'cgroup MB':>10} {'CPU ms/state':>13} {'warm RSS growth MB':>19}"
    )
    for s in report["sizes"]:
        w, ws = s["warm_seconds"], s["warm_sweep_seconds"]
        warm = f"{w['median']:.1f} ({w['min']:.1f}-{w['max']:.1f})" if w else "-"
        cold = f"{s['cold_seconds']:.1f}" if s["cold_seconds"] else s["cold_status"]
        growth = f"{s['warm_growth_after_third_mb']:.2f}" if s["warm_growth_after_third_mb"] is not None else "-"
        print(
            f"{s['n']:>8} {s['memory_mb']:>5} {cold:>8} {warm:>26} {(ws or {}).get('median', 0):>12.1f} "
            f"{s['peak_rss_mb'] or 0:>12.1f} {s['cgroup_peak_mb'] or 0:>10.1f} "
            f"{(s['cpu_seconds_per_state_warm'] or 0) * 1000:>13.3f} {growth:>19}"
        )
    print()
    for t in report["targets"]:
        print(f"  [{'holds' if t['holds'] else 'MISSED'}] {t['target']}: {t['measured']}")
    (out / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
