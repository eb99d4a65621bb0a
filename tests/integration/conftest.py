"""Integration level: engine, adapters and handlers in-process against moto server over HTTP."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest

from tests.conftest import BUCKET, REGION, TABLE, client
from tfjanitor.aws.session import AwsSession
from tfjanitor.local.emulator import MotoServer
from tfjanitor.model import ScanResult, StalePolicy
from tfjanitor.scan.sweeper import Sweeper, SweepRequest


@pytest.fixture
def ddb(backend: MotoServer):  # type: ignore[no-untyped-def]
    return client("dynamodb", backend)


@pytest.fixture
def s3(backend: MotoServer):  # type: ignore[no-untyped-def]
    return client("s3", backend)


def session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)


def sweep(
    server: MotoServer,
    tables: list[str] | None = None,
    buckets: list[str] | None = None,
    policy: StalePolicy | None = None,
    aws: AwsSession | None = None,
) -> ScanResult:
    request = SweepRequest(REGION, tables or [TABLE], buckets or [], policy or StalePolicy())
    return Sweeper(aws or AwsSession(session(), endpoint_url=server.url)).sweep(request)


def kinds(result: ScanResult) -> list[str]:
    return sorted(f.kind.value for f in result.findings)


__all__ = ["BUCKET", "REGION", "TABLE", "kinds", "session", "sweep", "timedelta"]
