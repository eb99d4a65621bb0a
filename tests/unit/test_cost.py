"""One region's stack stays under $2 a month at the defaults (issue 13.1): `make cost`, from the
rendered template and the metric plan, with the committed bench results (bench/results/bench.json: no bench run needed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_region_costs_at_most_two_dollars_a_month_at_the_defaults(tmp_path: Path, capsys) -> None:
    spec = importlib.util.spec_from_file_location("cost", ROOT / "scripts" / "cost.py")
    assert spec is not None and spec.loader is not None
    cost = importlib.util.module_from_spec(spec)
    sys.modules["cost"] = cost  # dataclasses look their module up
    spec.loader.exec_module(cost)
    assert cost.main(["--bench", str(tmp_path / "no-results.json")]) == 0
    out = capsys.readouterr().out
    total = float(out.split("**total**")[1].split("**")[1])
    assert 0.5 < total <= 2.0, out
    assert "SweepsCompleted, OldestLockAgeSeconds" in out  # the only always-on metrics
