"""Every boto3 client the package uses: lazily created, counted, and its errors made domain errors.

Clients are created lazily (never at import time), counted (every API call is tallied by
operation for the sweep's stats) and their errors are turned into :class:`AwsError`, so no
other room inspects botocore error dicts.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, InvalidRegionError
from botocore.parsers import ResponseParserError
from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url, validate_region_name

from tfjanitor.aws import lean
from tfjanitor.durations import Deadline

if TYPE_CHECKING:  # pragma: no cover
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client


class AwsError(Exception):
    """An AWS call failed for good (after botocore's retries)."""

    def __init__(self, operation: str, code: str, message: str):
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.message = message

    @property
    def unreadable(self) -> bool:
        """S3 refused to serve an object as asked (400): an object encrypted with a customer-provided key (SSE-C) is
        read without that key. Not "no such object": the object is there, and nobody but the key holder can read it."""
        return self.operation in {"HeadObject", "GetObject"} and self.code in {"BadRequest", "InvalidRequest"}

    @property
    def run_ending(self) -> bool:
        """Not sent: the run ends sooner than one attempt can take (:class:`RunEnding`). Nothing failed; the next
        run does it."""
        return self.code == "RunEnding"

    @property
    def not_found(self) -> bool:
        """AWS said the table, bucket or object does not exist (never a bare HTTP 404: see _translate)."""
        return self.code in {"ResourceNotFoundException", "TableNotFoundException", "NoSuchBucket", "NoSuchKey", "NotFound"}


class RunEnding(BotoCoreError):
    """A call not started: the run it serves ends sooner than one attempt can take (:meth:`AwsSession.run_until`).
    Raised before the request is sent, so botocore does not retry it; callers see an :class:`AwsError`."""

    fmt = "not sent: the run ends in {left:.1f} s, sooner than one attempt can take ({attempt:.0f} s)"


# A Lambda function's clients: an attempt that gets no answer gives up soon enough for the run to end in time
# (runtime/wiring.py keeps this much of a run after its notices are sent). AWS answers these calls in well under
# a second inside a region; the CLI keeps botocore-like timeouts for slow links.
LAMBDA_TIMEOUTS = (2.0, 10.0)  # connect, read: seconds


class MessageRefused(AwsError):
    """A destination refused this message for what it holds (too large, malformed): sending the same message
    again never works, unlike throttling, 5xx or access errors (``aws.topic``, ``aws.bus`` say which codes)."""


# What one API call can raise: AWS's answer, botocore's own failures, and a body it could not parse
# (an endpoint that is not AWS: a bare HTTP 404, an HTML error page).
CALL_ERRORS = (ClientError, BotoCoreError, ResponseParserError)

_HTTP_CODES = {"400": "BadRequest", "403": "AccessDenied", "503": "SlowDown"}
BARE_404 = "HTTP404"


def _translate(operation: str, exc: Exception) -> AwsError:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "Unknown"))
        if code == "404":
            # A status without an AWS error code. HEAD responses have no body, so there it is S3's "no such
            # object"; anywhere else it is not AWS saying the table or bucket does not exist (a proxy, a
            # wrong --endpoint-url): an error, never "missing".
            if operation.startswith("Head"):
                return AwsError(operation, "NotFound", str(err.get("Message") or "Not Found"))
            return AwsError(operation, BARE_404, "HTTP 404 without an AWS error code: is the endpoint an AWS endpoint?")
        code = _HTTP_CODES.get(code, code)  # HEAD-like errors carry only a status
        return AwsError(operation, code, str(err.get("Message") or code))
    return AwsError(operation, exc.__class__.__name__, str(exc))


