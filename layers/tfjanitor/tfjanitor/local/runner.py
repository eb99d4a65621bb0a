"""Run the stack on a laptop: template.yaml's functions, the way Lambda would, against an emulator.

- Functions, handlers, environment and events come from SAM CLI's own template providers
  (what ``sam local`` stands on), so Globals, parameters and ``!Ref`` resolve as in AWS.
- Parameters are checked as CloudFormation checks them when it creates a change set (required
  values, AllowedValues, AllowedPattern per list element, Rules), with the same messages.
- Scheduled functions run on their rate, optionally compressed (``time_scale``).
- The lock table's DynamoDB stream is polled and handed to the stream function in the
  template's batch size, in Lambda's record shape; partial batch failures are retried
  from the first failed record, up to the template's retry limit, then set aside (DLQ).
- The stack's own resources (findings table, alert topic) are created in the emulator;
  SNS messages are captured through an SQS subscription and shown as the emails a user
  would get (and written as ``.eml`` files), each with the chat card Chatbot would show.
- Every alert transition is also put on the emulator's EventBridge bus (the template's
  ``EVENT_BUS_ARN``, ``AWS::Region`` resolved to the runner's region), for a rule to route.

Not for the Lambda layer's hot path: imported only by ``tfjanitor local`` and the demo.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3

from tfjanitor.local.mail import CapturedEmail, format_email, write_eml
from tfjanitor.local.template import LocalFunction, load_functions
from tfjanitor.runtime.settings import auditor_settings, stream_settings, sweeper_settings

FINDINGS_TABLE = "tfjanitor-findings"
ALERT_TOPIC = "tfjanitor-alerts"
CAPTURE_QUEUE = "tfjanitor-alert-capture"
DEAD_LETTER_QUEUE = "tfjanitor-stream-dlq"


class FakeContext:
    """Lambda's context: the remaining time counts down from the function's ``Timeout``."""

    def __init__(self, name: str, region: str, timeout: float = 240, memory: int = 256):
        self.function_name = name
        self.memory_limit_in_mb = memory
        self.aws_request_id = f"local-{time.monotonic_ns()}"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{name}"
        self._ends = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._ends - time.monotonic()) * 1000))


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A record read with boto3 from the emulator's stream, in the shape Lambda delivers."""
    out: dict[str, Any] = json.loads(json.dumps(record, default=str))
    stamp = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
    if isinstance(stamp, datetime):
        out["dynamodb"]["ApproximateCreationDateTime"] = stamp.timestamp()
    out["awsRegion"] = stream_arn.split(":")[3]  # moto says us-east-1 whatever the table's region
    out["eventSourceARN"] = stream_arn
    return out


@dataclass
class Metric:
    at: float
    name: str
    dimensions: dict[str, str]
    values: list[float]


