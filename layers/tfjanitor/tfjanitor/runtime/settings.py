"""Settings: durations as users write them, and one validated model per function.

Plain frozen dataclasses, validated in ``__post_init__`` (each field converted by its declared type,
then the checks of its class): no pydantic, whose import was a sixth of every cold start. A bad
value raises :class:`SettingsError` naming the environment variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import timedelta
from functools import lru_cache
from typing import Any, ClassVar, Self

from tfjanitor.catalog import DOCS_URL
from tfjanitor.durations import parse_duration, split_list
from tfjanitor.model import BucketSpec, StalePolicy
from tfjanitor.release.auto import ReleasePolicy

_EVENT_BUS = re.compile(r"^arn:aws[a-z-]*:events:[a-z]{2}(-[a-z]+)+-\d+:\d{12}:event-bus/[A-Za-z0-9._/-]{1,256}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")
# An https URL ending in "/" (a host, a port, path segments; no query or fragment): the template's DocsUrl pattern.
DOCS_URL_PATTERN = r"^https://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[A-Za-z0-9._~%+-]+)*/$"
_DOCS_URL = re.compile(DOCS_URL_PATTERN)
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


class SettingsError(ValueError):
    """A function's environment is invalid; the message names the variable."""


def _text(value: object) -> str:
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _optional_text(value: object) -> str | None:
    return None if value is None or str(value).strip() == "" else str(value).strip()


def _duration(value: object) -> timedelta:
    return value if isinstance(value, timedelta) else parse_duration(str(value))


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ValueError(f"not a boolean: {value!r} (use true or false)")


# Declared field type (as written in the class) -> its converter.
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "str": _text,
    "str | None": _optional_text,
    "list[str]": split_list,
    "timedelta": _duration,
    "bool": _boolean,
    "float": float,
    "int": int,
}


@dataclass(frozen=True, kw_only=True)
class FunctionSettings:
    """What every function reads: its region and the alert lifecycle's table and topics."""

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
        "docs_url": "DOCS_URL",  # the docs site alert emails link into (the DocsUrl parameter)
    }

    region: str
    findings_table: str | None = None
    alert_topic_arns: list[str] = field(default_factory=list)
    reminder_interval: timedelta = timedelta(hours=24)
    stack_name: str | None = None
    account_id: str | None = None
    account_alias: str | None = None
    event_bus_arn: str | None = None
    docs_url: str = DOCS_URL

    def __post_init__(self) -> None:
        problems: list[str] = []
        for f in fields(self):
            try:
                object.__setattr__(self, f.name, _CONVERT[str(f.type)](getattr(self, f.name)))
            except (ValueError, TypeError) as exc:
                problems.append(f"{self.ENV.get(f.name, f.name)}: {exc}")
        if not problems:
            problems = [f"{self.ENV.get(name, name)}: {message}" for name, message in self._problems()]
        if problems:
            raise SettingsError(f"invalid {type(self).__name__} environment: {'; '.join(problems)}")

    def _problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong) after conversion; subclasses add theirs."""
        out = []
        if self.account_id is not None and not _ACCOUNT.match(self.account_id):
            out.append(("account_id", f"not a 12-digit account ID: {self.account_id!r}"))
        if self.event_bus_arn is not None and not _EVENT_BUS.match(self.event_bus_arn):
            out.append(
                (
                    "event_bus_arn",
                    f"not an EventBridge event bus ARN: {self.event_bus_arn!r} (arn:aws:events:REGION:ACCOUNT:event-bus/NAME)",
                )
            )
        if not _DOCS_URL.match(self.docs_url):
            out.append(("docs_url", f"not an https URL ending in /: {self.docs_url!r} (e.g. {DOCS_URL})"))
        return out

    @property
    def alerts_enabled(self) -> bool:
        return bool(self.findings_table and (self.alert_topic_arns or self.event_bus_arn))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = os.environ if environ is None else environ
        # Strings: __post_init__ converts each by its field's declared type.
        raw: dict[str, Any] = {name: env[var] for name, var in cls.ENV.items() if env.get(var, "") != ""}
        missing = [
            cls.ENV.get(f.name, f.name)
            for f in fields(cls)
            if f.default is MISSING and f.default_factory is MISSING and f.name not in raw
        ]
        if missing:
            raise SettingsError(f"invalid {cls.__name__} environment: " + "; ".join(f"{m}: required" for m in missing))
        return cls(**raw)


@dataclass(frozen=True, kw_only=True)
class BackendSettings(FunctionSettings):
    """Functions that read Terraform's backend: which lock tables, and buckets beyond those they name."""

    ENV: ClassVar[dict[str, str]] = {**FunctionSettings.ENV, "lock_tables": "LOCK_TABLES", "extra_buckets": "EXTRA_BUCKETS"}

    lock_tables: list[str]
    extra_buckets: list[str] = field(default_factory=list)

    def _problems(self) -> list[tuple[str, str]]:
        out = super()._problems() + ([("lock_tables", "name at least one lock table")] if not self.lock_tables else [])
        for text in self.extra_buckets:
            try:
                BucketSpec.parse(text)
            except ValueError as exc:
                out.append(("extra_buckets", str(exc)))
        return out


