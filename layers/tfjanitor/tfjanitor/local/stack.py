"""template.yaml as CloudFormation runs it, created as a stack in the emulator.

- :func:`plain_template`: SAM's own translator turns the template into plain CloudFormation, offline, with the code
  and layer locations as parameters (``<ArtifactBucketPrefix>-<region>``, ``<ArtifactKeyPrefix>/<LogicalId>.zip``).
  ``make stackset`` writes exactly this (scripts/stackset.py).
- :func:`deploy`: uploads the code, creates that template as a stack with ``CreateStack`` (moto server has no
  ``AWS::Serverless`` transform, and ``sam deploy`` does not get far against it), waits for ``CREATE_COMPLETE`` and
  reads back what was created: a :class:`DeployedStack` (functions with their environments, table and topic names).

moto is not CloudFormation: :func:`for_emulator` rewrites two constructs moto evaluates wrongly into equivalent
ones, and :func:`emulator_parameters` passes what moto would misread from a default. What moto keeps and drops from
a created stack is in docs/aws-rules.md ("What moto drops from a deployed stack"). Needs samtranslator (installed
with aws-sam-cli, the ``local`` extra); never on the Lambda path.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

import tfjanitor

CODE_TYPES = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}
PLACEHOLDER = "STACKSET-ARTIFACT-BUCKET"
EMULATOR_ARTIFACT_PREFIX = "tfjanitor-artifacts"  # the emulator's code bucket: tfjanitor-artifacts-<region>
NO_VALUE = {"Ref": "AWS::NoValue"}
_SUB_VARIABLE = re.compile(r"\$\{(!?)([^}]*)\}")


class DeployError(RuntimeError):
    """The stack was refused or did not reach CREATE_COMPLETE."""


def plain_template(template: Path) -> tuple[dict[str, Any], list[str]]:
    """(the transformed template, the logical IDs whose code it needs)."""
    from samtranslator.parser.parser import Parser  # noqa: PLC0415 (aws-sam-cli: the local extra only)
    from samtranslator.translator.translator import Translator  # noqa: PLC0415
    from samtranslator.yaml_helper import yaml_parse  # noqa: PLC0415

    doc = yaml_parse(template.read_text())
    artifacts = []
    for name, resource in doc["Resources"].items():
        prop = CODE_TYPES.get(resource["Type"])
        if prop:
            resource["Properties"][prop] = {"Bucket": PLACEHOLDER, "Key": f"{name}.zip"}
            artifacts.append(name)
    # The region only feeds pseudo-parameters SAM resolves at translation; the output keeps AWS::Region refs.
    session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    out = Translator(managed_policy_map={}, sam_parser=Parser(), boto_session=session).translate(sam_template=doc, parameter_values={})
    out["Parameters"] = {
        "ArtifactBucketPrefix": {
            "Type": "String",
            "Description": "Code buckets, one per region, named <prefix>-<region> (Lambda reads code only from its own region)",
            "AllowedPattern": "^[a-z0-9][a-z0-9.-]{1,40}$",
            "ConstraintDescription": "lowercase letters, digits, dots and hyphens (the region is appended)",
        },
        "ArtifactKeyPrefix": {
            "Type": "String",
            "Default": f"tfjanitor/{tfjanitor.__version__}",
            "Description": "Key prefix of the uploaded code in those buckets",
        },
        **out.get("Parameters", {}),
    }
    for resource in out["Resources"].values():
        code = resource.get("Properties", {}).get("Code") or resource.get("Properties", {}).get("Content")
        if isinstance(code, dict) and code.get("S3Bucket") == PLACEHOLDER:
            code["S3Bucket"] = {"Fn::Sub": "${ArtifactBucketPrefix}-${AWS::Region}"}
            code["S3Key"] = {"Fn::Sub": "${ArtifactKeyPrefix}/" + code["S3Key"]}
    assert "Transform" not in out
    return out, artifacts


# ---------------------------------------------------------------------------------------------------------------
# Code archives
# ---------------------------------------------------------------------------------------------------------------


def archive(directory: Path, prefix: str = "") -> bytes:
    """A directory as a Lambda zip (``prefix`` before every name; no ``__pycache__``)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, prefix + path.relative_to(directory).as_posix())
    return buf.getvalue()


def _code_resources(template: Path) -> dict[str, tuple[str, str]]:
    """Logical ID -> (SAM type, CodeUri / ContentUri) of every function and layer."""
    from samtranslator.yaml_helper import yaml_parse  # noqa: PLC0415

    resources = yaml_parse(template.read_text())["Resources"]
    return {name: (r["Type"], str(r["Properties"][CODE_TYPES[r["Type"]]])) for name, r in resources.items() if r["Type"] in CODE_TYPES}


