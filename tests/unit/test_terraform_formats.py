"""Terraform's lock and digest formats, parsed exactly as Terraform 1.11 writes them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from tfjanitor.model import StalePolicy
from tfjanitor.terraform import (
    BadItem,
    DigestItem,
    LockItem,
    MalformedItem,
    classify_item,
    normalize_etag,
    parse_lock_info,
    parse_time,
    split_lock_id,
)

REAL_INFO = (
    '{"ID":"153e5ba8-8aee-8edc-4ea1-5e5ee05675eb","Operation":"OperationTypeApply","Info":"",'
    '"Who":"root@vm","Version":"1.11.4","Created":"2026-11-25T00:01:26.511799841Z",'
    '"Path":"tfstate-demo/dev/terraform.tfstate"}'
)


def lock_item(lock_id: str, info: str = REAL_INFO) -> dict:
    return {"LockID": {"S": lock_id}, "Info": {"S": info}}


def digest_item(lock_id: str, digest: str = "d41d8cd98f00b204e9800998ecf8427e") -> dict:
    return {"LockID": {"S": lock_id}, "Digest": {"S": digest}}


def test_real_lock_item_parses_with_nanosecond_created() -> None:
    item = classify_item(lock_item("tfstate-demo/dev/terraform.tfstate"))
    assert isinstance(item, LockItem)
    assert (item.bucket, item.key) == ("tfstate-demo", "dev/terraform.tfstate")
    assert item.lock.id == "153e5ba8-8aee-8edc-4ea1-5e5ee05675eb"
    assert item.lock.created == datetime(2026, 11, 25, 0, 1, 26, 511799, tzinfo=timezone.utc)
    assert item.lock.operation_class == "apply"
    assert item.lock.who == "root@vm"


@pytest.mark.parametrize(
    ("text", "micro"), [("2026-11-25T00:01:26Z", 0), ("2026-11-25T00:01:26.5Z", 500000), ("2026-11-25T00:01:26.123456789Z", 123456)]
)
def test_created_with_any_number_of_fraction_digits(text: str, micro: int) -> None:
    assert parse_time(text).microsecond == micro


def test_created_with_offset_is_converted_to_utc() -> None:
    assert parse_time("2026-11-25T09:01:26+09:00") == datetime(2026, 11, 25, 0, 1, 26, tzinfo=timezone.utc)


@pytest.mark.parametrize("bad", ["yesterday", "2026-11-25", "", "2026-13-45T00:00:00Z"])
def test_bad_created_is_malformed(bad: str) -> None:
    with pytest.raises(MalformedItem):
        parse_time(bad)


def test_workspace_digest_item() -> None:
    item = classify_item(digest_item("tfstate-demo/env:/staging/dev/terraform.tfstate-md5"))
    assert item == DigestItem("tfstate-demo", "env:/staging/dev/terraform.tfstate", "d41d8cd98f00b204e9800998ecf8427e")


def test_key_that_itself_ends_in_md5_is_told_apart_by_attribute() -> None:
    lock = classify_item(lock_item("b/states/app-md5"))
    digest = classify_item(digest_item("b/states/app-md5-md5"))
    assert isinstance(lock, LockItem) and lock.key == "states/app-md5"
    assert isinstance(digest, DigestItem) and digest.key == "states/app-md5"


def test_keys_with_spaces_unicode_and_slashes() -> None:
    item = classify_item(digest_item("b/팀 상태/a b/c.tfstate-md5"))
    assert isinstance(item, DigestItem)
    assert item.key == "팀 상태/a b/c.tfstate"
    assert split_lock_id("b/x/y/z") == ("b", "x/y/z")


@pytest.mark.parametrize(
    ("item", "foreign", "reason"),
    [
        ({"LockID": {"S": "b/k"}, "Other": {"S": "x"}}, True, "neither"),
        (lock_item("b/k", "{not json"), False, "not JSON"),
        (lock_item("b/k", "[1,2]"), False, "not a JSON object"),
        (lock_item("b/k", json.dumps({"Operation": "OperationTypeApply"})), False, "no ID"),
        (lock_item("b/k", json.dumps({"ID": "x", "Created": 5})), False, "Created"),
        ({"LockID": {"S": "b/k"}, "Info": {"N": "5"}}, False, "not a string"),
        ({"LockID": {"N": "5"}, "Info": {"S": REAL_INFO}}, False, "not a string"),
        ({"Info": {"S": REAL_INFO}}, False, "no LockID"),
        (digest_item("b/k-md5", "NOT-HEX"), False, "hex MD5"),
        (digest_item("b/k", "d41d8cd98f00b204e9800998ecf8427e"), False, "-md5"),
        (lock_item("no-slash"), False, "<bucket>/<key>"),
        ({"LockID": {"S": "b/k"}, "Info": {"S": REAL_INFO}, "Digest": {"S": "x"}}, False, "both"),
    ],
)
def test_garbage_items_are_reported_not_raised(item: dict, foreign: bool, reason: str) -> None:
    result = classify_item(item)
    assert isinstance(result, BadItem)
    assert result.foreign is foreign
    assert reason in result.reason


def test_lock_ids_are_not_validated_as_uuid4() -> None:
    info = parse_lock_info(REAL_INFO.replace("153e5ba8-8aee-8edc", "153e5ba8-8aee-0edc"))
    assert info.id.startswith("153e5ba8")


@pytest.mark.parametrize(
    ("operation", "klass", "read_only"),
    [
        ("OperationTypePlan", "plan", True),
        ("migration source state", "other", True),  # init -migrate-state copies the source, never writes it
        ("OperationTypeApply", "apply", False),
        # Everything else may write state: the apply threshold and the apply release class.
        ("OperationTypeRefresh", "apply", False),  # terraform refresh persists the refreshed state
        ("OperationTypeInvalid", "apply", False),  # import (or console: indistinguishable)
        ("init", "apply", False),
        ("workspace-new", "apply", False),
        ("state-mv", "apply", False),
        ("state-push", "apply", False),
        ("state-rm", "apply", False),
        ("state-replace-provider", "apply", False),
        ("taint", "apply", False),
        ("untaint", "apply", False),
        ("migration destination state", "apply", False),
        ("backend from plan", "apply", False),
        ("OperationTypeSomethingNew", "apply", False),  # unknown: assume it writes
        ("", "apply", False),
    ],
)
def test_operation_classes(operation: str, klass: str, read_only: bool) -> None:
    info = parse_lock_info(REAL_INFO.replace("OperationTypeApply", operation))
    assert info.operation_class == klass
    assert info.read_only is read_only


def test_a_refresh_lock_is_stale_only_after_the_apply_threshold() -> None:
    """A refresh writes state: judging it by the short read-only threshold would release a live writer."""
    info = parse_lock_info(REAL_INFO.replace("OperationTypeApply", "OperationTypeRefresh"))
    policy = StalePolicy(default=timedelta(hours=1), read_only=timedelta(minutes=15))
    assert policy.threshold(info.read_only) == timedelta(hours=1)


def test_etag_normalization() -> None:
    assert normalize_etag('"D41D8CD98F00B204E9800998ECF8427E"') == "d41d8cd98f00b204e9800998ecf8427e"
    assert normalize_etag('"abc-3"') == "abc-3"
    assert normalize_etag(None) == ""


# -- Terraform's own rules (issue 18.6) -----------------------------------------------------------------


@pytest.mark.parametrize("stored", ["D41D8CD98F00B204E9800998ECF8427E", "d41D8cd98F00b204e9800998ecf8427E"])
def test_upper_and_mixed_case_digests_are_digests(stored: str) -> None:
    """Terraform reads Digest with Go's hex.DecodeString, which takes any case (PowerShell's Get-FileHash prints
    uppercase): compared in lowercase, kept exactly as stored for the writes conditional on it."""
    item = classify_item({"LockID": {"S": "b/k-md5"}, "Digest": {"S": stored}})
    assert isinstance(item, DigestItem)
    assert item.digest == "d41d8cd98f00b204e9800998ecf8427e" and item.stored == stored


@pytest.mark.parametrize(
    "bad",
    [
        "d41d8cd98f00b204e9800998ecf8427",
        "d41d8cd98f00b204e9800998ecf8427e\n",
        "g41d8cd98f00b204e9800998ecf8427e",
        " d41d8cd98f00b204e9800998ecf8427e",
        "",
    ],
)
def test_a_digest_hex_decode_string_refuses_is_malformed(bad: str) -> None:
    item = classify_item({"LockID": {"S": "b/k-md5"}, "Digest": {"S": bad}})
    assert isinstance(item, BadItem) and "Terraform skips its check" in item.reason


def test_an_empty_state_object_has_no_checksum() -> None:
    """A 0-byte object is no state to Terraform: no digest matches it, not even the MD5 of nothing."""
    from tfjanitor.terraform import state_checksum

    assert state_checksum("d41d8cd98f00b204e9800998ecf8427e", 0) == ""
    assert state_checksum("0cc175b9c0f1b6a831c399e269772661", 1) == "0cc175b9c0f1b6a831c399e269772661"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("env:/staging/dev/terraform.tfstate", ("staging", "dev/terraform.tfstate")),
        ("env:/prod-eu_1.x/a/b.tfstate", ("prod-eu_1.x", "a/b.tfstate")),
        ("dev/terraform.tfstate", None),
        ("env:/staging", None),  # no key after the workspace
        ("env:/bad name/k.tfstate", None),  # not a name Terraform accepts
        ("workspaces/staging/k.tfstate", None),  # a prefix of its own: not told from a path
    ],
)
def test_workspace_of_a_state_key(key: str, expected: tuple[str, str] | None) -> None:
    from tfjanitor.terraform import workspace_of

    assert workspace_of(key) == expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.5.7", ("terraform",)),
        ("0.12.31", ("terraform",)),
        ("1.11.4", ("terraform", "tofu")),
        ("1.8.0", ("terraform", "tofu")),
        ("", ("terraform", "tofu")),
        ("v1.3.0", ("terraform",)),
    ],
)
def test_which_tool_can_have_written_a_lock(version: str, expected: tuple[str, ...]) -> None:
    from tfjanitor.terraform import writers

    assert writers(version) == expected
