"""template.yaml as CloudFormation renders it for given parameter values (the intrinsics it uses).

Lets tests check the IAM and the outputs a user would really get: conditions evaluated, ``Fn::If``
branches chosen, ``AWS::NoValue`` dropped, ``Join``/``Split``/``Sub`` computed. A ``Ref`` to a
resource stays ``{"Ref": name}`` (and ``Fn::GetAtt`` stays as it is) unless the physical IDs and attributes of a
created stack are given; IAM policy variables (``${aws:...}``) are left as IAM sees them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str

ROOT = Path(__file__).resolve().parents[2]
NO_VALUE = object()


def load_template() -> dict[str, Any]:
    doc, problems = decode_str((ROOT / "template.yaml").read_text())
    assert not problems, problems
    return doc


class Rendered:
    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, str],
        region: str = "ap-northeast-2",
        partition: str = "aws",
        account: str = "123456789012",
        stack_name: str = "tfjanitor",
        resources: Mapping[str, str] | None = None,
        attributes: Mapping[str, str] | None = None,
    ):
        """``resources``: logical ID -> what its ``Ref`` gives (a created stack's physical IDs); ``attributes``:
        ``"LogicalId.Attribute"`` -> what its ``Fn::GetAtt`` gives."""
        self.template = template
        self.attributes = dict(attributes or {})
        self.values: dict[str, Any] = {
            "AWS::Region": region,
            "AWS::Partition": partition,
            "AWS::AccountId": account,
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com",
        }
        for name, spec in template["Parameters"].items():
            raw = parameters.get(name, spec.get("Default"))
            assert raw is not None, f"{name} has no default: pass it"
            self.values[name] = str(raw).split(",") if spec["Type"] == "CommaDelimitedList" else str(raw)
        self.values.update(resources or {})

    def condition(self, name: str) -> bool:
        return bool(self.value(self.template["Conditions"][name]))

    def value(self, node: Any) -> Any:  # noqa: PLR0911
        if isinstance(node, list):
            items = [self.value(n) for n in node]
            return [i for i in items if i is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) != 1 or not next(iter(node)).startswith(("Fn::", "Ref", "Condition")):
            members = {k: self.value(v) for k, v in node.items()}
            return {k: v for k, v in members.items() if v is not NO_VALUE}
        [(op, args)] = node.items()
        if op == "Ref":
            if args == "AWS::NoValue":
                return NO_VALUE
            return self.values.get(args, {"Ref": args})
        if op == "Condition":
            return self.condition(args)
        if op == "Fn::If":
            name, then, other = args
            return self.value(then if self.condition(name) else other)
        if op == "Fn::Equals":
            left, right = (self.value(a) for a in args)
            return left == right
        if op == "Fn::Not":
            return not self.value(args[0])
        if op == "Fn::And":
            return all(self.value(a) for a in args)
        if op == "Fn::Or":
            return any(self.value(a) for a in args)
        if op == "Fn::Join":
            sep, parts = args
            return sep.join(_text(p) for p in self.value(parts))
        if op == "Fn::Split":
            sep, text = args
            return str(self.value(text)).split(sep)
        if op == "Fn::Select":
            index, items = args
            return self.value(items)[int(self.value(index))]
        if op == "Fn::FindInMap":
            m, k1, k2 = (self.value(a) for a in args)
            return self.template["Mappings"][m][k1][k2]
        if op == "Fn::GetAtt":
            key = ".".join(args) if isinstance(args, list) else args
            return self.attributes.get(key, {"Fn::GetAtt": args})
        if op == "Fn::Sub":
            text, variables = (args, {}) if isinstance(args, str) else args
            local = {k: self.value(v) for k, v in variables.items()}

            def sub(match: re.Match[str]) -> str:
                name = match[1]
                if name in local:
                    return _text(local[name])
                if name in self.values:
                    return _text(self.values[name])
                if name in self.attributes:
                    return self.attributes[name]
                return "${" + name + "}"  # a resource's Ref, or an IAM policy variable

            return re.sub(r"\$\{([^}!]+)\}", sub, text)
        raise AssertionError(f"intrinsic {op} not rendered by tests/support/cfn.py")

    def statements(self, function: str) -> list[dict[str, Any]]:
        """Every IAM statement a function's role gets: its inline ones and those of the managed policies it
        references (SAM policy templates are returned as they are: {"DynamoDBCrudPolicy": {...}})."""
        out: list[dict[str, Any]] = []
        for policy in self.value(self.template["Resources"][function]["Properties"]["Policies"]):
            if "Statement" in policy:
                out += policy["Statement"]
            elif "Ref" in policy:
                managed = self.template["Resources"][policy["Ref"]]
                assert "Condition" not in managed or self.condition(managed["Condition"])
                out += self.value(managed["Properties"]["PolicyDocument"]["Statement"])
            else:
                out.append(policy)
        return out

    def output(self, name: str) -> str | None:
        spec = self.template["Outputs"][name]
        if "Condition" in spec and not self.condition(spec["Condition"]):
            return None
        return str(self.value(spec["Value"]))


def _text(value: Any) -> str:
    """A value inside Join or Sub; a resource's Ref shows as its logical ID (as in `sam local`)."""
    return value["Ref"] if isinstance(value, dict) and "Ref" in value else str(value)


def actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def resources(statement: dict[str, Any]) -> list[Any]:
    resource = statement.get("Resource", [])
    return resource if isinstance(resource, list) else [resource]