@dataclass(frozen=True, kw_only=True)
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

    # The staleness defaults are StalePolicy's: one place says what "stale" means by default.
    stale_after: timedelta = StalePolicy.default
    read_only_stale_after: timedelta = StalePolicy.read_only
    adaptive_staleness: bool = StalePolicy.adaptive
    min_stale_after: timedelta = StalePolicy.min_stale_after
    stale_multiplier: float = StalePolicy.multiplier
    min_history: int = StalePolicy.min_history
    auto_release: bool = False
    release_grace: timedelta = timedelta(minutes=30)
    protected_keys: list[str] = field(default_factory=list)
    release_operations: list[str] = field(default_factory=lambda: ["plan", "other"])

    def _problems(self) -> list[tuple[str, str]]:
        out = super()._problems()
        unknown = set(self.release_operations) - {"apply", "plan", "other"}
        if unknown:
            out.append(("release_operations", f"unknown operation classes {sorted(unknown)} (use apply, plan, other)"))
        if self.stale_multiplier < 1:
            out.append(("stale_multiplier", "must be at least 1"))
        if self.min_history < 1:
            out.append(("min_history", "must be at least 1"))
        return out

    @property
    def policy(self) -> StalePolicy:
        return StalePolicy(
            default=self.stale_after,
            read_only=self.read_only_stale_after,
            adaptive=self.adaptive_staleness,
            min_stale_after=self.min_stale_after,
            multiplier=self.stale_multiplier,
            min_history=self.min_history,
        )

    @property
    def release_policy(self) -> ReleasePolicy:
        return ReleasePolicy(
            enabled=self.auto_release,
            grace=self.release_grace,
            protected=tuple(self.protected_keys),
            operations=frozenset(self.release_operations),
        )


@dataclass(frozen=True, kw_only=True)
class StreamSettings(FunctionSettings):
    """The stream monitor's environment (region, alert table and topic)."""


@dataclass(frozen=True, kw_only=True)
class AuditorSettings(BackendSettings):
    """The auditor function's environment: what to audit, and the peer regions to compare."""

    ENV: ClassVar[dict[str, str]] = {
        **BackendSettings.ENV,
        "peer_regions": "PEER_REGIONS",
        "lock_table_stream_arn": "LOCK_TABLE_STREAM_ARN",
    }

    peer_regions: list[str] = field(default_factory=list)
    lock_table_stream_arn: str | None = None

    def _problems(self) -> list[tuple[str, str]]:
        bad = [r for r in self.peer_regions if not _REGION.match(r)]
        return super()._problems() + ([("peer_regions", f"not region names: {bad} (e.g. us-east-1)")] if bad else [])


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
