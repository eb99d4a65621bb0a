"""`tfjanitor unlock --mine`, its pure parts: Who as Go computes it, the process table's parsers, a working
directory's backend, and the decision (judge) of which locks this machine's dead runs left."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.support.builders import lock_info
from tests.support.machine import run_started
from tfjanitor.release.locks import DYNAMODB, LOCKFILE, ObservedLock, lock_info_or_none
from tfjanitor.release.machine import (
    LocalMachine,
    MachineError,
    boot_epoch,
    go_hostname,
    go_text,
    go_username,
    is_terraform_name,
    parse_proc_stat,
    parse_ps,
    parse_ps_args,
    parse_status_uids,
    passwd_name,
    read_working_dir,
)
from tfjanitor.release.mine import BEFORE_SINCE, CHANGED, LIVE_RUN, OTHER_MACHINE, Kept, MineReport, Verdict, judge, parse_since
from tfjanitor.workdir import S3Backend, WorkdirError, go_path_join, parse_backend_state, selected_workspace, working_dir

NOW = datetime(2026, 11, 25, 3, 0, 0, tzinfo=timezone.utc)
ME = "runner@fv-az123-456"

# What terraform init (1.11.4) wrote for a backend with both dynamodb_table and use_lockfile (trimmed of the
# arguments left null, which the parser ignores like the others).
REAL_BACKEND = {
    "version": 3,
    "terraform_version": "1.11.4",
    "backend": {
        "type": "s3",
        "config": {
            "access_key": None,
            "assume_role": None,
            "bucket": "tfstate-demo",
            "dynamodb_endpoint": None,
            "dynamodb_table": "terraform-state-lock",
            "endpoint": None,
            "endpoints": {"dynamodb": "http://127.0.0.1:51259", "iam": None, "s3": "http://127.0.0.1:51259", "sso": None, "sts": None},
            "key": "dev/terraform.tfstate",
            "profile": None,
            "region": "ap-northeast-2",
            "use_lockfile": True,
            "use_path_style": True,
            "workspace_key_prefix": None,
        },
        "hash": 2856324921,
    },
}


def backend_text(**config: object) -> str:
    doc = json.loads(json.dumps(REAL_BACKEND))
    doc["backend"]["config"].update(config)
    return json.dumps(doc)


def observed(
    who: str = ME, created: datetime = NOW - timedelta(minutes=5), source: str = DYNAMODB, key: str = "dev/terraform.tfstate"
) -> ObservedLock:
    raw = lock_info(f"tfstate-demo/{key}", who=who, now=created)
    return ObservedLock(
        source,
        "tfstate-demo",
        key,
        raw,
        lock_info_or_none(raw),
        table="terraform-state-lock" if source == DYNAMODB else None,
        etag="abc" if source == LOCKFILE else None,
    )


# -- the working directory --------------------------------------------------------------------------------------


def test_the_backend_terraform_init_records_is_read_with_its_locks_and_endpoints() -> None:
    wd = working_dir(json.dumps(REAL_BACKEND), "staging", None)
    backend = wd.backend
    assert (backend.bucket, backend.key, backend.region) == ("tfstate-demo", "dev/terraform.tfstate", "ap-northeast-2")
    assert backend.dynamodb_table == "terraform-state-lock" and backend.use_lockfile is True
    assert backend.s3_endpoint == backend.dynamodb_endpoint == "http://127.0.0.1:51259"
    assert (wd.workspace, wd.workspace_from) == ("staging", ".terraform/environment")
    assert wd.state_key == "env:/staging/dev/terraform.tfstate"


@pytest.mark.parametrize(
    ("prefix", "workspace", "key"),
    [
        (None, "default", "dev/terraform.tfstate"),
        (None, "staging", "env:/staging/dev/terraform.tfstate"),
        ("", "staging", "staging/dev/terraform.tfstate"),  # an empty prefix: W/<key> (Terraform's TestKeyEnv)
        ("teams/a", "qa", "teams/a/qa/dev/terraform.tfstate"),
        ("teams//a/", "qa", "teams/a/qa/dev/terraform.tfstate"),  # Go's path.Join cleans it
        ("./x", "qa", "x/qa/dev/terraform.tfstate"),
    ],
)
def test_a_workspace_state_key_is_path_join_of_prefix_workspace_and_key(prefix: str | None, workspace: str, key: str) -> None:
    assert working_dir(backend_text(workspace_key_prefix=prefix), workspace, None).state_key == key


def test_the_default_workspace_uses_the_key_as_written_and_go_path_join_cleans_the_others() -> None:
    backend = S3Backend("b", "a//b/./c.tfstate")
    assert backend.state_key("default") == "a//b/./c.tfstate"
    assert backend.state_key("w") == "env:/w/a/b/c.tfstate"
    assert go_path_join("", "", "") == "" and go_path_join("//a", "b") == "/a/b" and go_path_join("a", "..", "..") == ".."


def test_the_deprecated_endpoint_arguments_are_used_when_endpoints_does_not_name_the_service() -> None:
    backend = parse_backend_state(backend_text(endpoints=None, endpoint="http://s3.local:1", dynamodb_endpoint="http://d:2"))
    assert (backend.s3_endpoint, backend.dynamodb_endpoint) == ("http://s3.local:1", "http://d:2")
    both = parse_backend_state(backend_text(endpoint="http://old:1"))
    assert both.s3_endpoint == "http://127.0.0.1:51259"  # endpoints.s3 first
    plain = parse_backend_state(
        backend_text(endpoints=None, region=None, dynamodb_table=None, use_lockfile=None, workspace_key_prefix="", profile="ci")
    )
    assert (plain.s3_endpoint, plain.dynamodb_endpoint, plain.region, plain.dynamodb_table) == (None, None, None, None)
    assert plain.use_lockfile is False and plain.workspace_key_prefix == "" and plain.profile == "ci"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{", "not JSON"),
        ("[]", "not a JSON object"),
        (json.dumps({"version": 4, "backend": {}}), "version 4"),
        (json.dumps({"version": 3}), "no backend recorded"),
        (json.dumps({"version": 3, "backend": {"type": "local", "config": {}}}), "'local', not s3"),
        (json.dumps({"version": 3, "backend": {"type": "cloud", "config": {}}}), "'cloud', not s3"),
        (json.dumps({"version": 3, "backend": {"type": "s3"}}), "no config"),
        (backend_text(bucket=None), "no bucket"),
        (backend_text(key=""), "no key"),
        (backend_text(bucket=7), "bucket is a int"),
        (backend_text(use_lockfile="yes"), "use_lockfile is a str"),
        (backend_text(endpoints=["x"]), "endpoints is a list"),
        ("[" * 100_000, "not JSON"),
    ],
)
def test_what_terraform_init_does_not_write_is_a_clear_error(text: str, says: str) -> None:
    with pytest.raises(WorkdirError, match=says.replace("(", r"\(")):
        parse_backend_state(text, "/w/.terraform/terraform.tfstate")


def test_the_workspace_is_tf_workspace_then_the_environment_file_then_default() -> None:
    assert selected_workspace("staging\n", "prod") == ("prod", "TF_WORKSPACE")
    assert selected_workspace("  staging\n", None) == ("staging", ".terraform/environment")
    assert selected_workspace("", "") == ("default", "default") and selected_workspace(None, None)[0] == "default"
    for bad in ("a/b", "a b", "é"):
        with pytest.raises(WorkdirError, match="not one Terraform accepts"):
            selected_workspace(bad, None)


def test_reading_a_working_directory_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(WorkdirError, match="no .terraform directory: run terraform init there first"):
        read_working_dir(tmp_path, {})
    with pytest.raises(WorkdirError, match="not a directory"):
        read_working_dir(tmp_path / "nowhere", {})
    (tmp_path / ".terraform").mkdir()
    with pytest.raises(WorkdirError, match="no initialised backend"):
        read_working_dir(tmp_path, {})
    (tmp_path / ".terraform" / "terraform.tfstate").mkdir()  # unreadable, even for root
    with pytest.raises(WorkdirError, match="cannot read"):
        read_working_dir(tmp_path, {})
    data = tmp_path / "data"
    data.mkdir()
    (data / "terraform.tfstate").write_text(json.dumps(REAL_BACKEND))
    (data / "environment").write_text("qa")
    wd = read_working_dir(tmp_path, {"TF_DATA_DIR": "data"})  # relative to the working directory, as terraform -chdir
    assert wd.state_key == "env:/qa/dev/terraform.tfstate"
    assert read_working_dir(tmp_path, {"TF_DATA_DIR": "data", "TF_WORKSPACE": "prod"}).workspace == "prod"
    (data / "terraform.tfstate").write_bytes(b" " * (1024 * 1024 + 1))
    with pytest.raises(WorkdirError, match="larger than"):
        read_working_dir(tmp_path, {"TF_DATA_DIR": "data"})


# -- Who, as Go's os/user (without cgo) and os.Hostname give it ---------------------------------------------------


def test_the_user_is_go_s_pure_go_etc_passwd_lookup() -> None:
    passwd = (
        b"# comment:x:1000:1000::/h:/bin/sh\n"
        b"\n"
        b"+nis:x:1000:1000::/h:/bin/sh\n"  # NIS entries never match
        b":x:1000:1000::/h:/bin/sh\n"  # nor an empty name
        b"short:x:1000:1000\n"  # nor a line with too few fields
        b"badgid:x:1000:staff::/h:/bin/sh\n"  # nor a gid that is not a number
        b"other:x:10000:10000::/h:/bin/sh\n"
        b"  runner:x:1000:1000:GitHub runner,,,:/home/runner:/bin/bash  \r\n"  # trimmed, first valid wins
        b"second:x:1000:1000::/h:/bin/sh\n"
    )
    assert passwd_name(1000, passwd) == "runner"
    assert passwd_name(0, passwd) is None
    assert passwd_name(1, b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin") == "daemon"


def test_without_a_passwd_entry_the_user_is_dollar_user_only_with_home_set() -> None:
    """Verified against the real binary in tests/e2e/test_unlock_mine.py (an unmapped uid)."""
    assert go_username(4242, b"root:x:0:0::/root:/bin/sh\n", {"USER": "ci-bot", "HOME": "/h"}) == "ci-bot"
    assert go_username(4242, b"", {"USER": "ci-bot", "HOME": ""}) == ""  # Current() fails without $HOME
    assert go_username(4242, None, {"HOME": "/h"}) == ""  # and without $USER: Who is "@host"
    assert go_username(0, b"root:x:0:0::/root:/bin/sh\n", {"USER": "someone-else", "HOME": "/h"}) == "root"


def test_invalid_utf8_becomes_one_replacement_character_per_byte_as_go_json_writes_it() -> None:
    assert go_text(b"r\xe2\x82u") == "r\ufffd\ufffdu"
    assert go_text(b"\xffok\xc3\xa9") == "\ufffdok\u00e9"
    assert passwd_name(7, b"n\xe9:x:7:7::/h:/bin/sh\n") == "n\ufffd"


def test_the_host_is_unames_nodename_or_the_proc_file_when_it_may_be_cut() -> None:
    assert go_hostname("fv-az123-456", b"ignored\n") == "fv-az123-456"
    long_name = "h" * 64
    assert go_hostname(long_name, (long_name + "x\n").encode()) == long_name + "x"
    assert go_hostname("", b"from-proc\n") == "from-proc"
    assert go_hostname("", None) == ""


def test_who_on_this_machine_is_user_at_host(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("ci:x:1234:1234::/home/ci:/bin/sh\n")
    machine = LocalMachine(environ={}, passwd=passwd, uid=1234, proc=tmp_path)
    assert machine.who() == f"ci@{os.uname().nodename}"
    assert (
        LocalMachine(environ={"USER": "x", "HOME": "/x"}, passwd=tmp_path / "none", uid=1234, proc=tmp_path).who()
        == f"x@{os.uname().nodename}"
    )


# -- the process table ------------------------------------------------------------------------------------------


def test_proc_stat_comm_may_hold_spaces_and_parentheses() -> None:
    line = b"4242 (terraform (x) y) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 8 0 987654 1 2 3\n"
    assert parse_proc_stat(line) == ("terraform (x) y", "S", 987654)
    assert parse_status_uids(b"Name:\tterraform\nUid:\t1000\t1001\t1000\t1000\nGid:\t1\n") == (1000, 1001, 1000, 1000)
    with pytest.raises(ValueError, match="too few fields"):
        parse_proc_stat(b"1 (x) S 1 2")


def test_the_boot_time_is_btime_made_exact_by_the_clocks_never_later() -> None:
    assert boot_epoch(1000, None, None) == 1000.0
    assert boot_epoch(1000, 5000.25, 4000.0) == 1000.25  # btime cut the .25
    assert boot_epoch(1000, 9000.0, 4000.0) == 1000.0  # the clocks disagree: the earlier
    assert boot_epoch(1000, 5000.0, 4010.0) == 990.0


@pytest.mark.parametrize(
    ("name", "yes"),
    [
        ("terraform", True),
        ("/usr/local/bin/terraform", True),
        ("terraform-bin", True),
        ("terraform1.5.7", True),
        ("terraform-provi", True),
        ("tofu", True),
        ("TOFU", True),
        ("opentofu", True),
        ("python3", False),
        ("tfjanitor", False),
        ("sleep", False),
        ("node", False),
        ("", False),
        ("tf", False),
    ],
)
def test_terraform_runs_are_known_by_name(name: str, yes: bool) -> None:
    assert is_terraform_name(name) is yes


def test_ps_output_gives_this_users_live_terraform_runs_in_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    text = (
        "  101   501 S    Thu Dec  3 08:55:13 2026 /usr/local/bin/terraform\n"
        "  102   502 S    Thu Dec  3 08:55:14 2026 /usr/local/bin/terraform\n"  # another user
        "  103   501 Z    Thu Dec  3 08:55:15 2026 terraform\n"  # a zombie
        "  104   501 Ss   Thu Dec  3 08:55:16 2026 /bin/zsh\n"
        "  105   501 R+   Thu Dec  3 09:00:00 2026 /opt/homebrew/bin/tofu with spaces\n"
        "  106   501 S    Thu Dec  3 09:00:01 2026 node\n"  # setup-terraform's wrapper: its argv[0] says
        "garbage\n"
    )
    argv0 = parse_ps_args("  104 -zsh\n  106 /runner/_work/_temp/terraform-bin apply\n  107 terraform\n")
    import time  # noqa: PLC0415

    time.tzset()
    try:
        found = parse_ps(text, 501, argv0)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert [(p.pid, p.name) for p in found] == [(101, "terraform"), (105, "tofu with spaces"), (106, "terraform-bin")]
    assert found[0].started == datetime(2026, 12, 3, 8, 55, 13, tzinfo=timezone.utc)
    with pytest.raises(MachineError, match="not one"):
        parse_ps("  1 501 S Thu Foo  3 08:55:13 2026 terraform\n", 501)


def _proc_entry(
    proc: Path, pid: int, comm: str, uid: int, start: int, state: str = "S", argv0: str = "", exe: str | None = None
) -> Path:
    where = proc / str(pid)
    where.mkdir()
    rest = " ".join(["1"] * 18)
    (where / "stat").write_text(f"{pid} ({comm}) {state} {rest} {start} 1 2\n")
    (where / "status").write_text(f"Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    (where / "cmdline").write_bytes(argv0.encode() + b"\0--flag\0" if argv0 else b"")
    if exe:
        (where / "exe").symlink_to(exe)
    return where


def test_a_process_table_of_its_own_gives_the_live_runs_of_this_user(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n")
    ticks = os.sysconf("SC_CLK_TCK")
    _proc_entry(proc, 10, "terraform", 1000, 50 * ticks)
    _proc_entry(proc, 11, "terraform", 1001, 10 * ticks)  # another user's
    _proc_entry(proc, 12, "terraform", 1000, 20 * ticks, state="Z")  # exited, not reaped
    _proc_entry(proc, 13, "node", 1000, 30 * ticks, argv0="/opt/hostedtoolcache/terraform-bin")  # by argv[0]
    _proc_entry(proc, 14, "tf", 1000, 40 * ticks, exe="/usr/bin/tofu")  # a symlink named tf: by its executable
    _proc_entry(proc, 15, "python3", 1000, 1 * ticks, argv0="/usr/bin/python3")
    (proc / "self").mkdir()
    found = LocalMachine(proc=proc, uid=1000).terraform_processes()
    assert [(p.pid, p.name) for p in found] == [(13, "terraform-bin"), (14, "tofu"), (10, "terraform")]
    assert found[0].started == datetime.fromtimestamp(1700000030, timezone.utc)
    # One of this user's processes that cannot be read could be a run: that is an error, never a guess.
    (proc / "16").mkdir()
    (proc / "16" / "status").write_text("Uid:\t1000\t1000\t1000\t1000\n")
    (proc / "16" / "stat").mkdir()  # reading it fails
    with pytest.raises(MachineError, match="cannot read process 16"):
        LocalMachine(proc=proc, uid=1000).terraform_processes()
    assert [p.pid for p in LocalMachine(proc=proc, uid=1001).terraform_processes()] == [11]
    (proc / "stat").write_text("no boot time here\n")
    with pytest.raises(MachineError, match="boot time"):
        LocalMachine(proc=proc, uid=1001).terraform_processes()


# -- the decision -----------------------------------------------------------------------------------------------


def test_a_lock_of_this_machine_created_before_every_live_run_may_go() -> None:
    lock = observed(created=NOW - timedelta(minutes=5))
    assert judge(lock, ME, [], None).release
    later_run = run_started(NOW - timedelta(minutes=5) + timedelta(milliseconds=1))
    verdict = judge(lock, ME, [later_run], None)
    assert verdict.release and verdict.code is None  # a run that started after the lock cannot hold it


def test_a_lock_created_at_or_after_a_live_run_started_is_kept_as_held_by_a_live_run() -> None:
    created = NOW - timedelta(minutes=5)
    lock = observed(created=created)
    for started in (created, created - timedelta(seconds=1), created - timedelta(hours=3)):
        verdict = judge(lock, ME, [run_started(NOW), run_started(started, pid=77)], None)
        assert verdict.code == LIVE_RUN and verdict.reason.startswith("held by a live run")
        assert [p.pid for p in verdict.holders] == [77] and "pid 77" in verdict.reason


def test_another_machines_or_users_lock_is_kept_whatever_its_age() -> None:
    for who in ("runner@fv-az999-1", "other@fv-az123-456", "runner@fv-az123-456 ", "RUNNER@fv-az123-456", "@fv-az123-456"):
        verdict = judge(observed(who=who, created=NOW - timedelta(days=3)), ME, [], None)
        assert verdict.code == OTHER_MACHINE and verdict.reason.startswith("another machine's"), who
    broken = ObservedLock(DYNAMODB, "b", "k", "{not json", None, table="t")
    assert judge(broken, ME, [], None).code == OTHER_MACHINE


def test_since_keeps_older_leftovers_and_lets_the_jobs_own_go() -> None:
    since = NOW - timedelta(hours=1)
    assert judge(observed(created=since - timedelta(microseconds=1)), ME, [], since).code == BEFORE_SINCE
    assert judge(observed(created=since), ME, [], since).release
    verdict = judge(observed(created=NOW - timedelta(hours=2)), ME, [run_started(NOW)], since)
    assert verdict.code == BEFORE_SINCE and verdict.reason.startswith("before --since")


def test_since_is_rfc3339_or_a_duration_ago() -> None:
    assert parse_since("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_since("1h30m", NOW) == NOW - timedelta(minutes=90)
    assert parse_since("2026-11-25T00:01:26Z", NOW) == datetime(2026, 11, 25, 0, 1, 26, tzinfo=timezone.utc)
    assert parse_since("2026-11-25T09:01:26.5+09:00", NOW) == datetime(2026, 11, 25, 0, 1, 26, 500000, tzinfo=timezone.utc)
    for bad in ("", "yesterday", "2026-11-25T00:01:26", "0", "-2h", "2026-13-01T00:00:00Z"):
        with pytest.raises(ValueError, match="--since: not a time"):
            parse_since(bad, NOW)


def test_the_report_exit_code_and_json_cap_what_can_grow() -> None:
    report = MineReport("ap-northeast-2", {"mode": "store"}, None, False, NOW, who=ME)
    assert report.exit_code == 0 and report.message().startswith("No lock of this machine's dead runs")
    for n in range(150):
        report.kept.append(Kept(observed(who=f"x@host-{n}", key=f"k{n}"), Verdict(OTHER_MACHINE, "another machine's")))
    report.kept.append(Kept(observed(), Verdict(LIVE_RUN, "held by a live run", (run_started(NOW),))))
    doc = report.to_dict()
    assert len(doc["kept"]) == 101 and doc["kept_not_listed"] == 50
    assert doc["kept_counts"] == {LIVE_RUN: 1, OTHER_MACHINE: 150} and doc["exit_code"] == 0
    assert doc["kept"][-1]["reason_code"] == LIVE_RUN and doc["kept"][-1]["live_runs"][0]["pid"] == 4242
    assert {"lock_id", "key", "reason", "reason_code", "bucket", "table"} <= set(doc["kept"][-1])
    report.kept.append(Kept(observed(source=LOCKFILE), Verdict(CHANGED, "changed since read: x")))
    assert report.exit_code == 1 and report.to_dict()["kept"][-1]["lockfile"] == "dev/terraform.tfstate.tflock"
    report.errors.append({"check": "scan_table", "target": "t", "code": "AccessDenied", "message": "no"})
    assert report.exit_code == 2 and report.to_dict()["complete"] is False
