"""template.yaml as SAM CLI and CloudFormation read it: its functions (Globals merged, parameters applied, through
SAM CLI's own template providers, what ``sam local`` stands on) and the parameter checks CloudFormation makes when it
creates a change set (required values, AllowedValues, AllowedPattern per list element, Rules), in its words."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float:
    match = _RATE.match(expression.strip())
    if not match:
        raise ValueError(f"only rate() schedules run locally, not {expression!r}")
    return int(match[1]) * _UNIT_SECONDS[match[2].rstrip("s")]


@dataclass
class LocalFunction:
    name: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    events: dict[str, Any]
    timeout: float = 240  # seconds, from the template (Globals merged)
    memory: int = 256
    runtime: str = "python3.13"
    layers: list[Path] = field(default_factory=list)  # each layer's directory (what Lambda mounts at /opt)
    log_group: str | None = None  # LoggingConfig's log group, its name resolved
    log_format: str | None = None  # LoggingConfig's LogFormat (JSON or Text)
    application_log_level: str | None = None
    function_name: str | None = None  # FunctionName, when the template sets one

    @property
    def schedule_seconds(self) -> float | None:
        for event in self.events.values():
            if event.get("Type") in ("Schedule", "ScheduleV2"):
                expression = event["Properties"].get("ScheduleExpression") or event["Properties"].get("Schedule")
                return rate_seconds(str(expression))
        return None

    @property
    def stream_event(self) -> dict[str, Any] | None:
        for event in self.events.values():
            if event.get("Type") == "DynamoDB":
                return dict(event["Properties"])
        return None


class ParameterError(ValueError):
    """Parameter values CloudFormation would refuse when creating the change set."""


def _rule_value(expr: Any, values: dict[str, Any]) -> Any:
    """The rule-specific intrinsic functions template.yaml's Rules use."""
    if not isinstance(expr, dict):
        return expr
    [(op, args)] = expr.items()
    if op == "Ref":
        return values[args]
    if op == "Fn::Equals":
        left, right = (_rule_value(a, values) for a in args)
        return left == right
    if op == "Fn::Not":
        return not _rule_value(args[0], values)
    if op == "Fn::And":
        return all(_rule_value(a, values) for a in args)
    if op == "Fn::Or":
        return any(_rule_value(a, values) for a in args)
    if op == "Fn::EachMemberEquals":
        members, value = (_rule_value(a, values) for a in args)
        return all(m == value for m in members)
    raise ValueError(f"rule function {op} is not supported locally")


def check_parameters(template: dict[str, Any], overrides: dict[str, str]) -> list[str]:
    """What CloudFormation would say about these parameter values, in its words ([] when it accepts them)."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    for name, spec in template.get("Parameters", {}).items():
        if name not in overrides and "Default" not in spec:
            problems.append(f"Parameters: [{name}] must have values")
            continue
        raw = str(overrides.get(name, spec.get("Default")))
        is_list = spec.get("Type") == "CommaDelimitedList"
        values[name] = raw.split(",") if is_list else raw
        allowed = [str(v) for v in spec.get("AllowedValues", [])]
        pattern = spec.get("AllowedPattern")
        for element in values[name] if is_list else [raw]:
            if (allowed and element not in allowed) or (pattern and not re.fullmatch(pattern, element)):
                problems.append(
                    f"Parameter '{name}' must satisfy constraint: "
                    f"{spec.get('ConstraintDescription') or f'[AllowedValues: {allowed}]'} (got {element!r})"
                )
                break
    if problems:
        return problems
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not _rule_value(rule["RuleCondition"], values):
            continue
        problems += [a["AssertDescription"] for a in rule["Assertions"] if not _rule_value(a["Assert"], values)]
    return problems


def load_functions(template: Path, parameters: dict[str, str], pseudo: dict[str, str] | None = None) -> list[LocalFunction]:
    """The template's functions as SAM CLI resolves them (Globals merged, parameters applied), after
    the parameter checks CloudFormation makes (``ParameterError`` lists what it would refuse).
    ``pseudo``: pseudo parameters such as ``AWS::StackName`` and ``AWS::Region`` (SAM CLI's defaults otherwise)."""
    os.environ.setdefault("SAM_CLI_TELEMETRY", "0")
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider  # noqa: PLC0415
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider  # noqa: PLC0415
    from samcli.yamlhelper import yaml_parse  # noqa: PLC0415

    problems = check_parameters(yaml_parse(template.read_text()), parameters)
    if problems:
        raise ParameterError("; ".join(problems))

    stacks, _ = SamLocalStackProvider.get_stacks(str(template), parameter_overrides=parameters, global_parameter_overrides=pseudo)
    resources = {name: res for stack in stacks for name, res in (stack.resources or {}).items()}

    def local_path(uri: str) -> Path:
        path = Path(uri)
        return path if path.is_absolute() else template.parent / path

    functions = []
    for fn in SamFunctionProvider(stacks).get_all():
        env = {k: str(v) for k, v in ((fn.environment or {}).get("Variables") or {}).items()}
        logging_config = dict(fn.logging_config or {})
        group = logging_config.get("LogGroup")
        if isinstance(group, str) and group in resources:  # a !Ref to the stack's log group: its name
            group = (resources[group].get("Properties") or {}).get("LogGroupName", group)
        functions.append(
            LocalFunction(
                fn.name,
                local_path(fn.codeuri),
                fn.handler,
                env,
                dict(fn.events or {}),
                float(fn.timeout or 3),
                int(fn.memory or 128),
                runtime=str(fn.runtime or "python3.13"),
                layers=[local_path(layer.codeuri) for layer in fn.layers or [] if layer.codeuri],
                log_group=group if isinstance(group, str) else None,
                log_format=logging_config.get("LogFormat"),
                application_log_level=logging_config.get("ApplicationLogLevel"),
                function_name=fn.functionname if fn.functionname != fn.name else None,
            )
        )
    return functions
