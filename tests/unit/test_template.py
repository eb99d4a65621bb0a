"""template.yaml as a user deploys it: read-only IAM, and settings that match the code."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint.decode import decode_str

from tfjanitor.settings import SWEEPER_ENV

ROOT = Path(__file__).resolve().parents[2]
READ_ONLY = {
    "dynamodb:Scan", "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:DescribeTable",
    "s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject",
}


@pytest.fixture(scope="module")
def template() -> dict:
    doc, problems = decode_str((ROOT / "template.yaml").read_text())
    assert not problems, problems
    return doc


# SAM policy templates a function may hold, and the only resources they may name: the stack's own.
OWN_RESOURCE_POLICIES = {
    "DynamoDBCrudPolicy": {"TableName": {"Ref": "FindingsTable"}},
    "SNSPublishMessagePolicy": {"TopicName": {"Fn::GetAtt": ["AlertTopic", "TopicName"]}},
    "SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["StreamDeadLetterQueue", "QueueName"]}},
}
STREAM_READ = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"}


def test_terraform_backend_access_is_read_only(template) -> None:
    policy = template["Resources"]["ReadTerraformBackendPolicy"]["Properties"]["PolicyDocument"]
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == READ_ONLY
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])


@pytest.mark.parametrize("function", ["SweeperFunction", "StreamMonitorFunction"])
def test_functions_write_only_to_the_stacks_own_table_topic_and_queue(template, function) -> None:
    policies = template["Resources"][function]["Properties"]["Policies"]
    for policy in policies:
        if policy == {"Ref": "ReadTerraformBackendPolicy"}:
            continue
        [(name, args)] = policy.items()
        if name == "Statement":
            actions = {a for s in args for a in s["Action"]}
            assert actions <= STREAM_READ, actions
            continue
        assert OWN_RESOURCE_POLICIES.get(name) == args, (name, args)


def test_sweeper_environment_covers_its_settings(template) -> None:
    env = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    env.update(template["Resources"]["SweeperFunction"]["Properties"]["Environment"]["Variables"])
    needed = set(SWEEPER_ENV.values()) - {"AWS_REGION"}  # Lambda sets AWS_REGION itself
    assert needed <= set(env), needed - set(env)
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"} <= set(env)


def test_layer_is_built_for_the_functions_runtime(template) -> None:
    layer = template["Resources"]["TfJanitorLayer"]
    runtime = template["Globals"]["Function"]["Runtime"]
    assert layer["Metadata"]["BuildMethod"] == runtime
    assert layer["Properties"]["ContentUri"].rstrip("/") == "layers/tfjanitor"
    assert (ROOT / "layers/tfjanitor/requirements.txt").read_text().count("aws-lambda-powertools") == 1


def test_schedule_event_file_is_a_scheduler_event() -> None:
    import json

    event = json.loads((ROOT / "events/schedule.json").read_text())
    assert event["detail-type"] == "Scheduled Event"