def code_directories(template: Path, build_dir: Path | None = None) -> dict[str, Path]:
    """Logical ID -> the directory its code comes from: ``sam build``'s output when ``build_dir`` is given (a layer's
    holds ``python/``), else the template's ``CodeUri`` / ``ContentUri`` in the source tree."""
    return {name: build_dir / name if build_dir else template.parent / uri for name, (_, uri) in _code_resources(template).items()}


def code_archives(template: Path, build_dir: Path | None = None) -> dict[str, bytes]:
    """Logical ID -> zip. From the source tree a layer's package goes under ``python/`` (where Lambda looks, as
    ``sam build`` puts it) without its pinned dependencies: enough for the emulator, which stores code and runs none."""
    out = {}
    for name, (kind, uri) in _code_resources(template).items():
        directory = build_dir / name if build_dir else template.parent / uri
        if not directory.is_dir():
            raise DeployError(f"{directory} is missing" + (": run `make build` (sam build) first" if build_dir else ""))
        layer_from_source = build_dir is None and kind == "AWS::Serverless::LayerVersion"
        out[name] = archive(directory, "python/" if layer_from_source else "")
    return out


# ---------------------------------------------------------------------------------------------------------------
# What moto would misread
# ---------------------------------------------------------------------------------------------------------------


def for_emulator(node: Any) -> Any:
    """The template with two constructs rewritten into equivalent ones that moto 5.2.5 evaluates as CloudFormation does:

    - A list element ``Fn::If [cond, x, Ref AWS::NoValue]``: CloudFormation drops the element, moto keeps it as null
      (an IAM policy with a null statement is then "MalformedPolicyDocument" and the stack fails). The list becomes
      ``Fn::If [cond, [..., x, ...], [..., ...]]``.
    - ``Fn::Sub [text, {variables}]`` whose variable values hold ``${...}`` themselves (the dashboard's CloudWatch
      label ``${PROP('Region')}``): CloudFormation inserts values as they are, moto substitutes inside them again (and
      fails on a Ref to ``PROP('Region')``). It becomes the ``Fn::Join`` of the text's pieces and the values.
    """
    if isinstance(node, list):
        items = [for_emulator(n) for n in node]
        return _expand_optional(items) if any(_optional(i) for i in items) else items
    if not isinstance(node, dict):
        return node
    if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], list):
        text, variables = node["Fn::Sub"]
        variables = {k: for_emulator(v) for k, v in variables.items()}
        if _holds_sub_syntax(list(variables.values())):
            return _sub_as_join(text, variables)
        return {"Fn::Sub": [text, variables]}
    return {k: for_emulator(v) for k, v in node.items()}


def _optional(item: Any) -> bool:
    return isinstance(item, dict) and set(item) == {"Fn::If"} and NO_VALUE in item["Fn::If"][1:]


def _expand_optional(items: list[Any]) -> Any:
    for i, item in enumerate(items):
        if _optional(item):
            condition, then, other = item["Fn::If"]

            def branch(value: Any, i: int = i) -> Any:
                return _expand_optional(items[:i] + ([] if value == NO_VALUE else [value]) + items[i + 1 :])

            return {"Fn::If": [condition, branch(then), branch(other)]}
    return items


def _holds_sub_syntax(node: Any) -> bool:
    if isinstance(node, str):
        return "${" in node
    if isinstance(node, list):
        return any(_holds_sub_syntax(n) for n in node)
    if isinstance(node, dict):
        return any(_holds_sub_syntax(n) for n in node.values())
    return False


