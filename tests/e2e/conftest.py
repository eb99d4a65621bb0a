"""End-to-end fixtures: the real terraform binary against the session's moto server.

Without terraform on PATH these tests are skipped, loudly; on CI (``CI`` set to
anything but an empty/false value) a missing binary is an error instead, so a
broken CI image cannot turn the end-to-end suite into a silent pass.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET, REGION, TABLE, on_ci
from tests.support.terraform import BackendConfig, TerraformProject
from tfjanitor.local.emulator import MotoServer

MISSING = "terraform not on PATH: end-to-end tests need the real binary"
HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def terraform_bin() -> str:
    path = shutil.which("terraform")
    if path is None:
        if on_ci():
            pytest.fail(f"{MISSING} (CI is set, so this is a failure, not a skip)", pytrace=False)
        pytest.skip(MISSING)
    return path


@pytest.fixture(autouse=True)
def _require_terraform(terraform_bin: str) -> None:
    """Every e2e test needs the binary: skip (or fail on CI) before any setup runs."""


@pytest.fixture
def terraform(backend: MotoServer, terraform_bin: str, tmp_path: Path) -> Iterator[Callable[..., TerraformProject]]:
    """Factory of terraform working directories on the clean emulated backend.

    ``terraform(dynamodb_table=None, use_lockfile=True)`` etc.; every project's
    processes are killed at teardown, whatever the test did.
    """
    projects: list[TerraformProject] = []

    def make(name: str = "work", provisioner: bool = True, chain: tuple[int, ...] = (), **backend_options: Any) -> TerraformProject:
        options: dict[str, Any] = {"bucket": BUCKET, "region": REGION, "dynamodb_table": TABLE}  # BackendConfig's
        options.update(backend_options)
        project = TerraformProject(
            tmp_path / name,
            BackendConfig(**{"endpoint_url": backend.url, **options}),
            provisioner=provisioner,
            chain=chain,
            binary=terraform_bin,
        )
        projects.append(project)
        return project

    try:
        yield make
    finally:
        for project in projects:
            project.close()
