"""template.yaml as ``sam deploy`` would create it: SAM's translator (what ``make stackset`` writes), created with
CloudFormation ``CreateStack`` in moto server, read back and compared with the template (issue 19, parts 1 and 4).

moto's CloudFormation skips some resource types and drops some properties of those it creates (docs/aws-rules.md,
"What moto drops from a deployed stack"). What it keeps is compared with the template rendered for the stack
(tests/support/stack.py); what it drops is checked on the rendered template instead, and where the service's own API
in moto takes it (alarms, schedules, subscriptions, TTL, backups, layers, managed-policy attachments) it is replayed
there, so botocore checks every property's name and shape and moto checks that what it points at was created.
``MOTO_KEEPS`` / ``MOTO_DROPS`` classify every property of every resource: a property the template gains fails
``test_every_property_of_the_template_is_checked_somewhere`` until it is classified and checked.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REGION, TABLE, client
from tests.support.cfn import Rendered
from tests.support.stack import client as stack_client
from tests.support.stack import expected, policy_document, rendered
from tfjanitor.aws.session import AwsSession
from tfjanitor.local.emulator import MotoServer
from tfjanitor.local.stack import (
    EMULATOR_ARTIFACT_PREFIX,
    DeployedStack,
    DeployError,
    code_archives,
    deploy,
    emulator_parameters,
    for_emulator,
    plain_template,
)
from tfjanitor.runtime.lease import Lease
from tfjanitor.runtime.settings import AuditorSettings, StreamSettings, SweeperSettings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"

# What a user who wants everything gives (every optional branch of the template on); the stream ARN is added once the
# lock table's stream exists. The two-stack tests give only what is required (every optional branch off).
EVERYTHING = {
    "LockTableNames": f"{TABLE},platform-locks",
    "StateBucketNames": "tfstate-demo,tfstate-platform",
    "ExtraBucketNames": "tfstate-demo/envs",
    "StateKmsKeyArns": KEY,
    "PeerRegions": "us-east-1",
    "AlertEmail": "oncall@example.com",
    "AlertTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:pagerduty",
    "AccountAlias": "payments-prod",
    "StaleAfter": "2h",
    "SweepIntervalMinutes": "10",
    "AutoRelease": "true",
    "ProtectedKeyPatterns": "prod/**",
    "LogRetentionDays": "14",
    "DashboardRegions": f"{REGION},us-east-1",
}
STREAM = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}/stream/2026-12-03T09:39:32.703"
REQUIRED = {"StateBucketNames": "tfstate-demo", "AlertEmail": "oncall@example.com"}

# Resource type -> the properties moto 5.2.5 keeps when CloudFormation creates it (compared with the emulator here),
# and those it drops (checked on the rendered template, replayed through the service's API where moto has one).
MOTO_KEEPS: dict[str, set[str]] = {
    "AWS::Lambda::Function": {"Code", "Description", "Environment", "Handler", "MemorySize", "Role", "Runtime", "Timeout"},
    "AWS::Lambda::LayerVersion": {"Content", "CompatibleRuntimes", "Description"},
    "AWS::Lambda::EventSourceMapping": {
        "BatchSize",
        "BisectBatchOnFunctionError",
        "DestinationConfig",
        "EventSourceArn",
        "FunctionName",
        "FunctionResponseTypes",
        "MaximumBatchingWindowInSeconds",
        "MaximumRecordAgeInSeconds",
        "MaximumRetryAttempts",
        "StartingPosition",
    },
    "AWS::DynamoDB::Table": {"AttributeDefinitions", "BillingMode", "KeySchema"},
    "AWS::SNS::Topic": {"DisplayName", "KmsMasterKeyId"},
    "AWS::SQS::Queue": {"MessageRetentionPeriod", "SqsManagedSseEnabled"},
    "AWS::Logs::LogGroup": {"LogGroupName", "RetentionInDays"},
    "AWS::CloudWatch::Dashboard": {"DashboardBody", "DashboardName"},
    "AWS::IAM::ManagedPolicy": {"Description", "PolicyDocument"},
    "AWS::IAM::Role": {"AssumeRolePolicyDocument", "Policies", "Tags"},
}
MOTO_DROPS: dict[str, set[str]] = {
    "AWS::Lambda::Function": {"Architectures", "Layers", "LoggingConfig", "Tags"},
    "AWS::Lambda::LayerVersion": {"CompatibleArchitectures", "LayerName"},
    "AWS::DynamoDB::Table": {"PointInTimeRecoverySpecification", "SSESpecification", "TimeToLiveSpecification"},
    "AWS::IAM::Role": {"ManagedPolicyArns"},
    # Not created at all (moto's CloudFormation has no model of them): every property.
    "AWS::CloudWatch::Alarm": {
        "AlarmActions",
        "AlarmDescription",
        "ComparisonOperator",
        "DatapointsToAlarm",
        "Dimensions",
        "EvaluationPeriods",
        "MetricName",
        "Namespace",
        "OKActions",
        "Period",
        "Statistic",
        "Threshold",
        "TreatMissingData",
    },
    "AWS::SNS::Subscription": {"Endpoint", "Protocol", "TopicArn"},
    "AWS::Scheduler::Schedule": {"Description", "FlexibleTimeWindow", "ScheduleExpression", "Target"},
}
BASIC_EXECUTION = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
NOT_CREATED = {"AWS::CloudWatch::Alarm", "AWS::SNS::Subscription", "AWS::Scheduler::Schedule"}


@pytest.fixture(scope="module")
def plain() -> dict[str, Any]:
    """Translated once per module (SAM's translator, as `make stackset` runs it)."""
    return plain_template(TEMPLATE)[0]


@pytest.fixture(scope="module")
def archives() -> dict[str, bytes]:
    return code_archives(TEMPLATE)


@pytest.fixture
def full(emulator: MotoServer, plain: dict[str, Any], archives: dict[str, bytes]) -> DeployedStack:
    """The stack with every optional branch on, next to a lock table whose stream is on (docs/deploying.md's
    update-table command) and the existing topic AlertTopicArn names."""
    ddb = client("dynamodb", emulator)
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    stream = ddb.update_table(TableName=TABLE, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})[
        "TableDescription"
    ]["LatestStreamArn"]
    client("sns", emulator).create_topic(Name="pagerduty")
    return deploy(
        TEMPLATE, emulator.url, REGION, "tfjanitor", EVERYTHING | {"LockTableStreamArn": stream}, plain=plain, archives=archives
    )


