"""Drive the real ``terraform`` binary against the moto server (end-to-end tests).

A :class:`TerraformProject` is one working directory holding an ``s3`` backend
block pointed at the emulator and a configuration made only of the built-in
``terraform_data`` resource (no provider download), plus a ``local-exec``
provisioner ``sleep ${var.sleep}`` so a test can keep the lock held as long as
it wants.

Every terraform process is started in a new session (its own process group)
and is ended by the call that started it: a finished command is reaped, a
command past its timeout has its whole group SIGKILLed, and ``close()`` kills
whatever a background thread may still have running. Nothing here waits
without a timeout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

DEFAULT_TIMEOUT = 120.0
DEFAULT_WORKSPACE_KEY_PREFIX = "env:"


class TerraformError(AssertionError):
    """A terraform command failed (or timed out) when the test expected success."""


@dataclass(frozen=True)
class BackendConfig:
    """The ``backend "s3"`` block, pointed at one emulator URL for both services."""

    endpoint_url: str
    bucket: str = "tfstate-demo"
    key: str = "dev/terraform.tfstate"
    region: str = "ap-northeast-2"
    dynamodb_table: str | None = "terraform-state-lock"
    use_lockfile: bool = False
    workspace_key_prefix: str | None = None  # None: Terraform's default, "env:"

    def state_key(self, workspace: str = "default") -> str:
        """The S3 key of a workspace's state (what LockID and digests are built on)."""
        if workspace == "default":
            return self.key
        prefix = DEFAULT_WORKSPACE_KEY_PREFIX if self.workspace_key_prefix is None else self.workspace_key_prefix
        return f"{prefix}/{workspace}/{self.key}" if prefix else f"{workspace}/{self.key}"  # "": <workspace>/<key>

    def hcl(self) -> str:
        q = json.dumps  # an HCL quoted string is a JSON string for these values
        lines = [f"bucket = {q(self.bucket)}", f"key    = {q(self.key)}", f"region = {q(self.region)}"]
        if self.dynamodb_table:
            lines.append(f"dynamodb_table = {q(self.dynamodb_table)}")
        if self.use_lockfile:
            lines.append("use_lockfile = true")
        if self.workspace_key_prefix is not None:
            lines.append(f"workspace_key_prefix = {q(self.workspace_key_prefix)}")
        lines += [
            "use_path_style              = true",
            "skip_credentials_validation = true",
            "skip_requesting_account_id  = true",
            "skip_metadata_api_check     = true",
            "skip_region_validation      = true",
            f"endpoints = {{ s3 = {q(self.endpoint_url)}, dynamodb = {q(self.endpoint_url)} }}",
        ]
        body = "\n".join("    " + line for line in lines)
        return f'terraform {{\n  backend "s3" {{\n{body}\n  }}\n}}\n'


CONFIG = """
variable "v" {
  type    = string
  default = "initial"
}

variable "sleep" {
  type    = number
  default = 0
}

resource "terraform_data" "this" {
  triggers_replace = var.v
%(provisioner)s}
"""

CHAINED = """
resource "terraform_data" "step_%(n)s" {
  triggers_replace = var.v
  depends_on       = [terraform_data.%(after)s]

  provisioner "local-exec" {
    command = "sleep %(seconds)s"
  }
}
"""

PROVISIONER = """
  provisioner "local-exec" {
    command = "sleep ${var.sleep}"
  }
"""


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass
class KilledApply:
    """What a SIGKILLed apply left behind."""

    lock: dict[str, Any]  # the LockInfo JSON Terraform stored (DynamoDB Info or .tflock body)
    where: str  # "dynamodb" or "s3"
    log: str  # what terraform printed before it died
    returncode: int


# Every terraform process any project of this test run has started and not yet ended.
_ALL_LIVE: set[subprocess.Popen[bytes]] = set()


