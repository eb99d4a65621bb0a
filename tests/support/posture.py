"""A well-configured backend on the emulator, as the audit recommends it (versioned bucket with a
lifecycle rule for old versions, public access blocked, PITR and deletion protection on the table).

The TLS-only bucket policy is separate (:func:`enforce_tls`): the emulator speaks plain HTTP, and
moto applies a Deny on aws:SecureTransport = false to every object request (HEAD, GET, PUT, DELETE)
whatever the transport, while bucket-level reads (GetBucketPolicy, ListObjectsV2,
ListObjectVersions, GetBucketLocation, ...) still work. So a test attaches it only after its last
object write, when the scan that follows needs no object read (every digest proven by ETag).
"""

from __future__ import annotations

import json
from typing import Any

import boto3

LIFECYCLE_RULE = {
    "ID": "expire-old-versions",
    "Status": "Enabled",
    "Filter": {"Prefix": ""},
    "NoncurrentVersionExpiration": {"NoncurrentDays": 30, "NewerNoncurrentVersions": 20},
    "Expiration": {"ExpiredObjectDeleteMarker": True},
}
PUBLIC_ACCESS_BLOCKED = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}


def _client(service: str, url: str, region: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]  # the stubs overload boto3.client on literal service names, not str
        service, region_name=region, endpoint_url=url, aws_access_key_id="test", aws_secret_access_key="test"
    )


def harden_bucket(url: str, bucket: str, region: str) -> None:
    s3 = _client("s3", url, region)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [LIFECYCLE_RULE]})
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCKED)


def harden_table(url: str, table: str, region: str) -> None:
    ddb = _client("dynamodb", url, region)
    ddb.update_continuous_backups(TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    ddb.update_table(TableName=table, DeletionProtectionEnabled=True)


def tls_only_policy(bucket: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


def enforce_tls(url: str, bucket: str, region: str) -> None:
    """Attach the TLS-only policy. After this, moto refuses the bucket's object requests (see above)."""
    _client("s3", url, region).put_bucket_policy(Bucket=bucket, Policy=tls_only_policy(bucket))
