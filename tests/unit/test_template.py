"""template.yaml as a user deploys it: read-only IAM scoped to this account, region and partition, and
settings that match the code."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import botocore
import botocore.session
import pytest

from tests.support.cfn import ROOT, Rendered, actions, load_template, resources
from tfjanitor.runtime.settings import AUDITOR_ENV, SWEEPER_ENV

READ_ONLY = {
    "dynamodb:Scan",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:DescribeTable",
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:GetObject",
    # drift forensics: which version is Terraform's last write
    "s3:ListBucketVersions",
    "s3:GetObjectVersion",
    "s3:GetBucketVersioning",
}
# The least a deploy needs (see test_deploy_parameters.py), and a fuller one.
CHOSEN = {"StateBucketNames": "my-terraform-state", "AlertEmail": "oncall@example.com"}
FULL = CHOSEN | {
    "LockTableNames": "terraform-state-lock,platform-locks",
    "StateBucketNames": "state-a,state-b",
    "AutoRelease": "true",
    "LockTableStreamArn": "arn:aws:dynamodb:ap-northeast-2:123456789012:table/x/stream/2026",
    "AlertTopicArn": "arn:aws:sns:us-east-1:123456789012:pager",
    "StateKmsKeyArns": "arn:aws:kms:ap-northeast-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
}
FUNCTIONS = ("SweeperFunction", "AuditorFunction", "StreamMonitorFunction")
DEFAULT_BUS = "arn:aws:events:ap-northeast-2:123456789012:event-bus/default"  # this account's, in this region
TABLE_ARNS = [f"arn:*:dynamodb:*:${{aws:PrincipalAccount}}:table/{t}" for t in ("terraform-state-lock", "platform-locks")]


@pytest.fixture(scope="module")
def template() -> dict:
    return load_template()


# SAM policy templates a function may hold, and the only resources they may name: the stack's own.
OWN_RESOURCE_POLICIES = {
    "DynamoDBCrudPolicy": {"TableName": {"Ref": "FindingsTable"}},
    "SNSPublishMessagePolicy": {"TopicName": {"Fn::GetAtt": ["AlertTopic", "TopicName"]}},
    "SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["StreamDeadLetterQueue", "QueueName"]}},
}
STREAM_READ = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"}


def iam(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The plain IAM statements (SAM policy templates left out)."""
    return [st for st in statements if "Effect" in st]


def by_action(statements: list[dict[str, Any]], action: str) -> dict[str, Any]:
    [statement] = [st for st in iam(statements) if action in actions(st)]
    return statement


def test_terraform_backend_access_is_read_only(template) -> None:
    for params in (CHOSEN, FULL):
        policy = Rendered(template, params).value(template["Resources"]["ReadTerraformBackendPolicy"]["Properties"])
        statements = policy["PolicyDocument"]["Statement"]
        assert {a for s in statements for a in actions(s)} == READ_ONLY | ({"kms:Decrypt"} if params is FULL else set())
        assert all(s["Effect"] == "Allow" for s in statements)


def test_auto_release_off_means_no_delete_permission_at_all(template) -> None:
    for function in FUNCTIONS:
        statements = Rendered(template, FULL | {"AutoRelease": "false"}).statements(function)
        assert "Delete" not in json.dumps([actions(st) for st in iam(statements)]), function


def test_auto_release_on_deletes_only_lock_items_and_tflock_objects_of_this_account_and_region(template) -> None:
    stack = Rendered(template, FULL)
    statements = stack.statements("SweeperFunction")
    deletes = [st for st in iam(statements) if any("Delete" in a for a in actions(st))]
    assert sorted(a for st in deletes for a in actions(st)) == ["dynamodb:DeleteItem", "s3:DeleteObject"]
    items = by_action(statements, "dynamodb:DeleteItem")
    assert resources(items) == TABLE_ARNS
    assert items["Condition"] == {"StringEquals": {"aws:RequestedRegion": "ap-northeast-2"}}
    assert resources(by_action(statements, "s3:DeleteObject")) == ["arn:*:s3:::state-a/*.tflock", "arn:*:s3:::state-b/*.tflock"]
    assert "Delete" not in json.dumps(iam(stack.statements("StreamMonitorFunction")))  # only the sweeper releases


