"""What a Lambda box runs, and with what: the runtime's Python (pyenv), its runtime interface client in a virtual
environment of its own (what ``/var/runtime`` holds on Lambda), and ``sam build``'s artefacts."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

AWSLAMBDARIC = "awslambdaric==4.2.2"


def find_python(version: str) -> Path:
    """The real interpreter of Python ``version`` (e.g. ``"3.13"``): pyenv's versions first, then ``PATH``.

    Returns the interpreter itself, never a shim (a shim is a shell script: its start-up would count as init)."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = sorted((root / "versions").glob(f"{version}.*/bin/python{version}"), reverse=True)
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(Path(on_path))
    probe = "import sys; print(sys.executable); print('%d.%d' % sys.version_info[:2])"
    for candidate in candidates:
        try:
            out = subprocess.run([str(candidate), "-c", probe], capture_output=True, text=True, timeout=30, check=True).stdout.split()
        except (OSError, subprocess.SubprocessError):
            continue
        if len(out) == 2 and out[1] == version:
            return Path(out[0])
    raise FileNotFoundError(f"no Python {version} found (pyenv versions under {root}/versions, or python{version} on PATH)")


def runtime_version(runtime: str) -> str:
    """``python3.13`` -> ``3.13``."""
    match = re.fullmatch(r"python(\d+\.\d+)", runtime)
    if not match:
        raise ValueError(f"not a Python Lambda runtime: {runtime!r}")
    return match[1]


def ensure_runtime(cache_dir: Path, version: str = "3.13") -> Path:
    """The interpreter of a virtual environment holding only the runtime interface client (what ``/var/runtime``
    holds on Lambda), created once under ``cache_dir`` and reused. Safe against concurrent callers."""
    venv = cache_dir / f"{AWSLAMBDARIC.replace('==', '-')}-py{version}"
    python, marker = venv / "bin" / "python", venv / ".installed"
    if marker.exists():
        return python
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        base = find_python(version)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_"))}
        subprocess.run([str(base), "-m", "venv", str(venv)], check=True, timeout=300, env=env, capture_output=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", AWSLAMBDARIC],
            check=True,
            timeout=600,
            env=env,
            capture_output=True,
        )
        # Only the client and its own dependencies stay: pip is not in Lambda's runtime directory.
        subprocess.run(
            [str(python), "-m", "pip", "uninstall", "--quiet", "--yes", "pip"], check=True, timeout=120, env=env, capture_output=True
        )
        marker.write_text(f"{AWSLAMBDARIC} for Python {version} ({base})\n")
    return python


def site_packages(python: Path) -> Path:
    [path] = (python.parent.parent / "lib").glob("python*/site-packages")
    return path


def sam_build(project: Path, build_dir: Path, runtime: str = "python3.13", timeout: float = 900) -> Path:
    """``sam build`` of ``project``'s template into ``build_dir`` (never the project's ``.aws-sam``), with the
    runtime's Python on ``PATH`` (the layer's Makefile and SAM's Python builder both need it). The built template."""
    python = find_python(runtime_version(runtime))
    sam = shutil.which("sam") or str(Path(sys.executable).parent / "sam")
    env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}", "SAM_CLI_TELEMETRY": "0"}
    env.pop("PYTHONPATH", None)
    subprocess.run(
        [
            sam,
            "build",
            "--build-dir",
            str(build_dir),
            "--cache-dir",
            str(build_dir.parent / "sam-cache"),
            "--no-cached",
            "--template-file",
            str(project / "template.yaml"),
        ],
        cwd=project,
        env=env,
        check=True,
        timeout=timeout,
        capture_output=True,
        text=True,
    )
    return build_dir / "template.yaml"
