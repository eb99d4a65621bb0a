"""The Lambda Runtime API (2018-06-01) on loopback, for the runtime interface client a Lambda box runs.

``/runtime/invocation/next`` blocks until an invocation is queued; the runtime answers with
``/runtime/invocation/{id}/response`` or ``/error``, or ``/runtime/init/error`` when its handler cannot be
imported; each carries the request id, deadline, function ARN and trace headers Lambda sends.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # synchronous invocation payload
API_PREFIX = "/2018-06-01/runtime"


@dataclass
class _Call:
    request_id: str
    body: bytes
    headers: dict[str, str]
    sent_at: float | None = None
    done_at: float | None = None
    kind: str | None = None  # response | error
    payload: bytes = b""
    error_type: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A runtime killed mid-request (timeout, OOM, close) leaves a broken connection: not worth a traceback."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class RuntimeApi:
    """The Lambda Runtime API (2018-06-01) on 127.0.0.1 and a free port, served by a thread.

    ``/invocation/next`` blocks until :meth:`submit` queues an invocation; the runtime answers with
    ``/invocation/{id}/response`` or ``/error``; an import that fails posts ``/init/error``. A request id that is
    not the one in flight is refused (400), a response over 6 MB too (413), as Lambda does."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[_Call] = []
        self._current: _Call | None = None
        self._closed = False
        self.polls: list[float] = []  # monotonic time of each /next
        self.init_error: dict[str, Any] | None = None
        self.refused: list[str] = []  # what was refused, for the report
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {"Content-Type": "application/json"}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != f"{API_PREFIX}/invocation/next":
                    self._send(404, b'{"errorType":"NotFound"}')
                    return
                call = api._next()
                if call is None:  # the box is closing
                    self.close_connection = True
                    self._send(500, b'{"errorType":"Runtime.Shutdown"}')
                    return
                self._send(200, call.body, call.headers)

            def do_POST(self) -> None:
                body = self._body()
                if self.path == f"{API_PREFIX}/init/error":
                    api._init_error(body, self.headers.get("Lambda-Runtime-Function-Error-Type"))
                    self._send(202, b'{"status":"OK"}')
                    return
                match = re.fullmatch(rf"{API_PREFIX}/invocation/([^/]+)/(response|error)", self.path)
                if not match:
                    self._send(404, b'{"errorType":"NotFound"}')
                    return
                status, answer = api._finish(match[1], match[2], body, self.headers.get("Lambda-Runtime-Function-Error-Type"))
                self._send(status, answer)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="runtime-api", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_port}"

    def submit(self, call: _Call) -> None:
        with self._cond:
            self._queue.append(call)
            self._cond.notify_all()

    def withdraw(self) -> None:
        """Forget what is queued or in flight (its environment is gone)."""
        with self._cond:
            self._queue.clear()
            self._current = None

    def wait_poll(self, after: int, timeout: float, alive: Any) -> bool:
        """Until the runtime has polled /next more than ``after`` times (True), ``alive()`` is false or time is up."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.polls) <= after:
                left = deadline - time.monotonic()
                if left <= 0 or not alive():
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next(self) -> _Call | None:
        with self._cond:
            self.polls.append(time.monotonic())
            self._cond.notify_all()
            while not self._queue and not self._closed:
                self._cond.wait(0.5)
            if self._closed:
                return None
            call = self._current = self._queue.pop(0)
            call.sent_at = time.monotonic()
            return call

    def _finish(self, request_id: str, kind: str, body: bytes, error_type: str | None) -> tuple[int, bytes]:
        with self._cond:
            call = self._current
            if call is None or call.request_id != request_id or call.done.is_set():
                self.refused.append(f"{kind} for {request_id}")
                return 400, json.dumps({"errorMessage": f"Invalid request ID: {request_id}", "errorType": "InvalidRequestID"}).encode()
            call.done_at, call.error_type = time.monotonic(), error_type
            if kind == "response" and len(body) > MAX_RESPONSE_BYTES:
                call.kind, call.payload = (
                    "error",
                    json.dumps(
                        {
                            "errorType": "Function.ResponseSizeTooLarge",
                            "errorMessage": f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload size "
                            f"({MAX_RESPONSE_BYTES} bytes).",
                        }
                    ).encode(),
                )
                status, answer = 413, b'{"errorType":"RequestEntityTooLarge"}'
            else:
                call.kind, call.payload = kind, body
                status, answer = 202, b'{"status":"OK"}'
            self._current = None
            call.done.set()
            self._cond.notify_all()
            return status, answer

    def _init_error(self, body: bytes, error_type: str | None) -> None:
        with self._cond:
            try:
                doc = json.loads(body or b"{}")
            except ValueError:
                doc = {"errorMessage": body.decode(errors="replace")}
            self.init_error = {"errorType": error_type or doc.get("errorType", "Runtime.Unknown"), **doc}
            self._cond.notify_all()
