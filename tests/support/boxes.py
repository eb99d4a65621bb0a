"""Fixtures' helpers for running functions in a Lambda box (tfjanitor.local.lambda_box)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import on_ci
from tfjanitor.local.runtimes import ensure_runtime, sam_build

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_DIR = ROOT / ".cache" / "lambda-box"  # the runtime interface client's venv, kept between runs (.gitignore)
TEST_FUNCTIONS = Path(__file__).resolve().parent / "lambda_functions"


def unavailable(message: str) -> None:
    """Outside CI a missing tool skips; on CI it fails (tests/conftest.py: on_ci)."""
    if on_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def runtime_dir() -> Path:
    """The cached runtime interface client for the template's Python (3.13), installed on first use."""
    try:
        ensure_runtime(RUNTIME_DIR, "3.13")
    except FileNotFoundError as exc:  # no python3.13 (pyenv)
        unavailable(f"the Lambda box needs Python 3.13: {exc}")
    except subprocess.CalledProcessError as exc:
        unavailable(f"could not install the runtime interface client: {exc} {exc.stderr!r:.500}")
    return RUNTIME_DIR


def built(into: Path) -> Path:
    """``sam build`` of the project into ``into`` (never the developer's .aws-sam): the build directory."""
    if shutil.which("sam") is None and not (Path(__import__("sys").executable).parent / "sam").exists():
        unavailable("sam (aws-sam-cli) is not installed")
    try:
        sam_build(ROOT, into)
    except FileNotFoundError as exc:
        unavailable(f"sam build needs Python 3.13: {exc}")
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"sam build failed:\n{exc.stdout}\n{exc.stderr}", pytrace=False)
    return into