@pytest.mark.parametrize("function", FUNCTIONS)
def test_functions_write_only_to_the_stacks_own_table_topic_and_queue(template, function) -> None:
    statements = Rendered(template, FULL | {"AutoRelease": "false"}).statements(function)
    for statement in statements:
        if "Effect" not in statement:  # a SAM policy template: on the stack's own resources only
            [(name, args)] = statement.items()
            assert OWN_RESOURCE_POLICIES.get(name) == args, (name, args)
            continue
        writes = [
            a
            for a in actions(statement)
            if not a.startswith(
                (
                    "dynamodb:Scan",
                    "dynamodb:Get",
                    "dynamodb:Batch",
                    "dynamodb:Describe",
                    "dynamodb:ListStreams",
                    "s3:List",
                    "s3:Get",
                    "kms:Decrypt",
                )
            )
        ]
        if writes:  # the other writes: alerts to the topic AlertTopicArn names, events to the one bus
            assert (writes, resources(statement)) in [
                (["sns:Publish"], [FULL["AlertTopicArn"]]),
                (["events:PutEvents"], [DEFAULT_BUS]),
            ], statement


@pytest.mark.parametrize("function", FUNCTIONS)
def test_alert_events_go_to_the_default_bus_or_the_one_event_bus_arn_names(template, function) -> None:
    """Every function delivers notices, so each may put events: on exactly one bus, nothing else."""
    central = "arn:aws:events:eu-west-1:111122223333:event-bus/org-findings"
    for params, bus in ((FULL, DEFAULT_BUS), (FULL | {"EventBusArn": central}, central)):
        stack = Rendered(template, params)
        puts = [st for st in iam(stack.statements(function)) if any(a.startswith("events:") for a in actions(st))]
        assert [(actions(st), resources(st)) for st in puts] == [(["events:PutEvents"], [bus])]
        assert stack.value(template["Globals"]["Function"]["Environment"]["Variables"]["EVENT_BUS_ARN"]) == bus


def test_no_arn_names_a_partition(template) -> None:
    """GovCloud and China deploy the same template: single ARNs use ${AWS::Partition}; per-name lists
    (Fn::Join takes only a literal delimiter) use "*", the same grant since a role stays in its partition."""
    text = json.dumps({k: template[k] for k in ("Globals", "Resources", "Outputs")})
    partitions = set(re.findall(r"arn:(\$\{AWS::Partition\}|[^:\"]*):", text))
    assert partitions <= {"*", "${AWS::Partition}"}, partitions
    assert "arn:*:" in text  # the per-name lists below


def test_policy_variables_are_read_as_variables(template) -> None:
    """IAM reads ${aws:PrincipalAccount} as a variable only in a "2012-10-17" document (SAM writes none)."""
    documents: list[dict[str, Any]] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if "Statement" in node and "${aws:" in json.dumps(node):
                documents.append(node)
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(template["Resources"])
    assert len(documents) == 3  # the sweeper's reads and release, the auditor's reads
    assert all(doc.get("Version") == "2012-10-17" for doc in documents)


def test_lock_tables_are_this_accounts_in_this_region_and_the_auditors_peer_regions(template) -> None:
    for function in ("SweeperFunction", "StreamMonitorFunction"):
        read = by_action(Rendered(template, FULL).statements(function), "dynamodb:GetItem")
        assert resources(read) == TABLE_ARNS  # ${aws:PrincipalAccount}: IAM's name for the role's own account
        assert read["Condition"] == {"StringEquals": {"aws:RequestedRegion": "ap-northeast-2"}}
    auditor = by_action(Rendered(template, FULL).statements("AuditorFunction"), "dynamodb:Scan")
    assert resources(auditor) == TABLE_ARNS
    assert auditor["Condition"] == {"StringEquals": {"aws:RequestedRegion": ["ap-northeast-2"]}}
    peers = by_action(Rendered(template, FULL | {"PeerRegions": "us-east-1,eu-west-1"}).statements("AuditorFunction"), "dynamodb:Scan")
    assert peers["Condition"] == {"StringEquals": {"aws:RequestedRegion": ["ap-northeast-2", "us-east-1", "eu-west-1"]}}
    # Every statement on a lock table pins account and region.
    for function in FUNCTIONS:
        for st in iam(Rendered(template, FULL).statements(function)):
            if any(":table/" in str(r) and "/stream/" not in str(r) for r in resources(st)):
                assert all("${aws:PrincipalAccount}" in r for r in resources(st)), st
                assert "aws:RequestedRegion" in st["Condition"]["StringEquals"], st


