"""Run the AWS CLI command inside a finding's fix text, against the emulator, through boto3.

The AWS CLI is not installed here; its command line maps one to one onto the API (``put-bucket-
versioning --bucket B --versioning-configuration JSON`` is PutBucketVersioning(Bucket=B,
VersioningConfiguration=...)). Parameter types come from botocore's service model, so a string
stays a string (a policy document) and a structure is parsed from its JSON. A fix that does not
parse fails the test: the commands users paste must be exact.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import boto3

SERVICES = {"dynamodb": "dynamodb", "s3api": "s3"}


def parse(fix: str) -> tuple[str, str, str | None, dict[str, Any]]:
    """(boto3 service, operation name, --region, raw options) of the first aws command in ``fix``."""
    match = re.search(r"\baws (dynamodb|s3api) ", fix)
    assert match, f"no aws command in fix: {fix}"
    words = shlex.split(fix[match.start():])
    service, operation = SERVICES[words[1]], "".join(p.capitalize() for p in words[2].split("-"))
    options: dict[str, Any] = {}
    rest = words[3:]
    i = 0
    while i < len(rest):
        assert rest[i].startswith("--"), f"unexpected word {rest[i]!r} in {fix}"
        if i + 1 < len(rest) and not rest[i + 1].startswith("--"):
            options[rest[i]] = rest[i + 1]
            i += 2
        else:
            options[rest[i]] = True  # a flag, e.g. --deletion-protection-enabled
            i += 1
    region = options.pop("--region", None)
    return service, operation, region, options


def run(fix: str, endpoint_url: str) -> dict[str, Any]:
    service, operation, region, options = parse(fix)
    client = boto3.client(service, region_name=region, endpoint_url=endpoint_url,
                          aws_access_key_id="test", aws_secret_access_key="test")
    members = client.meta.service_model.operation_model(operation).input_shape.members
    params: dict[str, Any] = {}
    for option, value in options.items():
        name = "".join(p.capitalize() for p in option[2:].split("-"))
        name = next((m for m in members if m.lower() == name.lower()), name)
        assert name in members, f"{operation} has no parameter for {option}"
        kind = members[name].type_name
        if kind == "boolean":
            params[name] = value is True or str(value).lower() == "true"
        elif kind in ("structure", "list", "map"):
            params[name] = json.loads(value)
        else:
            params[name] = value
    method = re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()
    return getattr(client, method)(**params)  # type: ignore[no-any-return]
