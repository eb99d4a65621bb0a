"""Parse only what a sweep reads from its two bulk calls, and parse it fast: the CPU Lambda gives is small.

Under 128 MB a function gets about 0.07 of a CPU (1,769 MB is one vCPU). Profiled at 10,000 states, botocore's
parsing of the ``ListObjectsV2`` pages took two thirds of a sweep's CPU, most of it ``dateutil`` reading each
object's ``LastModified``, and its walk of every ``Scan`` item's attributes most of the rest. So for the calls
the sweep makes in bulk (:class:`tfjanitor.aws.backend.Bucket` listings, :class:`LockTable` scans), and only
while they are made (a thread-local flag: any other call of the same client is parsed as ever), a
``before-parse`` hook takes the entries out of the response before botocore parses it:

- a listing's ``Contents`` become (key, ETag, size, LastModified) tuples, read with the C XML parser, keys URL
  decoded as botocore would (it asks for ``EncodingType=url``), times read with ``datetime.fromisoformat``;
- a scan's ``Items`` are the service's own JSON (low-level typed values, as botocore would give them, except a
  binary value stays its base64 text: nothing a sweep judges is binary).

botocore then parses what is left (continuation token, ``IsTruncated``, ``LastEvaluatedKey``) and adds the
entries under :data:`ENTRIES` (``before-parse``'s ``customized_response_dict``, meant for this). Error responses
are left to botocore.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote_plus
from xml.etree import ElementTree

ENTRIES = "TfjanitorEntries"  # where the hooks put what they took out of the response
_active = threading.local()


@contextmanager
def lean() -> Iterator[None]:
    """Parse this thread's bulk calls the lean way while inside."""
    _active.on = True
    try:
        yield
    finally:
        _active.on = False


def _on(response_dict: dict[str, Any]) -> bool:
    return bool(getattr(_active, "on", False)) and response_dict.get("status_code") == 200


def timestamp(text: str) -> datetime:
    """An ISO 8601 time as S3 writes it in listings (``2026-11-25T00:01:26.000Z``), in UTC."""
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def take_listing(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """``before-parse.s3.ListObjectsV2``: the page's objects as (key, ETag, size, LastModified text) tuples."""
    if not _on(response_dict):
        return
    root = ElementTree.fromstring(response_dict["body"])
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    url = root.findtext(f"{ns}EncodingType") == "url"
    entries = []
    for node in root.findall(f"{ns}Contents"):
        key = node.findtext(f"{ns}Key") or ""
        entries.append(
            (
                unquote_plus(key) if url else key,
                node.findtext(f"{ns}ETag") or "",
                int(node.findtext(f"{ns}Size") or 0),
                node.findtext(f"{ns}LastModified") or "",
            )
        )
        root.remove(node)
    customized_response_dict[ENTRIES] = entries
    response_dict["body"] = ElementTree.tostring(root)


def take_items(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """``before-parse.dynamodb.Scan``: the page's items as the service sent them (typed attribute values)."""
    if not _on(response_dict):
        return
    doc = json.loads(response_dict["body"])
    customized_response_dict[ENTRIES] = doc.pop("Items", [])
    response_dict["body"] = json.dumps(doc).encode()


def register(client: Any, service: str) -> None:
    """Hook a client's bulk calls (idempotent: one registration per client)."""
    if service == "s3":
        client.meta.events.register("before-parse.s3.ListObjectsV2", take_listing, unique_id="tfjanitor-lean-list")
    elif service == "dynamodb":
        client.meta.events.register("before-parse.dynamodb.Scan", take_items, unique_id="tfjanitor-lean-scan")
