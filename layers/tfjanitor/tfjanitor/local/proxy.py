"""A loopback HTTP proxy in front of the emulator: adds a fixed delay to every request (so a benchmark's
wall time counts round trips the way AWS would), and can make chosen regions fail the way a disabled
region does. Listens on 127.0.0.1 only; used by `make bench` and by tests."""

from __future__ import annotations

import http.client
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import urlsplit

_SIGNED_REGION = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")
_DISABLED = b'{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}'
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class EmulatorProxy:
    def __init__(self, upstream: str, delay_seconds: float = 0.0, failing_regions: set[str] | None = None):
        self.upstream = urlsplit(upstream)
        self.delay = delay_seconds
        self.failing = failing_regions or set()
        self.failed: list[str] = []  # regions of the requests answered as disabled
        self.requests = 0
        self._local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests += 1
                if proxy.delay:
                    time.sleep(proxy.delay)
                match = _SIGNED_REGION.search(self.headers.get("Authorization", ""))
                if match and match.group(1) in proxy.failing:
                    proxy.failed.append(match.group(1))
                    self._answer(400, [("Content-Type", "application/x-amz-json-1.0")], _DISABLED)
                    return
                status, headers, data = proxy._forward(self.command, self.path, dict(self.headers.items()), body)
                self._answer(status, headers, data)

            def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in _HOP_BY_HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = getattr(self._local, "conn", None)
        for attempt in range(2):  # a kept-alive connection the emulator closed: reconnect once
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(
                    self.upstream.hostname or "127.0.0.1", self.upstream.port, timeout=60
                )
            try:
                conn.request(
                    method, path, body=body or None, headers={k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
                )
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                conn = self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
