"""Running the scanners: each one a child process under bench/measure.py (wall time, exact peak RSS, CPU time),
tfjanitor and the naive scanner (bench/naive.py) interleaved, and the floor every boto3 scanner pays."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.seeding import REGION, TABLE

HERE = Path(__file__).resolve().parent

BASELINE_CODE = (
    "import boto3; s=boto3.session.Session(region_name='ap-northeast-2'); "
    "s.client('dynamodb', endpoint_url='http://127.0.0.1:9'); s.client('s3', endpoint_url='http://127.0.0.1:9')"
)


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
