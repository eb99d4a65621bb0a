"""The GitHub Action (action.yml) and the CI snippets of docs/ci-cleanup.md: valid against SchemaStore's schemas
(shipped offline with check-jsonschema), shaped so that the cleanup runs even when the job is cancelled, and the
action's steps build the command line they should (a stub tfjanitor; the real run is in tests/e2e)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
import yaml

from tests.conftest import on_ci
from tests.support.ci import ACTION, check_jsonschema, have_check_jsonschema, run_composite_action, snippets

SNIPPETS = {"github", "github-self-hosted", "gitlab", "jenkins", "azure", "atlantis"}
COMMAND = "tfjanitor unlock --mine"


@pytest.fixture(scope="module")
def schemas() -> None:
    if not have_check_jsonschema():
        message = "check-jsonschema is not installed (the dev extra has it)"
        if on_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def _valid(schema: str, text: str, tmp_path: Path, name: str, *extra: str) -> tuple[int, str]:
    path = tmp_path / f"{name}.yml"
    path.write_text(text)
    proc = check_jsonschema(schema, path, *extra)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.usefixtures("schemas")
def test_action_yml_is_valid_github_action_metadata(tmp_path: Path) -> None:
    code, out = _valid("vendor.github-actions", ACTION.read_text(), tmp_path, "action")
    assert code == 0, out
    # Not vacuous: a composite step without its shell is refused.
    broken = ACTION.read_text().replace("      shell: bash\n", "", 1)
    code, out = _valid("vendor.github-actions", broken, tmp_path, "broken")
    assert code == 1 and "'shell' is a required property" in out, out


@pytest.mark.parametrize(
    ("name", "schema", "extra", "break_it"),
    [
        ("github", "vendor.github-workflows", (), ("runs-on:", "runs_on:")),
        ("github-self-hosted", "vendor.github-workflows", (), ("if: always()", "iff: always()")),
        ("gitlab", "vendor.gitlab-ci", (), ("after_script:", "after_scripts:")),
        # The Azure schema's own patterns need Python's regex engine (check-jsonschema's default refuses one).
        ("azure", "vendor.azure-pipelines", ("--regex-variant", "python"), ("condition: always()", "conditio: always()")),
    ],
)
@pytest.mark.usefixtures("schemas")
def test_the_snippets_are_valid_whole_pipelines(
    tmp_path: Path, name: str, schema: str, extra: tuple[str, ...], break_it: tuple[str, str]
) -> None:
    _, text = snippets()[name]
    code, out = _valid(schema, text, tmp_path, name, *extra)
    assert code == 0, out
    assert break_it[0] in text
    code, out = _valid(schema, text.replace(*break_it), tmp_path, f"{name}-broken", *extra)
    assert code == 1, out


def test_every_ci_system_has_a_snippet_whose_cleanup_runs_even_when_the_job_is_cancelled() -> None:
    found = snippets()
    assert set(found) == SNIPPETS
    action_inputs = set(yaml.safe_load(ACTION.read_text())["inputs"])
    for name in ("github", "github-self-hosted"):
        steps = yaml.safe_load(found[name][1])["jobs"]["terraform"]["steps"]
        [cleanup] = [s for s in steps if str(s.get("uses", "")).startswith("tfjanitor/tfjanitor@")]
        assert cleanup["if"] == "always()" and set(cleanup["with"]) <= action_inputs, name
        assert steps.index(cleanup) > max(i for i, s in enumerate(steps) if "terraform apply" in s.get("run", ""))
    self_hosted = yaml.safe_load(found["github-self-hosted"][1])["jobs"]["terraform"]["steps"]
    assert "$GITHUB_ENV" in self_hosted[0]["run"] and "since" in self_hosted[-1]["with"]
    job = yaml.safe_load(found["gitlab"][1])["terraform"]
    assert any(COMMAND in line for line in job["after_script"]) and not any(COMMAND in line for line in job["script"])
    azure = yaml.safe_load(found["azure"][1])["steps"]
    [cleanup] = [s for s in azure if COMMAND in s["script"]]
    assert cleanup["condition"] == "always()" and azure.index(cleanup) == len(azure) - 1
    jenkins = found["jenkins"][1]
    assert re.search(r"post \{\s*always \{\s*sh '" + re.escape(COMMAND), jenkins), jenkins
    workflows = yaml.safe_load(found["atlantis"][1])["workflows"]["default"]
    plan = workflows["plan"]["steps"]
    runs = [i for i, s in enumerate(plan) if isinstance(s, dict) and COMMAND in s["run"]]
    assert runs and plan.index("init") < runs[0] < plan.index("plan")  # after init (backend, workspace), before plan
    assert any(isinstance(s, dict) and COMMAND in s["run"] for s in workflows["apply"]["steps"][:-1])


STUB = r"""#!/bin/bash
# python3 -m venv DIR, then DIR/bin/python -m pip install ...: record, and leave a tfjanitor that records its argv.
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && echo "venv $3" >> "$STUB_LOG"
  exit 0
