"""Durations and lists as users write them (no pydantic: the CLI imports this on every run)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta

_PART = r"(\d+(?:\.\d+)?)([smhd])"
_DURATION = re.compile(rf"(?:{_PART})+", re.IGNORECASE)  # Go style: 90s, 1h30m, 2m30s, 1.5h
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``1d``, compound as Terraform users write them (``1h30m``, ``2m30s``);
    a bare number is seconds."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        stripped = str(text).strip()
        if _DURATION.fullmatch(stripped):
            seconds = sum(float(n) * _UNITS[unit.lower()] for n, unit in re.findall(_PART, stripped, re.IGNORECASE))
        elif re.fullmatch(r"\d+(?:\.\d+)?", stripped):
            seconds = float(stripped)
        else:
            raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 1h30m, 2h, 1d)")
    if seconds <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return timedelta(seconds=seconds)


def split_list(value: object) -> list[str]:
    """A CloudFormation CommaDelimitedList arrives as ``a,b`` (blanks dropped)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def human_duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class OutOfTime(Exception):
    """The run's time budget ran out: stop reading, report what was read as incomplete."""


class Deadline:
    """A run's time budget: the Lambda's remaining time less a reserve (to send notices and
    metrics), or the CLI's ``--time-budget``. ``check()`` raises :class:`OutOfTime` once spent.

    ``reserve``: the seconds the run still has after this deadline before it is stopped (a Lambda's
    timeout); :meth:`later` spends them, :meth:`ends_in` says when the run is over for sure."""

    def __init__(self, seconds_left: Callable[[], float], budget: str, reserve: float = 0.0):
        self._left = seconds_left
        self.budget = budget  # what the budget was, for the error message
        self.reserve = max(0.0, reserve)

    @classmethod
    def after(cls, budget: timedelta, clock: Callable[[], float] = time.monotonic) -> Deadline:
        end = clock() + budget.total_seconds()
        return cls(lambda: end - clock(), f"--time-budget {human_duration(budget.total_seconds())}")

    @classmethod
    def of_lambda(cls, context: object, reserve: timedelta = timedelta(seconds=30)) -> Deadline | None:
        """From a Lambda context's ``get_remaining_time_in_millis`` (None without one)."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if not callable(remaining):
            return None
        spare = reserve.total_seconds()
        return cls(
            lambda: remaining() / 1000 - spare, f"the function timeout less {human_duration(spare)} for alerts and metrics", spare
        )

    def later(self, seconds: float, budget: str | None = None) -> Deadline:
        """The same clock, up to ``seconds`` later, taken out of the reserve: the deadline of what the
        reserve was kept for (sending notices after a sweep that used all its own time)."""
        extra = min(max(0.0, seconds), self.reserve)
        left = self._left
        return Deadline(lambda: left() + extra, budget or self.budget, self.reserve - extra)

    def left(self) -> float:
        return self._left()

    def ends_in(self) -> float:
        """Seconds until the run is stopped for sure (this deadline and its reserve); 0 once past."""
        return max(0.0, self._left() + self.reserve)

    def check(self) -> None:
        if self._left() <= 0:
            raise OutOfTime(f"the time budget ({self.budget}) ran out")


def in_time(deadline: Deadline | None) -> None:
    """Raise :class:`OutOfTime` if ``deadline`` (if any) is spent."""
    if deadline is not None:
        deadline.check()
