"""Drift forensics: in a versioned bucket, which version of a drifted state is Terraform's last write.

The stored digest is the MD5 of the last state Terraform wrote. One ListObjectVersions call (the key
as prefix) lists the object's history; walking it newest first, a version whose ETag equals the digest
is that write (an ETag equal to an MD5 proves the content). A version whose ETag is a plain MD5, in a
bucket whose current object showed its ETag is its MD5, proves a mismatch without a download; any
other version (SSE-KMS, multipart) is hashed, at most :data:`MAX_HASHED` of them. The version written
right after the match is when the state was overwritten outside Terraform.
"""

from __future__ import annotations

import re

from tfjanitor.aws.backend import Bucket
from tfjanitor.aws.session import AwsError
from tfjanitor.model import DriftHistory, ObjectVersion

MAX_HASHED = 10  # versions downloaded per drifted state at most
_PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")


def drift_history(bucket: Bucket, key: str, stored: str, current_etag: str, current_md5: str) -> DriftHistory:
    """Find the version whose content is the stored digest (see the module docstring)."""
    try:
        versions = bucket.versions(key)
    except AwsError as exc:
        return DriftHistory(False, None, None, current_etag, note=f"its versions could not be listed ({exc.code})")
    versioned = len(versions) > 1 or any(v.version_id != "null" for v in versions)
    etags_are_md5 = current_etag == current_md5  # this bucket's ETags are MD5s (no KMS, single part)
    hashed = size = 0
    newer: ObjectVersion | None = None
    for version in versions:
        if version.is_latest or version.delete_marker:
            newer = version
            continue
        match = version.etag == stored
        if not match and not (etags_are_md5 and _PLAIN_MD5.match(version.etag)):
            if hashed >= MAX_HASHED:
                return DriftHistory(
                    versioned, None, None, current_etag, hashed, size, f"more than {MAX_HASHED} versions would have to be downloaded"
                )
            try:
                actual, read, _ = bucket.md5(key, version.version_id)
            except AwsError as exc:
                return DriftHistory(
                    versioned, None, None, current_etag, hashed, size, f"version {version.version_id} could not be read ({exc.code})"
                )
            hashed, size = hashed + 1, size + read
            match = actual == stored
        if match:
            return DriftHistory(versioned, version, newer.last_modified if newer else None, current_etag, hashed, size)
        newer = version
    return DriftHistory(versioned, None, None, current_etag, hashed, size)
