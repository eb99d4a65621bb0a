"""The verdicts: did each scanner find exactly what was seeded, and which of the performance targets hold.

Each target is ``{"target": what it promises, "holds": bool, "detail": the figures it was judged on}``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.seeding import Seeded


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
            "detail": (
                f"{total} calls <= 1.2 x {lb['lower_bound']} + {downloads} + {forensics} = {allowed:.1f}; "
                f"retries {stats.get('retries')}"
            ),
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
        out += _against_naive(total, naive, tfj_sum, naive_sum)
    if n >= 10000:
        out.append(
            {
                "target": f"peak memory <= 128 MB ({n:,} states)",
                "holds": tfj_sum["peak_rss_mb"] <= 128,
                "detail": f"max RSS {tfj_sum['peak_rss_mb']:.1f} MB (psutil polled {tfj_sum['polled_peak_rss_mb']:.1f} MB)",
            }
        )
    return out


def _against_naive(total: int, naive: dict[str, Any], tfj_sum: dict[str, Any], naive_sum: dict[str, Any]) -> list[dict[str, Any]]:
    """The 1,000-state targets: fewer calls and less wall time than the naive scanner."""
    ratio_calls = naive.get("total_api_calls", 0) / max(1, total)
    ratio_wall = naive_sum["wall_seconds_median"] / tfj_sum["wall_seconds_median"]
    ratio_internal = (
        naive_sum["internal_seconds_median"] / tfj_sum["internal_seconds_median"]
        if naive_sum["internal_seconds_median"] and tfj_sum["internal_seconds_median"]
        else float("nan")
    )
    return [
        {
            "target": ">= 20x fewer API calls than naive (1,000 states)",
            "holds": ratio_calls >= 20,
            "detail": f"{naive.get('total_api_calls')} / {total} = {ratio_calls:.1f}x",
        },
        {
            "target": ">= 5x less wall time than naive (1,000 states, whole process)",
            "holds": ratio_wall >= 5,
            "detail": (
                f"median {naive_sum['wall_seconds_median']:.2f}s / {tfj_sum['wall_seconds_median']:.2f}s = "
                f"{ratio_wall:.1f}x (sweep only, excluding interpreter start and imports: {ratio_internal:.1f}x)"
            ),
        },
    ]


def latency_targets(n: int, delay_ms: float, tfj_sum: dict[str, Any], naive_sum: dict[str, Any]) -> list[dict[str, Any]]:
    if n != 10000:
        return []
    ratio = naive_sum["wall_seconds_median"] / tfj_sum["wall_seconds_median"]
    return [
        {
            "target": f">= 20x less wall time than naive with {delay_ms:.0f} ms per request (10,000 states)",
            "holds": ratio >= 20,
            "detail": f"median {naive_sum['wall_seconds_median']:.1f}s / {tfj_sum['wall_seconds_median']:.2f}s = {ratio:.1f}x",
        }
    ]


def cold_start_targets(cs: dict[str, Any]) -> list[dict[str, Any]]:
    worst = max(cs["handlers"].items(), key=lambda kv: kv[1]["ratio"])
    return [
        {
            "target": "importing a handler <= 1.5 x importing boto3 alone",
            "holds": worst[1]["ratio"] <= 1.5,
            "detail": ", ".join(f"{k} {v['seconds'] * 1000:.0f} ms ({v['ratio']:.2f}x)" for k, v in cs["handlers"].items())
            + f"; boto3 alone {cs['boto3_seconds'] * 1000:.0f} ms (median of {cs['runs']} fresh interpreters)",
        }
    ]


def crowded_targets(seeded: dict[str, Any], plain: dict[str, Any]) -> list[dict[str, Any]]:
    """The crowded bucket, swept with no added latency: its reads against the cheaper of the two bounds, one
    ListObjectsV2 per 1,000 objects or one HeadObject per state."""
    cheaper = min(seeded["list_pages"], seeded["states"])
    return [
        {
            "target": (f"bucket reads <= 1.2 x the cheaper bound ({seeded['objects']:,} other objects, {seeded['states']} states)"),
            "holds": plain["bucket_reads"] <= 1.2 * cheaper and plain["complete"] and plain["findings"] == 0,
            "detail": (
                f"{plain['bucket_reads']} ListObjectsV2 + HeadObject <= 1.2 x min({seeded['list_pages']} pages, "
                f"{seeded['states']} HeadObject) = {1.2 * cheaper:.0f}; read as {plain['stats'].get('bucket_reads')}"
            ),
        }
    ]
