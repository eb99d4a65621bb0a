"""A machine whose Who and live terraform runs a test decides (``tfjanitor.release.machine.Machine``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from tfjanitor.release.machine import MachineError, Process


@dataclass
class FakeMachine:
    me: str = "runner@fv-az123-456"
    live: list[Process] = field(default_factory=list)
    fail: str | None = None  # "who" or "processes": that call raises MachineError
    calls: list[str] = field(default_factory=list)  # the order the release asked in
    on_processes: Callable[[], None] | None = None  # runs when the process table is read (a run starting then)

    def who(self) -> str:
        self.calls.append("who")
        if self.fail == "who":
            raise MachineError("no user here")
        return self.me

    def terraform_processes(self) -> list[Process]:
        self.calls.append("processes")
        if self.on_processes is not None:
            self.on_processes()
        if self.fail == "processes":
            raise MachineError("cannot read process 42 in /proc: Permission denied")
        return list(self.live)


def run_started(when: datetime, pid: int = 4242, name: str = "terraform") -> Process:
    return Process(pid, name, when.astimezone(timezone.utc))