def test_state_buckets_are_exactly_the_named_ones_and_star_only_when_chosen(template) -> None:
    named = Rendered(template, FULL).statements("SweeperFunction")
    assert resources(by_action(named, "s3:ListBucket")) == ["arn:*:s3:::state-a", "arn:*:s3:::state-b"]
    assert resources(by_action(named, "s3:GetObject")) == ["arn:*:s3:::state-a/*", "arn:*:s3:::state-b/*"]
    everything = Rendered(template, FULL | {"StateBucketNames": "*"}).statements("SweeperFunction")
    assert resources(by_action(everything, "s3:GetObject")) == ["arn:*:s3:::*/*"]
    assert "Default" not in template["Parameters"]["StateBucketNames"]


def test_kms_decrypt_only_for_the_state_readers_only_through_s3_in_this_region(template) -> None:
    keys = FULL["StateKmsKeyArns"].split(",")
    for function in ("SweeperFunction", "StreamMonitorFunction"):
        decrypt = by_action(Rendered(template, FULL).statements(function), "kms:Decrypt")
        assert actions(decrypt) == ["kms:Decrypt"] and resources(decrypt) == keys
        assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": ["s3.ap-northeast-2.amazonaws.com"]}}
    china = by_action(Rendered(template, FULL, region="cn-north-1", partition="aws-cn").statements("SweeperFunction"), "kms:Decrypt")
    assert china["Condition"]["StringEquals"]["kms:ViaService"] == ["s3.cn-north-1.amazonaws.com", "s3.cn-north-1.amazonaws.com.cn"]
    assert "kms:" not in json.dumps(iam(Rendered(template, FULL).statements("AuditorFunction")))  # never reads a state
    for function in FUNCTIONS:  # no key named: no KMS permission at all
        assert "kms:" not in json.dumps(iam(Rendered(template, CHOSEN | {"LockTableStreamArn": "s"}).statements(function)))


