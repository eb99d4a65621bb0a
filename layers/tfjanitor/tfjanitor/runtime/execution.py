"""What one Lambda execution environment keeps between its invocations: one AWS session and its clients.

A boto3 session and its clients hold their service models (a few MB each) in reference cycles: built anew at
every invocation, each invocation's set survived until a full garbage collection, and a warm 128 MB sweeper
grew by about 14 MB per run until it was OOM-killed (issue 19, measured through tfjanitor.local.lambda_box).
Now the first invocation creates the session (never at import time: the emulator or the test must be set up
first) and every later one reuses it, its call counters reset: each run's stats, retries and critical path
count that run only. A change of endpoint, region or credentials in the environment (tests, the local runner)
gets a session of its own.
"""

from __future__ import annotations

import os

from tfjanitor.aws.session import LAMBDA_TIMEOUTS, AwsSession
from tfjanitor.durations import Deadline

# What boto3 reads from the environment to choose where and as whom to call.
_SESSION_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)

_shared: tuple[tuple[object, ...], AwsSession] | None = None


def _environment_key() -> tuple[object, ...]:
    service_endpoints = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL_")))
    return (*(os.environ.get(name) for name in _SESSION_ENV), service_endpoints)


def aws_session(deadline: Deadline | None = None) -> AwsSession:
    """This execution environment's session, its per-run counters reset (call it once at each invocation), for
    a run that ends with ``deadline`` and its reserve (the function's timeout): no call is sent that could not
    end before that (``AwsSession.run_until``)."""
    global _shared
    key = _environment_key()
    if _shared is None or _shared[0] != key:
        _shared = (key, AwsSession(timeouts=LAMBDA_TIMEOUTS))
    aws = _shared[1]
    aws.counter.reset()
    aws.run_until(deadline)
    return aws


def forget_session() -> None:
    """Drop the kept session (a test that loads a function afresh, as a new execution environment would)."""
    global _shared
    _shared = None
