"""How far apart two AWS regions are, and what a lock table in the wrong one costs (pure).

Latency is an estimate from the great-circle distance between the regions' metro areas,
calibrated so Seoul <-> N. Virginia comes out at the ~150 ms one way measured in
practice (light in fibre plus real-world routing). Good to tell 5 ms from 150 ms,
not to plan an SLA. Transfer is counted in bytes; prices vary by region pair, so a
finding shows GB and the typical price range, never a made-up exact bill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Approximate metro-area coordinates (latitude, longitude) of AWS regions.
COORDINATES: dict[str, tuple[float, float]] = {
    "us-east-1": (39.0, -77.5),  # N. Virginia
    "us-east-2": (40.0, -83.0),  # Ohio
    "us-west-1": (37.4, -122.0),  # N. California
    "us-west-2": (45.8, -119.7),  # Oregon
    "ca-central-1": (45.5, -73.6),  # Montreal
    "ca-west-1": (51.0, -114.1),  # Calgary
    "mx-central-1": (20.6, -100.4),  # Queretaro
    "sa-east-1": (-23.5, -46.6),  # Sao Paulo
    "eu-west-1": (53.3, -6.3),  # Dublin
    "eu-west-2": (51.5, -0.1),  # London
    "eu-west-3": (48.9, 2.35),  # Paris
    "eu-central-1": (50.1, 8.7),  # Frankfurt
    "eu-central-2": (47.4, 8.5),  # Zurich
    "eu-north-1": (59.3, 18.1),  # Stockholm
    "eu-south-1": (45.5, 9.2),  # Milan
    "eu-south-2": (41.6, -0.9),  # Aragon
    "il-central-1": (32.1, 34.8),  # Tel Aviv
    "me-south-1": (26.1, 50.6),  # Bahrain
    "me-central-1": (24.5, 54.4),  # UAE
    "af-south-1": (-33.9, 18.4),  # Cape Town
    "ap-south-1": (19.1, 72.9),  # Mumbai
    "ap-south-2": (17.4, 78.5),  # Hyderabad
    "ap-east-1": (22.3, 114.2),  # Hong Kong
    "ap-northeast-1": (35.7, 139.7),  # Tokyo
    "ap-northeast-2": (37.6, 127.0),  # Seoul
    "ap-northeast-3": (34.7, 135.5),  # Osaka
    "ap-southeast-1": (1.35, 103.8),  # Singapore
    "ap-southeast-2": (-33.9, 151.2),  # Sydney
    "ap-southeast-3": (-6.2, 106.8),  # Jakarta
    "ap-southeast-4": (-37.8, 145.0),  # Melbourne
    "ap-southeast-5": (3.1, 101.7),  # Malaysia
    "ap-southeast-7": (13.75, 100.5),  # Thailand
    "cn-north-1": (39.9, 116.4),  # Beijing
    "cn-northwest-1": (37.5, 105.2),  # Ningxia
}
KM_PER_MS_ONE_WAY = 74.0  # calibration: Seoul <-> N. Virginia (~11,100 km) ~ 150 ms one way
IN_REGION_MS = 5  # one way, rounded up

# DynamoDB round trips of one `terraform apply` with dynamodb_table: lock (PutItem), digest read on the
# state read (GetItem), digest write after the state write (PutItem), unlock (GetItem + DeleteItem).
LOCK_ROUND_TRIPS_PER_APPLY = 5
# Bytes crossing per apply when Terraform runs next to the table: the state read once and written once.
STATE_TRANSFERS_PER_APPLY = 2
LOCK_OPERATION_BYTES = 1024  # request + response of one lock/digest call, generously
ASSUMED_APPLIES_PER_STATE_PER_MONTH = 30  # when no version history shows the real rate
PRICE_RANGE_PER_GB = "$0.01-0.09"  # inter-region transfer, depending on the region pair
GB = 1024**3


def distance_km(a: str, b: str) -> float | None:
    if a not in COORDINATES or b not in COORDINATES:
        return None
    (lat1, lon1), (lat2, lon2) = COORDINATES[a], COORDINATES[b]
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def one_way_ms(a: str, b: str) -> int | None:
    """Estimated one-way network latency between two regions (None: a region we do not know)."""
    if a == b:
        return IN_REGION_MS
    km = distance_km(a, b)
    return None if km is None else max(IN_REGION_MS, round(km / KM_PER_MS_ONE_WAY))


@dataclass(frozen=True)
class CrossRegionCost:
    one_way_ms: int | None
    extra_ms_per_lock_operation: int | None  # one more round trip than in-region
    extra_ms_per_apply: int | None
    states: int
    state_bytes: int  # sum of the sizes seen
    applies_per_month: float
    rate_source: str  # "assumed" or "measured: ..."
    monthly_bytes_if_terraform_near_table: int  # the state crosses (read + write per apply)
    monthly_bytes_if_terraform_near_bucket: int  # only the lock and digest calls cross

    def to_dict(self) -> dict[str, object]:
        return {
            "one_way_ms_estimate": self.one_way_ms,
            "extra_ms_per_lock_operation": self.extra_ms_per_lock_operation,
            "lock_round_trips_per_apply": LOCK_ROUND_TRIPS_PER_APPLY,
            "extra_ms_per_apply": self.extra_ms_per_apply,
            "states_seen": self.states,
            "state_bytes_seen": self.state_bytes,
            "applies_per_month": round(self.applies_per_month, 1),
            "write_rate_source": self.rate_source,
            "monthly_gb_if_terraform_runs_near_table": round(self.monthly_bytes_if_terraform_near_table / GB, 4),
            "monthly_gb_if_terraform_runs_near_bucket": round(self.monthly_bytes_if_terraform_near_bucket / GB, 6),
            "price_per_gb": PRICE_RANGE_PER_GB,
        }


def cross_region_cost(
    table_region: str, bucket_region: str, state_sizes: list[int], applies_per_month: float | None = None, rate_source: str = ""
) -> CrossRegionCost:
    """What a lock table in ``table_region`` costs the states of a bucket in ``bucket_region``.

    ``applies_per_month``: state writes per month over all the states (measured from object
    versions when the caller has them); None assumes ASSUMED_APPLIES_PER_STATE_PER_MONTH each.
    """
    one_way = one_way_ms(table_region, bucket_region)
    extra = None if one_way is None else 2 * (one_way - IN_REGION_MS)
    states = len(state_sizes)
    if applies_per_month is None:
        applies_per_month = float(ASSUMED_APPLIES_PER_STATE_PER_MONTH * max(states, 1))
        rate_source = f"assumed: {ASSUMED_APPLIES_PER_STATE_PER_MONTH} applies per state per month"
    average = (sum(state_sizes) / states) if states else 0
    near_table = int(applies_per_month * average * STATE_TRANSFERS_PER_APPLY)
    near_bucket = int(applies_per_month * LOCK_ROUND_TRIPS_PER_APPLY * LOCK_OPERATION_BYTES)
    return CrossRegionCost(
        one_way_ms=one_way,
        extra_ms_per_lock_operation=extra,
        extra_ms_per_apply=None if extra is None else extra * LOCK_ROUND_TRIPS_PER_APPLY,
        states=states,
        state_bytes=sum(state_sizes),
        applies_per_month=applies_per_month,
        rate_source=rate_source,
        monthly_bytes_if_terraform_near_table=near_table,
        monthly_bytes_if_terraform_near_bucket=near_bucket,
    )
