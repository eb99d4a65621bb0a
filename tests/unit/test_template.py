"""template.yaml as a user deploys it: read-only IAM, and settings that match the code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cfnlint.decode import decode_str

from tfjanitor.runtime.settings import AUDITOR_ENV, SWEEPER_ENV

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


def rendered_policies(template: dict, function: str, parameters: dict[str, str]) -> list:
    """The function's policies as CloudFormation renders them for these parameter values."""
    params = {name: spec.get("Default") for name, spec in template["Parameters"].items()} | parameters

    def condition(name: str) -> bool:
        spec = template["Conditions"][name]
        (op, args), = spec.items()
        if op == "Fn::Equals":
            left, right = (params[a["Ref"]] if isinstance(a, dict) else a for a in args)
            return left == right
        if op == "Fn::Not":
            (inner_op, inner_args), = args[0].items()
            return not condition_value(inner_op, inner_args)
        raise AssertionError(op)

    def condition_value(op: str, args: list) -> bool:
        assert op == "Fn::Equals"
        vals = []
        for a in args:
            if isinstance(a, dict) and "Ref" in a:
                vals.append(params[a["Ref"]])
            elif isinstance(a, dict) and "Fn::Join" in a:
                sep, parts = a["Fn::Join"]
                vals.append(sep.join([params[parts["Ref"]]] if isinstance(parts, dict) else parts))
            else:
                vals.append(a)
        return vals[0] == vals[1]

    rendered = []
    for policy in template["Resources"][function]["Properties"]["Policies"]:
        if isinstance(policy, dict) and "Fn::If" in policy:
            name, then, other = policy["Fn::If"]
            policy = then if condition(name) else other
            if policy == {"Ref": "AWS::NoValue"}:
                continue
        rendered.append(policy)
    return rendered


def test_auto_release_off_means_no_delete_permission_at_all(template) -> None:
    for function in ("SweeperFunction", "StreamMonitorFunction"):
        text = json.dumps(rendered_policies(template, function, {"AutoRelease": "false"}))
        assert "Delete" not in text, function
    managed = json.dumps(template["Resources"]["ReadTerraformBackendPolicy"])
    assert "Delete" not in managed


def test_auto_release_on_deletes_only_lock_items_and_tflock_objects(template) -> None:
    policies = rendered_policies(template, "SweeperFunction", {"AutoRelease": "true", "StateBucketNames": "a,b"})
    deletes = [st for p in policies if "Statement" in p for st in p["Statement"]]
    assert {st["Action"] for st in deletes} == {"dynamodb:DeleteItem", "s3:DeleteObject"}
    s3_delete = next(st for st in deletes if st["Action"] == "s3:DeleteObject")
    assert json.dumps(s3_delete["Resource"]).count("/*.tflock") >= 1 and "/*\"" not in json.dumps(s3_delete["Resource"])


@pytest.mark.parametrize("function", ["SweeperFunction", "StreamMonitorFunction"])
def test_functions_write_only_to_the_stacks_own_table_topic_and_queue(template, function) -> None:
    policies = rendered_policies(template, function, {"AutoRelease": "false"})
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


# The auditor's whole access to Terraform's tables and buckets: configuration reads, the tables'
# items (home and peer regions) and bucket listings. No object read, no write of any kind.
AUDITOR_READ = {
    "dynamodb:Scan", "dynamodb:DescribeTable", "dynamodb:DescribeContinuousBackups",
    "s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:GetBucketPolicy", "s3:GetBucketPublicAccessBlock",
    "s3:GetLifecycleConfiguration", "s3:ListBucket", "s3:ListBucketVersions",
}


def test_auditor_is_read_only_and_never_reads_a_state(template) -> None:
    policies = template["Resources"]["AuditorFunction"]["Properties"]["Policies"]
    statements = [st for p in policies if "Statement" in p for st in p["Statement"]]
    assert {a for st in statements for a in st["Action"]} == AUDITOR_READ
    assert all(st["Effect"] == "Allow" for st in statements)
    assert {"Ref": "ReadTerraformBackendPolicy"} not in policies  # that one holds s3:GetObject
    others = [p for p in policies if "Statement" not in p]
    for policy in others:
        [(name, args)] = policy.items()
        assert OWN_RESOURCE_POLICIES.get(name) == args, (name, args)
    assert {next(iter(p)) for p in others} == {"DynamoDBCrudPolicy", "SNSPublishMessagePolicy"}
    # Same-named tables in every region (the peer regions), and only the named lock tables.
    table_resource = json.dumps(next(st for st in statements if "dynamodb:Scan" in st["Action"])["Resource"])
    assert "arn:aws:dynamodb:*:*:table/" in table_resource and "LockTableNames" in table_resource


def test_auditor_environment_covers_its_settings_and_runs_daily_by_default(template) -> None:
    fn = template["Resources"]["AuditorFunction"]["Properties"]
    env = dict(template["Globals"]["Function"]["Environment"]["Variables"]) | fn["Environment"]["Variables"]
    assert set(AUDITOR_ENV.values()) - {"AWS_REGION"} <= set(env)
    assert env["PEER_REGIONS"] == {"Ref": "PeerRegions"}
    [event] = fn["Events"].values()
    assert event["Type"] == "ScheduleV2" and event["Properties"]["ScheduleExpression"] == {"Ref": "AuditSchedule"}
    assert template["Parameters"]["AuditSchedule"]["Default"] == "rate(1 day)"
    assert template["Parameters"]["PeerRegions"]["Default"] == ""


def test_samconfig_environments_peer_each_other() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    regions = {env: config[env]["deploy"]["parameters"]["region"] for env in ("seoul", "virginia")}
    for env, other in (("seoul", "virginia"), ("virginia", "seoul")):
        overrides = config[env]["deploy"]["parameters"]["parameter_overrides"]
        assert f"PeerRegions={regions[other]}" in overrides.split(), overrides
