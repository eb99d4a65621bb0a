"""Answers a test makes an AWS call get, before it reaches the emulator (botocore ``before-send`` hooks)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders


class Raw:
    """The bit of a urllib3 response botocore reads."""

    def __init__(self, data: bytes):
        self._data = data

    def stream(self, *_: object, **__: object):
        yield self._data


def http_headers(fields: dict[str, str] | None = None) -> HTTPHeaders:
    """A response's headers as botocore types them (``AWSResponse`` copies them into its ``HeadersDict``)."""
    headers = HTTPHeaders()
    for name, value in (fields or {}).items():
        headers[name] = value
    return headers


def error_response(url: str, code: str, status: int | None = None) -> AWSResponse:
    """An AWS error as the service would send it: S3's XML (a code without ``Exception``), DynamoDB's JSON otherwise."""
    if not code.endswith("Exception"):  # S3: XML
        body = f"<Error><Code>{code}</Code><Message>{code}</Message></Error>".encode()
        return AWSResponse(url, status or 403, http_headers({"Content-Type": "application/xml"}), Raw(body))
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": code}).encode()
    return AWSResponse(url, status or 400, http_headers({"Content-Type": "application/x-amz-json-1.0"}), Raw(body))


def deny(code: str, when: Callable[[Any], bool] | None = None):
    """A before-send hook answering every request (``when`` it matches) with the error ``code``."""

    def respond(request, **_: object):
        if ("amazonaws.com" in request.url or "127.0.0.1" in request.url) and (when is None or when(request)):
            return error_response(request.url, code)
        return None

    return respond
