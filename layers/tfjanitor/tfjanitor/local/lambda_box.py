"""Run a function exactly as Lambda runs it: the ``sam build`` artefacts under the real runtime interface client.

- The runtime interface client (``awslambdaric``, what Lambda's Python runtimes and base images run) is
  installed into a virtual environment of its own (cached) under the Python version the template names (pyenv
  here), and talks to a loopback implementation of the Lambda Runtime API (:class:`RuntimeApi`: ``/next``,
  ``/response``, ``/error``, ``/init/error``, with the request id, deadline, function ARN and trace headers).
- Only the built artefacts are on its path: the function's built code directory is the task root (and the
  working directory), each built layer's ``python/`` is what Lambda mounts at ``/opt/python``. Nothing from the
  source tree or the caller's environment: the environment is rendered from the template (SAM CLI's providers,
  :func:`tfjanitor.local.template.load_functions`) plus what Lambda itself sets, plus the caller's overrides
  (the emulator's endpoint and credentials). Bytecode is never written (``/opt`` and ``/var/task`` are read-only
  on Lambda): a layer shipped without ``.pyc`` is compiled again at every cold start, as there.
- The process runs in a cgroup (v1) of its own: the function's ``MemorySize`` as its memory limit (no swap) and
  ``MemorySize / 1769`` of one CPU as its CFS quota (1,769 MB is one vCPU). Where no cgroup can be made, it runs
  without limits and :attr:`LambdaBox.limits` says so (``echo`` prints it).
- One execution environment serves invocation after invocation (warm), as Lambda's does. An invocation that
  runs past its deadline is killed with its environment (``Sandbox.Timedout``), one that is OOM-killed is
  ``Runtime.OutOfMemory``; the next invocation is a cold start. Every process is started in a process group of
  its own and ended by it (and by what is left in its cgroup): nothing outlives the box.

Reported: init (process start to the first ``/next``, and with ``profile_imports`` the handler's import),
each invocation's duration, RSS after it and its peak (``VmHWM``, reset before each), the cgroup's peak
(``memory.max_usage_in_bytes``) and CPU-seconds (``cpuacct.usage``).

Used by tests (tests/integration/test_as_deployed.py), ``make bench`` (bench/as_deployed.py) and later
``tfjanitor local``. Never on the Lambda path: it starts processes and writes cgroups.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from tfjanitor.local.cgroup import Cgroup
from tfjanitor.local.readings import bytes_to_mb, import_seconds, kb_to_mb, proc_cpu_seconds, status_kb
from tfjanitor.local.runtime_api import RuntimeApi, _Call
from tfjanitor.local.runtimes import ensure_runtime, runtime_version, site_packages

LAMBDA_MB_PER_VCPU = 1769  # Lambda gives CPU in proportion to memory: 1,769 MB is one vCPU
INIT_LIMIT_SECONDS = 10.0  # the Init phase of an on-demand function
DEFAULT_ACCOUNT = "123456789012"


# --------------------------------------------------------------------------- what runs


@dataclass
class BoxFunction:
    """One function as deployed: its built code, its layers, its configuration."""

    name: str  # logical ID (SweeperFunction)
    code_dir: Path  # the built function directory: the task root (/var/task)
    handler: str = "app.lambda_handler"
    layers: list[Path] = field(default_factory=list)  # built layer directories (each has python/)
    runtime: str = "python3.13"
    memory_mb: int = 128
    timeout: float = 3.0
    environment: dict[str, str] = field(default_factory=dict)  # the template's Variables, rendered
    function_name: str | None = None  # the deployed name (CloudFormation: <stack>-<LogicalId>-<suffix>)
    log_group: str | None = None
    log_format: str | None = None  # LoggingConfig LogFormat: JSON or Text
    application_log_level: str | None = None

    @property
    def deployed_name(self) -> str:
        return self.function_name or self.name


def built_function(
    build_dir: Path, name: str, parameters: dict[str, str], stack_name: str = "tfjanitor", region: str = "ap-northeast-2"
) -> BoxFunction:
    """Function ``name`` of the template ``sam build`` wrote into ``build_dir``, as SAM CLI resolves it (Globals
    merged, parameters applied, its layers' built directories)."""
    from tfjanitor.local.template import load_functions

    for fn in load_functions(build_dir / "template.yaml", parameters, {"AWS::StackName": stack_name, "AWS::Region": region}):
        if fn.name == name:
            return BoxFunction(
                fn.name,
                fn.code_dir,
                fn.handler,
                list(fn.layers),
                fn.runtime,
                fn.memory,
                fn.timeout,
                dict(fn.environment),
                function_name=fn.function_name or f"{stack_name}-{fn.name}",
                log_group=fn.log_group,
                log_format=fn.log_format,
                application_log_level=fn.application_log_level,
            )
    raise KeyError(f"{name}: not a function of {build_dir / 'template.yaml'} with these parameters")


@dataclass
class Limits:
    memory_mb: int
    cpu_share: float  # of one CPU
    enforced: bool
    note: str = ""

    def __str__(self) -> str:
        if self.enforced:
            return f"{self.memory_mb} MB, {self.cpu_share:.3f} of a CPU (cgroup)"
        return f"NO LIMITS ({self.note}): memory and CPU are the machine's, not {self.memory_mb} MB / {self.cpu_share:.3f} CPU"


@dataclass
class InitReport:
    seconds: float  # process start to the first /next
    handler_import_seconds: float | None = None  # the handler module's imports (with profile_imports; an estimate)
    rss_mb: float | None = None
    peak_rss_mb: float | None = None
    cgroup_peak_mb: float | None = None
    cpu_seconds: float | None = None
    error: dict[str, Any] | None = None  # what the runtime posted to /init/error

    @property
    def over_limit(self) -> bool:
        return self.seconds > INIT_LIMIT_SECONDS


@dataclass
class Invocation:
    request_id: str
    cold: bool
    status: str  # success, error, timeout, oom, exit, init_error
    response: Any = None
    error: dict[str, Any] | None = None  # {errorType, errorMessage, ...}: the function's, or Lambda's own
    init: InitReport | None = None  # on a cold invocation
    duration_seconds: float = 0.0
    rss_mb: float | None = None  # after the invocation
    peak_rss_mb: float | None = None  # during it
    cgroup_peak_mb: float | None = None  # during it (the cgroup: what the memory limit applies to)
    cpu_seconds: float | None = None
    logs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k not in ("logs", "init")}
        if self.init is not None:
            out["init"] = {**vars(self.init), "over_limit": self.init.over_limit}
        return out


