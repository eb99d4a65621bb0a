"""The stack's dashboard, drawn from the metrics a local run emitted: one panel per widget of the dashboard body the
template defines (read back from the stack deployed into the emulator, so the picture follows the template: the
dashboard is defined once, there).

Each metric line of a widget (``[namespace, name, dimension, value, ..., {"stat", "label"}]``) is drawn from the EMF
metrics of that name and dimensions: each invocation's values summed (``Sum``), their maximum (``Maximum`` and the
others), or every value (a percentile such as ``p95``: the points it is made of). Lines of other namespaces (Lambda's
and SQS's own metrics) have no local source and are left out; a widget with none left says so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class EmittedMetric(Protocol):
    at: float
    name: str
    dimensions: dict[str, str]
    values: list[float]


@dataclass(frozen=True)
class Line:
    namespace: str
    name: str
    dimensions: dict[str, str]
    stat: str
    label: str

    def combine(self, values: list[float]) -> list[float]:
        if self.stat == "Sum":
            return [sum(values)]
        if self.stat.startswith("p"):
            return list(values)
        return [max(values)]


@dataclass
class Panel:
    title: str
    lines: list[Line] = field(default_factory=list)


def panels(body: dict[str, Any] | str, namespace: str = "TfJanitor") -> list[Panel]:
    """The dashboard body's metric widgets and, of each, the lines of ``namespace``."""
    doc = json.loads(body) if isinstance(body, str) else body
    out = []
    for widget in doc.get("widgets", []):
        props = widget.get("properties", {})
        if widget.get("type") != "metric":
            continue
        panel = Panel(str(props.get("title", "")))
        for metric in props.get("metrics", []):
            options = metric[-1] if metric and isinstance(metric[-1], dict) else {}
            names = [m for m in metric if not isinstance(m, dict)]
            if len(names) < 2 or names[0] != namespace:
                continue
            dims = dict(zip(names[2::2], names[3::2], strict=False))
            label = str(options.get("label", names[1])).replace(" ${PROP('Region')}", "")
            panel.lines.append(Line(names[0], names[1], dims, str(options.get("stat", props.get("stat", "Maximum"))), label))
        out.append(panel)
    return out


def _points(metrics: Sequence[EmittedMetric], line: Line, start: float) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    for m in metrics:
        if m.name == line.name and all(m.dimensions.get(k) == v for k, v in line.dimensions.items()):
            points += [(m.at - start, v) for v in line.combine(m.values)]
    return points


def render_dashboard(metrics: Sequence[EmittedMetric], body: dict[str, Any] | str, path: Path, title: str = "tfjanitor") -> Path:
    """Draw every metric widget of ``body`` from the metrics a local run emitted (EMF)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    shown = panels(body)
    start = min((m.at for m in metrics), default=time.time())
    rows = max(1, -(-len(shown) // 2))
    fig, axes = plt.subplots(rows, 2, figsize=(14, 3.2 * rows + 0.5), squeeze=False)
    for ax, panel in zip(axes.flat, shown, strict=False):
        drawn = False
        for line in panel.lines:
            points = _points(metrics, line, start)
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            if line.stat.startswith("p"):
                ax.scatter(xs, ys, label=f"{line.label}", s=18)
            else:
                ax.step(xs, ys, where="post", label=line.label, marker="o", markersize=3)
            drawn = True
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel("seconds since start", fontsize=8)
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend(fontsize=7, loc="upper left")
        else:
            ax.text(
                0.5,
                0.5,
                "no data" if panel.lines else "no local source (AWS metrics)",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="grey",
            )
    for ax in list(axes.flat)[len(shown) :]:
        ax.set_visible(False)
    fig.suptitle(f"{title} - the template's dashboard, drawn from the run's own metrics", fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
