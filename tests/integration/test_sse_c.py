"""States encrypted with a customer-provided key (SSE-C): S3 answers 400 to anyone without the key (issue 18.6).
Such a state is unverified (neither drift, nor healthy, nor an orphan digest) and the sweep stays complete."""

from __future__ import annotations

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.integration.conftest import kinds, session, sweep
from tests.support.builders import put_state, state_body
from tests.support.faults import error_response
from tfjanitor.aws.session import AwsSession
from tfjanitor.local.emulator import MotoServer
from tfjanitor.scan.sweeper import Sweeper

KEY = "sealed/terraform.tfstate"


def sealed(server: MotoServer) -> AwsSession:
    """A session whose reads of KEY's object get what S3 answers without the SSE-C key: 400."""
    aws = AwsSession(session(), endpoint_url=server.url, max_attempts=1)

    def refuse(request, **_: object):
        if "/sealed/terraform.tfstate" in request.url and not request.url.endswith(".tflock"):
            if request.method == "HEAD":
                return error_response(request.url, "BadRequest", 400)
            return error_response(request.url, "InvalidRequest", 400)
        return None

    aws.s3(REGION).meta.events.register("before-send.s3.*", refuse)
    return aws


def test_an_sse_c_state_is_unverified_not_an_error_or_drift(backend: MotoServer) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_state(s3, ddb, BUCKET, KEY, state_body(1), digest="f" * 32)  # its ETag cannot prove the digest: hashed
    put_state(s3, ddb, BUCKET, "open/terraform.tfstate", state_body(2))
    result = sweep(backend, aws=sealed(backend))
    assert result.complete and kinds(result) == []
    [unverified] = result.unverified
    assert unverified.key == KEY and "SSE-C" in unverified.reason and "400" in unverified.reason


def test_the_stream_monitor_check_never_calls_an_sse_c_state_missing(backend: MotoServer) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_state(s3, ddb, BUCKET, KEY, state_body(1), digest="f" * 32)
    result = Sweeper(sealed(backend)).check_state(REGION, TABLE, BUCKET, KEY)  # a HeadObject first: 400
    assert result.errors == [] and result.findings == []
    assert [u.key for u in result.unverified] == [KEY]