# --------------------------------------------------------------------------- the box


_BOXES = iter(range(1, 1 << 30))


class LambdaBox:
    """One function's execution environment, the way Lambda keeps one: cold at the first invocation, warm after.

    ::

        with LambdaBox(built_function(build, "SweeperFunction", params), env_overrides=emulator_env) as box:
            first = box.invoke(event)   # cold: first.init has the init time
            again = box.invoke(event)   # warm: the same process

    ``memory_mb`` and ``cpu_share`` default to the function's MemorySize and MemorySize / 1769.
    """

    def __init__(
        self,
        function: BoxFunction,
        env_overrides: dict[str, str] | None = None,
        memory_mb: int | None = None,
        cpu_share: float | None = None,
        runtime_dir: Path | None = None,
        region: str | None = None,
        account: str = DEFAULT_ACCOUNT,
        profile_imports: bool = False,
        confine: bool = True,
        echo: Any = None,
    ):
        self.function = function
        self.env_overrides = dict(env_overrides or {})
        memory = memory_mb or function.memory_mb
        share = cpu_share if cpu_share is not None else memory / LAMBDA_MB_PER_VCPU
        self.limits = Limits(memory, share, enforced=False, note="not started")
        self.region = region or self.env_overrides.get("AWS_REGION") or function.environment.get("AWS_REGION") or "ap-northeast-2"
        self.account = account
        self.profile_imports = profile_imports
        self._confine = confine
        self._echo = echo or (lambda _line: None)
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        self._runtime_dir = runtime_dir or cache / "tfjanitor" / "lambda-box"
        self._python: Path | None = None
        self._api: RuntimeApi | None = None
        self._cgroup: Cgroup | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._lines: list[tuple[float, str]] = []
        self._lines_lock = threading.Lock()
        self._empty_at = 0.0  # when the reader last found the runtime's output pipe empty
        self._home: Path | None = None
        self._pending_init: InitReport | None = None
        self.environments = 0  # execution environments started (cold starts)
        self.invocations: list[Invocation] = []
        self.inits: list[InitReport] = []

    # -- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> LambdaBox:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> LambdaBox:
        if self._api is not None:
            return self
        self._python = ensure_runtime(self._runtime_dir, runtime_version(self.function.runtime))
        self._api = RuntimeApi()
        self._home = Path(tempfile.mkdtemp(prefix="lambda-box-"))
        if self._confine:
            group = Cgroup(f"tfjanitor-box-{os.getpid()}-{next(_BOXES)}", self.limits.memory_mb, self.limits.cpu_share)
            why = group.create()
            self._cgroup = group if why is None else None
            self.limits = Limits(self.limits.memory_mb, self.limits.cpu_share, enforced=why is None, note=why or "")
        else:
            self.limits = Limits(self.limits.memory_mb, self.limits.cpu_share, enforced=False, note="confine=False")
        self._echo(f"[lambda-box] {self.function.name}: {self.limits}")
        return self

    def close(self) -> None:
        self._stop_environment()
        if self._cgroup is not None:
            self._cgroup.remove()
            self._cgroup = None
        if self._api is not None:
            self._api.close()
            self._api = None
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function.deployed_name}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def cgroup_dirs(self) -> dict[str, Path]:
        return dict(self._cgroup.dirs) if self._cgroup is not None else {}

    @property
    def logs(self) -> list[str]:
        with self._lines_lock:
            return [line for _, line in self._lines]

    def environment(self) -> dict[str, str]:
        """What the runtime process gets: the template's variables, Lambda's own, then the caller's overrides."""
        assert self._python is not None and self._api is not None and self._home is not None
        fn = self.function
        layers = [layer / "python" for layer in fn.layers]
        version = runtime_version(fn.runtime)
        # Lambda's search path: the task root, each layer's python/lib/pythonX.Y/site-packages and python/, then
        # the runtime's own directory (here: the client's virtual environment, after the standard library).
        path = [str(fn.code_dir)] + [str(p) for layer in layers for p in (layer / "lib" / f"python{version}" / "site-packages", layer)]
        stamp = datetime.now(timezone.utc).strftime("%Y/%m/%d")
        env = {
            **fn.environment,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": fn.deployed_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.limits.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": fn.log_group or f"/aws/lambda/{fn.deployed_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{stamp}/[$LATEST]{uuid.uuid4().hex}",
            "AWS_LAMBDA_RUNTIME_API": self._api.address,
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "LAMBDA_TASK_ROOT": str(fn.code_dir),
            "LAMBDA_RUNTIME_DIR": str(site_packages(self._python)),
            "_HANDLER": fn.handler,
            "PATH": f"{self._python.parent}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": os.pathsep.join(path),
            "PYTHONDONTWRITEBYTECODE": "1",  # /opt and /var/task are read-only on Lambda: nothing is cached between starts
            "PYTHONNOUSERSITE": "1",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "HOME": str(self._home),
            "TMPDIR": str(self._home),
            # No shared configuration or credentials files of whoever runs the box.
            "AWS_CONFIG_FILE": str(self._home / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self._home / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        if fn.log_format:
            env["AWS_LAMBDA_LOG_FORMAT"] = fn.log_format.upper()
            if fn.log_format.upper() == "JSON":
                env["AWS_LAMBDA_LOG_LEVEL"] = (fn.application_log_level or "INFO").upper()
        env.update(self.env_overrides)
        return env

    def start(self) -> InitReport:
        """Start a new execution environment (a cold start) and wait for its Init phase to end."""
        assert self._python is not None, "open the box first"
        self._stop_environment()
        api, group = self._api, self._cgroup
        assert api is not None
        if group is not None:
            group.reset_memory_peak()
        cpu_before = group.cpu_ns() if group is not None else None
        profile = ["-X", "importtime"] if self.profile_imports else []
        argv = [str(self._python), *profile, "-m", "awslambdaric", self.function.handler]
        if group is not None:
            argv = ["/bin/sh", "-c", group.join_script(), "lambda-box", *argv]
        polls = len(api.polls)
        api.init_error = None
        with self._lines_lock:
            self._lines = []
        started = time.monotonic()
        self._proc = subprocess.Popen(
            argv,
            cwd=self.function.code_dir,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.environments += 1
        self._reader = threading.Thread(target=self._read_output, args=(self._proc,), name="lambda-box-output", daemon=True)
        self._reader.start()
        proc = self._proc
        # On-demand Init may run 10 s; past that Lambda runs it again within the first invocation, up to its timeout.
        ready = api.wait_poll(polls, INIT_LIMIT_SECONDS + self.function.timeout, lambda: proc.poll() is None)
        seconds = (api.polls[polls] if ready else time.monotonic()) - started
        report = InitReport(seconds=seconds, error=api.init_error)
        pid = proc.pid
        if ready:
            report.rss_mb = kb_to_mb(status_kb(pid, "VmRSS"))
            report.peak_rss_mb = kb_to_mb(status_kb(pid, "VmHWM"))
            report.cpu_seconds = proc_cpu_seconds(pid)
        if group is not None:
            report.cgroup_peak_mb = bytes_to_mb(group.memory_peak())
            cpu_after = group.cpu_ns()
            if cpu_before is not None and cpu_after is not None:
                report.cpu_seconds = (cpu_after - cpu_before) / 1e9
        if self.profile_imports:
            self._quiet()
            report.handler_import_seconds = self._import_seconds()
        if not ready:
            if report.error is None:
                self._drain(proc)
                code = proc.poll()
                report.error = (
                    {"errorType": "Runtime.ExitError", "errorMessage": f"Runtime exited with error: {_exit(code)}"}
                    if code is not None
                    else {"errorType": "Sandbox.Timedout", "errorMessage": f"Init did not finish within {seconds:.1f}s"}
                )
            self._stop_environment()
        self.inits.append(report)
        return report

    def invoke(
        self,
        event: Any,
        client_context: dict[str, Any] | None = None,
        cognito_identity: dict[str, Any] | None = None,
        _redelivered: bool = False,
    ) -> Invocation:
        """One invocation, as Lambda makes it: in the warm environment if there is one, else after a cold start."""
        if self._api is None:
            self.open()
        api, group = self._api, self._cgroup
        assert api is not None
        request_id = str(uuid.uuid4())
        init: InitReport | None = None
        if self.pid is None:
            init = self.start()
            if self.pid is None:
                invocation = Invocation(
                    request_id, True, "init_error", error=init.error, init=init, logs=self.logs, cgroup_peak_mb=init.cgroup_peak_mb
                )
                self.invocations.append(invocation)
                return invocation
        proc = self._proc
        assert proc is not None
        pid = proc.pid
        timeout = self.function.timeout
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(int((time.time() + timeout) * 1000)),
            "Lambda-Runtime-Invoked-Function-Arn": self.function_arn,
            "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};"
            f"Parent={uuid.uuid4().hex[:16]};Sampled=0",
        }
        if client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = json.dumps(client_context)
        if cognito_identity is not None:
            headers["Lambda-Runtime-Cognito-Identity"] = json.dumps(cognito_identity)
        call = _Call(request_id, json.dumps(event).encode(), headers)
        # Per-invocation readings: the peak RSS (VmHWM) and the cgroup's peak start again from here.
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        if group is not None:
            group.reset_memory_peak()
        ooms_before = group.oom_kills() if group is not None else 0
        cpu_before = group.cpu_ns() if group is not None else None
        proc_cpu_before = proc_cpu_seconds(pid)
        with self._lines_lock:
            first_line = len(self._lines)
        submitted = time.monotonic()
        api.submit(call)
        deadline = submitted + timeout
        while not call.done.wait(0.05):
            if proc.poll() is not None or time.monotonic() >= deadline:
                break
        if not call.done.is_set() and call.sent_at is None and proc.poll() is not None and not _redelivered:
            # The runtime exited before it took this event (e.g. it crashed after its previous response was
            # refused): Lambda gives the event to a new execution environment.
            self._drain(proc)
            self._stop_environment()
            return self.invoke(event, client_context, cognito_identity, _redelivered=True)
        invocation = Invocation(request_id, init is not None, "success", init=init)
        if call.done.is_set():
            self._answered(invocation, call, pid, submitted)
        else:
            self._stopped(invocation, proc, submitted if call.sent_at is None else call.sent_at, ooms_before, timeout)
        if group is not None:
            invocation.cgroup_peak_mb = bytes_to_mb(group.memory_peak())
            cpu_after = group.cpu_ns()
            if cpu_before is not None and cpu_after is not None:
                invocation.cpu_seconds = (cpu_after - cpu_before) / 1e9
        if invocation.cpu_seconds is None and proc_cpu_before is not None:
            after = proc_cpu_seconds(pid)
            invocation.cpu_seconds = after - proc_cpu_before if after is not None else None
        with self._lines_lock:
            invocation.logs = [line for _, line in self._lines[first_line:]]
        self.invocations.append(invocation)
        return invocation

    # -- internals -------------------------------------------------------------------

    def _answered(self, invocation: Invocation, call: _Call, pid: int, submitted: float) -> None:
        """The runtime answered: the function's response, or its error."""
        invocation.duration_seconds = (call.done_at or 0.0) - (call.sent_at or submitted)
        self._quiet()
        invocation.rss_mb = kb_to_mb(status_kb(pid, "VmRSS"))
        invocation.peak_rss_mb = kb_to_mb(status_kb(pid, "VmHWM"))
        if call.kind == "response":
            invocation.response = _json_or_text(call.payload)
            return
        invocation.status = "error"
        doc = _json_or_text(call.payload)
        invocation.error = doc if isinstance(doc, dict) else {"errorMessage": str(doc)}
        invocation.error.setdefault("errorType", call.error_type or "Unhandled")

    def _stopped(self, invocation: Invocation, proc: subprocess.Popen[bytes], since: float, ooms_before: int, timeout: float) -> None:
        """No answer: the deadline passed (Lambda stops the environment), or the runtime died (OOM, an exit)."""
        group, request_id = self._cgroup, invocation.request_id
        invocation.duration_seconds = time.monotonic() - since
        died = proc.poll() is not None
        if not died:
            self._kill(proc)
        code = proc.wait()
        ooms = (group.oom_kills() if group is not None else 0) - ooms_before
        if not died:
            invocation.status = "timeout"
            invocation.error = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds",
            }
        elif ooms > 0:
            invocation.status = "oom"
            invocation.error = {
                "errorType": "Runtime.OutOfMemory",
                "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: signal: killed",
            }
        else:
            invocation.status = "exit"
            invocation.error = {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {_exit(code)}",
            }
        self._drain(proc)
        self._stop_environment()  # the next invocation is a cold start

    def _read_output(self, proc: subprocess.Popen[bytes]) -> None:
        """Each line the runtime writes, as it comes, and when the pipe was last found empty (``_empty_at``)."""
        assert proc.stdout is not None
        fd, partial = proc.stdout.fileno(), b""
        while True:
            try:
                chunk = os.read(fd, 65536) if select.select([fd], [], [], 0.05)[0] else None
            except (OSError, ValueError):  # the pipe closed under us: the environment is being stopped
                chunk = b""
            with self._lines_lock:
                if chunk is None:
                    self._empty_at = time.monotonic()
                    continue
                *lines, partial = (partial + chunk).split(b"\n") if chunk else [partial, b""]  # b"": it ended
                self._lines.extend((time.monotonic(), raw.decode(errors="replace")) for raw in lines if raw or chunk)
            if not chunk:
                return

    def _quiet(self, at_most: float = 10.0) -> None:
        """Let what the runtime wrote before its response reach ``_lines``: it writes unbuffered before it posts,
        so once the reader has found the pipe empty since, every line is there."""
        asked = time.monotonic()
        while time.monotonic() < asked + at_most and self._reader is not None and self._reader.is_alive():
            with self._lines_lock:
                if self._empty_at > asked:
                    return
            time.sleep(0.01)

    def _drain(self, proc: subprocess.Popen[bytes]) -> None:
        if self._reader is not None and proc.poll() is not None:
            self._reader.join(timeout=2)

    def _import_seconds(self) -> float | None:
        """The handler's import, from ``-X importtime``'s lines, then taken out of the logs."""
        with self._lines_lock:
            seconds, self._lines = import_seconds(self._lines)
        return seconds

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        # Anything that left the process group is still in the cgroup.
        if self._cgroup is not None:
            for pid in self._cgroup.pids():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def _stop_environment(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            self._kill(proc)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if self._reader is not None:
                self._reader.join(timeout=2)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._cgroup is not None:  # what is left of the group's tasks (none, unless something escaped)
            for _ in range(50):
                pids = self._cgroup.pids()
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.02)
        if self._api is not None:
            self._api.withdraw()


def _exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:  # worded as Lambda words it ("Runtime exited with error: signal: killed")
        name = signal.Signals(-code).name.removeprefix("SIG")
        words = {"KILL": "killed", "TERM": "terminated", "SEGV": "segmentation fault", "ABRT": "aborted"}
        return "signal: " + words.get(name, name.lower())
    return f"exit status {code}"


def _json_or_text(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode(errors="replace")
