"""The rooms of the package (docs/architecture.md) and the one way imports may run between them.

Walks every module's imports (function-level ones too; ``if TYPE_CHECKING:`` blocks do not count:
they never run) and fails on an import the architecture forbids.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "tfjanitor" / "tfjanitor"
FUNCTIONS = ROOT / "functions"

BASE = "base"  # terraform.py, model.py, catalog.py, durations.py, untrusted.py, commands.py, workdir.py: the pure vocabulary
# room -> the rooms it may import (besides itself). Read top to bottom: entry points, wiring, work, foundations.
ALLOWED: dict[str, set[str]] = {
    "entry": {"runtime", "scan", "checks", "alerts", "release", "aws", BASE},  # functions/*/app.py
    "cli": {"local", "runtime", "scan", "checks", "alerts", "release", "aws", BASE},
    "local": {"runtime", "aws", BASE},
    "runtime": {"scan", "checks", "alerts", "release", "aws", BASE},
    "scan": {"checks", "alerts", "aws", BASE},
    "release": {"checks", "alerts", "aws", BASE},
    "alerts": {"aws", BASE},
    "checks": {BASE},
    "aws": {BASE},
    BASE: set(),
}
AWS_SDK = {"boto3", "botocore"}
SDK_ROOMS = {"aws", "local"}  # the only rooms that may import boto3 / botocore
BASE_MODULES = {"terraform", "model", "catalog", "durations", "untrusted", "commands", "workdir"}


def room_of(module: str) -> str | None:
    """Room of a dotted ``tfjanitor...`` module name."""
    parts = module.split(".")
    if parts[0] != "tfjanitor":
        return None
    if len(parts) == 1 or parts[1] in {"__main__"}:
        return "cli"
    if parts[1] in BASE_MODULES:
        return BASE
    if parts[1] in ALLOWED:
        return parts[1]
    raise AssertionError(f"{module}: not in any room of docs/architecture.md (add it to a room, or add the room)")


def _runtime_imports(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import that can run (skipping ``if TYPE_CHECKING:`` bodies)."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.extend((child.lineno, a.name) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".")[: -child.level]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                found.append((child.lineno, target))
                if target == "tfjanitor":  # from tfjanitor import x
                    found.extend((child.lineno, f"tfjanitor.{a.name}") for a in child.names)
            visit(child)

    visit(tree)
    return found


def _modules() -> list[tuple[str, Path, str]]:
    """(dotted name, file, room) for every module of the package and every function handler."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__") if rel.name == "__init__" else ".".join(rel.parts)
        if path.name == "__init__.py" and path.parent == PACKAGE:
            out.append((name, path, BASE))
            continue
        out.append((name, path, room_of(name) or BASE))
    for path in sorted(FUNCTIONS.glob("*/app.py")):
        out.append((f"functions.{path.parent.name}.app", path, "entry"))
    return out


def problems_of(name: str, path: Path, room: str) -> list[str]:
    """What in one module breaks the architecture."""
    problems = []
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    for line, target in _runtime_imports(ast.parse(path.read_text(), str(path)), name):
        top = target.split(".")[0]
        if top in AWS_SDK and room not in SDK_ROOMS:
            problems.append(f"{where}:{line}: {room} imports {target} (only the aws and local rooms talk to AWS)")
        if top != "tfjanitor" or target == "tfjanitor":
            continue
        other = room_of(target)
        if other is not None and other != room and other not in ALLOWED[room]:
            problems.append(f"{where}:{line}: {room} imports {target} ({other}): not allowed by docs/architecture.md")
    return problems


def test_imports_run_one_way() -> None:
    assert [p for m in _modules() for p in problems_of(*m)] == []


def test_rooms_have_no_cycles() -> None:
    """The allowed graph itself is a DAG: no two rooms may import each other, directly or not."""

    def walk(room: str, path: tuple[str, ...]) -> None:
        assert room not in path, f"cycle between rooms: {' -> '.join((*path, room))}"
        for nxt in ALLOWED[room]:
            walk(nxt, (*path, room))

    for room in ALLOWED:
        walk(room, ())


def test_lambda_path_never_reaches_local_or_cli() -> None:
    """Follow the imports from each handler, transitively: the Lambda never loads the local runner or the CLI."""
    modules = {name: (path, room) for name, path, room in _modules()}
    for handler in [n for n in modules if n.startswith("functions.")]:
        stack, reached = [handler], set()
        while stack:
            name = stack.pop()
            if name in reached or name not in modules:
                continue
            reached.add(name)
            path, _ = modules[name]
            stack += [t for _, t in _runtime_imports(ast.parse(path.read_text()), name) if t.startswith("tfjanitor")]
        bad = sorted(n for n in reached if modules[n][1] in {"local", "cli"})
        assert bad == [], f"{handler} loads {bad}"


@pytest.mark.parametrize(
    ("room", "source", "why"),
    [
        ("checks", "from tfjanitor.aws.session import AwsSession\n", "checks imports tfjanitor.aws.session"),
        ("checks", "def f():\n    import boto3\n", "only the aws and local rooms talk to AWS"),
        ("alerts", "from botocore.exceptions import ClientError\n", "only the aws and local rooms talk to AWS"),
        ("aws", "from tfjanitor.alerts.lifecycle import Notice\n", "aws imports tfjanitor.alerts.lifecycle"),
        ("runtime", "from tfjanitor.local.runner import LocalStack\n", "runtime imports tfjanitor.local.runner"),
        ("scan", "from tfjanitor.runtime.settings import sweeper_settings\n", "scan imports tfjanitor.runtime.settings"),
        ("entry", "from tfjanitor.cli.main import main\n", "entry imports tfjanitor.cli.main"),
    ],
)
def test_forbidden_imports_are_caught(tmp_path: Path, room: str, source: str, why: str) -> None:
    """The check is not vacuous: each forbidden direction, planted in a module, is reported."""
    planted = tmp_path / "planted.py"
    planted.write_text("from __future__ import annotations\n" + source)
    name = "functions.x.app" if room == "entry" else f"tfjanitor.{room}.planted"
    assert any(why in p for p in problems_of(name, planted, room)), problems_of(name, planted, room)


def test_type_checking_imports_do_not_count(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tfjanitor.aws.session import AwsSession\n")
    assert problems_of("tfjanitor.checks.planted", planted, "checks") == []
