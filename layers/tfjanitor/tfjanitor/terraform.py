"""The formats Terraform's S3 backend writes, parsed exactly (no AWS here).

See shared/terraform-backend.md: lock items carry ``Info`` (LockInfo JSON),
digest items carry ``Digest`` (hex MD5 of the state bytes) under
``<bucket>/<key>-md5``; ``.tflock`` objects carry the same LockInfo JSON.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from tfjanitor.untrusted import cap

LOCKFILE_SUFFIX = ".tflock"
ATTRIBUTES_LIMIT = 2048  # characters (as JSON) of a foreign item's attributes kept, to delete exactly it
DIGEST_SUFFIX = "-md5"

# Operations known to only read the state they lock: plan, and the source of a backend migration
# (`terraform init -migrate-state` copies it, never writes it). Every other operation, known or not,
# may write state and is judged like an apply: OperationTypeRefresh persists the refreshed state,
# OperationTypeInvalid is import (or console), and the literal ones (init, workspace-new, state-mv,
# state-push, state-rm, state-replace-provider, taint, untaint, migration destination state,
# backend from plan, ...) write, replace or delete state.
READ_ONLY_OPERATIONS = frozenset({"OperationTypePlan", "migration source state"})
PLAN_OPERATIONS = frozenset({"OperationTypePlan"})

_HEX_MD5 = re.compile(r"[0-9a-fA-F]{32}")  # (fullmatch) what hex.DecodeString reads as 16 bytes: an MD5
_RFC3339 = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<tz>[Zz]|[+-]\d{2}:\d{2})$"
)


class MalformedItem(ValueError):
    """A lock-table item or lock object Terraform could not have written."""


def raw_sha256(raw: str) -> str:
    """Identity of a lock's exact stored value: findings keep this, and only a capped copy of the value."""
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class LockInfo:
    """Terraform's LockInfo, as stored in ``Info`` or a ``.tflock`` body.

    Anyone who can run Terraform can write a lock item, so the text fields are capped
    (:func:`tfjanitor.untrusted.cap`, about 1 KB each) as they are parsed: no finding, email or
    findings-table item grows with them. ``raw`` is the whole value, for the conditional release
    and its hash; it is never stored or shown whole.
    """

    id: str
    operation: str
    who: str
    version: str
    created: datetime
    path: str
    info: str
    raw: str

    @property
    def operation_class(self) -> str:
        """A fixed small set, safe as a metric dimension: ``plan``; ``other`` (another operation known
        to only read state); ``apply`` (everything that may write state, unknown operations included)."""
        if self.operation in PLAN_OPERATIONS:
            return "plan"
        if self.operation in READ_ONLY_OPERATIONS:
            return "other"
        return "apply"

    @property
    def read_only(self) -> bool:
        return self.operation in READ_ONLY_OPERATIONS

    def age_seconds(self, now: datetime) -> float:
        return max(0.0, (now - self.created).total_seconds())

    def summary(self) -> dict[str, Any]:
        """What a finding may show about a lock: never anything from the state."""
        return {
            "id": self.id,
            "operation": self.operation,
            "who": self.who,
            "version": self.version,
            "created": format_time(self.created),
            "path": self.path,
        }


@dataclass(frozen=True, slots=True)
class LockItem:
    bucket: str
    key: str
    lock: LockInfo

    @property
    def lock_id_key(self) -> str:
        return f"{self.bucket}/{self.key}"


@dataclass(frozen=True, slots=True)
class DigestItem:
    """A state's digest item. Terraform reads ``Digest`` with Go's ``hex.DecodeString``: upper- and mixed-case hex
    are valid digests. ``digest`` is the MD5 in lowercase, for every comparison; ``stored`` the value exactly as
    stored, for every write conditional on it."""

    bucket: str
    key: str
    digest: str
    stored: str = ""

    def __post_init__(self) -> None:
        if not self.stored:
            object.__setattr__(self, "stored", self.digest)
        object.__setattr__(self, "digest", self.digest.lower())


@dataclass(frozen=True)
class BadItem:
    """A table item that is neither a valid lock nor a valid digest."""

    lock_id: str | None
    reason: str
    foreign: bool  # True when it has neither Terraform attribute (another workload's item)
    # Its Info / Digest exactly as read, when they are strings: what a conditional delete compares.
    values: dict[str, str] | None = None
    # An item with neither: its other attributes as read (low-level, LockID left out), for a delete conditional on
    # exactly them; None when they are too large to carry in a command.
    attributes: dict[str, Any] | None = None


def parse_time(value: str) -> datetime:
    """RFC 3339 with 0..9 fractional digits (Terraform writes nanoseconds)."""
    match = _RFC3339.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise MalformedItem(f"Created is not an RFC 3339 time: {cap(str(value))!r}")
    frac = (match["frac"] or "")[:6].ljust(6, "0")
    tz = match["tz"]
    tz = "+00:00" if tz in ("Z", "z") else tz
    base = match["base"].replace("t", "T").replace(" ", "T")
    try:
        return datetime.fromisoformat(f"{base}.{frac}{tz}").astimezone(timezone.utc)
    except (ValueError, OverflowError) as exc:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise MalformedItem(f"Created is not a valid time: {cap(str(value))!r}") from exc


def format_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(value: str) -> str:
    """As Go's encoding/json reads it: a lone UTF-16 surrogate escape (``\\ud800``) becomes U+FFFD, so every
    field can be encoded as UTF-8 (emails, SNS, logs) like any other text."""
    return _LONE_SURROGATE.sub("\ufffd", value)


