"""A cgroup (v1) of a Lambda box's own: the function's MemorySize as its memory limit (no swap) and MemorySize / 1769
of one CPU as its CFS quota, with its peak memory, OOM kills and CPU time read back."""

from __future__ import annotations

import contextlib
import shlex
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CFS_PERIOD_US = 100_000
MB = 1024 * 1024


def _write(path: Path, value: str | int) -> None:
    path.write_text(str(value))


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class Cgroup:
    """A cgroup (v1) of its own in the ``memory``, ``cpu`` and (where mounted) ``cpuacct`` controllers."""

    def __init__(self, name: str, memory_mb: int, cpu_share: float, root: Path = CGROUP_ROOT):
        self.name, self.memory_mb, self.cpu_share = name, memory_mb, cpu_share
        self._root = root
        self.dirs: dict[str, Path] = {}

    def create(self) -> str | None:
        """Make the group and set its limits; ``None``, or why it could not be made (then nothing is left)."""
        try:
            made: set[Path] = set()
            for controller in ("memory", "cpu", "cpuacct"):
                base = self._root / controller
                if not (base / "cgroup.procs").exists():
                    if controller == "cpuacct":
                        continue  # CPU time then comes from /proc
                    return f"cgroup v1 {controller} controller not mounted at {base}"
                path = base / self.name
                if path.resolve() not in made:  # cpu and cpuacct may be one hierarchy
                    path.mkdir()
                    made.add(path.resolve())
                self.dirs[controller] = path
            memory = self.dirs["memory"]
            limit = self.memory_mb * MB
            _write(memory / "memory.limit_in_bytes", limit)
            if (memory / "memory.memsw.limit_in_bytes").exists():  # no swap beyond the limit
                _write(memory / "memory.memsw.limit_in_bytes", limit)
            with contextlib.suppress(OSError):
                _write(memory / "memory.swappiness", 0)
            cpu = self.dirs["cpu"]
            _write(cpu / "cpu.cfs_period_us", CFS_PERIOD_US)
            _write(cpu / "cpu.cfs_quota_us", max(1000, round(CFS_PERIOD_US * self.cpu_share)))
            return None
        except OSError as exc:
            self.remove()
            return f"no cgroup could be made ({exc.__class__.__name__}: {exc})"

    @property
    def made(self) -> bool:
        return bool(self.dirs)

    def join_script(self) -> str:
        """Shell that moves itself into the group, then runs its arguments (so the whole process starts inside)."""
        joins = " && ".join(f"echo $$ > {shlex.quote(str(path / 'cgroup.procs'))}" for path in self.dirs.values())
        return f'{joins} && exec "$@"'

    def pids(self) -> list[int]:
        out: set[int] = set()
        for path in self.dirs.values():
            with contextlib.suppress(OSError):
                out |= {int(p) for p in (path / "cgroup.procs").read_text().split()}
        return sorted(out)

    def memory_peak(self) -> int | None:
        return _read_int(self.dirs["memory"] / "memory.max_usage_in_bytes") if "memory" in self.dirs else None

    def reset_memory_peak(self) -> None:
        if "memory" in self.dirs:
            with contextlib.suppress(OSError):
                _write(self.dirs["memory"] / "memory.max_usage_in_bytes", 0)

    def oom_kills(self) -> int:
        """OOM kills in the group so far (``oom_kill`` of ``memory.oom_control``; older kernels: the failure count)."""
        if "memory" not in self.dirs:
            return 0
        with contextlib.suppress(OSError):
            for line in (self.dirs["memory"] / "memory.oom_control").read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        return 0

    def cpu_ns(self) -> int | None:
        return _read_int(self.dirs["cpuacct"] / "cpuacct.usage") if "cpuacct" in self.dirs else None

    def remove(self) -> None:
        for path in {p.resolve(): p for p in self.dirs.values()}.values():
            for _ in range(100):  # a killed task leaves the group once it is reaped
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
        self.dirs = {}
