"""Benchmark: tfjanitor's sweep against a naive scanner on the embedded emulator.

    python -m bench [--states 1000 10000] [--output DIR (default bench/bench-output)] [--repeat 3] [--strict]
                    [--latency-ms 30] [--latency-repeat 1] [--import-runs 7]

    Memory at scale: python -m bench --states 50000 100000 --repeat 1 --latency-ms 0

(from the repository's root; ``python bench/bench.py`` takes the same arguments.)

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
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import report as results
from bench import scenarios
from bench.targets import cold_start_targets

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--states", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument(
        "--output",
        default=str(HERE / "bench-output"),
        help="directory for results.md, results.json, moto logs and raw run output (default: bench/bench-output)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs of each scanner per N (default 3)")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a performance target is missed")
    parser.add_argument(
        "--latency-ms", type=float, default=30.0, help="also run both scanners through a proxy adding this delay per request (0: skip)"
    )
    parser.add_argument("--latency-repeat", type=int, default=1, help="runs of each scanner with added latency")
    parser.add_argument(
        "--latency-max-states",
        type=int,
        default=10000,
        help="skip the latency runs above this N (the naive scanner needs N x delay seconds)",
    )
    parser.add_argument("--import-runs", type=int, default=7, help="fresh interpreters per cold-start measurement")
    parser.add_argument(
        "--crowded-objects", type=int, default=200_000, help="objects that are not states in the crowded-bucket run (0: skip it)"
    )
    parser.add_argument("--crowded-states", type=int, default=100, help="states scattered among them")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    started = time.perf_counter()
    outdir = Path(args.output)
    outdir.mkdir(parents=True, exist_ok=True)
    workdir = outdir / "runs"
    workdir.mkdir(exist_ok=True)
    report: dict[str, Any] = {
        "repeat": args.repeat,
        "code": results.code_version(),
        "sizes": [],
        "latency_ms": args.latency_ms,
        "date": f"{datetime.now(timezone.utc):%Y-%m-%d}",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    if args.import_runs:
        print("cold start: importing each handler vs boto3 alone...", flush=True)
        report["cold_start"] = scenarios.cold_start(args.import_runs)
        report["global_targets"] = cold_start_targets(report["cold_start"])

    if args.crowded_objects:
        report["crowded"] = scenarios.crowded_scenario(args, workdir)
        report.setdefault("global_targets", []).extend(report["crowded"]["targets"])

    for n in args.states:
        report["sizes"].append(scenarios.sweep_size(args, n, outdir, workdir))

    report["total_seconds"] = time.perf_counter() - started
    results.write(report, outdir)
    return exit_status(report, args.strict)


def exit_status(report: dict[str, Any], strict: bool) -> int:
    """1 when a correctness check failed; when a target was missed, 1 only with --strict."""
    if not all(s["correctness"]["ok"] for s in report["sizes"]):
        print("CORRECTNESS CHECK FAILED", file=sys.stderr)
        return 1
    missed = [t["target"] for s in report["sizes"] for t in s["targets"] if not t["holds"]]
    if missed:
        print(f"targets missed: {missed}" + ("" if strict else " (exit 0 without --strict)"), file=sys.stderr)
        return 1 if strict else 0
    return 0
