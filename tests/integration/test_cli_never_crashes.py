"""`tfjanitor` given hostile or broken input: never a traceback, exit codes 0/1/2 (130 on Ctrl-C), and with
--format json exactly one JSON object on stdout, whatever went wrong."""

from __future__ import annotations

import http.server
import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.integration.test_cli import run
from tests.support.builders import lock_info, put_lock
from tfjanitor import __version__
from tfjanitor.cli.main import main
from tfjanitor.scan.sweeper import Sweeper

KEY = "dev/terraform.tfstate"


def one_json_object(stdout: str) -> dict:
    doc, end = json.JSONDecoder().raw_decode(stdout)
    assert stdout[end:].strip() == "", "more than one JSON value on stdout"
    assert isinstance(doc, dict)
    return doc


@pytest.fixture
def bare_404() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers every request with a bare 404 (no body, no AWS error code)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_bad_input_is_exit_2_one_line_and_one_json_object(backend, tmp_path, monkeypatch, capsys) -> None:
    """In-process (a subprocess per case is slow): an exception escaping main() would fail the test."""
    monkeypatch.setenv("AWS_REGION", REGION)
    missing = str(tmp_path / "none")
    no_credentials = {
        "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None,
        "AWS_CONFIG_FILE": missing,
        "AWS_SHARED_CREDENTIALS_FILE": missing,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    cases: list[tuple[list[str], dict[str, str | None]]] = [
        (["scan", "--region", "us east 1", "--table", TABLE], {}),
        (["unlock", "--region", "us east 1", "--table", TABLE, f"{BUCKET}/{KEY}", "--yes"], {}),
        (["scan", "--table", TABLE, "--profile", "no-such-profile"], {}),
        (["scan", "--table", TABLE, "--endpoint-url", "not a url"], {}),
        (["scan", "--table", TABLE, "--skip-audit"], {"AWS_ENDPOINT_URL": "not a url either"}),
        (["scan", "--table", TABLE], no_credentials),
        (["unlock", "--table", TABLE, f"{BUCKET}/{KEY}", "--yes"], no_credentials),
        (["scan"], {}),  # argparse: --table is required
        (["scan", "--table", TABLE, "--stale-after", "soon"], {}),
        (["unlock", "--table", TABLE, "no-slash"], {}),
        (["unlock", "--table", TABLE], {}),
        (["local", "--param", "novalue"], {}),
        (["no-such-command"], {}),
        ([], {}),
    ]
    for args, env in cases:
        with monkeypatch.context() as patch:
            for name, value in env.items():
                if value is None:
                    patch.delenv(name, raising=False)
                else:
                    patch.setenv(name, value)
            code = main([*args, "--format", "json"])
            out, err = capsys.readouterr()
            assert code == 2, (args, err)
            doc = one_json_object(out)
            assert doc["complete"] is False and doc["errors"] and doc["errors"][0]["code"], (args, doc)
            # Without --format json: said in words (stderr, or the command's report).
            assert main(args) == 2, args
            out, err = capsys.readouterr()
            assert (err + out).strip(), args


def test_an_unexpected_error_is_exit_2_with_one_line_never_1(backend, monkeypatch, capsys) -> None:
    """1 means findings: a bug must never look like one."""

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug\nwith two lines")

    monkeypatch.setattr(Sweeper, "sweep", broken)
    assert main(["scan", "--table", TABLE, "--format", "json"]) == 2
    out, err = capsys.readouterr()
    assert one_json_object(out)["errors"][0]["code"] == "InternalError"
    assert err.count("\n") == 1 and "RuntimeError: a bug\\nwith two lines" in err


def test_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "tfjanitor", "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == f"tfjanitor {__version__}"


def test_a_bare_http_404_is_an_error_not_a_missing_table(backend, bare_404) -> None:
    proc = run(backend, "scan", "--table", TABLE, "--bucket", BUCKET, "--endpoint-url", bare_404, "--format", "json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    doc = one_json_object(proc.stdout)
    assert doc["complete"] is False
    assert doc["findings"] == []  # never "lock table does not exist", never an orphan digest
    assert {e["check"] for e in doc["errors"]} >= {"scan_table", "describe_table", "list_bucket"}
    assert all(e["code"] != "ResourceNotFoundException" for e in doc["errors"])
    unlock = run(backend, "unlock", "--table", TABLE, f"{BUCKET}/{KEY}", "--yes", "--endpoint-url", bare_404)
    assert unlock.returncode == 2 and "No lock on" not in unlock.stdout and "Traceback" not in unlock.stderr


def test_a_closed_pipe_ends_quietly_with_the_scan_exit_code(backend) -> None:
    put_lock(client("dynamodb", backend), BUCKET, KEY, lock_info("x", age=timedelta(hours=2)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | backend.env() | {"AWS_REGION": REGION}
    for fmt in ("table", "json"):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tfjanitor", "scan", "--table", TABLE, "--format", fmt],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # `| head -c0`: the reader is gone before tfjanitor writes
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 1, stderr  # the stale lock: exit 1, as if the output had been read
        assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    shell = subprocess.run(
        [
            "bash",
            "-c",
            f'{sys.executable} -m tfjanitor scan --table {TABLE} | head -c1 >/dev/null; echo "exit=${{PIPESTATUS[0]}}" >&2',
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert "exit=1" in shell.stderr and "Traceback" not in shell.stderr, shell.stderr


def test_ctrl_c_at_the_unlock_prompt_exits_130_and_deletes_nothing(backend) -> None:
    ddb = client("dynamodb", backend)
    put_lock(ddb, BUCKET, KEY, lock_info(f"{BUCKET}/{KEY}", lock_id="aaaa-1111"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | backend.env() | {"AWS_REGION": REGION}
    primary, secondary = pty.openpty()  # a terminal to confirm on
    try:
        # Ctrl-C as at a terminal: a test run started in the background (nohup ... &) passes SIGINT ignored to its
        # children, and Python then never raises KeyboardInterrupt.
        interactive = (
            "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "runpy.run_module('tfjanitor', run_name='__main__')"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", interactive, "unlock", "--table", TABLE, f"{BUCKET}/{KEY}"],
            stdin=secondary,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stderr is not None
        prompt = b""
        while b"Only 'yes' releases" not in prompt:
            chunk = os.read(proc.stderr.fileno(), 4096)
            assert chunk, prompt
            prompt += chunk
        time.sleep(0.2)  # let it block in readline (not a timed assertion: the outcome is the same either way)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(primary)
        os.close(secondary)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err and b"interrupted" in err
    assert "Item" in ddb.get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}"}})