@dataclass
class TerraformProject:
    """One working directory, its backend, and the terraform processes it started."""

    workdir: Path
    backend: BackendConfig
    provisioner: bool = True
    # More terraform_data resources after the first, in a chain, each sleeping this many seconds. Terraform
    # persists a snapshot when a resource completes 20 s or more after the first one did (or after the last
    # snapshot): a chain (1 s via var.sleep, then 21, 21) writes the state at ~22 s, then at the end.
    chain: tuple[int, ...] = ()
    binary: str = field(default_factory=lambda: shutil.which("terraform") or "terraform")
    _live: set[subprocess.Popen[bytes]] = field(default_factory=set, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "home").mkdir(exist_ok=True)
        (self.workdir / "cli.tfrc").write_text("disable_checkpoint = true\n")
        self.write_config()

    # -- files and environment -------------------------------------------------

    def write_config(self) -> None:
        config = CONFIG % {"provisioner": PROVISIONER if self.provisioner else ""}
        for n, seconds in enumerate(self.chain, 2):  # each starts when the one before completes
            after = "this" if n == 2 else f"step_{n - 1}"
            config += CHAINED % {"n": n, "after": after, "seconds": seconds}
        (self.workdir / "main.tf").write_text(self.backend.hcl() + config)

    @property
    def env(self) -> dict[str, str]:
        """A clean environment: no inherited AWS_* (AWS_ENDPOINT_URL, profiles, CA bundles)
        so the backend block alone decides where Terraform goes."""
        home = self.workdir / "home"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
            "LANG": "C.UTF-8",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_CONFIG_FILE": str(home / "aws-config-absent"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials-absent"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "CHECKPOINT_DISABLE": "1",
            "TF_CLI_CONFIG_FILE": str(self.workdir / "cli.tfrc"),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
        }
        return env

    # -- process handling ------------------------------------------------------

    def _spawn(self, args: list[str], stdout: Any, stderr: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [self.binary, *args],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        with self._lock:
            self._live.add(proc)
            _ALL_LIVE.add(proc)
        return proc

    def _end(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process group if anything in it may still run, then reap."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover (SIGKILL cannot be ignored)
            pass
        with self._lock:
            self._live.discard(proc)
            _ALL_LIVE.discard(proc)

    def run(self, *args: str, timeout: float = DEFAULT_TIMEOUT, check: bool = True) -> Result:
        started = datetime.now(timezone.utc)
        result = self._run_once(list(args), timeout)
        if not result.ok and self._release_own_retried_lock(result, started):
            result = self._run_once(list(args), timeout)
        if check and not result.ok:
            raise TerraformError(f"terraform {' '.join(args)} exited {result.returncode}:\n{result.output}")
        return result

    def _release_own_retried_lock(self, result: Result, started: datetime) -> bool:
        """Terraform failed to take a lock that its own SDK-retried PutItem had already written.

        Under load the emulator can answer a conditional PutItem after the SDK gave up on it; the SDK
        retries, the retry fails its condition against the item the first attempt wrote, and Terraform
        reports a lock held by itself (created after this command started). That is an emulator
        artefact, not what a test is about: release exactly that lock and run once more. Never a lock
        created before the command started (what contention tests set up), nor while any other
        terraform process of the test run is alive (it could be that process's lock).
        """
        text = result.output
        if "Error acquiring the state lock" not in text:
            return False
        created = re.search(r"Created:\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d+))?", text)
        lock_id = re.search(r"^\s*ID:\s+(\S+)", text, re.MULTILINE)
        if not created or not lock_id or _ALL_LIVE:
            return False  # another terraform of this test is running: the lock may be its
        when = datetime.strptime(created[1], "%Y-%m-%d %H:%M:%S").replace(
            tzinfo=timezone.utc, microsecond=int((created[2] or "0")[:6].ljust(6, "0"))
        )
        if when <= started:
            return False  # taken before this command started: what a contention test set up
        for workspace in {"default", *self._workspaces()}:
            held = self._held_lock(workspace)
            if held and held[1].get("ID") == lock_id[1]:
                key = f"{self.backend.bucket}/{self.backend.state_key(workspace)}"
                if held[0] == "dynamodb":
                    item = self.lock_item(workspace)
                    assert item is not None
                    self.client("dynamodb").delete_item(
                        TableName=self.backend.dynamodb_table,
                        Key={"LockID": {"S": key}},
                        ConditionExpression="Info = :i",
                        ExpressionAttributeValues={":i": item["Info"]},
                    )
                else:
                    self.client("s3").delete_object(Bucket=self.backend.bucket, Key=self.backend.state_key(workspace) + ".tflock")
                return True
        return False

    def _workspaces(self) -> list[str]:
        env = self.workdir / ".terraform" / "environment"
        return [env.read_text().strip()] if env.exists() else []

    def _run_once(self, argv: list[str], timeout: float) -> Result:
        proc = self._spawn(argv, subprocess.PIPE, subprocess.PIPE)
        try:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._end(proc)
                out, err = proc.communicate(timeout=10)
                raise TerraformError(
                    f"terraform {' '.join(argv)} did not finish within {timeout:.0f}s\n"
                    f"{out.decode(errors='replace')}{err.decode(errors='replace')}"
                ) from None
        finally:
            self._end(proc)  # the group too: a provisioner's child must not outlive the test
        return Result(argv, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))

    def close(self) -> None:
        """End every terraform process still running (e.g. one a failed test's thread started)."""
        with self._lock:
            live = list(self._live)
        for proc in live:
            self._end(proc)

    # -- commands --------------------------------------------------------------

    def init(self, timeout: float = DEFAULT_TIMEOUT) -> Result:
        return self.run("init", "-input=false", "-no-color", timeout=timeout)

    def apply(self, v: str, sleep: int = 0, timeout: float = DEFAULT_TIMEOUT, check: bool = True) -> Result:
        return self.run(
            "apply",
            "-auto-approve",
            "-input=false",
            "-no-color",
            "-var",
            f"v={v}",
            "-var",
            f"sleep={sleep}",
            timeout=timeout,
            check=check,
        )

    def plan(self, v: str | None = None, timeout: float = DEFAULT_TIMEOUT, check: bool = True) -> Result:
        args = ["plan", "-input=false", "-no-color"]
        if v is not None:
            args += ["-var", f"v={v}"]
        return self.run(*args, timeout=timeout, check=check)

    def workspace_new(self, name: str, timeout: float = DEFAULT_TIMEOUT) -> Result:
        return self.run("workspace", "new", "-no-color", name, timeout=timeout)

    def workspace_select(self, name: str, timeout: float = DEFAULT_TIMEOUT) -> Result:
        return self.run("workspace", "select", "-no-color", name, timeout=timeout)

    def force_unlock(self, lock_id: str, timeout: float = DEFAULT_TIMEOUT) -> Result:
        return self.run("force-unlock", "-force", "-no-color", lock_id, timeout=timeout)

    # -- emulator access -------------------------------------------------------

    def client(self, service: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]  # the stubs overload boto3.client on literal service names, not str
            service,
            region_name=self.backend.region,
            endpoint_url=self.backend.endpoint_url,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def lock_item(self, workspace: str = "default") -> dict[str, Any] | None:
        """The DynamoDB lock item of a state, or None."""
        assert self.backend.dynamodb_table, "this backend has no dynamodb_table"
        lock_id = f"{self.backend.bucket}/{self.backend.state_key(workspace)}"
        resp = self.client("dynamodb").get_item(
            TableName=self.backend.dynamodb_table, Key={"LockID": {"S": lock_id}}, ConsistentRead=True
        )
        item = resp.get("Item")
        return item if item and "Info" in item else None

    def lockfile(self, workspace: str = "default") -> bytes | None:
        """The body of a state's ``.tflock`` object, or None."""
        try:
            resp = self.client("s3").get_object(Bucket=self.backend.bucket, Key=self.backend.state_key(workspace) + ".tflock")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}:
                return None
            raise
        return resp["Body"].read()

    def _held_lock(self, workspace: str) -> tuple[str, dict[str, Any]] | None:
        # With both options Terraform takes the file lock first, then the DynamoDB
        # lock: wait for the one taken last so both exist when we kill.
        if self.backend.dynamodb_table:
            item = self.lock_item(workspace)
            return ("dynamodb", json.loads(item["Info"]["S"])) if item else None
        body = self.lockfile(workspace)
        return ("s3", json.loads(body)) if body else None

    def start_apply_and_kill(self, v: str, sleep: int = 300, workspace: str = "default", timeout: float = 60.0) -> KilledApply:
        """Start an apply whose provisioner sleeps, wait until it holds the lock, SIGKILL its group."""
        args = ["apply", "-auto-approve", "-input=false", "-no-color", "-var", f"v={v}", "-var", f"sleep={sleep}"]
        return self.start_and_kill(args, f"apply-{v}", workspace, timeout)

    def start_plan_and_kill(self, workspace: str = "default", timeout: float = 60.0) -> KilledApply:
        """Start a plan, wait until it holds the lock (on a drifted state it retries its checksum for
        about 10 s meanwhile), SIGKILL its group."""
        return self.start_and_kill(["plan", "-input=false", "-no-color"], "plan", workspace, timeout)

    def start_and_kill(self, args: list[str], label: str, workspace: str = "default", timeout: float = 60.0) -> KilledApply:
        """Start a terraform command, wait until it holds the state's lock, SIGKILL its process group."""
        proc = self.start(args, label)
        try:
            where, lock = self.wait_for_lock(proc, workspace, timeout)
        finally:
            self._end(proc)
        log = (self.workdir / f"{label}.log").read_text(errors="replace")
        return KilledApply(lock=lock, where=where, log=log, returncode=proc.returncode)

    def start(self, args: list[str], label: str) -> subprocess.Popen[bytes]:
        """Start a terraform command in the background, its output in ``<label>.log``; :meth:`finish` or
        ``close()`` ends it."""
        with open(self.workdir / f"{label}.log", "wb") as log:
            return self._spawn(args, log, subprocess.STDOUT)

    def wait_for_lock(
        self, proc: subprocess.Popen[bytes], workspace: str = "default", timeout: float = 60.0
    ) -> tuple[str, dict[str, Any]]:
        """Wait until the started command holds the state's lock: (where, its LockInfo)."""
        deadline = time.monotonic() + timeout
        while True:
            held = self._held_lock(workspace)
            if held is not None:
                return held
            if proc.poll() is not None:
                raise TerraformError(f"{proc.args!r} exited ({proc.returncode}) before it was seen holding the lock")
            if time.monotonic() > deadline:
                raise TerraformError(f"{proc.args!r} did not take the lock within {timeout:.0f}s")
            time.sleep(0.1)

    def finish(self, proc: subprocess.Popen[bytes], timeout: float = DEFAULT_TIMEOUT) -> int:
        """Wait for a started command to end by itself (killed past ``timeout``); its exit code."""
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TerraformError(f"{proc.args!r} did not finish within {timeout:.0f}s") from None
        finally:
            self._end(proc)
        return proc.returncode