@dataclass
class LocalStack:
    template: Path
    endpoint_url: str
    region: str
    parameters: dict[str, str] = field(default_factory=dict)
    time_scale: float = 1.0
    emails_dir: Path | None = None
    echo: Callable[[str], None] = print
    metrics: list[Metric] = field(default_factory=list)
    emails: list[CapturedEmail] = field(default_factory=list)
    invocations: list[tuple[str, Any]] = field(default_factory=list)
    log_level: str = "ERROR"  # findings are shown as emails; logs only for failures
    stack_name: str = "tfjanitor"  # AWS::StackName (the emails name it, with its dashboard)
    # As deployed: ``sam build``'s artefacts, the template created as a CloudFormation stack in the emulator
    # (local/stack.py), each function run in a Lambda box (local/lambda_box.py) with that stack's configuration, its
    # MemorySize and (unless ``full_cpu``) its CPU share. Otherwise the handlers run in this process (tests: fast).
    as_deployed: bool = False
    build_dir: Path | None = None  # where sam build writes (default: .aws-sam/tfjanitor-local next to the template)
    full_cpu: bool = False

    def __post_init__(self) -> None:
        self._boxes: dict[str, Any] = {}
        self.deployed: Any = None  # the stack created in the emulator (as deployed): local.stack.DeployedStack
        self._modules: dict[str, Any] = {}
        self._next_run: dict[str, float] = {}
        self._iterators: dict[str, str] = {}
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._retries: dict[str, int] = {}

    # -- emulator resources ------------------------------------------------------

    def client(self, service: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]  # the stubs overload literal service names, not a str
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        )

    def setup(self) -> None:
        """Create the stack's own resources in the emulator and resolve the template's functions."""
        if self.as_deployed:
            self._setup_deployed()
            return
        ddb, sns, sqs = self.client("dynamodb"), self.client("sns"), self.client("sqs")
        with contextlib.suppress(ddb.exceptions.ResourceInUseException):
            ddb.create_table(
                TableName=FINDINGS_TABLE,
                BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "Fingerprint", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "Fingerprint", "AttributeType": "S"}],
            )
        self.topic_arn = sns.create_topic(Name=ALERT_TOPIC)["TopicArn"]
        self._capture(self.topic_arn)
        self.dlq_url = sqs.create_queue(QueueName=DEAD_LETTER_QUEUE)["QueueUrl"]
        params = self._stream_parameters()
        self.functions = load_functions(self.template, params, {"AWS::StackName": self.stack_name, "AWS::Region": self.region})
        resources = {"FindingsTable": FINDINGS_TABLE, "AlertTopic": self.topic_arn}
        for fn in self.functions:  # a !Ref to one of the stack's resources resolves to its logical ID
            fn.environment = {k: ",".join(resources.get(part, part) for part in v.split(",")) for k, v in fn.environment.items()}
            self._describe(fn)

    def _stream_parameters(self) -> dict[str, str]:
        params = dict(self.parameters)
        if "LockTableStreamArn" not in params:
            table = params.get("LockTableNames", "terraform-state-lock").split(",")[0]
            arn = self.ensure_stream(table)
            if arn:
                params["LockTableStreamArn"] = arn
        return params

    def _capture(self, topic_arn: str) -> None:
        """A queue subscribed to the alert topic: every message SNS accepted, shown as the email it is."""
        sqs, sns = self.client("sqs"), self.client("sns")
        self.capture_url = sqs.create_queue(QueueName=CAPTURE_QUEUE)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.capture_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})

    def _setup_deployed(self) -> None:
        """Build, deploy the template into the emulator, and give each function a Lambda box configured as deployed."""
        from tfjanitor.local.lambda_box import BoxFunction, LambdaBox  # noqa: PLC0415
        from tfjanitor.local.runtimes import sam_build  # noqa: PLC0415
        from tfjanitor.local.stack import deploy  # noqa: PLC0415

        params = self._stream_parameters()
        build_dir = self.build_dir or self.template.resolve().parent / ".aws-sam" / "tfjanitor-local"
        self.echo(f"[local] sam build into {build_dir} ...")
        built = sam_build(self.template.resolve().parent, build_dir)
        stack = deploy(
            built, self.endpoint_url, self.region, self.stack_name, params, build_dir=build_dir, event_source_mappings=False
        )  # the runner polls the stream, as Lambda's poller does
        self.echo(f"[local] stack {self.stack_name}: {len(stack.resources)} resources created in the emulator")
        self.deployed = stack
        self.topic_arn = stack.alert_topic_arn
        self._capture(self.topic_arn)
        self.dlq_url = self.client("sqs").create_queue(QueueName=DEAD_LETTER_QUEUE)["QueueUrl"]
        self.functions = load_functions(built, params, {"AWS::StackName": self.stack_name, "AWS::Region": self.region})
        # The log level as the runner's (Lambda's advanced logging controls, AWS_LAMBDA_LOG_LEVEL, win over Powertools').
        overrides = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "POWERTOOLS_LOG_LEVEL": self.log_level,
            "AWS_LAMBDA_LOG_LEVEL": self.log_level,
            "POWERTOOLS_TRACE_DISABLED": "true",
            **{k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN") if k in os.environ},
        }
        for fn in self.functions:
            deployed = stack.functions[fn.name]
            fn.environment = dict(deployed.environment)  # the deployed stack's configuration
            box_fn = BoxFunction(
                fn.name,
                fn.code_dir,
                fn.handler,
                list(fn.layers),
                fn.runtime,
                deployed.memory,
                float(deployed.timeout),
                fn.environment,
                function_name=deployed.name,
                log_group=fn.log_group,
                log_format=fn.log_format,
                application_log_level=fn.application_log_level,
            )
            self._boxes[fn.name] = LambdaBox(
                box_fn, overrides, region=self.region, cpu_share=1.0 if self.full_cpu else None, echo=self.echo
            ).open()
            self._describe(fn)

    def _describe(self, fn: LocalFunction) -> None:
        self.echo(
            f"[local] {fn.name}: {fn.handler} from {fn.code_dir}"
            + (f", every {fn.schedule_seconds / self.time_scale:g}s (rate / {self.time_scale:g})" if fn.schedule_seconds else "")
            + (f", stream batch size {fn.stream_event['BatchSize']}" if fn.stream_event else "")
        )
        props = fn.stream_event
        if props is not None and str(props.get("Stream", "")).startswith("arn:aws:dynamodb"):
            self._open_iterator(fn, props)

    def dashboard_body(self) -> dict[str, Any]:
        """The dashboard body the deployed stack created (as deployed only: the template's, resolved)."""
        name = self.deployed.physical("Dashboard")
        return dict(json.loads(self.client("cloudwatch").get_dashboard(DashboardName=name)["DashboardBody"]))

    def close(self) -> None:
        """End every Lambda box (their processes and cgroups)."""
        for box in self._boxes.values():
            box.close()
        self._boxes.clear()

    def ensure_stream(self, table: str) -> str | None:
        ddb = self.client("dynamodb")
        try:
            desc = ddb.describe_table(TableName=table)["Table"]
        except ddb.exceptions.ResourceNotFoundException:
            self.echo(f"[local] lock table {table} does not exist yet: no stream monitor")
            return None
        spec = desc.get("StreamSpecification") or {}
        if not spec.get("StreamEnabled"):
            self.echo(f"[local] enabling NEW_AND_OLD_IMAGES stream on {table} (emulator only)")
            desc = ddb.update_table(
                TableName=table, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
            )["TableDescription"]
        return str(desc["LatestStreamArn"])

    # -- invoking a function the way Lambda would --------------------------------

    def _module(self, fn: LocalFunction) -> Any:
        if fn.name not in self._modules:
            module_name, _, _ = fn.handler.rpartition(".")
            path = fn.code_dir / f"{module_name.replace('.', '/')}.py"
            spec = importlib.util.spec_from_file_location(f"tfjanitor_local_{fn.name}", path)
            if spec is None or spec.loader is None:
                raise ImportError(f"{fn.name}: no Python module at {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._modules[fn.name] = module
        return self._modules[fn.name]

    def invoke(self, fn: LocalFunction, event: dict[str, Any]) -> Any:
        if fn.name in self._boxes:
            return self._invoke_boxed(fn, event)
        env = {
            **fn.environment,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": self.log_level,
        }
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        sweeper_settings.cache_clear()
        stream_settings.cache_clear()
        auditor_settings.cache_clear()
        out = io.StringIO()
        try:
            handler = getattr(self._module(fn), fn.handler.rpartition(".")[2])
            with contextlib.redirect_stdout(out):
                response = handler(event, FakeContext(fn.name, self.region, fn.timeout, fn.memory))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            self._collect_emf(out.getvalue())
        self.invocations.append((fn.name, response))
        return response

    def _invoke_boxed(self, fn: LocalFunction, event: dict[str, Any]) -> Any:
        """One invocation in the function's Lambda box. A failed one (an error, a timeout, OOM) is what Lambda makes
        of it: for a stream batch every record failed (redelivered), for a schedule the error."""
        invocation = self._boxes[fn.name].invoke(event)
        self._collect_emf("\n".join(invocation.logs))
        if invocation.ok:
            response = invocation.response
        elif "Records" in event:
            response = {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in event["Records"]]}
            self.echo(f"[local] {fn.name} failed ({invocation.status}): {invocation.error}")
        else:
            response = {"error": invocation.status, **(invocation.error or {})}
        if invocation.init is not None:
            self.echo(f"[local] {fn.name}: cold start, init {invocation.init.seconds:.1f}s")
        self.invocations.append((fn.name, response))
        return response

    def _collect_emf(self, stdout: str) -> None:
        for line in stdout.splitlines():
            if '"_aws"' not in line:
                if line.strip():
                    print(line, file=sys.stderr)
                continue
            blob = json.loads(line)
            for directive in blob["_aws"]["CloudWatchMetrics"]:
                dims = {d: str(blob[d]) for group in directive["Dimensions"] for d in group}
                for metric in directive["Metrics"]:
                    values = blob[metric["Name"]]
                    values = values if isinstance(values, list) else [values]
                    self.metrics.append(Metric(time.time(), metric["Name"], dims, [float(v) for v in values]))

    # -- schedules, stream, emails -------------------------------------------------

    def run_due_schedules(self, now: float) -> None:
        for fn in self.functions:
            period = fn.schedule_seconds
            if period is None:
                continue
            due = self._next_run.setdefault(fn.name, now)
            if now >= due:
                self._next_run[fn.name] = now + period / self.time_scale
                event = {
                    "version": "0",
                    "id": f"local-{int(now)}",
                    "detail-type": "Scheduled Event",
                    "source": "aws.scheduler",
                    "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "region": self.region,
                    "resources": [],
                    "detail": {},
                }
                response = self.invoke(fn, event)
                self.echo(f"[local] {fn.name} -> {response}")

    def _open_iterator(self, fn: LocalFunction, props: dict[str, Any]) -> None:
        """Where the event source mapping starts reading: LATEST is 'from when the stack started'."""
        streams = self.client("dynamodbstreams")
        arn = props["Stream"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        start = "TRIM_HORIZON" if props.get("StartingPosition") == "TRIM_HORIZON" else "LATEST"
        self._iterators[fn.name] = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType=start)["ShardIterator"]

    def poll_streams(self) -> None:
        streams = self.client("dynamodbstreams")
        for fn in self.functions:
            props = fn.stream_event
            if props is None or not str(props.get("Stream", "")).startswith("arn:aws:dynamodb"):
                continue
            arn = props["Stream"]
            if fn.name not in self._iterators:
                self._open_iterator(fn, props)
            pending = self._pending.setdefault(fn.name, [])
            resp = streams.get_records(ShardIterator=self._iterators[fn.name], Limit=1000)
            self._iterators[fn.name] = resp["NextShardIterator"]
            pending += [lambda_record(r, arn) for r in resp.get("Records", [])]
            batch_size = int(props.get("BatchSize", 100))
            while pending:
                batch = pending[:batch_size]
                response = self.invoke(fn, {"Records": batch}) or {}
                failures = [f["itemIdentifier"] for f in response.get("batchItemFailures", [])]
                if not failures:
                    del pending[: len(batch)]
                    self._retries[fn.name] = 0
                    continue
                # Lambda redelivers from the lowest failed sequence number on.
                seqs = [r["dynamodb"]["SequenceNumber"] for r in batch]
                first = min(seqs.index(f) for f in failures if f in seqs)
                del pending[:first]
                self._retries[fn.name] = self._retries.get(fn.name, 0) + 1
                if self._retries[fn.name] > int(props.get("MaximumRetryAttempts", 0)):
                    failed = pending.pop(0)
                    self.client("sqs").send_message(
                        QueueUrl=self.dlq_url,
                        MessageBody=json.dumps(
                            {
                                "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": fn.name},
                                "DDBStreamBatchInfo": {"streamArn": arn, "startSequenceNumber": failed["dynamodb"]["SequenceNumber"]},
                            }
                        ),
                    )
                    self.echo(
                        f"[local] {fn.name}: record {failed['dynamodb']['SequenceNumber']} failed every "
                        "retry: set aside in the dead-letter queue"
                    )
                    self._retries[fn.name] = 0
                break  # retry on the next poll

    def drain_emails(self) -> list[CapturedEmail]:
        sqs = self.client("sqs")
        new: list[CapturedEmail] = []
        while True:
            messages = sqs.receive_message(QueueUrl=self.capture_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            for message in messages:
                doc = json.loads(message["Body"])
                # A notice too large for everything leaves its link-free copy out (aws.topic): the email has it all.
                email = CapturedEmail(
                    doc["subject"], doc["email"], doc.get("plain", doc["email"]), datetime.now(timezone.utc), doc.get("chat", "")
                )
                new.append(email)
                sqs.delete_message(QueueUrl=self.capture_url, ReceiptHandle=message["ReceiptHandle"])
        for email in new:
            self.emails.append(email)
            self.echo(format_email(email))
            if self.emails_dir is not None:
                write_eml(email, self.emails_dir, len(self.emails), self.parameters.get("AlertEmail"))
        return new

    def step(self) -> None:
        self.run_due_schedules(time.monotonic())
        self.poll_streams()
        self.drain_emails()

    def run(self, duration: float, stop: Callable[[], bool] | None = None, interval: float = 0.25) -> None:
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline and not (stop and stop()):
            self.step()
            time.sleep(interval)
