"""`tfjanitor unlock --mine` with the real terraform binary against moto server, and the real /proc: killed
applies are released (every way of locking, a non-default workspace), a live apply's lock is kept, other
machines' locks and those before --since are kept, a lock replaced between read and delete is kept and
reported; Who is checked against what the binary wrote; the GitHub Action and each CI snippet of
docs/ci-cleanup.md run their command for real.

Other terraform processes of this user on this machine (another engineer's tests, during development) are
live runs to tfjanitor: they can make a dead run's lock look live here. In CI only this suite runs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.integration.test_cli_never_crashes import one_json_object
from tests.support.builders import lock_info, put_lock
from tests.support.ci import BASH, run_composite_action, run_group, snippets, substitute
from tests.support.terraform import TerraformProject
from tfjanitor.local.emulator import MotoServer
from tfjanitor.local.proxy import EmulatorProxy
from tfjanitor.release.machine import LocalMachine, go_username
from tfjanitor.terraform import parse_time

Factory = Callable[..., TerraformProject]
OTHER = "runner@fv-az999-1"  # another machine's Who


def tool_env(tf: TerraformProject, **extra: str) -> dict[str, str]:
    """What tfjanitor runs with: terraform's own environment (the same HOME, USER, credentials; no endpoint and no
    region, so the backend decides), plus what runs Python here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_", "CI_"))}
    env.update(tf.env)
    env.update(extra)
    return env


