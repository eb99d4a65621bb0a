"""`pipx install tfjanitor`: the wheel, installed without extras into a fresh virtual environment, is the
whole CLI (version, scan against the emulator, `python -m tfjanitor`) with boto3 alone, and
`tfjanitor local` says which extra it needs instead of a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.support.builders import lock_info, put_lock, put_state, state_body
from tfjanitor import __version__

ROOT = Path(__file__).resolve().parents[2]
NOT_IN_A_LEAN_INSTALL = {"aws-lambda-powertools", "pydantic", "pydantic-core", "moto", "aws-sam-cli", "matplotlib"}


def run(*argv: str | Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, env=env, check=False)


def test_the_wheel_without_extras_is_the_whole_cli(backend, tmp_path) -> None:
    # Build from a copy: setuptools leaves build/ and *.egg-info next to the sources it builds.
    src = tmp_path / "src"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "layers/tfjanitor/tfjanitor", src / "layers/tfjanitor/tfjanitor", ignore=shutil.ignore_patterns("__pycache__")
    )
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path / "dist", src)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("tfjanitor-*.whl")
    assert wheel.name.startswith(f"tfjanitor-{__version__}-")  # the version is defined once

    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", venv).returncode == 0
    bin_ = venv / "bin"
    installed = run(bin_ / "python", "-m", "pip", "install", "--quiet", wheel)
    assert installed.returncode == 0, installed.stderr

    listed = {p["name"].lower() for p in json.loads(run(bin_ / "python", "-m", "pip", "list", "--format", "json").stdout)}
    assert "boto3" in listed and "tfjanitor" in listed
    assert listed & NOT_IN_A_LEAN_INSTALL == set()
    metadata = run(bin_ / "python", "-c", "import importlib.metadata as m; print(m.metadata('tfjanitor')['License-Expression'])")
    assert metadata.stdout.strip() == "Apache-2.0"

    # The installed CLI, not this checkout: no PYTHONPATH, credentials for the emulator only.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
    env |= {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": REGION}
    version = run(bin_ / "python", "-c", "import tfjanitor; print(tfjanitor.__version__)", env=env)
    assert version.stdout.strip() == __version__, version

    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_state(s3, ddb, BUCKET, "web/terraform.tfstate", state_body())
    # A run killed three hours ago before any state write: no sign of life since.
    put_lock(
        ddb, BUCKET, "app/terraform.tfstate", lock_info(f"{BUCKET}/app/terraform.tfstate", age=timedelta(hours=3), lock_id="lean-1")
    )
    scan = run(
        bin_ / "tfjanitor", "scan", "--table", TABLE, "--endpoint-url", backend.url, "--skip-audit", "--format", "json", env=env
    )
    module = run(
        bin_ / "python",
        "-m",
        "tfjanitor",
        "scan",
        "--table",
        TABLE,
        "--endpoint-url",
        backend.url,
        "--skip-audit",
        "--format",
        "json",
        env=env,
    )
    for result in (scan, module):  # the console script and `python -m tfjanitor` alike
        assert result.returncode == 1, result.stderr  # findings
        assert [(f["kind"], f["lock_id"]) for f in json.loads(result.stdout)["findings"]] == [("stale_lock", "lean-1")]

    local = run(bin_ / "tfjanitor", "local", env=env)
    assert local.returncode == 2 and "Traceback" not in local.stderr
    assert "pip install 'tfjanitor[local]'" in local.stderr
