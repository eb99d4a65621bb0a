from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.support.cfn import load_template
from tfjanitor.catalog import DOCS_URL
from tfjanitor.model import StalePolicy
from tfjanitor.runtime.settings import DOCS_URL_PATTERN, SettingsError, SweeperSettings, parse_duration, split_list


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86400),
        ("1.5h", 5400),
        ("45", 45),
        ("1h30m", 5400),
        ("2m30s", 150),
        ("1d12h", 129600),
        ("1h0m5s", 3605),
    ],  # compound, as Go and Terraform write them
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "2x", "h", "-5m", "0s", "1 week", "1h30", "h30m", "1h 30m", "0h0m"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_read_only_threshold_never_exceeds_default() -> None:
    policy = StalePolicy(default=timedelta(minutes=5), read_only=timedelta(minutes=15))
    assert policy.threshold(read_only=True) == timedelta(minutes=5)
    assert StalePolicy().threshold(read_only=True) == timedelta(minutes=15)
    assert StalePolicy().threshold(read_only=False) == timedelta(hours=1)


def test_settings_from_template_environment() -> None:
    settings = SweeperSettings.from_env(
        {"AWS_REGION": "ap-northeast-2", "LOCK_TABLES": "a, b,", "EXTRA_BUCKETS": "", "STALE_AFTER": "2h"}
    )
    assert settings.lock_tables == ["a", "b"]
    assert settings.extra_buckets == []
    assert settings.policy == StalePolicy(default=timedelta(hours=2), read_only=timedelta(minutes=15))


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"AWS_REGION": "r"}, "LOCK_TABLES"),
        ({"AWS_REGION": "r", "LOCK_TABLES": " , "}, "LOCK_TABLES"),
        ({"AWS_REGION": "r", "LOCK_TABLES": "t", "STALE_AFTER": "soon"}, "STALE_AFTER"),
        ({"LOCK_TABLES": "t"}, "AWS_REGION"),
        ({"AWS_REGION": "r", "LOCK_TABLES": "t", "ACCOUNT_ID": "arn:aws:iam::123456789012:root"}, "ACCOUNT_ID"),
        ({"AWS_REGION": "r", "LOCK_TABLES": "t", "DOCS_URL": "http://docs.example.com/"}, "DOCS_URL"),
        ({"AWS_REGION": "r", "LOCK_TABLES": "t", "DOCS_URL": "https://docs.example.com/tfjanitor"}, "DOCS_URL"),
    ],
)
def test_bad_environment_names_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        SweeperSettings.from_env(env)


def test_split_list() -> None:
    assert split_list("a,,b , c") == ["a", "b", "c"]
    assert split_list(None) == []


def test_the_docs_url_is_the_templates_default_unless_set_and_the_same_pattern_checks_both() -> None:
    template = load_template()["Parameters"]["DocsUrl"]
    assert SweeperSettings.from_env({"AWS_REGION": "r", "LOCK_TABLES": "t"}).docs_url == DOCS_URL == template["Default"]
    assert template["AllowedPattern"] == DOCS_URL_PATTERN
    own = "https://docs.example.com:8443/platform/tfjanitor-v2/"
    assert SweeperSettings.from_env({"AWS_REGION": "r", "LOCK_TABLES": "t", "DOCS_URL": own}).docs_url == own
    for bad in ("https://docs.example.com/?q=/", "https://docs.example.com/#x/", "https:///", "https://a b/"):
        assert not re.fullmatch(DOCS_URL_PATTERN, bad), bad