def parse_lock_info(raw: str) -> LockInfo:
    try:
        doc = json.loads(raw)
    except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested past the limit
        raise MalformedItem(f"lock info is not JSON ({exc.__class__.__name__})") from exc
    if not isinstance(doc, dict):
        raise MalformedItem("lock info is not a JSON object")
    lock_id = doc.get("ID")
    if not isinstance(lock_id, str) or not lock_id:
        raise MalformedItem("lock info has no ID")
    for field in ("Operation", "Who", "Version", "Path", "Info"):
        if field in doc and not isinstance(doc[field], str):
            raise MalformedItem(f"lock info field {field} is not a string")
    created = doc.get("Created")
    if not isinstance(created, str):
        raise MalformedItem("lock info has no Created time")
    return LockInfo(
        id=cap(_text(lock_id)),
        operation=cap(_text(doc.get("Operation", ""))),
        who=cap(_text(doc.get("Who", ""))),
        version=cap(_text(doc.get("Version", ""))),
        created=parse_time(created),
        path=cap(_text(doc.get("Path", ""))),
        info=cap(_text(doc.get("Info", ""))),
        raw=raw,
    )


def split_lock_id(lock_id: str) -> tuple[str, str]:
    """``<bucket>/<key>``: bucket names cannot contain '/', keys can."""
    bucket, sep, key = lock_id.partition("/")
    if not sep or not bucket or not key:
        raise MalformedItem(f"LockID is not <bucket>/<key>: {lock_id!r}")
    return sys.intern(bucket), key  # one string per bucket, not one per item of a large table


def _string_attr(item: dict[str, Any], name: str) -> str | None:
    """The S value of a low-level DynamoDB attribute; MalformedItem if another type."""
    if name not in item:
        return None
    value = item[name]
    if not isinstance(value, dict) or "S" not in value or not isinstance(value["S"], str):
        kind = next(iter(value), "?") if isinstance(value, dict) else type(value).__name__
        raise MalformedItem(f"{name} is of type {kind}, not a string (S)")
    if _LONE_SURROGATE.search(value["S"]):  # DynamoDB stores UTF-8: only a forged event carries these
        raise MalformedItem(f"{name} is not valid Unicode text")
    return value["S"]


def classify_item(item: dict[str, Any]) -> LockItem | DigestItem | BadItem:
    """Classify one low-level (typed) DynamoDB item from the lock table. Never raises: anything Terraform
    could not have written is a :class:`BadItem`."""
    lock_id: str | None = None
    if not isinstance(item, dict):
        return BadItem(None, f"item is a {type(item).__name__}, not a map of attributes", False)
    try:
        lock_id = _string_attr(item, "LockID")
        if lock_id is None:
            raise MalformedItem("item has no LockID")
        has_info, has_digest = "Info" in item, "Digest" in item
        if has_info and has_digest:
            raise MalformedItem("item has both Info and Digest")
        if not has_info and not has_digest:
            others = {name: value for name, value in item.items() if name != "LockID"}
            small = len(json.dumps(others, default=str)) <= ATTRIBUTES_LIMIT
            return BadItem(
                lock_id, "item has neither Info (lock) nor Digest (state digest)", True, attributes=others if small else None
            )
        bucket, key = split_lock_id(lock_id)
        if has_digest:
            digest = _string_attr(item, "Digest") or ""
            if not key.endswith(DIGEST_SUFFIX) or len(key) == len(DIGEST_SUFFIX):
                raise MalformedItem("digest item's LockID does not end in -md5")
            if not _HEX_MD5.fullmatch(digest):
                raise MalformedItem("Digest is not a hex MD5 (Terraform skips its check)")
            return DigestItem(bucket, key[: -len(DIGEST_SUFFIX)], digest.lower(), digest)
        info = parse_lock_info(_string_attr(item, "Info") or "")
        return LockItem(bucket, key, info)
    except MalformedItem as exc:
        return BadItem(lock_id, str(exc), False, _string_values(item, ("Info", "Digest")))


def _string_values(item: dict[str, Any], names: tuple[str, ...]) -> dict[str, str] | None:
    try:
        values = {name: value for name in names if (value := _string_attr(item, name)) is not None}
    except MalformedItem:
        return None
    return values or None


def state_checksum(md5: str, size: int) -> str:
    """The checksum Terraform calculates for a state object: its MD5, except that a 0-byte object is no state at all
    to Terraform (its calculated checksum is empty, so no stored digest matches it: Terraform's
    ``TestRemoteClient_stateChecksum``)."""
    return md5 if size > 0 else ""


DEFAULT_WORKSPACE_KEY_PREFIX = "env:"
_WORKSPACE_NAME = re.compile(r"[A-Za-z0-9._~-]+")  # Terraform: a name is valid iff url.PathEscape leaves it as it is


def workspace_of(key: str) -> tuple[str, str] | None:
    """(workspace, the backend's configured ``key``) when ``key`` is a workspace's state under Terraform's default
    ``workspace_key_prefix`` (``env:/<workspace>/<key>``); None for the default workspace, or a prefix of its own
    (which the key alone cannot tell from a path)."""
    prefix, _, rest = key.partition("/")
    workspace, _, configured = rest.partition("/")
    if prefix == DEFAULT_WORKSPACE_KEY_PREFIX and configured and _WORKSPACE_NAME.fullmatch(workspace):
        return workspace, configured
    return None


_VERSION = re.compile(r"v?(\d+)\.(\d+)")


def writers(version: str) -> tuple[str, ...]:
    """The tools that can have written a lock of this ``Version``: LockInfo does not say which. OpenTofu's first
    release was 1.6.0, so an older version is Terraform's; from 1.6 on both tools use the same numbers."""
    match = _VERSION.match(version.strip())
    if match and (int(match[1]), int(match[2])) < (1, 6):
        return ("terraform",)
    return ("terraform", "tofu")


def normalize_etag(etag: str | None) -> str:
    return (etag or "").strip().strip('"').lower()
