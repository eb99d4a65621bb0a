"""Run CI configuration the way its CI system would, as far as the tests need: a composite GitHub Action's steps
(``${{ inputs.* }}``, ``${{ steps.*.outputs.* }}`` and ``${{ env.* }}`` substituted, ``shell: bash`` as the runner
runs it, ``$GITHUB_OUTPUT`` read back), and the snippets of docs/ci-cleanup.md (found by their
``<!-- snippet: NAME -->`` marker). Any other ``${{ ... }}`` expression fails loudly: the emulation must never
quietly differ from GitHub's."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
CI_DOC = ROOT / "docs" / "ci-cleanup.md"
_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_SNIPPET = re.compile(r"<!-- snippet: (\S+) -->\n```(\w+)\n(.*?)\n```", re.DOTALL)
# GitHub runs `shell: bash` as `bash --noprofile --norc -eo pipefail {0}`.
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]


def run_group(
    argv: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run a command in a process group of its own and end the whole group when it returns (or times out): a
    shell's children never outlive the test."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        raise AssertionError(f"{argv} did not finish within {timeout:.0f}s\n{out}{err}") from None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def snippets(doc: Path = CI_DOC) -> dict[str, tuple[str, str]]:
    """name -> (fence language, text) of every marked snippet."""
    return {name: (lang, body + "\n") for name, lang, body in _SNIPPET.findall(doc.read_text())}


def check_jsonschema(schema: str, path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """SchemaStore's schema (shipped with check-jsonschema, offline) against one file."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *extra, "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def have_check_jsonschema() -> bool:
    try:
        import check_jsonschema  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


@dataclass
class StepRun:
    id: str
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class ActionRun:
    steps: list[StepRun]
    outputs: dict[str, str]

    @property
    def returncode(self) -> int:
        return self.steps[-1].returncode


def _read_outputs(path: Path) -> dict[str, str]:
    """``name=value`` lines and ``name<<DELIMITER`` blocks, as the runner reads ``$GITHUB_OUTPUT``."""
    outputs: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)
            outputs[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
            continue
        name, _, value = line.partition("=")
        outputs[name] = value
        i += 1
    return outputs


def substitute(text: str, context: Mapping[str, Mapping[str, Any]]) -> str:
    """Replace each ``${{ a.b }}`` / ``${{ a.b.c.d }}`` with its value in ``context``; anything else fails."""

    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        parts = expression.split(".")
        if not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", p) for p in parts) or parts[0] not in context:
            raise AssertionError(f"an expression the test runner does not emulate: ${{{{ {expression} }}}}")
        found: Any = context
        for part in parts:
            found = found.get(part, "") if isinstance(found, Mapping) else ""
        return str(found)

    return _EXPRESSION.sub(value, text)


def run_composite_action(
    inputs: Mapping[str, str], env: Mapping[str, str], cwd: Path, workdir: Path, action: Path = ACTION, timeout: float = 120.0
) -> ActionRun:
    """Run every step of a composite action in order (stopping at the first that fails, as GitHub does)."""
    doc = yaml.safe_load(action.read_text())
    assert doc["runs"]["using"] == "composite"
    declared = doc.get("inputs", {})
    unknown = set(inputs) - set(declared)
    assert not unknown, f"inputs the action does not declare: {sorted(unknown)}"
    given = {name: str(inputs.get(name, spec.get("default", ""))) for name, spec in declared.items()}
    context: dict[str, dict[str, Any]] = {
        "inputs": given,
        "steps": {},
        "env": dict(env),
        "github": {"action_path": str(action.parent)},
    }
    runs: list[StepRun] = []
    for n, step in enumerate(doc["runs"]["steps"]):
        assert step.get("shell") == "bash" and "run" in step, step
        step_id = step.get("id", f"step{n}")
        out = workdir / f"output-{step_id}"
        out.write_text("")
        step_env = {
            **env,
            "GITHUB_OUTPUT": str(out),
            "RUNNER_TEMP": str(workdir),
            **{k: substitute(str(v), context) for k, v in (step.get("env") or {}).items()},
        }
        script = workdir / f"{step_id}.sh"
        script.write_text(substitute(step["run"], context))
        proc = run_group([*BASH, str(script)], cwd=cwd, env=step_env, timeout=timeout)
        outputs = _read_outputs(out)
        context["steps"][step_id] = {"outputs": outputs}
        runs.append(StepRun(step_id, proc.returncode, proc.stdout, proc.stderr, outputs))
        if proc.returncode != 0:
            break
    action_outputs = {name: substitute(str(spec.get("value", "")), context) for name, spec in (doc.get("outputs") or {}).items()}
    return ActionRun(runs, action_outputs)


def bash_available() -> bool:
    return shutil.which("bash") is not None
