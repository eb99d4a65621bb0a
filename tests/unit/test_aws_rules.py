"""Rules AWS enforces that moto, cfn-lint and checkov do not (docs/aws-rules.md): one test per rule the template
(or the reader role) could break, on the template as a user deploys it."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from cfnlint.decode import decode_str

from tests.support.cfn import ROOT, Rendered, actions, load_template, resources

CHOSEN = {"StateBucketNames": "my-terraform-state", "AlertEmail": "oncall@example.com"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def translated() -> dict[str, Any]:
    """What SAM's transform makes of the template (as CloudFormation runs it; `make stackset` uses the same)."""
    spec = importlib.util.spec_from_file_location("stackset", ROOT / "scripts" / "stackset.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out, _ = module.plain_template(ROOT / "template.yaml")
    return out


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}


def test_no_function_reserves_concurrency(template, translated) -> None:
    """An account whose concurrency quota is 10 (new and sandbox accounts) refuses any reserve: "decreases account's
    UnreservedConcurrentExecution below its minimum value of [10]", and the first deploy rolls back."""
    assert functions(template)
    for name, fn in functions(template).items():
        assert "ReservedConcurrentExecutions" not in fn["Properties"], name
    assert "ReservedConcurrentExecutions" not in template["Globals"]["Function"]
    for name, r in translated["Resources"].items():
        if r["Type"] == "AWS::Lambda::Function":
            assert "ReservedConcurrentExecutions" not in r["Properties"], name


def test_no_schedule_is_named_from_its_logical_id(template, translated) -> None:
    """SAM names a ScheduleV2 without OmitName from its logical ID, in the default group: a second stack in the same
    account and region (a test stack, a StackSet instance next to a `sam deploy`) fails on the name."""
    events = [
        e
        for fn in functions(template).values()
        for e in fn["Properties"].get("Events", {}).values()
        if e["Type"] in ("Schedule", "ScheduleV2")
    ]
    assert len(events) == 2
    for event in events:
        assert event["Properties"].get("OmitName") is True or "Name" in event["Properties"]
    schedules = [r for r in translated["Resources"].values() if r["Type"] == "AWS::Scheduler::Schedule"]
    assert len(schedules) == 2 and all("Name" not in s["Properties"] for s in schedules)  # CloudFormation names them


def test_kms_decrypt_works_for_state_buckets_in_the_peer_regions(template) -> None:
    """kms:ViaService names S3 in the stack's region and each peer region (docs/deploying.md's two-region deploy reads both
    regions' buckets): moto evaluates no KMS condition, so a deploy would only fail on AWS."""
    key = "arn:aws:kms:ap-northeast-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    for partition, suffixes in (("aws", ["amazonaws.com"]), ("aws-cn", ["amazonaws.com", "amazonaws.com.cn"])):
        stack = Rendered(template, CHOSEN | {"StateKmsKeyArns": key, "PeerRegions": "us-east-1,eu-west-1"}, partition=partition)
        [decrypt] = [st for st in stack.statements("SweeperFunction") if "kms:Decrypt" in actions(st)]
        assert resources(decrypt) == [key]
        via = decrypt["Condition"]["StringEquals"]["kms:ViaService"]
        assert sorted(via) == sorted(f"s3.{r}.{suffix}" for r in ("ap-northeast-2", "us-east-1", "eu-west-1") for suffix in suffixes)
    alone = Rendered(template, CHOSEN | {"StateKmsKeyArns": key})
    [decrypt] = [st for st in alone.statements("SweeperFunction") if "kms:Decrypt" in actions(st)]
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == ["s3.ap-northeast-2.amazonaws.com"]


def test_the_reader_role_lets_discovery_describe_every_table() -> None:
    """--discover-tables describes every table of a region: a DescribeTable granted only on the named tables denies
    all the others (moto checks DynamoDB actions against resource *: it would not fail)."""
    doc, problems = decode_str((ROOT / "roles" / "reader.yaml").read_text())
    assert not problems
    role = Rendered(doc, {"TrustedPrincipalArn": "arn:aws:iam::111111111111:role/x", "StateBucketNames": "s"})
    statements = role.value(doc["Resources"]["ReaderRole"]["Properties"]["Policies"])[0]["PolicyDocument"]["Statement"]
    [describe] = [st for st in statements if "dynamodb:DescribeTable" in actions(st)]
    assert resources(describe) == ["*"] and set(actions(describe)) <= {
        "ec2:DescribeRegions",
        "dynamodb:ListTables",
        "dynamodb:DescribeTable",
    }  # metadata only, never an item
