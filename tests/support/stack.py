"""A stack created in the emulator (tfjanitor.local.stack.deploy), read back, and its template rendered with what was
created: the expected value of every property, to compare with what moto kept (tests/integration/test_deployed_stack.py).

The rendering is tests/support/cfn.py's, not moto's: an independent reading of the same template, with each ``Ref`` to
a resource and each ``Fn::GetAtt`` taken from the created stack.
"""

from __future__ import annotations

import ast
import json
from typing import Any

import boto3

from tests.support.cfn import Rendered
from tfjanitor.local.stack import DeployedStack


def client(service: str, stack: DeployedStack) -> Any:
    return boto3.client(  # type: ignore[call-overload]  # the stubs overload boto3.client on literal service names, not str
        service, region_name=stack.region, endpoint_url=stack.endpoint_url, aws_access_key_id="test", aws_secret_access_key="test"
    )


def attributes(stack: DeployedStack) -> dict[str, str]:
    """``"LogicalId.Attribute"`` -> value, for the attributes the template reads (``Fn::GetAtt``), from the emulator."""
    out: dict[str, str] = {}
    iam, awslambda, sqs = client("iam", stack), client("lambda", stack), client("sqs", stack)
    for logical_id, kind in stack.types.items():
        physical = stack.resources[logical_id]
        if kind == "AWS::IAM::Role":
            out[f"{logical_id}.Arn"] = iam.get_role(RoleName=physical)["Role"]["Arn"]
        elif kind == "AWS::Lambda::Function":
            out[f"{logical_id}.Arn"] = awslambda.get_function_configuration(FunctionName=physical)["FunctionArn"]
        elif kind == "AWS::SQS::Queue":
            attrs = sqs.get_queue_attributes(QueueUrl=physical, AttributeNames=["QueueArn"])["Attributes"]
            out[f"{logical_id}.Arn"] = attrs["QueueArn"]
            out[f"{logical_id}.QueueName"] = physical.rsplit("/", 1)[1]
        elif kind == "AWS::SNS::Topic":
            out[f"{logical_id}.TopicArn"] = physical
            out[f"{logical_id}.TopicName"] = physical.rsplit(":", 1)[1]
    return out


def rendered(plain: dict[str, Any], stack: DeployedStack) -> Rendered:
    """The translated template as CloudFormation would resolve it for this stack (its parameters, name, region and
    resources)."""
    return Rendered(
        plain, stack.parameters, region=stack.region, stack_name=stack.name, resources=stack.resources, attributes=attributes(stack)
    )


def expected(plain: dict[str, Any], view: Rendered, kind: str) -> dict[str, dict[str, Any]]:
    """Logical ID -> rendered properties of every resource of ``kind`` whose condition holds."""
    return {
        name: view.value(r.get("Properties", {}))
        for name, r in plain["Resources"].items()
        if r["Type"] == kind and ("Condition" not in r or view.condition(r["Condition"]))
    }


def policy_document(document: Any) -> Any:
    """An IAM policy document as boto3 returns it from moto: a dict, JSON text, or (inline role policies that
    CloudFormation created) Python's repr of the dict."""
    if not isinstance(document, str):
        return document
    try:
        return json.loads(document)
    except json.JSONDecodeError:
        return ast.literal_eval(document)