def _sub_as_join(text: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    parts: list[Any] = []
    pos = 0
    for match in _SUB_VARIABLE.finditer(text):
        parts.append(text[pos : match.start()])
        literal, name = match[1], match[2]
        if literal:
            parts.append("${" + name + "}")  # ${!Literal} is the text ${Literal}
        elif name in variables:
            parts.append(variables[name])
        elif "." in name:
            parts.append({"Fn::GetAtt": name.split(".", 1)})
        else:
            parts.append({"Ref": name})
        pos = match.end()
    parts.append(text[pos:])
    return {"Fn::Join": ["", [p for p in parts if p != ""]]}


def emulator_parameters(
    template: Mapping[str, Any], parameters: Mapping[str, str], artifact_prefix: str = EMULATOR_ARTIFACT_PREFIX
) -> dict[str, str]:
    """What to pass to CreateStack: the given parameters, the artifact bucket prefix, and every list parameter's default
    (moto splits a CommaDelimitedList only when it is passed: from its Default, ``Fn::Join [",", Ref List]`` joins the
    characters of the string, and LOCK_TABLES would be ``t,e,r,r,a,...``)."""
    spec = template["Parameters"]
    unknown = sorted(set(parameters) - set(spec))
    if unknown:
        raise DeployError(f"the template has no parameter {', '.join(unknown)}")
    out = {"ArtifactBucketPrefix": artifact_prefix} if "ArtifactBucketPrefix" in spec else {}
    for name, slot in spec.items():
        if slot.get("Type") == "CommaDelimitedList" and "Default" in slot:
            out[name] = str(slot["Default"])
    out.update({k: str(v) for k, v in parameters.items()})
    return out


# ---------------------------------------------------------------------------------------------------------------
# The stack
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeployedFunction:
    logical_id: str
    name: str
    arn: str
    handler: str
    runtime: str
    memory: int
    timeout: int
    role: str
    environment: dict[str, str]  # as Lambda hands it to the function: every value a string
    code_dir: Path  # what was zipped for it (the built artefact or the source directory)


@dataclass(frozen=True)
class DeployedStack:
    name: str
    stack_id: str
    region: str
    endpoint_url: str
    parameters: dict[str, str]  # as passed to CreateStack
    outputs: dict[str, str]
    resources: dict[str, str]  # logical ID -> physical ID (what its Ref gives), for every resource moto created
    types: dict[str, str]  # logical ID -> resource type
    functions: dict[str, DeployedFunction] = field(default_factory=dict)
    layer_arn: str | None = None  # moto lists a layer version with no physical ID: found by its generated name
    # logical ID -> the mapping as Lambda reports it (GetEventSourceMapping: batch size, retries, destination, ...)
    event_source_mappings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def physical(self, logical_id: str) -> str:
        try:
            return self.resources[logical_id]
        except KeyError:
            raise KeyError(
                f"{logical_id} was not created in stack {self.name} (created: {', '.join(sorted(self.resources))})"
            ) from None

    @property
    def findings_table(self) -> str:
        return self.physical("FindingsTable")

    @property
    def alert_topic_arn(self) -> str:
        return self.physical("AlertTopic")

    @property
    def alarm_topic_arn(self) -> str:
        return self.physical("AlarmTopic")


def _client(service: str, endpoint_url: str, region: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]  # the stubs overload literal service names, not a str
        service, region_name=region, endpoint_url=endpoint_url, aws_access_key_id="test", aws_secret_access_key="test"
    )  # noqa: S106 (the emulator's)


def upload_code(archives: Mapping[str, bytes], endpoint_url: str, region: str, prefix: str, key_prefix: str) -> str:
    """The code bucket ``<prefix>-<region>`` (created if missing) with each zip at ``<key_prefix>/<LogicalId>.zip``."""
    s3 = _client("s3", endpoint_url, region)
    bucket = f"{prefix}-{region}"
    kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    try:
        s3.create_bucket(Bucket=bucket, **kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    for name, body in archives.items():
        s3.put_object(Bucket=bucket, Key=f"{key_prefix}/{name}.zip", Body=body)
    return bucket


def deploy(
    template_path: Path,
    endpoint_url: str,
    region: str,
    stack_name: str,
    parameters: Mapping[str, str],
    *,
    plain: Mapping[str, Any] | None = None,
    archives: Mapping[str, bytes] | None = None,
    build_dir: Path | None = None,
    event_source_mappings: bool = True,
    timeout: float = 60.0,
) -> DeployedStack:
    """Create ``template_path`` (SAM) as stack ``stack_name`` in the emulator at ``endpoint_url`` and read it back.

    ``plain``: the translated template, if already made (:func:`plain_template`: translate once, deploy many);
    ``archives``: the code zips by logical ID (default: :func:`code_archives` from ``build_dir`` or the sources);
    ``event_source_mappings=False``: leave the stream's mapping out of the emulator's stack. With a DynamoDB stream
    mapped, moto hands every new record to the function itself (through Docker) and empties the stream even when that
    invocation cannot run, and no API call undoes it (DeleteEventSourceMapping leaves the table's hook in place): a
    local runner that polls the stream, as Lambda's poller does, would read nothing. Its settings stay in the template.
    """
    template_path = Path(template_path)
    doc = dict(plain) if plain is not None else plain_template(template_path)[0]
    if not event_source_mappings:
        doc["Resources"] = {name: r for name, r in doc["Resources"].items() if r["Type"] != "AWS::Lambda::EventSourceMapping"}
    code_dirs = code_directories(template_path, build_dir)
    archives = archives if archives is not None else code_archives(template_path, build_dir)
    values = emulator_parameters(doc, parameters)
    key_prefix = values.get("ArtifactKeyPrefix", str(doc["Parameters"].get("ArtifactKeyPrefix", {}).get("Default", "")))
    upload_code(archives, endpoint_url, region, values.get("ArtifactBucketPrefix", EMULATOR_ARTIFACT_PREFIX), key_prefix)

    cfn = _client("cloudformation", endpoint_url, region)
    stack_id, stack = _create_stack(cfn, stack_name, doc, values, timeout)
    resources, types = _stack_resources(cfn, stack_id)
    awslambda = _client("lambda", endpoint_url, region)
    layers = [n for n, t in types.items() if t == "AWS::Lambda::LayerVersion"]
    layer_arn = _layer_arn(awslambda, stack_name, layers)
    for name in layers:  # what its Ref gives in CloudFormation: the version's ARN
        resources[name] = resources[name] or layer_arn or ""
    return DeployedStack(
        name=stack_name,
        stack_id=stack_id,
        region=region,
        endpoint_url=endpoint_url,
        parameters=values,
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        resources=resources,
        types=types,
        functions=_deployed_functions(awslambda, resources, types, code_dirs, template_path.parent),
        layer_arn=layer_arn,
        event_source_mappings=_event_source_mappings(awslambda, resources, types),
    )


def _create_stack(
    cfn: Any, stack_name: str, doc: dict[str, Any], values: dict[str, str], timeout: float
) -> tuple[str, dict[str, Any]]:
    """CreateStack with the emulator's template and parameters, waited for: its id and its description."""
    try:
        stack_id: str = cfn.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(for_emulator(doc)),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )["StackId"]
    except (ClientError, ResponseParserError) as exc:  # moto creates the resources inside CreateStack: a resource's
        # error surfaces here (as another service's JSON error in the XML API when it comes from a JSON service)
        raise DeployError(f"CreateStack {stack_name}: {exc}") from exc
    stack = _wait(cfn, stack_id, timeout)
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise DeployError(f"stack {stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}".strip())
    return stack_id, stack


