"""The finding kinds' catalog: one entry per kind with all its words, the metric names the dashboard and
alarms use, the generated docs page of kinds kept fresh, and each kind's facts in no other module."""

from __future__ import annotations

import importlib.util
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import pytest

from tests.unit.test_emails import every_kind
from tfjanitor import catalog
from tfjanitor.alerts import chat, events
from tfjanitor.alerts.emails import Origin, render
from tfjanitor.alerts.lifecycle import Notice
from tfjanitor.catalog import CATALOG, ENTRIES, Check, Kind, Severity, found_by
from tfjanitor.cli.output import to_table
from tfjanitor.model import ScanResult
from tfjanitor.runtime.telemetry import METRIC_PLAN

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "tfjanitor" / "tfjanitor"
TEXTS = ("means", "why", "knows", "fix", "intended")
PAGE_LABELS = ["Means", "Why it matters", "How it knows", "Fix", "If intended"]

# The metric that counts each kind: names the template's dashboard and alarms read (a contract).
METRICS = {
    "stale_lock": "StaleLocks",
    "stale_lockfile": "StaleLockfiles",
    "digest_drift": "DigestDrift",
    "orphan_digest": "OrphanDigests",
    "cross_region_bucket": "CrossRegionBuckets",
    "malformed_item": "MalformedItems",
    "interrupted_write": "InterruptedWrites",
    "split_brain_lock": "SplitBrainLocks",
    "replicated_lock_table": "LockTableProblems",
    "lock_table_schema": "LockTableProblems",
    "table_pitr_disabled": "TablePostureFindings",
    "table_deletion_protection_disabled": "TablePostureFindings",
    "table_stream_disabled": "TablePostureFindings",
    "bucket_versioning_disabled": "BucketPostureFindings",
    "bucket_public_access_open": "BucketPostureFindings",
    "bucket_tls_not_enforced": "BucketPostureFindings",
    "lockfile_versions_accumulating": "BucketPostureFindings",
    "lockfile_migration": "LeftoverDigests",
}


def docs_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs", ROOT / "scripts" / "docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_kind_has_one_entry_in_the_order_of_its_enum() -> None:
    assert [e.kind for e in CATALOG] == list(Kind)
    assert set(ENTRIES) == {k.value for k in Kind}
    assert all(catalog.entry(k) is ENTRIES[k.value] and catalog.entry(k.value) is ENTRIES[k.value] for k in Kind)
    assert catalog.entry("a_kind_of_a_later_version") is None and catalog.title("a_kind_of_a_later_version") == (
        "a_kind_of_a_later_version"
    )


@pytest.mark.parametrize("entry", CATALOG, ids=lambda e: e.kind.value)
def test_every_kind_has_a_title_and_short_texts_saying_what_why_how_fix_and_if_intended(entry: catalog.Entry) -> None:
    assert entry.title and len(entry.title) <= 40 and entry.title[0].isupper()  # a subject keeps room for the state
    for name in TEXTS:
        text = getattr(entry, name)
        assert text.strip() == text and text.endswith("."), (entry.kind, name)
        assert "\n" not in text and len(text) <= 500, f"{entry.kind.value}.{name} is longer than a short paragraph"
    assert sum(len(getattr(entry, name)) for name in TEXTS) <= 1600, f"{entry.kind.value} is longer than a short section"
    assert entry.anchor == entry.kind.value


@pytest.mark.parametrize("kind", sorted(k.value for k in Kind))
def test_each_builders_finding_has_its_kinds_default_severity(kind: str) -> None:
    assert every_kind()[kind].severity is ENTRIES[kind].severity


def test_info_kinds_say_they_are_never_emailed() -> None:
    for entry in CATALOG:
        if entry.severity is Severity.INFO and entry.kind is not Kind.MALFORMED_ITEM:
            assert "never emailed" in entry.intended, entry.kind


def test_the_sweep_and_the_audit_find_every_kind_between_them_and_none_twice() -> None:
    assert found_by(Check.SWEEP) | found_by(Check.AUDIT) == set(Kind)
    assert not found_by(Check.SWEEP) & found_by(Check.AUDIT)


def test_the_metrics_that_count_kinds_keep_their_names_and_are_in_the_metric_plan() -> None:
    assert {e.kind.value: e.metric.name for e in CATALOG if e.metric} == METRICS
    plan = {m.name: m for m in METRIC_PLAN}
    for check in Check:
        for metric in catalog.metrics(check):
            assert plan[metric.name].when == "nonzero" and plan[metric.name].unit.value == "Count"
            # A metric counts the kinds of one check: the function that publishes it sees them whole.
            assert {e.check for e in CATALOG if e.metric and e.metric.name == metric.name} == {check}
    [leftover] = [e.metric for e in CATALOG if e.metric and e.metric.per]
    assert (leftover.name, leftover.per) == ("LeftoverDigests", "leftover_digests")


def test_the_docs_page_of_kinds_is_generated_from_the_catalog_and_fresh() -> None:
    docs = docs_script()
    assert docs.stale() == [], "docs/kinds.md is stale: run make docs"
    assert (ROOT / "docs" / "kinds.md").read_text() == catalog.markdown()


@pytest.mark.parametrize("entry", CATALOG, ids=lambda e: e.kind.value)
def test_the_page_has_a_section_per_kind_saying_what_how_fix_and_if_intended(entry: catalog.Entry) -> None:
    page = catalog.markdown()
    match = re.search(rf"^## `{entry.kind.value}`\n(.*?)(?=^#|\Z)", page, re.M | re.S)
    assert match, f"docs/kinds.md has no section ## `{entry.kind.value}`"
    body = match[1]
    assert re.findall(r"^- \*\*(.+?):\*\*", body, re.M) == PAGE_LABELS
    assert f"**{entry.title}**" in body and f"severity `{entry.severity.value}`" in body
    assert f"found by the {entry.check.value}" in body and (entry.metric is None or f"`{entry.metric.name}`" in body)
    assert catalog.docs_link(entry.kind) == f"{catalog.DOCS_URL}kinds/#{entry.kind.value}"


@pytest.mark.parametrize("kind", sorted(k.value for k in Kind))
def test_every_reader_shows_the_catalogs_title_and_docs_link(kind: str) -> None:
    """The email's subject, the chat card's title, the event's ``about`` and the CLI's ``about:`` line."""
    finding, at = every_kind()[kind], datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
    entry, own = ENTRIES[kind], Origin("tfjanitor", "ap-northeast-2", docs_url="https://docs.example.com/tfjanitor/")
    notice = Notice("opened", finding.to_dict(), "fp", at, at - timedelta(hours=1))
    assert f" {entry.title}: " in render(notice, own).subject
    assert f" {entry.title}: " in json.loads(chat.card_json(notice, own))["content"]["title"]
    about = json.loads(events.entry(notice, own)["Detail"])["about"]
    assert about == {"title": entry.title, "docs": f"https://docs.example.com/tfjanitor/kinds/#{kind}"}
    result = ScanResult(region="ap-northeast-2", tables=[], buckets=[], read_at=at)
    result.findings = [finding]
    assert f"    about: {entry.title}, {catalog.DOCS_URL}kinds/#{kind}" in to_table(result).splitlines()


def test_a_kinds_words_are_written_in_the_catalog_only() -> None:
    """The texts moved here: no other module of the package carries them (a kind is described once)."""
    sources = {p: p.read_text() for p in PACKAGE.rglob("*.py") if p.name != "catalog.py"}
    for entry in CATALOG:
        for name in ("why", "means"):
            words = getattr(entry, name)[:60]
            assert not [p.name for p, text in sources.items() if words in text], (entry.kind, name)
