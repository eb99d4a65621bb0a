"""The Lambda box itself (tfjanitor.local.lambda_box): the runtime API, the limits, failures as Lambda reports them.

Small handlers of their own (tests/support/lambda_functions), run by the real runtime interface client under
Python 3.13; no ``sam build`` needed. No assertion on time: the CPU test compares CPU time with wall time.
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.boxes import TEST_FUNCTIONS, runtime_dir
from tfjanitor.local.lambda_box import BoxFunction, LambdaBox
from tfjanitor.local.runtime_api import RuntimeApi

BOX = TEST_FUNCTIONS / "box"


@pytest.fixture(scope="module")
def runtime() -> Path:
    return runtime_dir()


def box(
    runtime: Path,
    handler: str,
    memory_mb: int = 128,
    timeout: float = 30,
    cpu_share: float | None = 1.0,
    code: Path = BOX,
    **kwargs: Any,
) -> LambdaBox:
    # A whole CPU by default: these tests are about the box, not about speed (the CPU test sets its own share).
    fn = BoxFunction(
        "BoxFunction",
        code,
        handler,
        memory_mb=memory_mb,
        timeout=timeout,
        environment={"FROM_TEMPLATE": "yes"},
        function_name="tfjanitor-BoxFunction",
        log_group="/aws/lambda/box",
    )
    return LambdaBox(fn, env_overrides={"AWS_REGION": "eu-west-1"}, cpu_share=cpu_share, runtime_dir=runtime, **kwargs)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]


def test_the_handler_gets_lambdas_context_and_environment_and_stays_warm(runtime: Path, monkeypatch) -> None:
    monkeypatch.setenv("TFJ_BOX_SENTINEL", "from the test process")  # the caller's environment stays out
    with box(runtime, "app.probe", memory_mb=192) as b:
        first = b.invoke({}, client_context={"custom": {"k": "v"}}, cognito_identity={"cognitoIdentityId": "id-1"})
        second = b.invoke({})
    assert first.ok and second.ok, (first.error, second.error)
    doc: dict[str, Any] = first.response
    ctx = doc["context"]
    assert ctx["aws_request_id"] == first.request_id and second.response["context"]["aws_request_id"] == second.request_id
    assert ctx["invoked_function_arn"] == "arn:aws:lambda:eu-west-1:123456789012:function:tfjanitor-BoxFunction"
    assert ctx["function_name"] == "tfjanitor-BoxFunction" and ctx["memory_limit_in_mb"] == "192"
    assert ctx["log_group_name"] == "/aws/lambda/box"
    assert 0 < ctx["remaining_ms"] <= 30_000  # from the deadline header
    assert ctx["client_context"] == {"k": "v"} and ctx["identity_id"] == "id-1"
    env = doc["environ"]
    assert env["FROM_TEMPLATE"] == "yes" and "TFJ_BOX_SENTINEL" not in env
    assert env["_HANDLER"] == "app.probe" and env["LAMBDA_TASK_ROOT"] == str(BOX) and doc["cwd"] == str(BOX)
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.13" and env["AWS_REGION"] == "eu-west-1"
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert doc["version"] == [3, 13] and doc["executable"].startswith(str(runtime))
    assert any(f.startswith(str(runtime)) and "/awslambdaric/" in f for f in doc["module_files"])  # the real client
    assert doc["dont_write_bytecode"] is True  # /opt and /var/task are read-only on Lambda
    # Warm: the same process served both; cold: only the first had an Init phase.
    assert first.cold and first.init is not None and first.init.seconds > 0
    assert not second.cold and second.init is None and second.response["pid"] == doc["pid"]
    assert b.environments == 1


def test_an_exception_is_a_failed_invocation_and_the_environment_stays_warm(runtime: Path) -> None:
    with box(runtime, "app.probe") as b:
        failed = b.invoke({"raise": "no such lock"})
        after = b.invoke({})
    assert failed.status == "error" and failed.error is not None
    assert failed.error["errorType"] == "ValueError" and failed.error["errorMessage"] == "no such lock"
    assert after.ok and not after.cold and b.environments == 1


def test_a_response_over_6_mb_is_refused_as_lambda_refuses_it(runtime: Path) -> None:
    with box(runtime, "app.probe", memory_mb=256) as b:
        big = b.invoke({"pad": 7 * 1024 * 1024})
        small = b.invoke({"pad": 10})
    assert big.status == "error" and big.error is not None and big.error["errorType"] == "Function.ResponseSizeTooLarge"
    assert small.ok  # the client exits after a refused response: then in a new environment, as Lambda would


def test_a_handler_whose_import_fails_is_an_init_error_and_the_next_invocation_starts_again(runtime: Path) -> None:
    with box(runtime, "app.lambda_handler", code=TEST_FUNCTIONS / "broken") as b:
        first = b.invoke({})
        second = b.invoke({})
    for invocation in (first, second):
        assert invocation.status == "init_error" and invocation.error is not None
        assert "cannot be imported" in invocation.error["errorMessage"]
    assert b.environments == 2 and b.pid is None


def test_past_its_deadline_an_invocation_times_out_its_environment_is_killed_and_the_next_is_cold(runtime: Path) -> None:
    with box(runtime, "app.sleep", timeout=2) as b:
        late = b.invoke({"seconds": 60, "child": True})
        after = b.invoke({"seconds": 0})
    assert late.status == "timeout" and late.error is not None
    assert late.error == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {late.request_id} Error: Task timed out after 2.00 seconds",
    }
    assert after.ok and after.cold and after.init is not None and b.environments == 2


def test_the_memory_limit_bites_a_handler_past_its_memory_size_is_oom_killed(runtime: Path) -> None:
    """64 MB: the runtime (~20 MB) and 16 MB more fit; 96 MB more do not. With 256 MB the same handler succeeds."""
    with box(runtime, "app.hog", memory_mb=64) as b:
        if not b.limits.enforced:
            pytest.skip(f"no cgroup on this machine: {b.limits}")
        fits = b.invoke({"mb": 16})
        killed = b.invoke({"mb": 96})
        next_one = b.invoke({"mb": 1})
    assert fits.ok and fits.response == {"kept_mb": 16}
    assert killed.status == "oom" and killed.error is not None
    assert killed.error["errorType"] == "Runtime.OutOfMemory"
    assert killed.error["errorMessage"] == f"RequestId: {killed.request_id} Error: Runtime exited with error: signal: killed"
    assert killed.cgroup_peak_mb is not None and killed.cgroup_peak_mb >= 60  # it reached the limit
    assert next_one.ok and next_one.cold and next_one.response == {"kept_mb": 1}  # a new environment
    with box(runtime, "app.hog", memory_mb=256) as roomy:
        assert roomy.invoke({"mb": 112}).ok  # the limit killed it, not the handler


def test_the_cpu_share_bites_a_tenth_of_a_cpu_gets_a_tenth_of_the_time(runtime: Path) -> None:
    with box(runtime, "app.spin", cpu_share=0.1) as b:
        if not b.limits.enforced:
            pytest.skip(f"no cgroup on this machine: {b.limits}")
        spun = b.invoke({"seconds": 2})
    assert spun.ok, spun.error
    ratio = spun.response["cpu"] / spun.response["wall"]
    assert ratio <= 0.1 * 1.3 + 0.02, ratio  # an unconfined spin gets a whole CPU (or what the machine has left)
    assert spun.cpu_seconds is not None and spun.cpu_seconds <= (0.1 * 1.3 + 0.02) * spun.duration_seconds + 0.05


def test_nothing_outlives_the_box_not_even_a_process_that_left_the_group(runtime: Path) -> None:
    with box(runtime, "app.sleep") as b:
        enforced = b.limits.enforced
        same_group = b.invoke({"child": True})
        runtime_pid = b.pid
        escaped = b.invoke({"child": True, "new_session": True}) if enforced else None
        groups = list(b.cgroup_dirs.values())
    assert same_group.ok and runtime_pid is not None
    assert not alive(runtime_pid) and not alive(same_group.response["child"])
    if escaped is not None:  # only the cgroup can find a process that started a session of its own
        assert escaped.ok and not alive(escaped.response["child"])
    assert groups == [] or not any(g.exists() for g in groups)


def test_the_runtime_api_refuses_what_lambda_refuses() -> None:
    api = RuntimeApi()
    try:
        host, port = api.address.split(":")

        def request(method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request(method, path, body)
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")

        status, doc = request("POST", "/2018-06-01/runtime/invocation/not-in-flight/response", b"{}")
        assert (status, doc["errorType"]) == (400, "InvalidRequestID")
        assert request("GET", "/2018-06-01/runtime/invocation/whatever")[0] == 404
        status, _ = request("POST", "/2018-06-01/runtime/init/error", b'{"errorMessage": "boom", "errorType": "E"}')
        assert status == 202 and api.init_error == {"errorType": "E", "errorMessage": "boom"}
    finally:
        api.close()


@pytest.fixture(autouse=True)
def _no_leftover_groups() -> Iterator[None]:
    yield
    for controller in ("memory", "cpu"):
        root = Path("/sys/fs/cgroup") / controller
        if root.exists():
            assert not list(root.glob(f"tfjanitor-box-{os.getpid()}-*")), "a box left its cgroup behind"
