"""Settings: durations as users write them, and one validated model per function."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from functools import lru_cache
from typing import ClassVar, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from tfjanitor.durations import parse_duration, split_list
from tfjanitor.model import StalePolicy
from tfjanitor.release.auto import ReleasePolicy

_EVENT_BUS = re.compile(r"^arn:aws[a-z-]*:events:[a-z]{2}(-[a-z]+)+-\d+:\d{12}:event-bus/[A-Za-z0-9._/-]{1,256}$")


class SettingsError(ValueError):
    """A function's environment is invalid; the message names the variable."""


class FunctionSettings(BaseModel):
    """What every function reads: its region and the alert lifecycle's table and topics."""

    model_config = ConfigDict(frozen=True)
    # field -> environment variable (template.yaml sets these)
    ENV: ClassVar[dict[str, str]] = {
        "region": "AWS_REGION",
        "findings_table": "FINDINGS_TABLE",
        "alert_topic_arns": "ALERT_TOPIC_ARN",  # comma-separated: the stack's own and/or AlertTopicArn
        "reminder_interval": "REMINDER_INTERVAL",
        # Named in every alert email (template.yaml: AWS::StackName, AWS::AccountId, AccountAlias).
        "stack_name": "STACK_NAME",
        "account_id": "ACCOUNT_ID",
        "account_alias": "ACCOUNT_ALIAS",
        "event_bus_arn": "EVENT_BUS_ARN",  # where every alert transition is also put as an event
    }

    region: str
    findings_table: str | None = None
    # (alert_topic_arn: its name when it held one topic, still accepted)
    alert_topic_arns: list[str] = Field([], validation_alias=AliasChoices("alert_topic_arns", "alert_topic_arn"))
    reminder_interval: timedelta = timedelta(hours=24)
    stack_name: str | None = None
    account_id: str | None = Field(None, pattern=r"^[0-9]{12}$")
    account_alias: str | None = None
    event_bus_arn: str | None = None

    @field_validator("alert_topic_arns", mode="before")
    @classmethod
    def _topics(cls, value: object) -> list[str]:
        return split_list(value)

    @field_validator("reminder_interval", mode="before")
    @classmethod
    def _reminder(cls, value: object) -> timedelta:
        return value if isinstance(value, timedelta) else parse_duration(value)  # type: ignore[arg-type]

    @field_validator("event_bus_arn")
    @classmethod
    def _bus(cls, value: str | None) -> str | None:
        if value is not None and not _EVENT_BUS.match(value):
            raise ValueError(f"not an EventBridge event bus ARN: {value!r} (arn:aws:events:REGION:ACCOUNT:event-bus/NAME)")
        return value

    @property
    def alerts_enabled(self) -> bool:
        return bool(self.findings_table and (self.alert_topic_arns or self.event_bus_arn))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = os.environ if environ is None else environ
        raw = {field: env[var] for field, var in cls.ENV.items() if env.get(var, "") != ""}
        try:
            return cls(**raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{cls.ENV.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in exc.errors()
            )
            raise SettingsError(f"invalid {cls.__name__} environment: {problems}") from None


class BackendSettings(FunctionSettings):
    """Functions that read Terraform's backend: which lock tables, and buckets beyond those they name."""

    ENV: ClassVar[dict[str, str]] = {
        **FunctionSettings.ENV,
        "lock_tables": "LOCK_TABLES",
        "extra_buckets": "EXTRA_BUCKETS",
    }

    lock_tables: list[str]
    extra_buckets: list[str] = []

    @field_validator("lock_tables", "extra_buckets", mode="before")
    @classmethod
    def _backend_lists(cls, value: object) -> list[str]:
        return split_list(value)

    @field_validator("lock_tables")
    @classmethod
    def _at_least_one(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one lock table")
        return value


class SweeperSettings(BackendSettings):
    """The sweeper function's environment."""

    ENV: ClassVar[dict[str, str]] = {
        **BackendSettings.ENV,
        "stale_after": "STALE_AFTER",
        "read_only_stale_after": "READ_ONLY_STALE_AFTER",
        "auto_release": "AUTO_RELEASE",
        "release_grace": "RELEASE_GRACE_PERIOD",
        "protected_keys": "PROTECTED_KEY_PATTERNS",
        "release_operations": "RELEASE_OPERATION_CLASSES",
        "adaptive_staleness": "ADAPTIVE_STALENESS",
        "min_stale_after": "MIN_STALE_AFTER",
        "stale_multiplier": "STALE_MULTIPLIER",
        "min_history": "MIN_HISTORY",
    }

    stale_after: timedelta = timedelta(hours=1)
    read_only_stale_after: timedelta = timedelta(minutes=15)
    adaptive_staleness: bool = True
    min_stale_after: timedelta = timedelta(minutes=10)
    stale_multiplier: float = Field(default=3.0, ge=1.0)
    min_history: int = Field(default=5, ge=1)
    auto_release: bool = False
    release_grace: timedelta = timedelta(minutes=30)
    protected_keys: list[str] = []
    release_operations: list[str] = ["plan", "other"]

    @field_validator("release_operations")
    @classmethod
    def _classes(cls, value: list[str]) -> list[str]:
        unknown = set(value) - {"apply", "plan", "other"}
        if unknown:
            raise ValueError(f"unknown operation classes {sorted(unknown)} (use apply, plan, other)")
        return value

    @field_validator("protected_keys", "release_operations", mode="before")
    @classmethod
    def _release_lists(cls, value: object) -> list[str]:
        return split_list(value)

    @field_validator("stale_after", "read_only_stale_after", "release_grace", "min_stale_after", mode="before")
    @classmethod
    def _durations(cls, value: object) -> timedelta:
        return value if isinstance(value, timedelta) else parse_duration(value)  # type: ignore[arg-type]

    @property
    def policy(self) -> StalePolicy:
        return StalePolicy(
            default=self.stale_after, read_only=self.read_only_stale_after, adaptive=self.adaptive_staleness,
            min_stale_after=self.min_stale_after, multiplier=self.stale_multiplier, min_history=self.min_history,
        )

    @property
    def release_policy(self) -> ReleasePolicy:
        return ReleasePolicy(
            enabled=self.auto_release,
            grace=self.release_grace,
            protected=tuple(self.protected_keys),
            operations=frozenset(self.release_operations),
        )


class StreamSettings(FunctionSettings):
    """The stream monitor's environment (region, alert table and topic)."""


_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


class AuditorSettings(BackendSettings):
    """The auditor function's environment: what to audit, and the peer regions to compare."""

    ENV: ClassVar[dict[str, str]] = {
        **BackendSettings.ENV,
        "peer_regions": "PEER_REGIONS",
        "lock_table_stream_arn": "LOCK_TABLE_STREAM_ARN",
    }

    peer_regions: list[str] = []
    lock_table_stream_arn: str | None = None

    @field_validator("peer_regions", mode="before")
    @classmethod
    def _peer_list(cls, value: object) -> list[str]:
        return split_list(value)

    @field_validator("peer_regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        bad = [r for r in value if not _REGION.match(r)]
        if bad:
            raise ValueError(f"not region names: {bad} (e.g. us-east-1)")
        return value


SWEEPER_ENV = SweeperSettings.ENV
AUDITOR_ENV = AuditorSettings.ENV


@lru_cache(maxsize=1)
def sweeper_settings() -> SweeperSettings:
    """Validated once per execution environment (warm invocations reuse it)."""
    return SweeperSettings.from_env()


@lru_cache(maxsize=1)
def stream_settings() -> StreamSettings:
    return StreamSettings.from_env()


@lru_cache(maxsize=1)
def auditor_settings() -> AuditorSettings:
    return AuditorSettings.from_env()