@dataclass
class CallCounter:
    """Counts API calls by operation, HTTP attempts beyond the first (retries), and the depth of each chain of
    calls made one after another (the critical path: calls made in parallel by :meth:`AwsSession.in_parallel`
    count once)."""

    calls: Counter[str]
    attempts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _chain: threading.local = field(default_factory=threading.local, repr=False)

    def on_call(self, model: Any = None, **_: Any) -> None:
        with self._lock:
            self.calls[model.name if model is not None else "Unknown"] += 1
        self._chain.depth = self.depth() + 1

    def reset(self) -> None:
        """Start counting a new run (a warm Lambda invocation reuses the session and its clients)."""
        with self._lock:
            self.calls.clear()
            self.attempts = 0
        self._chain = threading.local()

    def on_send(self, **_: Any) -> None:
        with self._lock:
            self.attempts += 1

    def depth(self) -> int:
        """Calls made one after another so far by this thread, those of the workers it waited for included."""
        return getattr(self._chain, "depth", 0)

    def set_depth(self, depth: int) -> None:
        self._chain.depth = depth


IO_WORKERS = 8  # concurrent reads per fan-out (I/O bound; memory: a state download holds 64 KiB at a time)


T = TypeVar("T")
R = TypeVar("R")


def botocore_session(session: Any = None) -> botocore.session.Session:
    """The botocore session clients are made from: a new one, the one a boto3 session wraps, or this one."""
    if session is None:
        return botocore.session.Session()
    if isinstance(session, botocore.session.Session):
        return session
    return cast(botocore.session.Session, session._session)  # a boto3 Session's own botocore session


