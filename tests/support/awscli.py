"""Paste a finding's printed command lines into bash, as the engineer on call would, with the real tools.

The real AWS CLI (v1, from the package registry) lives in a virtual environment of its own: its
botocore pin differs from boto3's. ``install`` builds it once under the pytest cache. ``paste`` runs
one printed line with ``bash -c`` in a given directory, the AWS CLI and a ``tfjanitor`` shim (this
checkout's package) first on PATH, every AWS call pointed at the emulator, and a terminal on stdin
so ``tfjanitor unlock`` can ask and a person (the test) can answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

AWSCLI = "awscli==1.46.3"  # DeleteObject --if-match needs a 2024-11 or later botocore


def install(where: Path) -> Path:
    """The ``bin`` directory of a venv with the real AWS CLI (built once; rebuilt if broken)."""
    home = where / AWSCLI.replace("==", "-")
    aws = home / "bin" / "aws"
    if aws.exists() and subprocess.run([aws, "--version"], capture_output=True, timeout=60, check=False).returncode == 0:
        return aws.parent
    subprocess.run([sys.executable, "-m", "venv", "--clear", home], check=True, capture_output=True, timeout=300)
    subprocess.run([home / "bin" / "python", "-m", "pip", "install", "--quiet", AWSCLI], check=True, capture_output=True, timeout=600)
    return aws.parent


@dataclass
class Pasted:
    line: str
    code: int
    output: str

    @property
    def ok(self) -> bool:
        return self.code == 0


class Shell:
    """Where printed lines are pasted: PATH with the real AWS CLI and ``tfjanitor``, the emulator as AWS."""

    def __init__(self, aws_bin: Path, endpoint_url: str, scratch: Path, extra_path: tuple[str, ...] = ()):
        shims = scratch / "shims"
        shims.mkdir(parents=True, exist_ok=True)
        shim = shims / "tfjanitor"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tfjanitor "$@"\n')
        shim.chmod(0o755)
        self.home = scratch / "home"
        self.home.mkdir(exist_ok=True)
        self.env = {
            "PATH": os.pathsep.join([str(shims), str(aws_bin), *extra_path, "/usr/bin", "/bin"]),
            "HOME": str(self.home),
            "LC_ALL": "C.UTF-8",
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_CONFIG_FILE": str(self.home / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "CHECKPOINT_DISABLE": "1",
            **{k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "TF_CLI_CONFIG_FILE")},
        }

    def paste(self, line: str, cwd: Path, answer: str | None = None, timeout: float = 120) -> Pasted:
        """Run one printed command line; ``answer`` is typed at its terminal (a confirmation)."""
        master, slave = os.openpty()
        try:
            proc = subprocess.Popen(
                ["bash", "-c", line], cwd=cwd, env=self.env, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            os.close(slave)
            slave = -1
            if answer is not None:
                os.write(master, answer.encode() + b"\n")
            try:
                output, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise
        finally:
            os.close(master)
            if slave >= 0:
                os.close(slave)
        return Pasted(line, proc.returncode, output)
