"""Shared fixtures: one moto server on 127.0.0.1 for the whole session."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support import awscli
from tests.support.posture import harden_bucket, harden_table
from tfjanitor.local.emulator import MotoServer

REGION = "ap-northeast-2"
TABLE = "terraform-state-lock"
BUCKET = "tfstate-demo"


def on_ci() -> bool:
    """CI sets ``CI``: there a missing tool is a failure, never a silent skip."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no", "off"}


@pytest.fixture(scope="session")
def aws_cli(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real AWS CLI's bin directory (a venv of its own, kept in the pytest cache between runs)."""
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    where = cache.mkdir("awscli") if cache is not None else tmp_path_factory.mktemp("awscli")
    try:
        return awscli.install(where)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        message = f"pip could not install {awscli.AWSCLI}: {exc} {detail.decode(errors='replace')[-500:]}"
        if on_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def shell(emulator: MotoServer, aws_cli: Path, tmp_path: Path) -> awscli.Shell:
    """Where a test pastes printed command lines: the real AWS CLI, tfjanitor and terraform, the emulator as AWS."""
    terraform = shutil.which("terraform")
    return awscli.Shell(aws_cli, emulator.url, tmp_path / "shell", (str(Path(terraform).parent),) if terraform else ())


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    server = MotoServer(log_path=str(log)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def emulator(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """A clean emulated account per test, with the process env pointing at it."""
    moto_server.reset()
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    yield moto_server


def client(service: str, server: MotoServer, region: str = REGION) -> Any:
    return boto3.client(  # type: ignore[call-overload]  # the stubs overload boto3.client on literal service names, not str
        service, region_name=region, endpoint_url=server.url, aws_access_key_id="test", aws_secret_access_key="test"
    )


def create_lock_table(server: MotoServer, name: str = TABLE, region: str = REGION) -> None:
    client("dynamodb", server, region).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def create_bucket(server: MotoServer, name: str = BUCKET, region: str = REGION) -> None:
    kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    client("s3", server, region).create_bucket(Bucket=name, **kwargs)


@pytest.fixture
def backend(emulator: MotoServer) -> MotoServer:
    """The usual backend: lock table and state bucket in ap-northeast-2, configured as the audit
    recommends (versioned with a lifecycle rule, public access blocked, PITR and deletion protection).
    Not TLS-only: see tests/support/posture.py for why, and enforce_tls() for tests that can."""
    create_lock_table(emulator)
    create_bucket(emulator)
    harden_table(emulator.url, TABLE, REGION)
    harden_bucket(emulator.url, BUCKET, REGION)
    return emulator


os.environ.setdefault("CHECKPOINT_DISABLE", "1")


@pytest.fixture(autouse=True)
def _forget_table_pages() -> Iterator[None]:
    """A lock table's page count is remembered per process (parallel Scan segments on the next read): each
    test starts cold, as a fresh Lambda or CLI process does."""
    from tfjanitor.aws import backend

    backend._PAGES_SEEN.clear()
    yield
    backend._PAGES_SEEN.clear()
