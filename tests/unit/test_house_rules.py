"""The house's own rules, checked: pieces small enough to read (no module over 600 lines, no function over 80, in
the package and bench/), and the pre-commit hooks running exactly the checks of `make lint`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MODULE_LINES = 600
FUNCTION_LINES = 80
SMALL = (ROOT / "layers" / "tfjanitor" / "tfjanitor", ROOT / "bench")


def _sources() -> list[Path]:
    """The sources, not the copies of the package a bench run builds under bench/bench-output/ (git ignores them)."""
    return sorted(
        p for root in SMALL for p in root.rglob("*.py") if not {"__pycache__", "bench-output"} & set(p.relative_to(ROOT).parts)
    )


def test_no_module_over_600_lines_and_no_function_over_80() -> None:
    too_long = []
    for path in _sources():
        text = path.read_text()
        name = path.relative_to(ROOT)
        if (lines := len(text.splitlines())) > MODULE_LINES:
            too_long.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > FUNCTION_LINES:
                    too_long.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    assert too_long == [], "split these by job (docs/architecture.md says where pieces go):\n" + "\n".join(too_long)


def _make_lint_commands() -> list[str]:
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert recipe, "the Makefile has a lint target"
    return [line.strip().replace("$(BIN)/", ".venv/bin/") for line in recipe.group(1).splitlines()]


def test_the_pre_commit_hooks_run_exactly_make_lints_checks() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    entries = []
    for hook in hooks:
        assert hook["language"] == "system" and hook["pass_filenames"] is False, hook["id"]
        entries.append(re.sub(r"^env ", "", hook["entry"]))
    assert entries == _make_lint_commands()