def get_atts(node: Any) -> set[str]:
    """Every ``Logical.Attribute`` a template reads, with ``Fn::GetAtt`` or inside a ``Fn::Sub`` text."""
    if isinstance(node, list):
        return set().union(*(get_atts(n) for n in node))
    if not isinstance(node, dict):
        return set()
    found = set().union(*(get_atts(v) for v in node.values()))
    if isinstance(node.get("Fn::GetAtt"), list):
        found.add(".".join(node["Fn::GetAtt"]))
    sub = node.get("Fn::Sub")
    text = sub if isinstance(sub, str) else sub[0] if isinstance(sub, list) else ""
    found |= set(re.findall(r"\$\{(\w+\.\w+)\}", text))
    return found


def sha256(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


# ---------------------------------------------------------------------------------------------------------------
# What was created
# ---------------------------------------------------------------------------------------------------------------


def test_every_property_of_the_template_is_checked_somewhere(plain) -> None:
    for name, resource in plain["Resources"].items():
        kind = resource["Type"]
        assert kind in MOTO_KEEPS or kind in NOT_CREATED, f"{name}: {kind} is not classified"
        properties = set(resource.get("Properties", {}))
        unclassified = properties - MOTO_KEEPS.get(kind, set()) - MOTO_DROPS.get(kind, set())
        assert not unclassified, f"{name} ({kind}): {sorted(unclassified)} neither kept nor dropped by moto"
    assert not set(MOTO_KEEPS) & NOT_CREATED


@pytest.mark.parametrize("parameters", [EVERYTHING | {"LockTableStreamArn": STREAM}, REQUIRED], ids=["everything", "required"])
def test_what_the_emulator_is_given_means_what_the_template_means(plain, parameters) -> None:
    """for_emulator's rewrites (optional list elements, Sub values holding ${...}) change nothing CloudFormation would
    resolve: every resource and output renders the same from both templates, with every optional branch on or off."""
    given = emulator_parameters(plain, parameters)
    rewritten = for_emulator(plain)
    assert rewritten != plain  # there was something to rewrite
    physical = {name: f"physical-{name}" for name in plain["Resources"]}  # Refs and GetAtts as some stack resolves them
    attributes = {key: f"attribute-{key}" for key in get_atts(plain)}
    before, after = (Rendered(t, given, resources=physical, attributes=attributes) for t in (plain, rewritten))
    for name, resource in plain["Resources"].items():
        assert after.value(rewritten["Resources"][name]) == before.value(resource), name
    for name in plain["Outputs"]:
        assert after.output(name) == before.output(name), name
    # Every list parameter is passed (moto splits only a passed one), a default as its default.
    lists = {k for k, v in plain["Parameters"].items() if v["Type"] == "CommaDelimitedList"}
    assert lists <= set(given) and given["LockTableNames"] == parameters.get("LockTableNames", TABLE)
    assert given["ArtifactBucketPrefix"] == EMULATOR_ARTIFACT_PREFIX


def test_the_stack_reaches_create_complete_with_what_moto_models(full, plain) -> None:
    view = rendered(plain, full)
    holds = {name for name, r in plain["Resources"].items() if "Condition" not in r or view.condition(r["Condition"])}
    assert holds == set(plain["Resources"])  # every optional branch on
    created = set(full.resources)
    assert created == {n for n in holds if plain["Resources"][n]["Type"] not in NOT_CREATED}
    skipped = {plain["Resources"][n]["Type"] for n in holds - created}
    assert skipped == NOT_CREATED  # if moto starts creating one, check it against the emulator here
    status = stack_client("cloudformation", full).describe_stacks(StackName=full.name)["Stacks"][0]["StackStatus"]
    assert status == "CREATE_COMPLETE"
    # Every output as CloudFormation would print it (ScanCommand: every lock table, bucket and peer region).
    assert full.outputs == {name: view.output(name) for name in plain["Outputs"] if view.output(name) is not None}
    assert full.outputs["ScanCommand"].count(" --table ") == 2


def test_functions_are_created_with_the_templates_settings_and_environment(full, plain, archives) -> None:
    view = rendered(plain, full)
    functions = expected(plain, view, "AWS::Lambda::Function")
    assert set(functions) == set(full.functions) == {"SweeperFunction", "AuditorFunction", "StreamMonitorFunction"}
    awslambda = stack_client("lambda", full)
    for name, props in functions.items():
        deployed = full.functions[name]
        got = awslambda.get_function(FunctionName=deployed.name)
        config = got["Configuration"]
        assert (config["Handler"], config["Runtime"], config["MemorySize"], config["Timeout"], config["Description"]) == (
            props["Handler"],
            props["Runtime"],
            int(props["MemorySize"]),
            props["Timeout"],
            props["Description"],
        ), name
        assert config["Role"] == props["Role"]  # the function's own role, created by the stack
        # Every variable the template sets, resolved (Lambda passes strings: moto would pass a Number as a number).
        want = {k: str(v) for k, v in props["Environment"]["Variables"].items()}
        assert deployed.environment == want, name
        assert {k: str(v) for k, v in config["Environment"]["Variables"].items()} == want
        # The code is the zip uploaded for it, from the key the template names.
        assert got["Code"]["Location"].endswith("/" + props["Code"]["S3Key"])
        assert props["Code"]["S3Bucket"] == f"{full.parameters['ArtifactBucketPrefix']}-{REGION}"
        assert config["CodeSha256"] == sha256(archives[name])
        assert "Concurrency" not in got  # no reserved concurrency (issue 19.1)

        # Dropped by moto: the architecture, the layer, the log group and SAM's tag.
        assert config["Architectures"] == ["x86_64"] and config["Layers"] == [] and "LoggingConfig" not in config
        assert props["Architectures"] == ["arm64"]
        assert props["Layers"] == [full.layer_arn]
        log_groups = {g["logGroupName"] for g in stack_client("logs", full).describe_log_groups()["logGroups"]}
        assert props["LoggingConfig"]["LogFormat"] == "JSON" and props["LoggingConfig"]["LogGroup"] in log_groups
        assert (
            props["LoggingConfig"]["LogGroup"]
            == {
                "SweeperFunction": f"/aws/lambda/{full.name}-sweeper",
                "AuditorFunction": f"/aws/lambda/{full.name}-auditor",
                "StreamMonitorFunction": f"/aws/lambda/{full.name}-stream-monitor",
            }[name]
        )
        assert {"Key": "lambda:createdBy", "Value": "SAM"} in props["Tags"]
        assert awslambda.list_tags(Resource=deployed.arn)["Tags"] == {}
        # Replayed: moto's Lambda takes Layers and checks the layer version exists.
        replayed = awslambda.update_function_configuration(FunctionName=deployed.name, Layers=props["Layers"])
        assert [layer["Arn"] for layer in replayed["Layers"]] == [full.layer_arn]


def test_the_deployed_environments_are_what_each_function_reads(full) -> None:
    """Each function's settings load from its deployed environment and name the stack's own table and topics."""
    sweeper = SweeperSettings.from_env(full.functions["SweeperFunction"].environment | {"AWS_REGION": REGION})
    auditor = AuditorSettings.from_env(full.functions["AuditorFunction"].environment | {"AWS_REGION": REGION})
    stream = StreamSettings.from_env(full.functions["StreamMonitorFunction"].environment | {"AWS_REGION": REGION})
    for settings in (sweeper, auditor, stream):
        assert settings.findings_table == full.findings_table
        assert settings.alert_topic_arns == [full.alert_topic_arn, EVERYTHING["AlertTopicArn"]]
        assert (settings.stack_name, settings.account_id, settings.account_alias) == ("tfjanitor", ACCOUNT, "payments-prod")
    assert sweeper.lock_tables == auditor.lock_tables == EVERYTHING["LockTableNames"].split(",")
    assert sweeper.auto_release is True and sweeper.stale_after == timedelta(hours=2)
    topics = {t["TopicArn"] for t in stack_client("sns", full).list_topics()["Topics"]}
    assert {full.alert_topic_arn, full.alarm_topic_arn, EVERYTHING["AlertTopicArn"]} <= topics


def test_the_layer_is_created_with_its_code_runtimes_and_description(full, plain, archives) -> None:
    view = rendered(plain, full)
    [(logical_id, props)] = expected(plain, view, "AWS::Lambda::LayerVersion").items()
    assert full.layer_arn is not None
    awslambda = stack_client("lambda", full)
    layer_name, version = full.layer_arn.split(":")[-2:]
    got = awslambda.get_layer_version(LayerName=layer_name, VersionNumber=int(version))
    assert got["Description"] == props["Description"] and got["CompatibleRuntimes"] == props["CompatibleRuntimes"]
    assert got["Content"]["CodeSha256"] == sha256(archives["TfJanitorLayer"])
    assert props["Content"]["S3Key"].endswith("/TfJanitorLayer.zip")
    functions = expected(plain, view, "AWS::Lambda::Function").values()
    assert {f["Runtime"] for f in functions} <= set(props["CompatibleRuntimes"])
    # Dropped by moto: the name (moto names it <stack>-<LogicalId>-<random>) and the architecture.
    assert layer_name.startswith(f"{full.name}-{logical_id}-") and "CompatibleArchitectures" not in got
    assert props["LayerName"] == f"{full.name}-tfjanitor"
    assert all(set(f["Architectures"]) <= set(props["CompatibleArchitectures"]) for f in functions)


def test_the_stream_is_mapped_to_the_stream_monitor_with_the_templates_settings(full, plain) -> None:
    view = rendered(plain, full)
    [props] = expected(plain, view, "AWS::Lambda::EventSourceMapping").values()
    [mapping] = stack_client("lambda", full).list_event_source_mappings()["EventSourceMappings"]
    assert full.event_source_mappings["StreamMonitorFunctionLockTableStream"]["UUID"] == mapping["UUID"]
    for key in MOTO_KEEPS["AWS::Lambda::EventSourceMapping"] - {"FunctionName"}:
        assert mapping[key] == props[key], key
    assert mapping["FunctionArn"] == full.functions["StreamMonitorFunction"].arn
    assert props["FunctionName"] == full.functions["StreamMonitorFunction"].name
    assert mapping["EventSourceArn"] == full.parameters["LockTableStreamArn"]
    queue = stack_client("sqs", full).get_queue_attributes(QueueUrl=full.physical("StreamDeadLetterQueue"), AttributeNames=["All"])[
        "Attributes"
    ]
    assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": queue["QueueArn"]}}
    [dlq] = expected(plain, view, "AWS::SQS::Queue").values()
    assert queue["MessageRetentionPeriod"] == str(dlq["MessageRetentionPeriod"])
    assert queue["SqsManagedSseEnabled"] == str(dlq["SqsManagedSseEnabled"]).lower()


def test_a_mapped_stream_is_drained_by_moto_so_a_local_run_deploys_without_the_mapping(emulator, plain, archives) -> None:
    """moto hands each record of a mapped stream to the function (through Docker, absent here) and empties the stream:
    a local runner polling it, as Lambda's poller does, would read nothing. Deployed without the mapping, the records
    stay; deployed with it (a second stack on the same stream), they are gone."""
    ddb, streams = client("dynamodb", emulator), client("dynamodbstreams", emulator)
    arn = ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]

    def records() -> int:
        [shard] = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        return len(streams.get_records(ShardIterator=iterator)["Records"])

    local = deploy(
        TEMPLATE,
        emulator.url,
        REGION,
        "tfjanitor-local",
        REQUIRED | {"LockTableStreamArn": arn},
        plain=plain,
        archives=archives,
        event_source_mappings=False,
    )
    assert "StreamMonitorFunction" in local.functions and local.event_source_mappings == {}
    ddb.put_item(TableName=TABLE, Item={"LockID": {"S": "tfstate-demo/a.tfstate"}})
    assert records() == 1
    mapped = deploy(
        TEMPLATE, emulator.url, REGION, "tfjanitor", REQUIRED | {"LockTableStreamArn": arn}, plain=plain, archives=archives
    )
    assert list(mapped.event_source_mappings) == ["StreamMonitorFunctionLockTableStream"]
    ddb.put_item(TableName=TABLE, Item={"LockID": {"S": "tfstate-demo/b.tfstate"}})
    assert records() == 0


