"""`make cost`: what one region's stack costs a month at the defaults, line by line, with the public
unit prices it assumes written next to each line.

Reads the rendered template (alarms, dashboards, KMS keys, memory sizes, the sweep interval), the
metrics the code publishes and when (``tfjanitor.runtime.telemetry.METRIC_PLAN``), and what
`make bench` measured at 1,000 states (calls per sweep by operation, duration, peak memory) from
bench/bench-output/results.json, or, without a run of your own, from the committed results of the last one
(bench/results/bench.json). ``make docs`` writes the same table into docs/operations.md from the committed
results (scripts/docs.py; a test fails when the page is stale).

    python scripts/cost.py [--states 1000] [--bench bench/bench-output/results.json] [--active-hours 176]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "tfjanitor"), str(ROOT)]

from tests.support.cfn import Rendered, load_template  # noqa: E402  (the same renderer the template tests use)
from tfjanitor.runtime.telemetry import METRIC_PLAN  # noqa: E402

HOURS = 730  # a month, as AWS prices it
# Public prices (us-east-1, 2026), per unit.
PRICE = {
    "metric_month": 0.30,  # a custom metric (name + dimensions) published every hour of the month
    "alarm": 0.10,  # a standard-resolution alarm, per metric it reads
    "dashboard": 3.00,  # beyond the first three of the account (one per fleet: not counted per region)
    "kms_key": 1.00,  # a customer-managed key
    "gb_second_arm": 0.0000133334,  # Lambda on arm64
    "lambda_request": 0.20 / 1e6,
    "ddb_read_unit": 0.125 / 1e6,  # on-demand read request unit (4 KB strongly consistent)
    "ddb_write_unit": 0.625 / 1e6,
    "s3_list": 0.005 / 1000,  # LIST class (ListObjectsV2, ListObjectVersions)
    "s3_get": 0.0004 / 1000,  # GET class (GetObject, HeadObject, GetBucketLocation)
    "log_gb": 0.50,  # CloudWatch Logs ingestion
    "sns_email": 2.00 / 1e5,  # beyond the free 1,000 a month
}
# What `make bench` writes, and the last run's results as committed (what the docs are generated from).
BENCH_OUTPUT = ROOT / "bench" / "bench-output" / "results.json"
COMMITTED = ROOT / "bench" / "results" / "bench.json"


@dataclass
class Line:
    what: str
    quantity: str
    unit_price: str
    monthly: float


def bench_figures(path: Path, states: int) -> dict[str, Any]:
    """What the sweep of ``states`` states took in the benchmark at ``path`` (else the committed results)."""
    if not path.exists():
        path = COMMITTED
    report = json.loads(path.read_text())
    for size in report.get("sizes", []):
        if size["n"] == states:
            stats = size["outputs"]["tfjanitor"]["stats"]
            shown = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
            return {
                "calls": stats.get("api_calls", {}),
                "seconds": size["summary"]["tfjanitor"]["internal_seconds_median"]
                or size["summary"]["tfjanitor"]["wall_seconds_median"],
                "peak_rss_mb": size["summary"]["tfjanitor"]["peak_rss_mb"],
                "source": f"{shown} (N={states:,})",
            }
    raise SystemExit(f"{path} has no run at {states:,} states: run make bench (python bench/bench.py --states {states})")


def cost_lines(states: int, figures: dict[str, Any], active_hours: float, parameters: dict[str, str]) -> list[Line]:
    rendered = Rendered(load_template(), parameters)
    resources = {
        name: rendered.value(r)
        for name, r in rendered.template["Resources"].items()
        if "Condition" not in r or rendered.condition(r["Condition"])
    }
    interval = int(rendered.values["SweepIntervalMinutes"])
    sweeps = HOURS * 60 / interval
    lines: list[Line] = []

    hours_for = {"always": HOURS, "activity": active_hours, "daily": 30, "nonzero": 0}
    for when in ("always", "activity", "daily", "nonzero"):
        names = [m for m in METRIC_PLAN if m.when == when]
        series = sum(m.series for m in names)
        if not series:
            continue
        hours = hours_for[when]
        lines.append(
            Line(
                f"custom metrics, {when.replace('nonzero', 'only while a problem exists')}: "
                + ", ".join(f"{m.name}" + (f" x{m.series}" if m.series > 1 else "") for m in names),
                f"{series} x {hours:.0f} h / {HOURS} h",
                f"${PRICE['metric_month']:.2f}/metric-month",
                series * hours / HOURS * PRICE["metric_month"],
            )
        )
    alarms = [r for r in resources.values() if r.get("Type") == "AWS::CloudWatch::Alarm"]
    alarm_metrics = sum(len(a["Properties"].get("Metrics", [])) or 1 for a in alarms)
    lines.append(
        Line(
            f"alarms ({len(alarms)}: " + ", ".join(sorted(n for n, r in resources.items() if r in alarms)) + ")",
            f"{alarm_metrics} alarm metrics",
            f"${PRICE['alarm']:.2f}/alarm-metric",
            alarm_metrics * PRICE["alarm"],
        )
    )
    keys = [r for r in resources.values() if r.get("Type") == "AWS::KMS::Key"]
    lines.append(Line("customer-managed KMS keys", str(len(keys)), f"${PRICE['kms_key']:.2f}/key", len(keys) * PRICE["kms_key"]))
    dashboards = [r for r in resources.values() if r.get("Type") == "AWS::CloudWatch::Dashboard"]
    lines.append(
        Line(
            "dashboards (one per fleet: CreateDashboard=false in the other regions)",
            str(len(dashboards)),
            f"${PRICE['dashboard']:.2f}/dashboard beyond 3 free per account",
            0.0,
        )
    )

    sweeper = resources.get("SweeperFunction", {}).get("Properties", {})
    memory_mb = int(sweeper.get("MemorySize") or rendered.template["Globals"]["Function"].get("MemorySize", 128))
    seconds = max(0.2, float(figures["seconds"]))
    gb_s = sweeps * seconds * memory_mb / 1024
    lines.append(
        Line(
            f"sweeper Lambda ({memory_mb} MB, {seconds:.2f} s a sweep, every {interval} min)",
            f"{sweeps:,.0f} runs, {gb_s:,.0f} GB-s",
            f"${PRICE['gb_second_arm']}/GB-s + $0.20/M requests",
            gb_s * PRICE["gb_second_arm"] + sweeps * PRICE["lambda_request"],
        )
    )
    calls = figures["calls"]
    scan_units = max(1, states * 160 // 4096 + 1)  # a lock table item is ~160 bytes; consistent reads: 4 KB a unit
    findings_units = 1  # the stack's own table: open alerts and pending notices, a few items
    ddb_units = sweeps * (scan_units + calls.get("BatchGetItem", 0) + findings_units)
    lines.append(
        Line(
            f"DynamoDB reads (Scan of {states:,} items, confirmations, the findings table)",
            f"{ddb_units:,.0f} read units",
            f"${PRICE['ddb_read_unit'] * 1e6:.3f}/M",
            ddb_units * PRICE["ddb_read_unit"],
        )
    )
    lists = sweeps * (calls.get("ListObjectsV2", 0) + calls.get("ListObjectVersions", 0))
    gets = sweeps * (calls.get("GetObject", 0) + calls.get("GetBucketLocation", 0) + calls.get("HeadObject", 0))
    lines.append(
        Line(
            "S3 requests (listings; locations; downloads only where an ETag cannot prove a digest)",
            f"{lists:,.0f} LIST + {gets:,.0f} GET",
            "$0.005/1,000 LIST, $0.0004/1,000 GET",
            lists * PRICE["s3_list"] + gets * PRICE["s3_get"],
        )
    )
    log_gb = sweeps * 3 * 1024 / 1e9  # START/END/REPORT and one "sweep finished" line: about 3 KB a sweep
    lines.append(
        Line(
            "CloudWatch Logs ingestion (healthy sweeps)",
            f"{log_gb * 1000:.0f} MB",
            f"${PRICE['log_gb']:.2f}/GB",
            log_gb * PRICE["log_gb"],
        )
    )
    runs = active_hours * 10  # stream batches while Terraform runs: ~10 an active hour
    per_batch = 0.3 * 128 / 1024 * PRICE["gb_second_arm"] + PRICE["lambda_request"] + 3 * PRICE["ddb_read_unit"]
    lines.append(Line("stream monitor Lambda and its reads (lock activity)", f"{runs:,.0f} batches", "as above", runs * per_batch))
    return lines


def at_defaults(states: int, figures: dict[str, Any], active_hours: float) -> list[Line]:
    """The lines at the template's defaults, the stream on, and the values a deploy must choose."""
    stream = "arn:aws:dynamodb:us-east-1:123456789012:table/terraform-state-lock/stream/2026-01-01T00:00:00.000"
    parameters = {"StateBucketNames": "my-terraform-state", "AlertEmail": "oncall@example.com", "LockTableStreamArn": stream}
    return cost_lines(states, figures, active_hours, parameters)