class AwsSession:
    """Regional, counted, lazily created clients for one sweep."""

    def __init__(
        self,
        session: Any = None,  # a boto3 or botocore session (default: a new botocore session)
        endpoint_url: str | None = None,
        counter: CallCounter | None = None,
        max_attempts: int = 5,
        service_endpoints: Mapping[str, str] | None = None,
        timeouts: tuple[float, float] = (5.0, 30.0),
    ):
        """``service_endpoints``: an endpoint per service (``{"s3": ..., "dynamodb": ...}``, a Terraform backend's
        ``endpoints``), for the services ``endpoint_url`` does not set. ``timeouts``: each attempt's connect and
        read timeouts, in seconds."""
        # Clients come from the botocore session underneath: a Lambda function never imports boto3 itself (its
        # import, s3transfer's with it, was a third of every cold start at 128 MB's CPU); the CLI's boto3 session
        # (a profile, assumed-role credentials) lends its botocore session.
        self._session = botocore_session(session)
        self._endpoint_url = endpoint_url
        self._service_endpoints = {k: v for k, v in (service_endpoints or {}).items() if v}
        self.counter = counter or CallCounter(Counter())
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        # botocore's standard retry mode: backoff with jitter on throttling and 5xx.
        self._max_attempts = max_attempts
        self._timeouts = timeouts
        self._run: Deadline | None = None

    @property
    def attempt_seconds(self) -> float:
        """The longest one attempt of a call can take before it gives up (its connect and read timeouts)."""
        return sum(self._timeouts)

    def run_until(self, deadline: Deadline | None) -> None:
        """The run these clients now serve ends with ``deadline`` and its reserve (a Lambda's timeout; None: no
        end). From :attr:`attempt_seconds` before that end, no attempt of any call is sent (:class:`RunEnding`):
        whatever a run still asks for near its end, retries included, it ends in time."""
        self._run = deadline

    def _in_time(self, **_: Any) -> None:
        run = self._run
        if run is not None and (left := run.ends_in()) < self.attempt_seconds:
            raise RunEnding(left=left, attempt=self.attempt_seconds)

    def in_parallel(self, work: Callable[[T], R], items: Iterable[T], workers: int = IO_WORKERS) -> list[R]:
        """``work`` mapped over ``items``, a few at a time (boto3 clients are thread-safe), results in order.
        Each worker thread's calls chain on from this thread's depth; this thread then waits for the deepest."""
        todo = list(items)
        if len(todo) <= 1:
            return [work(item) for item in todo]
        counter, base = self.counter, self.counter.depth()
        fork = object()
        ends: list[int] = []

        def one(item: T) -> R:
            chain = counter._chain
            if getattr(chain, "fork", None) is not fork:  # this worker's first item of this fan-out
                chain.fork, chain.depth = fork, base
            try:
                return work(item)
            finally:
                ends.append(counter.depth())

        try:
            with ThreadPoolExecutor(max_workers=min(workers, len(todo))) as pool:
                return list(pool.map(one, todo))
        finally:
            counter.set_depth(max(ends, default=base))

    @property
    def endpoint_url(self) -> str | None:
        return self._endpoint_url or os.environ.get("AWS_ENDPOINT_URL")

    def fork(self) -> AwsSession:
        """The same credentials and endpoint in a session of its own (own clients, own call counts), for
        reading another region concurrently: sessions are not thread-safe."""
        creds = self._session.get_credentials()
        frozen = creds.get_frozen_credentials() if creds is not None else None
        session = botocore.session.Session()
        if frozen is not None and frozen.access_key and frozen.secret_key:
            session.set_credentials(frozen.access_key, frozen.secret_key, frozen.token)
        region = self._session.get_config_variable("region")
        if region:
            session.set_config_variable("region", region)
        forked = AwsSession(
            session,
            self._endpoint_url,
            max_attempts=self._max_attempts,
            service_endpoints=self._service_endpoints,
            timeouts=self._timeouts,
        )
        forked.run_until(self._run)
        return forked

    def client(self, service: str, region: str) -> Any:
        """A counted client of any other service (STS, EC2) in ``region``."""
        return self._client(service, region)

    def _client(self, service: str, region: str) -> Any:
        cached = self._clients.get((service, region))
        if cached is not None:
            return cached
        with self._lock:  # boto3 sessions are not thread-safe while creating clients
            return self._new_client(service, region)

    def _new_client(self, service: str, region: str) -> Any:
        cached = self._clients.get((service, region))
        if cached is not None:
            return cached
        endpoint = self._endpoint_url or self._service_endpoints.get(service)
        custom_endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL")
        config = Config(
            retries={"mode": "standard", "max_attempts": self._max_attempts},
            connect_timeout=self._timeouts[0],
            read_timeout=self._timeouts[1],
            s3={"addressing_style": "path"} if custom_endpoint else None,
        )
        try:
            client = self._session.create_client(service, region_name=region, endpoint_url=endpoint, config=config)
        except (BotoCoreError, ValueError) as exc:  # a malformed region or endpoint URL
            raise AwsError("CreateClient", exc.__class__.__name__, str(exc)) from exc
        lean.register(client, service)  # the bulk calls a sweep makes parse only what it reads (aws/lean.py)
        client.meta.events.register("before-call", self.counter.on_call)
        client.meta.events.register("before-send", self._in_time)  # first: an attempt not sent is not counted
        client.meta.events.register("before-send", self.counter.on_send)
        self._clients[(service, region)] = client
        return client

    def dynamodb(self, region: str) -> DynamoDBClient:
        return cast("DynamoDBClient", self._client("dynamodb", region))

    def s3(self, region: str) -> S3Client:
        return cast("S3Client", self._client("s3", region))

    def sns(self, region: str) -> Any:
        return self._client("sns", region)


def profile_session(profile: str | None, region: str | None, endpoint_url: str | None = None) -> Any:
    """A boto3 session chosen the way the AWS CLI chooses one (profile, then environment).

    Raises :class:`AwsError` for a profile that does not exist, a broken configuration, or a region
    name or endpoint URL no client could be made with (botocore would only say so at the first call).
    """
    import boto3  # the CLI's: the AWS CLI's profile and environment rules (never imported by a function)

    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        if session.region_name:
            validate_region_name(session.region_name)
    except InvalidRegionError:
        raise AwsError("Session", "InvalidRegion", f"not a region name: {session.region_name!r} (e.g. us-east-1)") from None
    except BotoCoreError as exc:
        raise AwsError("Session", exc.__class__.__name__, str(exc)) from exc
    if endpoint_url and not valid_endpoint_url(endpoint_url):
        raise AwsError("Session", "InvalidEndpoint", f"not an endpoint URL: {endpoint_url!r} (e.g. http://127.0.0.1:5000)")
    return session


def valid_endpoint_url(url: str) -> bool:
    """Whether botocore can make a client with this endpoint URL (it would only fail at the first call)."""
    return bool(is_valid_endpoint_url(url) or is_valid_ipv6_endpoint_url(url))
