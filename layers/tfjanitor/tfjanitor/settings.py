"""Settings: durations as users write them, and one validated model per function."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from .model import StalePolicy

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``1d`` (a bare number is seconds)."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        stripped = str(text).strip()
        match = _DURATION.match(stripped)
        if match:
            seconds = float(match[1]) * _UNITS[match[2].lower()]
        elif re.fullmatch(r"\d+(?:\.\d+)?", stripped):
            seconds = float(stripped)
        else:
            raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 2h, 1d)")
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


class SettingsError(ValueError):
    """A function's environment is invalid; the message names the variable."""


# field -> environment variable (template.yaml sets these)
SWEEPER_ENV = {
    "region": "AWS_REGION",
    "lock_tables": "LOCK_TABLES",
    "extra_buckets": "EXTRA_BUCKETS",
    "stale_after": "STALE_AFTER",
    "read_only_stale_after": "READ_ONLY_STALE_AFTER",
}


class SweeperSettings(BaseModel):
    """The sweeper function's environment (set by template.yaml)."""

    model_config = ConfigDict(frozen=True)

    region: str
    lock_tables: list[str]
    extra_buckets: list[str] = []
    stale_after: timedelta = timedelta(hours=1)
    read_only_stale_after: timedelta = timedelta(minutes=15)

    @field_validator("lock_tables", "extra_buckets", mode="before")
    @classmethod
    def _lists(cls, value: object) -> list[str]:
        return split_list(value)

    @field_validator("lock_tables")
    @classmethod
    def _at_least_one(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one lock table")
        return value

    @field_validator("stale_after", "read_only_stale_after", mode="before")
    @classmethod
    def _durations(cls, value: object) -> timedelta:
        return value if isinstance(value, timedelta) else parse_duration(value)  # type: ignore[arg-type]

    @property
    def policy(self) -> StalePolicy:
        return StalePolicy(default=self.stale_after, read_only=self.read_only_stale_after)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SweeperSettings:
        env = os.environ if environ is None else environ
        names = SWEEPER_ENV
        raw = {field: env[var] for field, var in names.items() if env.get(var, "") != ""}
        try:
            return cls(**raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{names.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in exc.errors()
            )
            raise SettingsError(f"invalid sweeper environment: {problems}") from None


@lru_cache(maxsize=1)
def sweeper_settings() -> SweeperSettings:
    """Validated once per execution environment (warm invocations reuse it)."""
    return SweeperSettings.from_env()