def test_the_findings_table_has_the_templates_key_and_its_ttl_is_what_the_code_writes(full, plain) -> None:
    view = rendered(plain, full)
    [props] = expected(plain, view, "AWS::DynamoDB::Table").values()
    ddb = stack_client("dynamodb", full)
    table = ddb.describe_table(TableName=full.findings_table)["Table"]
    assert table["KeySchema"] == props["KeySchema"] and table["AttributeDefinitions"] == props["AttributeDefinitions"]
    assert table["BillingModeSummary"]["BillingMode"] == props["BillingMode"]
    # Dropped by moto: TTL, point-in-time recovery, encryption.
    assert ddb.describe_time_to_live(TableName=full.findings_table)["TimeToLiveDescription"]["TimeToLiveStatus"] == "DISABLED"
    backups = ddb.describe_continuous_backups(TableName=full.findings_table)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"
    assert "SSEDescription" not in table
    assert props["SSESpecification"] == {"SSEEnabled": True}
    # Replayed as CloudFormation would make the calls.
    ddb.update_time_to_live(TableName=full.findings_table, TimeToLiveSpecification=props["TimeToLiveSpecification"])
    ddb.update_continuous_backups(
        TableName=full.findings_table, PointInTimeRecoverySpecification=props["PointInTimeRecoverySpecification"]
    )
    ttl = ddb.describe_time_to_live(TableName=full.findings_table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": props["TimeToLiveSpecification"]["AttributeName"]}
    backups = ddb.describe_continuous_backups(TableName=full.findings_table)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    # The TTL attribute is the one the functions write: a run's lease, taken in the deployed table, expires by it.
    now = datetime.now(timezone.utc)
    lease = Lease.of(AwsSession(endpoint_url=full.endpoint_url), REGION, full.findings_table, "sweeper")
    assert lease.take(now, now + timedelta(minutes=4))
    item = ddb.get_item(TableName=full.findings_table, Key={"Fingerprint": {"S": "lease#sweeper"}})["Item"]
    expires = int(item[props["TimeToLiveSpecification"]["AttributeName"]]["N"])
    assert now < datetime.fromtimestamp(expires, timezone.utc) < now + timedelta(days=2)


def test_topics_are_created_and_the_email_subscriptions_are_the_templates(full, plain) -> None:
    view = rendered(plain, full)
    sns = stack_client("sns", full)
    for name, props in expected(plain, view, "AWS::SNS::Topic").items():
        attrs = sns.get_topic_attributes(TopicArn=full.physical(name))["Attributes"]
        assert attrs["DisplayName"] == props["DisplayName"], name
        assert attrs.get("KmsMasterKeyId") == props.get("KmsMasterKeyId"), name
    # Dropped by moto: the subscriptions. Replayed: each subscribes the AlertEmail to one of the stack's topics.
    assert sns.list_subscriptions()["Subscriptions"] == []
    subscriptions = expected(plain, view, "AWS::SNS::Subscription")
    assert {s["TopicArn"] for s in subscriptions.values()} == {full.alert_topic_arn, full.alarm_topic_arn}
    for props in subscriptions.values():
        assert (props["Protocol"], props["Endpoint"]) == ("email", EVERYTHING["AlertEmail"])
        sns.subscribe(**props)
    assert sorted((s["TopicArn"], s["Protocol"], s["Endpoint"]) for s in sns.list_subscriptions()["Subscriptions"]) == sorted(
        (s["TopicArn"], s["Protocol"], s["Endpoint"]) for s in subscriptions.values()
    )


def test_log_groups_are_created_with_the_templates_names_and_retention(full, plain) -> None:
    view = rendered(plain, full)
    groups = {g["logGroupName"]: g for g in stack_client("logs", full).describe_log_groups()["logGroups"]}
    want = expected(plain, view, "AWS::Logs::LogGroup")
    assert set(groups) == {p["LogGroupName"] for p in want.values()}
    for props in want.values():
        assert groups[props["LogGroupName"]]["retentionInDays"] == int(props["RetentionInDays"]) == 14


def test_alarms_are_skipped_by_moto_but_are_valid_and_watch_what_was_created(full, plain) -> None:
    view = rendered(plain, full)
    cloudwatch = stack_client("cloudwatch", full)
    assert cloudwatch.describe_alarms()["MetricAlarms"] == []
    alarms = expected(plain, view, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 7
    created = {
        **{f.name: "function" for f in full.functions.values()},
        full.alert_topic_arn.rsplit(":", 1)[1]: "topic",
        full.physical("StreamDeadLetterQueue").rsplit("/", 1)[1]: "queue",
        "tfjanitor": "service",
    }
    for name, props in alarms.items():
        assert props["AlarmActions"] == props["OKActions"] == [full.alarm_topic_arn, EVERYTHING["AlertTopicArn"]], name
        assert all(d["Value"] in created for d in props["Dimensions"]), (name, props["Dimensions"])
        # Replayed: PutMetricAlarm takes the same properties (botocore checks every name and type).
        cloudwatch.put_metric_alarm(AlarmName=f"{full.name}-{name}", **props)
    got = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    for name, props in alarms.items():
        alarm = got[f"{full.name}-{name}"]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Period"], alarm["AlarmActions"]) == (
            props["Namespace"],
            props["MetricName"],
            props["Period"],
            props["AlarmActions"],
        )
    # A sweep-interval period follows SweepIntervalMinutes=10 (the mapping, rendered).
    assert alarms["SweeperHeartbeatAlarm"]["Period"] == 600


def test_schedules_are_skipped_by_moto_but_target_the_created_functions(full, plain) -> None:
    """Their names are checked in tests/unit/test_aws_rules.py (OmitName); here: what they run, and when."""
    view = rendered(plain, full)
    scheduler = stack_client("scheduler", full)
    assert scheduler.list_schedules()["Schedules"] == []
    schedules = expected(plain, view, "AWS::Scheduler::Schedule")
    assert {s["Target"]["Arn"] for s in schedules.values()} == {
        full.functions["SweeperFunction"].arn,
        full.functions["AuditorFunction"].arn,
    }
    by_target = {s["Target"]["Arn"]: s for s in schedules.values()}
    assert by_target[full.functions["SweeperFunction"].arn]["ScheduleExpression"] == "rate(10 minutes)"
    assert by_target[full.functions["AuditorFunction"].arn]["ScheduleExpression"] == view.values["AuditSchedule"]
    iam = stack_client("iam", full)
    for name, props in schedules.items():
        role = props["Target"]["RoleArn"].rsplit("/", 1)[1]
        assert iam.get_role(RoleName=role)["Role"]["Arn"] == props["Target"]["RoleArn"]
        scheduler.create_schedule(Name=f"{full.name}-{name}", **props)  # replayed (botocore checks the shape)
    assert len(scheduler.list_schedules()["Schedules"]) == 2


def test_the_dashboard_body_is_the_templates(full, plain) -> None:
    view = rendered(plain, full)
    [props] = expected(plain, view, "AWS::CloudWatch::Dashboard").values()
    assert props["DashboardName"] == f"{full.name}-{REGION}"
    body = stack_client("cloudwatch", full).get_dashboard(DashboardName=props["DashboardName"])["DashboardBody"]
    assert json.loads(body) == json.loads(props["DashboardBody"])
    text = json.dumps(json.loads(body))
    assert "${PROP('Region')}" in text  # CloudWatch's own label variable, left as it is
    assert full.functions["StreamMonitorFunction"].name in text
    for region in EVERYTHING["DashboardRegions"].split(","):
        assert f'"region": "{region}"' in text


def test_iam_policies_and_roles_are_the_templates(full, plain) -> None:
    view = rendered(plain, full)
    iam = stack_client("iam", full)
    for name, props in expected(plain, view, "AWS::IAM::ManagedPolicy").items():
        policy = iam.get_policy(PolicyArn=full.physical(name))["Policy"]
        version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
        assert policy_document(version["PolicyVersion"]["Document"]) == props["PolicyDocument"], name
        assert policy["Description"] == props["Description"], name
    for name, props in expected(plain, view, "AWS::IAM::Role").items():
        role_name = full.physical(name)
        role = iam.get_role(RoleName=role_name)["Role"]
        assert policy_document(role["AssumeRolePolicyDocument"]) == props["AssumeRolePolicyDocument"], name
        assert role.get("Tags", []) == props.get("Tags", []), name
        inline = {
            p: policy_document(iam.get_role_policy(RoleName=role_name, PolicyName=p)["PolicyDocument"])
            for p in iam.list_role_policies(RoleName=role_name)["PolicyNames"]
        }
        assert inline == {p["PolicyName"]: p["PolicyDocument"] for p in props.get("Policies", [])}, name
        # Dropped by moto: the managed-policy attachments. Replayed: each of the stack's own is a policy it created
        # (moto server loads no AWS-managed policy, so SAM's are compared by name).
        assert iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []
        arns = props.get("ManagedPolicyArns", [])
        own = [arn for arn in arns if not arn.startswith("arn:aws:iam::aws:policy/")]
        assert set(arns) - set(own) == {
            "SweeperFunctionRole": {BASIC_EXECUTION},
            "AuditorFunctionRole": {BASIC_EXECUTION},
            "StreamMonitorFunctionRole": {BASIC_EXECUTION, "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole"},
        }.get(name, set()), name
        for arn in own:
            iam.attach_role_policy(RoleName=role_name, PolicyArn=arn)
        attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]}
        assert attached == set(own), name
    sweeper = expected(plain, view, "AWS::IAM::Role")["SweeperFunctionRole"]["ManagedPolicyArns"]
    assert set(sweeper) == {BASIC_EXECUTION} | {
        full.physical(p)
        for p in ("ReadTerraformBackendPolicy", "ReleaseStaleLocksPolicy", "AlertTopicPublishPolicy", "PutAlertEventsPolicy")
    }