def test_the_layer_runs_the_boto3_the_tests_run_with_the_conditional_delete() -> None:
    """Lambda's own boto3 may predate S3 DeleteObject's IfMatch (botocore 1.35.67, from botocore's S3
    service model history): the layer pins the versions the tests ran, and the CLI's floor has it."""
    pins = dict(
        line.split("==")
        for line in (ROOT / "layers/tfjanitor/requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(project["optional-dependencies"]["lambda"]) == sorted(f"{k}=={v}" for k, v in pins.items())
    assert botocore.__version__ == pins["botocore"]  # what the tests run is what Lambda runs
    model = botocore.session.get_session().get_service_model("s3")
    delete_input = model.operation_model("DeleteObject").input_shape
    assert delete_input is not None and "IfMatch" in delete_input.members
    [floor] = [d.removeprefix("boto3>=") for d in project["dependencies"] if d.startswith("boto3>=")]

    def version(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in text.split("."))

    assert version("1.35.67") <= version(floor) <= version(pins["boto3"])


def test_sweeper_environment_covers_its_settings(template) -> None:
    env = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    env.update(template["Resources"]["SweeperFunction"]["Properties"]["Environment"]["Variables"])
    needed = set(SWEEPER_ENV.values()) - {"AWS_REGION"}  # Lambda sets AWS_REGION itself
    assert needed <= set(env), needed - set(env)
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"} <= set(env)


def test_layer_is_built_for_the_functions_runtime(template) -> None:
    """The layer's Makefile installs the requirements for the functions' Python and architecture and compiles
    them with unchecked-hash bytecode (what the built layer holds: tests/integration/test_as_deployed.py)."""
    layer = template["Resources"]["TfJanitorLayer"]
    runtime = template["Globals"]["Function"]["Runtime"]
    [architecture] = template["Globals"]["Function"]["Architectures"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": architecture}
    assert layer["Properties"]["CompatibleRuntimes"] == [runtime]
    assert layer["Properties"]["ContentUri"].rstrip("/") == "layers/tfjanitor"
    makefile = (ROOT / "layers/tfjanitor/Makefile").read_text()
    [recipe] = re.findall(r"^build-TfJanitorLayer:\n((?:\t.*\n?)+)", makefile, re.M)
    version = runtime.removeprefix("python")
    assert f"--python-version {version}" in recipe and "--only-binary=:all:" in recipe and "-r requirements.txt" in recipe
    assert {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}[architecture] in recipe
    assert "compileall" in recipe and "--invalidation-mode unchecked-hash" in recipe
    assert re.search(rf"^PYTHON \?= python{re.escape(version)}$", makefile, re.M)
    assert (ROOT / "layers/tfjanitor/requirements.txt").read_text().count("aws-lambda-powertools") == 1


def test_schedule_event_file_is_a_scheduler_event() -> None:
    event = json.loads((ROOT / "events/schedule.json").read_text())
    assert event["detail-type"] == "Scheduled Event"


# The auditor's whole access to Terraform's tables and buckets: configuration reads, the tables'
# items (home and peer regions) and bucket listings. No object read, no write of any kind.
AUDITOR_READ = {
    "dynamodb:Scan",
    "dynamodb:DescribeTable",
    "dynamodb:DescribeContinuousBackups",
    "s3:GetBucketLocation",
    "s3:GetBucketVersioning",
    "s3:GetBucketPolicy",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetLifecycleConfiguration",
    "s3:ListBucket",
    "s3:ListBucketVersions",
}


def test_auditor_is_read_only_and_never_reads_a_state(template) -> None:
    statements = Rendered(template, FULL | {"AlertTopicArn": ""}).statements("AuditorFunction")
    assert {a for st in iam(statements) for a in actions(st)} == AUDITOR_READ | {"events:PutEvents"}  # + its alerts
    assert all(st["Effect"] == "Allow" for st in iam(statements))
    policies = template["Resources"]["AuditorFunction"]["Properties"]["Policies"]
    assert {"Ref": "ReadTerraformBackendPolicy"} not in policies  # that one holds s3:GetObject
    others = [st for st in statements if "Effect" not in st]
    assert {next(iter(p)) for p in others} == {"DynamoDBCrudPolicy", "SNSPublishMessagePolicy"}


def test_auditor_environment_covers_its_settings_and_runs_daily_by_default(template) -> None:
    fn = template["Resources"]["AuditorFunction"]["Properties"]
    env = dict(template["Globals"]["Function"]["Environment"]["Variables"]) | fn["Environment"]["Variables"]
    assert set(AUDITOR_ENV.values()) - {"AWS_REGION"} <= set(env)
    assert env["PEER_REGIONS"] == {"Ref": "PeerRegions"}
    [event] = fn["Events"].values()
    assert event["Type"] == "ScheduleV2" and event["Properties"]["ScheduleExpression"] == {"Ref": "AuditSchedule"}
    assert template["Parameters"]["AuditSchedule"]["Default"] == "rate(1 day)"
    assert template["Parameters"]["PeerRegions"]["Default"] == ""


# -- alarms (issue 9.6) ------------------------------------------------------------------------------


def alarms(stack: Rendered) -> dict[str, dict[str, Any]]:
    """The alarms these parameters deploy, rendered."""
    return {
        name: stack.value(r["Properties"])
        for name, r in stack.template["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm" and ("Condition" not in r or stack.condition(r["Condition"]))
    }


def cloudwatch_can_publish_to(template: dict, topic: str) -> bool:
    """A topic of the stack CloudWatch can publish to: unencrypted, or under a key whose policy lets
    cloudwatch.amazonaws.com use it (an AWS-managed alias such as alias/aws/sns never does)."""
    resource = template["Resources"][topic]
    assert resource["Type"] == "AWS::SNS::Topic"
    key = resource["Properties"].get("KmsMasterKeyId")
    if key is None:
        return True
    name = (key.get("Ref") or key.get("Fn::GetAtt", [None])[0]) if isinstance(key, dict) else None
    if name is None or template["Resources"][name]["Type"] != "AWS::KMS::Key":
        return False
    return any(
        st["Effect"] == "Allow"
        and "cloudwatch.amazonaws.com" in st.get("Principal", {}).get("Service", [])
        and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(actions(st))
        for st in template["Resources"][name]["Properties"]["KeyPolicy"]["Statement"]
    )


@pytest.mark.parametrize("params", [CHOSEN, FULL], ids=["email", "email+stream+AlertTopicArn"])
def test_every_alarm_notifies_a_topic_cloudwatch_can_publish_to(template, params) -> None:
    stack = Rendered(template, params)
    found = alarms(stack)
    assert len(found) == (7 if params is FULL else 5)
    for name, alarm in found.items():
        for key in ("AlarmActions", "OKActions"):
            own = [a["Ref"] for a in alarm[key] if isinstance(a, dict)]
            assert own and all(cloudwatch_can_publish_to(template, topic) for topic in own), (name, key)
            # The topic AlertTopicArn names (PagerDuty, chat) gets them too: its policy is the user's to set.
            assert [a for a in alarm[key] if not isinstance(a, dict)] == ([FULL["AlertTopicArn"]] if params is FULL else [])
    # The alert emails (lock holders, keys) stay encrypted: only the functions publish there.
    assert template["Resources"]["AlertTopic"]["Properties"]["KmsMasterKeyId"] == "alias/aws/sns"


# Alarms on what the stream or the daily audit emits follow those, not the sweeps.
NOT_SWEEP_DRIVEN = {"AuditorErrorsAlarm", "StreamIteratorAgeAlarm", "StreamDeadLetterAlarm"}


@pytest.mark.parametrize("minutes", ["5", "15"])
def test_alarm_periods_follow_the_sweep_interval(template, minutes: str) -> None:
    found = alarms(Rendered(template, FULL | {"SweepIntervalMinutes": minutes}))
    sweep_driven = {name: alarm for name, alarm in found.items() if name not in NOT_SWEEP_DRIVEN}
    assert {"SweeperHeartbeatAlarm", "NotificationsFailedAlarm"} <= set(sweep_driven)
    for name, alarm in sweep_driven.items():
        assert int(alarm["Period"]) == int(minutes) * 60, name
        assert int(alarm["Period"]) * int(alarm["EvaluationPeriods"]) <= 86400, name  # CloudWatch's limit


# What the findings emails already say: a CloudWatch ALARM/OK email on top would be the same news twice.
FINDING_METRICS = {
    "ActiveLocks",
    "StaleLocks",
    "StaleLockfiles",
    "OldestLockAgeSeconds",
    "DigestDrift",
    "DriftDetected",
    "OrphanDigests",
    "CrossRegionBuckets",
    "MalformedItems",
    "OpenFindings",
    "SplitBrainLocks",
    "LockTableProblems",
    "TablePostureFindings",
    "BucketPostureFindings",
    "LeftoverDigests",
}


def test_alarms_watch_tfjanitors_health_not_the_findings(template) -> None:
    watched = {(a["Namespace"], a["MetricName"]) for a in alarms(Rendered(template, FULL)).values()}
    assert not {metric for _, metric in watched} & FINDING_METRICS
    assert watched >= {
        ("TfJanitor", "SweepsCompleted"),
        ("TfJanitor", "NotificationsFailed"),
        ("TfJanitor", "NotificationsGivenUp"),
        ("AWS/Lambda", "Errors"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/SNS", "NumberOfNotificationsFailed"),
    }