def mine(tf: TerraformProject, *args: str, cwd: Path | None = None) -> tuple[int, dict[str, Any], str]:
    proc = run_group(
        [sys.executable, "-m", "tfjanitor", "unlock", "--mine", *args, "--format", "json"], cwd=cwd or tf.workdir, env=tool_env(tf)
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, one_json_object(proc.stdout), proc.stderr


def snapshot(server: MotoServer, key: str) -> tuple[str, str | None]:
    """The state object's MD5 and its digest item: what a release must never change."""
    body = client("s3", server).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    item = client("dynamodb", server).get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{key}-md5"}})
    return hashlib.md5(body).hexdigest(), item.get("Item", {}).get("Digest", {}).get("S")  # noqa: S324


def info_of(tf: TerraformProject, workspace: str = "default") -> dict[str, Any] | None:
    item = tf.lock_item(workspace)
    return json.loads(item["Info"]["S"]) if item else None


def _first_group(pattern: str, text: str) -> str:
    """The first group of ``pattern``'s first match in ``text`` (a snippet of the docs: it must be there)."""
    match = re.search(pattern, text)
    assert match is not None, pattern
    return match[1]


def after(instant: datetime, margin: timedelta = timedelta(milliseconds=50)) -> None:
    """Wait until the clock is past ``instant``: a process started now starts after it, whatever the 1/CLK_TCK
    resolution of start times (a precondition, not an assertion)."""
    while datetime.now(timezone.utc) < instant + margin:
        time.sleep(0.01)


CASES: dict[str, tuple[dict[str, Any], str]] = {  # terraform()'s backend options, the workspace
    "dynamodb": ({}, "default"),
    "lockfile": ({"use_lockfile": True, "dynamodb_table": None}, "default"),
    "both-in-a-workspace": ({"use_lockfile": True}, "staging"),
    "lockfile-empty-prefix-workspace": ({"use_lockfile": True, "dynamodb_table": None, "workspace_key_prefix": ""}, "qa"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_killed_applys_locks_are_released_exactly_and_terraform_runs_again(
    terraform: Factory, backend: MotoServer, case: str
) -> None:
    options, workspace = CASES[case]
    tf = terraform(**options)
    tf.init()
    if workspace != "default":
        tf.workspace_new(workspace)
    tf.apply("v1")
    key = tf.backend.state_key(workspace)
    before = snapshot(backend, key)
    killed = tf.start_apply_and_kill("v2", workspace=workspace)
    # Who, computed here, is exactly what the real binary wrote.
    assert killed.lock["Who"] == LocalMachine(environ=tool_env(tf)).who()
    # A lock of this machine's dead run on another state: not this working directory's, never looked at.
    put_lock(
        client("dynamodb", backend),
        BUCKET,
        "elsewhere/terraform.tfstate",
        lock_info("x", who=killed.lock["Who"], age=timedelta(hours=1), lock_id="not-this-state"),
    )
    code, doc, err = mine(tf)  # --chdir defaults to the current directory
    assert code == 0, (doc, err)
    dynamodb, lockfile = options.get("dynamodb_table", TABLE) is not None, bool(options.get("use_lockfile"))
    expected = [("dynamodb", key, killed.lock["ID"])] * dynamodb + [("lockfile", key, killed.lock["ID"])] * lockfile
    assert [(r["source"], r["key"], r["lock_id"]) for r in doc["released"]] == expected
    assert all(r["bucket"] == BUCKET for r in doc["released"]) and doc["kept"] == [] and doc["errors"] == []
    assert doc["who"] == killed.lock["Who"] and doc["scope"]["workspace"] == workspace and doc["scope"]["key"] == key
    assert (tf.lock_item(workspace) if dynamodb else None) is None and tf.lockfile(workspace) is None
    assert snapshot(backend, key) == before  # state and digest untouched
    assert (
        client("dynamodb", backend)
        .get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/elsewhere/terraform.tfstate"}})
        .get("Item")
    )
    assert tf.plan(timeout=60).ok


def test_a_live_apply_keeps_its_lock_and_a_dead_run_before_it_is_released(terraform: Factory, backend: MotoServer) -> None:
    dead, live = terraform("dead", key="dead/terraform.tfstate"), terraform("live", key="live/terraform.tfstate")
    dead.init()
    live.init()
    killed = dead.start_apply_and_kill("v1")
    after(parse_time(killed.lock["Created"]))
    proc = live.start(["apply", "-auto-approve", "-input=false", "-no-color", "-var", "v=v1", "-var", "sleep=300"], "live")
    try:
        _, held = live.wait_for_lock(proc)
        code, doc, err = mine(live)
        assert code == 0 and doc["released"] == [], (doc, err)
        [kept] = doc["kept"]
        assert (kept["lock_id"], kept["reason_code"]) == (held["ID"], "live_run")
        assert kept["reason"].startswith("held by a live run") and proc.pid in [r["pid"] for r in kept["live_runs"]]
        # The whole table: the dead run's lock was taken before the live run started, so it cannot be its.
        code, doc, err = mine(live, "--table", TABLE, "--region", REGION, "--endpoint-url", backend.url)
        assert code == 0, (doc, err)
        assert [(r["key"], r["lock_id"]) for r in doc["released"]] == [("dead/terraform.tfstate", killed.lock["ID"])]
        assert [(k["lock_id"], k["reason_code"]) for k in doc["kept"]] == [(held["ID"], "live_run")]
        assert (info_of(live) or {}).get("ID") == held["ID"] and info_of(dead) is None
    finally:
        live.close()  # the live apply's whole process group
    assert dead.plan(timeout=60).ok


def test_another_machines_lock_and_one_before_since_are_kept(terraform: Factory, backend: MotoServer) -> None:
    tf = terraform()
    tf.init()
    killed = tf.start_apply_and_kill("v1")
    created = parse_time(killed.lock["Created"])
    later = (created + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, doc, err = mine(tf, "--since", later)
    assert code == 0 and doc["released"] == [], (doc, err)
    assert [(k["lock_id"], k["reason_code"]) for k in doc["kept"]] == [(killed.lock["ID"], "before_since")]
    assert doc["kept"][0]["reason"].startswith("before --since") and info_of(tf) == killed.lock
    # The same lock, written by another machine: kept, whatever --since says.
    ddb = client("dynamodb", backend)
    original = tf.lock_item()
    assert original is not None
    foreign = json.dumps({**killed.lock, "Who": OTHER}, separators=(",", ":"))
    ddb.put_item(TableName=TABLE, Item={"LockID": original["LockID"], "Info": {"S": foreign}})
    code, doc, err = mine(tf, "--since", "1h")
    assert code == 0 and doc["released"] == [], (doc, err)
    assert [(k["lock_id"], k["reason_code"]) for k in doc["kept"]] == [(killed.lock["ID"], "other_machine")]
    assert doc["kept"][0]["reason"].startswith("another machine's") and (info_of(tf) or {}).get("Who") == OTHER
    # Back as this machine's, with --since before it: released.
    ddb.put_item(TableName=TABLE, Item=original)
    code, doc, err = mine(tf, "--since", "1h")
    assert code == 0 and [r["lock_id"] for r in doc["released"]] == [killed.lock["ID"]], (doc, err)
    assert tf.plan(timeout=60).ok


class ReplaceBeforeDelete(EmulatorProxy):
    """In front of the emulator: just before the first DeleteItem reaches it, a new run takes the state."""

    def __init__(self, upstream: str, replacement: str):
        super().__init__(upstream)
        self.replacement = replacement
        self.replaced = threading.Event()
        self._ddb = boto3.client(
            "dynamodb", region_name=REGION, endpoint_url=upstream, aws_access_key_id="test", aws_secret_access_key="test"
        )

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:
        target = next((v for k, v in headers.items() if k.lower() == "x-amz-target"), "")
        if target.endswith(".DeleteItem") and not self.replaced.is_set():
            request = json.loads(body)
            self._ddb.put_item(TableName=request["TableName"], Item={**request["Key"], "Info": {"S": self.replacement}})
            self.replaced.set()
        return super()._forward(method, path, headers, body)


def test_a_lock_replaced_between_read_and_delete_is_kept_and_reported(terraform: Factory, backend: MotoServer) -> None:
    tf = terraform()
    tf.init()
    killed = tf.start_apply_and_kill("v1")
    replacement = lock_info(f"{BUCKET}/{tf.backend.key}", who=killed.lock["Who"], lock_id="a-new-run")
    with ReplaceBeforeDelete(backend.url, replacement) as proxy:
        code, doc, err = mine(tf, "--endpoint-url", proxy.url)  # an explicit --endpoint-url wins over the backend's
    assert proxy.replaced.is_set()
    assert code == 1 and doc["released"] == [], (doc, err)
    [kept] = doc["kept"]
    assert (kept["lock_id"], kept["reason_code"]) == (killed.lock["ID"], "changed")
    assert kept["reason"].startswith("changed since read") and "nothing was deleted" in kept["reason"]
    assert (info_of(tf) or {}).get("ID") == "a-new-run"  # the new run's lock is untouched


def test_table_mode_releases_only_this_machines_dead_lock(terraform: Factory, backend: MotoServer) -> None:
    tf = terraform()
    tf.init()
    killed = tf.start_apply_and_kill("v1")
    ddb = client("dynamodb", backend)
    put_lock(
        ddb,
        BUCKET,
        "team/other/terraform.tfstate",
        lock_info(f"{BUCKET}/team/other/terraform.tfstate", who=OTHER, age=timedelta(hours=5), lock_id="theirs"),
    )
    code, doc, err = mine(tf, "--table", TABLE, "--region", REGION, "--endpoint-url", backend.url, cwd=tf.workdir.parent)
    assert code == 0, (doc, err)
    assert [(r["key"], r["lock_id"], r["table"]) for r in doc["released"]] == [(tf.backend.key, killed.lock["ID"], TABLE)]
    assert [(k["key"], k["lock_id"], k["reason_code"]) for k in doc["kept"]] == [
        ("team/other/terraform.tfstate", "theirs", "other_machine")
    ]
    assert info_of(tf) is None
    assert "Item" in ddb.get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/team/other/terraform.tfstate"}})
    assert tf.plan(timeout=60).ok


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="runs terraform as another uid (needs root)")
def test_who_without_a_passwd_entry_is_dollar_user_with_home_as_the_real_binary_writes_it(
    terraform: Factory, backend: MotoServer
) -> None:
    """Terraform's pure-Go os/user: a uid with no /etc/passwd entry (a container run with --user) is $USER, if
    $USER and $HOME are both set; else nothing ("@host")."""
    uid = 4242

    def as_uid() -> None:  # in the child, before terraform runs
        os.setgid(uid)
        os.setuid(uid)

    assert go_username(uid, Path("/etc/passwd").read_bytes(), {"USER": "x", "HOME": "/x"}) == "x", "uid 4242 has an entry"
    base = terraform()
    shared = Path(tempfile.mkdtemp(prefix="tfjanitor-uid-"))
    try:
        shared.chmod(0o777)
        tf = TerraformProject(shared / "work", base.backend, binary=base.binary)
        tf.init()
        subprocess.run(["chmod", "-R", "a+rwX", str(shared)], check=True, timeout=30)
        cases = [({"USER": "ci-bot"}, "ci-bot"), ({"USER": "ci-bot", "HOME": ""}, ""), ({}, "")]
        for n, (extra, user) in enumerate(cases):
            env = {**tf.env, **extra}
            proc = subprocess.Popen(
                [tf.binary, "apply", "-auto-approve", "-input=false", "-no-color", "-var", f"v=uid-{n}", "-var", "sleep=300"],
                cwd=tf.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=as_uid,  # noqa: PLW1509
            )
            try:
                _, held = tf.wait_for_lock(proc)
            finally:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            assert held["Who"] == LocalMachine(environ=env, uid=uid).who() == f"{user}@{os.uname().nodename}", extra
            client("dynamodb", backend).delete_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{tf.backend.key}"}})
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_start_times_from_the_real_proc_are_never_after_the_real_start(tmp_path: Path) -> None:
    probe = tmp_path / "terraform-probe"
    probe.symlink_to("/bin/sleep")
    before = time.time()
    proc = subprocess.Popen([str(probe), "300"], start_new_session=True, stdin=subprocess.DEVNULL)
    spawned = time.time()
    try:
        [run] = [p for p in LocalMachine().terraform_processes() if p.pid == proc.pid]
        # Where there is no /proc, ps: its lstart is whole seconds (and procps adds btime's cut second).
        [listed] = [p for p in LocalMachine(proc=tmp_path / "no-proc").terraform_processes() if p.pid == proc.pid]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    started = run.started.timestamp()
    ticks = os.sysconf("SC_CLK_TCK")
    assert before - 1 / ticks - 0.005 <= started <= spawned, (before, started, spawned)
    assert before - 2.01 <= listed.started.timestamp() <= started, (before, listed, started)
    assert run.name == listed.name == "terraform-probe"
    assert proc.pid not in [p.pid for p in LocalMachine().terraform_processes()]  # ended: not alive


# -- the GitHub Action and the snippets of docs/ci-cleanup.md, for real ---------------------------------------


def _tools_on_path(env: dict[str, str]) -> dict[str, str]:
    """PATH with this Python's scripts first: the tfjanitor a CI image would have installed."""
    scripts = Path(sys.executable).parent
    assert (scripts / "tfjanitor").exists(), f"no tfjanitor console script next to {sys.executable}"
    return {**env, "PATH": f"{scripts}:{env['PATH']}"}


def _bash(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_group([*BASH, "-c", command], cwd=cwd, env=env)


def test_the_github_action_and_every_ci_snippet_release_a_killed_applys_lock(
    terraform: Factory, backend: MotoServer, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    tf = terraform("repo/infra")
    tf.init()
    docs = snippets()
    env = _tools_on_path(tool_env(tf))
    results: dict[str, int] = {}

    def kill() -> None:
        """The job's terraform apply, killed mid-run (after the job's start was recorded)."""
        tf.start_apply_and_kill(f"v{len(results)}")
        assert tf.lock_item() is not None

    def job_start() -> str:
        return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def github(name: str) -> int:
        steps = yaml.safe_load(docs[name][1])["jobs"]["terraform"]["steps"]
        job_env = dict(env)
        for step in steps[: next(i for i, s in enumerate(steps) if "terraform apply" in s.get("run", ""))]:
            if "GITHUB_ENV" in step.get("run", ""):  # the self-hosted job records its start first
                github_env = tmp_path / f"{name}.env"
                assert _bash(step["run"], repo, {**job_env, "GITHUB_ENV": str(github_env)}).returncode == 0
                job_env.update(dict(line.split("=", 1) for line in github_env.read_text().splitlines()))
        kill()
        [step] = [s for s in steps if str(s.get("uses", "")).startswith("tfjanitor/tfjanitor@")]
        inputs = {k: substitute(str(v), {"env": job_env}) for k, v in step["with"].items()}
        inputs["version"] = "preinstalled"  # no download: the tfjanitor under test is on PATH
        work = tmp_path / f"action-{name}"
        work.mkdir()
        run = run_composite_action(inputs, job_env, cwd=repo, workdir=work)
        assert run.outputs["exit-code"] == str(run.returncode), run
        return run.returncode

    def gitlab() -> int:
        pipeline = yaml.safe_load(docs["gitlab"][1])
        job_env = {**env, **pipeline["variables"], "CI_JOB_STARTED_AT": job_start(), "CI_PROJECT_DIR": str(repo)}
        kill()
        return max(_bash(line, repo, job_env).returncode for line in pipeline["terraform"]["after_script"])

    def jenkins() -> int:
        text = docs["jenkins"][1]
        started = run_group(["sh", "-c", _first_group(r"sh\(script: '([^']+)'", text)]).stdout.strip()
        job_env = {**env, "TF_ROOT": _first_group(r"TF_ROOT = '([^']+)'", text), "JOB_STARTED_AT": started}
        kill()
        [command] = re.findall(r"always \{\s*sh '([^']+)'", text)
        return run_group(["sh", "-xe", "-c", command], cwd=repo, env=job_env).returncode

    def azure() -> int:
        steps = yaml.safe_load(docs["azure"][1])["steps"]
        recorded = _bash(steps[0]["script"], repo, env).stdout  # ##vso[task.setvariable variable=NAME]VALUE
        variables = dict(re.findall(r"##vso\[task\.setvariable variable=(\w+)\](.*)", recorded))
        kill()
        [cleanup] = [s for s in steps if "tfjanitor" in s["script"]]
        script = re.sub(r"\$\((\w+)\)", lambda m: variables[m[1]], cleanup["script"])  # Azure's macro syntax
        return _bash(script, repo, env).returncode

    def atlantis() -> int:
        plan = yaml.safe_load(docs["atlantis"][1])["workflows"]["default"]["plan"]["steps"]
        [command] = [s["run"] for s in plan if isinstance(s, dict)]
        kill()  # an earlier run, killed (a pod restart); this run's step after init cleans up
        atlantis_env = {**env, "WORKSPACE": "default", "DIR": str(tf.workdir)}
        return run_group(["sh", "-c", command], cwd=tf.workdir, env=atlantis_env).returncode

    for name, cleanup in (
        ("github", lambda: github("github")),
        ("github-self-hosted", lambda: github("github-self-hosted")),
        ("gitlab", gitlab),
        ("jenkins", jenkins),
        ("azure", azure),
        ("atlantis", atlantis),
    ):
        results[name] = cleanup()
        assert tf.lock_item() is None, f"{name}: the killed apply's lock is still there ({results[name]})"
    assert results == dict.fromkeys(("github", "github-self-hosted", "gitlab", "jenkins", "azure", "atlantis"), 0)
    assert tf.plan(timeout=60).ok
