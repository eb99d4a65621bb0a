"""What a Lambda box reads of its runtime process: ``/proc``'s memory fields (``VmRSS``, ``VmHWM``) and CPU
time, the MB its reports give them in, and the handler's import time from ``-X importtime``'s lines."""

from __future__ import annotations

import os
from pathlib import Path

from tfjanitor.local.cgroup import MB


def status_kb(pid: int, field_name: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def proc_cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (OSError, ValueError, IndexError):
        return None


def kb_to_mb(kb: int | None) -> float | None:
    return kb / 1024 if kb is not None else None


def bytes_to_mb(value: int | None) -> float | None:
    return value / MB if value is not None else None


def import_seconds(lines: list[tuple[float, str]]) -> tuple[float | None, list[tuple[float, str]]]:
    """The handler's import from ``-X importtime``'s lines, and the lines without them. The runtime client imports
    the handler with ``importlib.import_module``, which ``-X importtime`` does not time itself, so this is the sum
    of the top-level imports made after the client's own (the handler module's imports, typing included; its own
    body's few statements are not counted)."""
    top: list[tuple[str, int]] = []
    kept = []
    for stamp, line in lines:
        if line.startswith("import time:"):
            parts = line.removeprefix("import time:").split("|")
            if len(parts) == 3 and parts[1].strip().isdigit() and not parts[2].startswith("  "):
                top.append((parts[2].strip(), int(parts[1])))
            continue
        kept.append((stamp, line))
    ours = [i for i, (name, _) in enumerate(top) if name.split(".")[0] == "awslambdaric"]
    return (sum(us for _, us in top[ours[-1] + 1 :]) / 1e6 if ours else None), kept
