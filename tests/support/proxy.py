"""A loopback proxy in front of the emulator that kills Terraform's digest write.

:class:`DigestStallProxy` is the emulator proxy (``tfjanitor.local.proxy``) that, once armed, holds the
next DynamoDB ``PutItem`` of a ``Digest`` (Terraform's digest write, which follows its state write) and
never forwards it: a test can kill Terraform between its state write and its digest write.
"""

from __future__ import annotations

import threading

from tfjanitor.local.proxy import EmulatorProxy


class DigestStallProxy(EmulatorProxy):
    def __init__(self, upstream: str):
        super().__init__(upstream)
        self.stalled = threading.Event()  # set when the digest write arrived (and was held)
        self._armed = threading.Event()
        self._release = threading.Event()

    def arm(self) -> None:
        self._armed.set()

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:
        target = next((v for k, v in headers.items() if k.lower() == "x-amz-target"), "")
        if self._armed.is_set() and not self.stalled.is_set() and target.endswith(".PutItem") and b'"Digest"' in body:
            self.stalled.set()
            self._release.wait(timeout=120)  # meanwhile the client is killed: nothing is ever written
            return 500, [], b""
        return super()._forward(method, path, headers, body)

    def stop(self) -> None:
        self._release.set()
        super().stop()
