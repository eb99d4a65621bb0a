"""What a Lambda box reads of its runtime process: ``/proc``'s memory fields (``VmRSS``, ``VmHWM``) and CPU
time, and the MB its reports give them in."""

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
