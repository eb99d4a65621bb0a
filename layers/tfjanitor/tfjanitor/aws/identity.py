"""Who and where: the account behind the credentials, assumed roles, enabled regions, lock tables.

One ``GetCallerIdentity`` per credential set; one ``DescribeRegions`` for ``--all-regions``; one
``ListTables`` (paginated) plus one ``DescribeTable`` per table for ``--discover-tables``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3

from tfjanitor.aws.session import CALL_ERRORS, AwsError, AwsSession, _translate

SESSION_NAME = "tfjanitor"


def assume_role(
    session: boto3.session.Session, role_arn: str, external_id: str | None, region: str, endpoint_url: str | None
) -> boto3.session.Session:
    """A session acting as ``role_arn`` (the read-only role of ``roles/reader.yaml``)."""
    kwargs: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": SESSION_NAME}
    if external_id:
        kwargs["ExternalId"] = external_id
    try:
        creds = session.client("sts", region_name=region, endpoint_url=endpoint_url).assume_role(**kwargs)["Credentials"]
    except CALL_ERRORS as exc:
        raise _translate("AssumeRole", exc) from exc
    return boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=region,
    )


def account_id(aws: AwsSession, region: str) -> str:
    try:
        return str(aws.client("sts", region).get_caller_identity()["Account"])
    except CALL_ERRORS as exc:
        raise _translate("GetCallerIdentity", exc) from exc


def enabled_regions(aws: AwsSession, region: str) -> list[str]:
    """Every region enabled in the account (opt-in regions only once opted in)."""
    try:
        resp = aws.client("ec2", region).describe_regions(AllRegions=False)
    except CALL_ERRORS as exc:
        raise _translate("DescribeRegions", exc) from exc
    return sorted(r["RegionName"] for r in resp.get("Regions", []))


def is_lock_table_schema(description: Mapping[str, Any]) -> bool:
    """Terraform's lock table key: ``LockID``, HASH, String, and nothing else."""
    keys = description.get("KeySchema") or []
    types = {a.get("AttributeName"): a.get("AttributeType") for a in description.get("AttributeDefinitions") or []}
    return keys == [{"AttributeName": "LockID", "KeyType": "HASH"}] and types.get("LockID") == "S"


def discover_lock_tables(aws: AwsSession, region: str) -> tuple[list[str], list[tuple[str, AwsError]]]:
    """The tables of ``region`` whose key schema is Terraform's lock table's, and (table, error) for each table that
    could not be described: only that table is unknown. A failed listing raises (the region's tables are unknown)."""
    client = aws.dynamodb(region)
    names: list[str] = []
    try:
        for page in client.get_paginator("list_tables").paginate():
            names += page.get("TableNames", [])
    except CALL_ERRORS as exc:
        raise _translate("ListTables", exc) from exc
    found: list[str] = []
    unknown: list[tuple[str, AwsError]] = []
    for name in names:
        try:
            table = client.describe_table(TableName=name)["Table"]
        except CALL_ERRORS as exc:
            err = _translate("DescribeTable", exc)
            if not err.not_found:  # not found: deleted since the listing
                unknown.append((name, err))
            continue
        if is_lock_table_schema(table):
            found.append(name)
    return found, unknown