fi
echo "pip ${*:3}" >> "$STUB_LOG"
here="$(dirname "$0")"
printf '#!/bin/bash\nfor a in "$@"; do printf "%%s\\n" "$a"; done > "$STUB_ARGV"\nexit "${STUB_EXIT:-0}"\n' > "$here/tfjanitor"
chmod +x "$here/tfjanitor"
"""


@pytest.fixture
def stub_path(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python3"
    python.write_text(STUB)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "STUB_LOG": str(tmp_path / "log"),
        "STUB_ARGV": str(tmp_path / "argv"),
        "HOME": str(tmp_path),
    }


def _run(tmp_path: Path, env: dict[str, str], **inputs: str) -> tuple[int, dict[str, str], str]:
    work = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    work.mkdir()
    run = run_composite_action(inputs, env, cwd=tmp_path, workdir=work)
    return run.returncode, run.outputs, "".join(s.stdout + s.stderr for s in run.steps)


def test_the_action_installs_the_version_asked_and_passes_the_inputs_as_arguments(tmp_path: Path, stub_path: dict[str, str]) -> None:
    code, outputs, _ = _run(tmp_path, stub_path, **{"working-directory": "infra", "since": "2026-11-25T00:01:26Z"})
    assert code == 0 and outputs == {"exit-code": "0"}
    log = Path(stub_path["STUB_LOG"]).read_text().splitlines()
    assert log[0].startswith("venv ") and log[0].endswith("/tfjanitor-venv")
    assert log[1] == "pip install --quiet --disable-pip-version-check tfjanitor"
    argv = Path(stub_path["STUB_ARGV"]).read_text().splitlines()
    assert argv == ["unlock", "--mine", "--chdir", "infra", "--since", "2026-11-25T00:01:26Z"]
    code, _, _ = _run(tmp_path, stub_path, version="0.2.0", **{"dry-run": "true"})
    assert code == 0 and Path(stub_path["STUB_LOG"]).read_text().splitlines()[-1].endswith(" tfjanitor==0.2.0")
    assert Path(stub_path["STUB_ARGV"]).read_text().splitlines() == ["unlock", "--mine", "--chdir", ".", "--dry-run"]


def test_inputs_are_data_never_shell(tmp_path: Path, stub_path: dict[str, str]) -> None:
    since = "$(touch pwned) `touch pwned2` '; touch pwned3"
    code, _, _ = _run(tmp_path, stub_path, since=since, **{"working-directory": "a dir/with 'quotes'"})
    assert code == 0 and not list(tmp_path.glob("pwned*"))
    assert Path(stub_path["STUB_ARGV"]).read_text().splitlines() == [
        "unlock",
        "--mine",
        "--chdir",
        "a dir/with 'quotes'",
        "--since",
        since,
    ]


@pytest.mark.parametrize(
    ("inputs", "says"),
    [
        ({"version": "1.0; touch pwned"}, "version must be a version number"),
        ({"version": "preinstalled"}, "no tfjanitor on PATH"),
        ({"dry-run": "yes"}, "dry-run must be true or false"),
    ],
)
def test_bad_inputs_fail_the_step_with_exit_2_and_say_why(
    tmp_path: Path, stub_path: dict[str, str], inputs: dict[str, str], says: str
) -> None:
    code, _, out = _run(tmp_path, stub_path, **inputs)
    assert code == 2 and says in out and not list(tmp_path.glob("pwned*")), out


def test_the_exit_code_of_tfjanitor_is_the_steps_and_the_actions_output(tmp_path: Path, stub_path: dict[str, str]) -> None:
    for exit_code in ("1", "2"):
        code, outputs, _ = _run(tmp_path, {**stub_path, "STUB_EXIT": exit_code})
        assert code == int(exit_code) and outputs == {"exit-code": exit_code}
    preinstalled = tmp_path / "pre"
    preinstalled.mkdir()
    tool = preinstalled / "tfjanitor"
    tool.write_text('#!/bin/bash\necho "$@" > "$STUB_ARGV"\n')
    tool.chmod(0o755)
    env = {**stub_path, "PATH": f"{preinstalled}:{stub_path['PATH']}"}
    before = Path(stub_path["STUB_LOG"]).read_text()
    code, outputs, _ = _run(tmp_path, env, version="preinstalled")
    assert code == 0 and Path(stub_path["STUB_LOG"]).read_text() == before  # nothing installed
    assert Path(stub_path["STUB_ARGV"]).read_text().strip() == "unlock --mine --chdir ."