# ---------------------------------------------------------------------------------------------------------------
# Two stacks in one account and region (issue 19.1)
# ---------------------------------------------------------------------------------------------------------------

# Where the template gives a name; the schedules' (OmitName) are checked in tests/unit/test_aws_rules.py.
NAME_PROPERTIES = {
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::CloudWatch::Alarm": "AlarmName",
}
PAIR = ("tfjanitor", "tfjanitor-stream")  # one name a prefix of the other: names built by appending stay apart


def given_names(plain: dict[str, Any], stack: DeployedStack) -> dict[str, str]:
    """(logical ID -> name) of every resource the template names itself, rendered for this stack."""
    view = rendered(plain, stack)
    out = {}
    for name, resource in plain["Resources"].items():
        prop = NAME_PROPERTIES.get(resource["Type"])
        if "Condition" in resource and not view.condition(resource["Condition"]):
            continue
        if prop and prop in resource.get("Properties", {}):
            out[name] = str(view.value(resource["Properties"][prop]))
    return out


def test_two_stacks_deploy_side_by_side_in_one_account_and_region(emulator, plain, archives) -> None:
    first, second = (deploy(TEMPLATE, emulator.url, REGION, name, REQUIRED, plain=plain, archives=archives) for name in PAIR)
    cfn = client("cloudformation", emulator)
    assert [cfn.describe_stacks(StackName=n)["Stacks"][0]["StackStatus"] for n in PAIR] == ["CREATE_COMPLETE"] * 2
    assert set(first.resources) == set(second.resources)
    assert "StreamMonitorFunction" not in first.resources  # no stream given: the stream monitor's branch off
    # Nothing of one is the other's, in the emulator ...
    assert not set(first.resources.values()) & set(second.resources.values())
    assert len({f.name for s in (first, second) for f in s.functions.values()}) == 4
    assert first.layer_arn and second.layer_arn and first.layer_arn != second.layer_arn
    # ... nor where the template names a resource (moto ignores LayerName: compared rendered).
    names = [given_names(plain, s) for s in (first, second)]
    [layer_id] = [k for k, r in plain["Resources"].items() if r["Type"] == "AWS::Lambda::LayerVersion"]
    assert set(names[0]) == set(names[1]) == {layer_id, "SweeperLogGroup", "AuditorLogGroup", "Dashboard"}
    assert not set(names[0].values()) & set(names[1].values()), names
    logs = {g["logGroupName"] for g in client("logs", emulator).describe_log_groups()["logGroups"]}
    dashboards = {d["DashboardName"] for d in client("cloudwatch", emulator).list_dashboards()["DashboardEntries"]}
    for given, stack in zip(names, (first, second), strict=True):
        assert {given["SweeperLogGroup"], given["AuditorLogGroup"]} <= logs
        assert given["Dashboard"] in dashboards
        assert given[layer_id] == f"{stack.name}-tfjanitor"
    # Each stack's functions are configured as the template says for it (the defaults: moto would misread a list's),
    # with its own table and topic.
    for stack in (first, second):
        functions = expected(plain, rendered(plain, stack), "AWS::Lambda::Function")
        for name, fn in stack.functions.items():
            assert fn.environment == {k: str(v) for k, v in functions[name]["Environment"]["Variables"].items()}
            assert fn.environment["FINDINGS_TABLE"] == stack.findings_table
            assert fn.environment["ALERT_TOPIC_ARN"] == stack.alert_topic_arn
            assert fn.environment["STACK_NAME"] == stack.name
        assert stack.functions["SweeperFunction"].environment["LOCK_TABLES"] == "terraform-state-lock"


def test_a_name_two_stacks_share_fails_the_second_stack(emulator, plain, archives) -> None:
    """The control: where moto does model a name, a name not made unique per stack fails the second stack, so the
    side-by-side deploy above proves something."""
    shared = copy.deepcopy(plain)
    shared["Resources"]["SweeperLogGroup"]["Properties"]["LogGroupName"] = "/aws/lambda/tfjanitor-sweeper"
    deploy(TEMPLATE, emulator.url, REGION, PAIR[0], REQUIRED, plain=shared, archives=archives)
    with pytest.raises(DeployError, match="ResourceAlreadyExists"):
        deploy(TEMPLATE, emulator.url, REGION, PAIR[1], REQUIRED, plain=shared, archives=archives)