def _stack_resources(cfn: Any, stack_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """The stack's physical IDs and resource types, by logical ID."""
    summaries = [
        r
        for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_id)
        for r in page["StackResourceSummaries"]
        if r["LogicalResourceId"]
    ]  # moto lists skipped ones unnamed
    resources = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in summaries}
    types = {r["LogicalResourceId"]: r["ResourceType"] for r in summaries}
    return resources, types


def _deployed_functions(
    awslambda: Any, resources: dict[str, str], types: dict[str, str], code_dirs: dict[str, Path], default_dir: Path
) -> dict[str, DeployedFunction]:
    """Each function's configuration as the emulator's Lambda reports it, with its code directory."""
    functions = {}
    for logical_id, kind in types.items():
        if kind != "AWS::Lambda::Function":
            continue
        config = awslambda.get_function_configuration(FunctionName=resources[logical_id])
        functions[logical_id] = DeployedFunction(
            logical_id=logical_id,
            name=config["FunctionName"],
            arn=config["FunctionArn"],
            handler=config["Handler"],
            runtime=config["Runtime"],
            memory=int(config["MemorySize"]),
            timeout=int(config["Timeout"]),
            role=config["Role"],
            environment={k: str(v) for k, v in config.get("Environment", {}).get("Variables", {}).items()},
            code_dir=code_dirs.get(logical_id, default_dir),
        )
    return functions


def _event_source_mappings(awslambda: Any, resources: dict[str, str], types: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {
        name: _plain(awslambda.get_event_source_mapping(UUID=resources[name]))
        for name, kind in types.items()
        if kind == "AWS::Lambda::EventSourceMapping"
    }


def _plain(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def _wait(cfn: Any, stack_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stack: dict[str, Any] = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            return stack
        if time.monotonic() > deadline:
            raise DeployError(f"stack {stack_id}: still {stack['StackStatus']} after {timeout:.0f}s")
        time.sleep(0.2)


def _layer_arn(awslambda: Any, stack_name: str, logical_ids: list[str]) -> str | None:
    """moto ignores LayerName (it names a layer ``<stack>-<LogicalId>-<random>``) and lists no physical ID for it."""
    if not logical_ids:
        return None
    prefixes = tuple(f"{stack_name}-{name}-" for name in logical_ids)
    layers = [
        layer
        for page in awslambda.get_paginator("list_layers").paginate()
        for layer in page["Layers"]
        if layer["LayerName"].startswith(prefixes)
    ]
    if len(layers) != 1:
        return None
    return str(layers[0]["LatestMatchingVersion"]["LayerVersionArn"])
