"""Handlers that exercise the Lambda box itself (tests/integration/test_lambda_box.py, test_as_deployed.py).

Run only by the runtime interface client inside a box: stdlib only, plus whatever the box puts on the path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any


def probe(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Where everything was imported from, what Lambda's context says, and the environment Lambda sets."""
    imported: dict[str, str] = {}
    for name in event.get("import", []):
        module = __import__(name)
        imported[name] = str(getattr(module, "__file__", ""))
    files = sorted({str(getattr(m, "__file__", None)) for m in list(sys.modules.values()) if getattr(m, "__file__", None)})
    if event.get("raise"):
        raise ValueError(event["raise"])
    return {
        "pad": "x" * int(event.get("pad", 0)),
        "imported": imported,
        "module_files": files,
        "sys_path": sys.path,
        "executable": sys.executable,
        "version": list(sys.version_info[:2]),
        "cwd": os.getcwd(),
        "dont_write_bytecode": sys.dont_write_bytecode,
        "environ": dict(os.environ),
        "context": {
            "aws_request_id": context.aws_request_id,
            "invoked_function_arn": context.invoked_function_arn,
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "log_group_name": context.log_group_name,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "client_context": getattr(getattr(context, "client_context", None), "custom", None),
            "identity_id": getattr(getattr(context, "identity", None), "cognito_identity_id", None),
        },
        "pid": os.getpid(),
    }


_kept: list[bytearray] = []


def hog(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Allocate ``mb`` MB and keep it (touched, so it is resident), a megabyte at a time."""
    for _ in range(int(event["mb"])):
        _kept.append(bytearray(b"x" * (1024 * 1024)))
    return {"kept_mb": len(_kept)}


def sleep(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Sleep; with ``child``, first start a process that outlives this one unless its group or cgroup is ended."""
    child = None
    if event.get("child"):
        child = subprocess.Popen(["sleep", "300"], start_new_session=bool(event.get("new_session")))
    time.sleep(float(event.get("seconds", 0)))
    return {"child": child.pid if child else None}


def spin(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Burn CPU for ``seconds`` of wall time; how much CPU this process got meanwhile."""
    started, cpu = time.monotonic(), time.process_time()
    while time.monotonic() - started < float(event["seconds"]):
        sum(range(10_000))
    return {"wall": time.monotonic() - started, "cpu": time.process_time() - cpu}