def table(lines: list[Line]) -> str:
    """The Markdown table `make cost` prints and docs/operations.md shows."""
    total = sum(line.monthly for line in lines)
    rows = ["| what | quantity | unit price | $ / month |", "|---|---|---|---:|"]
    rows += [f"| {line.what} | {line.quantity} | {line.unit_price} | {line.monthly:.2f} |" for line in lines]
    rows.append(f"| **total** | | | **{total:.2f}** |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=1000)
    parser.add_argument(
        "--bench",
        default=str(BENCH_OUTPUT),
        help="make bench's results.json (default: bench/bench-output/results.json, else the committed bench/results/bench.json)",
    )
    parser.add_argument(
        "--active-hours", type=float, default=176, help="hours a month with Terraform lock activity (default 176: 8 h x 22 workdays)"
    )
    args = parser.parse_args(argv)
    figures = bench_figures(Path(args.bench), args.states)
    lines = at_defaults(args.states, figures, args.active_hours)
    total = sum(line.monthly for line in lines)
    print(f"# tfjanitor: one region's stack a month at the defaults ({args.states:,} states, stream on)\n")
    print(f"Measured figures: {figures['source']}; peak memory {figures['peak_rss_mb']:.0f} MB.\n")
    print(table(lines))
    print("Free tiers (Lambda, SNS email, the first three dashboards) are not subtracted.")
    return 0 if total <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
