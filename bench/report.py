"""The report: what results.json keeps, and results.md rendered from it, one function per section.

scripts/docs.py and scripts/cost.py read results.json (as committed in bench/results/): its keys are their input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.seeding import BUCKETS, REGION, TABLE

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------- results.json


def kept_outputs(tfj: dict[str, Any], naive: dict[str, Any]) -> dict[str, Any]:
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


def code_version() -> str:
    """The commit the scanner was run from, and whether its package had uncommitted edits."""
    try:
        run = lambda *cmd: subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, check=True).stdout.strip()  # noqa: E731
        commit = run("git", "rev-parse", "--short", "HEAD")
        dirty = run("git", "status", "--porcelain", "--", "../layers/tfjanitor")
        return commit + (" (uncommitted edits in layers/tfjanitor)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write(report: dict[str, Any], outdir: Path) -> None:
    """results.md (printed too) and results.json into ``outdir``."""
    text = render(report)
    print()
    print(text)
    (outdir / "results.md").write_text(text)
    (outdir / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {outdir / 'results.md'} and {outdir / 'results.json'}")


# --------------------------------------------------------------------------- results.md


def render(report: dict[str, Any]) -> str:
    lines = [
        *_header(report),
        *_sweeps(report),
        *_latency(report),
        *_crowded(report),
        *_cold_start(report),
        *_seeding(report),
        *_verdicts(report),
        *_how_to_read(),
    ]
    lines += ["", f"Total benchmark time: {report['total_seconds']:.1f}s"]
    return "\n".join(lines) + "\n"


def _calls(doc: dict[str, Any]) -> str:
    calls = doc.get("api_calls", {})
    return ", ".join(f"{k} {v}" for k, v in sorted(calls.items())) or "-"


def _header(report: dict[str, Any]) -> list[str]:
    return [
        "# tfjanitor benchmark",
        "",
        f"moto server (tfjanitor.local.emulator.MotoServer) on loopback, region {REGION}, table {TABLE}, "
        f"buckets {', '.join(BUCKETS)}. Each scanner is a child process measured by bench/measure.py; "
        f"wall = median of {report['repeat']} interleaved runs, peak RSS = max ru_maxrss over runs. "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs (shared, noisy). tfjanitor at {report['code']}.",
        "",
    ]


def _sweeps(report: dict[str, Any]) -> list[str]:
    lines = [
        "| N | scanner | API calls by operation | total calls | critical path | lower bound | downloads "
        "| bytes downloaded | wall s (median) | sweep s (in-process) | CPU s | peak RSS MB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
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
    return lines


def _latency(report: dict[str, Any]) -> list[str]:
    if not any(s.get("latency") for s in report["sizes"]):
        return []
    lines = [
        "",
        f"## With {report['latency_ms']:.0f} ms added per request (a loopback proxy, like an in-region AWS call)",
        "",
        "| N | scanner | total calls | critical path calls | wall s (median) | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|",
    ]
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
    return lines


def _crowded(report: dict[str, Any]) -> list[str]:
    crowded = report.get("crowded")
    if not crowded:
        return []
    sd = crowded["seed"]
    lines = [
        "",
        f"## A crowded bucket: {sd['objects']:,} other objects, {sd['states']} states among them",
        "",
        f"Bounds: listing it takes {sd['list_pages']} ListObjectsV2 calls, asking for each state "
        f"{sd['states']} HeadObject calls (seeded in {sd['seconds']:.0f} s).",
        "",
        "| added latency | scanner | API calls by operation | total calls | critical path | bucket reads | wall s | peak RSS MB |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for mode, run in crowded["runs"].items():
        delay = f"{report['latency_ms']:.0f} ms" if mode == "latency" else "none"
        st, m = run["stats"], run["measure"]
        lines.append(
            f"| {delay} | tfjanitor | {_calls(st)} | {st.get('total_api_calls', 0):,} | "
            f"{st.get('critical_path_calls', 0):,} | {run['bucket_reads']} ({st.get('bucket_reads')}) | "
            f"{m['wall_seconds']:.2f} | {m['maxrss_kb'] / 1024:.1f} |"
        )
        nv, nm = run["naive"], run["naive"]["measure"]
        lines.append(
            f"| {delay} | naive | {_calls(nv)} | {nv['total_api_calls']:,} | {nv['total_api_calls']:,} | "
            f"- | {nm['wall_seconds']:.2f} | {nm['maxrss_kb'] / 1024:.1f} |"
        )
    return lines


def _cold_start(report: dict[str, Any]) -> list[str]:
    cs = report.get("cold_start")
    if not cs:
        return []
    lines = [
        "",
        "## Cold start: importing each handler",
        "",
        "| module | import s (median) | x boto3 alone |",
        "|---|---:|---:|",
        f"| boto3 | {cs['boto3_seconds']:.3f} | 1.00 |",
    ]
    for name, h in cs["handlers"].items():
        lines.append(f"| functions/{name}/app.py | {h['seconds']:.3f} | {h['ratio']:.2f} |")
    return lines


def _seeding(report: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Seeding and lower bound",
        "",
        "| N | seed s | of which body generation (CPU s) | state bytes | workspace keys | drifted | stale locks "
        "| fresh locks | Scan pages | ListObjectsV2 pages | lower bound |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in report["sizes"]:
        sd, lb = size["seed"], size["lower_bound"]
        lines.append(
            f"| {size['n']:,} | {sd['seconds']:.1f} | {sd['generate_seconds']:.1f} | {sd['body_bytes']:,} | "
            f"{sd['workspace_states']} | {sd['drifted']} | {sd['stale_locks']} | {sd['fresh_locks']} | "
            f"{lb['scan_pages']} | {sum(lb['list_pages'].values())} | {lb['lower_bound']} |"
        )
    lines += [
        "",
        "Lower bound = Scan pages + ListObjectsV2 pages + 1 GetBucketLocation per bucket + 1 per table "
        "(pages counted by a probe with the engine's Scan shape: ConsistentRead, no Limit).",
    ]
    return lines


def _verdicts(report: dict[str, Any]) -> list[str]:
    lines = ["", "## Verdicts", ""]
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
    return lines


def _how_to_read() -> list[str]:
    return [
        "",
        "## How to read it",
        "",
        "- *wall s*: the whole child process (interpreter start, imports, client creation, sweep, JSON output), "
        "median of the interleaved runs; *sweep s*: the scanner's own timer (tfjanitor `stats.duration_seconds`, "
        "naive's equivalent; both include creating the boto3 clients); *CPU s*: user+sys of the child.",
        "- *peak RSS*: `ru_maxrss` of the child, reaped by a small wrapper process (bench/measure.py) so the "
        "benchmark's own memory is not folded in; cross-checked by psutil polling every 10 ms (results.json).",
        "- *floor*: a Python process that only imports boto3 and creates the DynamoDB and S3 clients: "
        "the fixed cost any boto3-based scanner pays before its first call.",
        "- API calls are counted with botocore's `before-call` event (one per logical call; HTTP retries are "
        "reported separately by tfjanitor as `stats.retries`).",
    ]
