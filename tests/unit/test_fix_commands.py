"""Fix commands against hostile lock tables: pasted into bash, each runs exactly the intended program
with exactly the intended arguments, and nothing else happens.

Lock IDs, ``Who``, keys and bucket names come from a lock table anyone running Terraform can write;
table names and the profile come from the user. Each command line a finding prints (its
``details.commands`` and ``details.alternatives``) runs in ``bash`` inside an empty directory, with
stub ``aws`` / ``terraform`` / ``tfjanitor`` executables first on ``PATH`` that record their argument
vector (NUL-separated). The record must be exactly the finding's argument list, the argument list
must mean what the fix intends (the real ``tfjanitor`` parser; AWS CLI options and their JSON
decoded), and no file may appear.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tfjanitor.checks import audit_rules as audit
from tfjanitor.checks import bucket_rules, state_rules
from tfjanitor.checks import findings as build
from tfjanitor.cli.main import build_parser
from tfjanitor.model import Finding, ObjectFacts, ObjectVersion, TableFacts
from tfjanitor.terraform import parse_lock_info

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
STUB = '#!/bin/bash\nprintf \'%s\\0\' "$#" "${0##*/}" "$@" >> "$ARGV_RECORD"\n'  # count, program, arguments
PROGRAMS = ("aws", "terraform", "tfjanitor")

# Pieces of hostile text: shell syntax, quotes, option look-alikes, AWS CLI paramfile prefixes,
# control characters (C0, C1, ESC sequences), text-reordering and non-ASCII characters.
PIECES = [
    "'",
    '"',
    "$(touch pwned)",
    "`touch pwned`",
    ";touch pwned;",
    "&& touch pwned",
    "|",
    ">pwned",
    "<",
    "\n",
    " ",
    "\t",
    "-",
    "--",
    "\\",
    "$HOME",
    "${IFS}",
    "*",
    "?",
    "~",
    "!",
    "#",
    "%s",
    "{",
    "}",
    "=",
    "file://",
    "https://",
    "fileb://",
    "\x1b[31m",
    "\x1b]0;pwned\x07",
    "\r",
    "\x07",
    "\x85",
    "\x9b",
    "\u202e",
    "ü",
    "팀",
    "✓",
    "\x00",
    "x",
    "a.b",
]
hostile = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=3)), max_size=6).map("".join)
non_empty = hostile.filter(bool)
no_slash = hostile.map(lambda s: s.replace("/", ""))  # a bucket: a LockID is split at its first "/"
md5 = st.text("0123456789abcdef", min_size=32, max_size=32)
profile = st.one_of(st.none(), non_empty.filter(lambda s: "\x00" not in s))
region = st.sampled_from(["ap-northeast-2", "us-east-1"])
LONG = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- running a printed line -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("paste")
    stubs = root / "bin"
    stubs.mkdir()
    for name in PROGRAMS:
        path = stubs / name
        path.write_text(STUB)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return {"root": root, "bin": stubs}


def pasted(sandbox: dict[str, Path], line: str) -> list[list[str]]:
    """Run one printed line in bash in an empty directory: the argument vectors the stubs received."""
    work = sandbox["root"] / "work"
    work.mkdir()
    record = sandbox["root"] / "argv"
    record.write_bytes(b"")
    try:
        env = {"PATH": f"{sandbox['bin']}:/usr/bin:/bin", "HOME": str(work), "ARGV_RECORD": str(record), "LC_ALL": "C.UTF-8"}
        subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, timeout=10, check=False)
        assert sorted(os.listdir(work)) == [], f"running {line!r} created files"
        assert "\x1b" not in line and "\r" not in line and "\n" not in line  # nothing raw reaches a terminal
        words = [w.decode("utf-8") for w in record.read_bytes().split(b"\0")[:-1]]
        runs: list[list[str]] = []
        while words:
            count = int(words[0])
            runs.append(words[1 : count + 2])
            words = words[count + 2 :]
        return runs
    finally:
        for leftover in work.iterdir():
            leftover.unlink()
        work.rmdir()


def check_printed(sandbox: dict[str, Path], finding: Finding) -> None:
    """Every printed line runs exactly its argument list, and the JSON carries the same lines."""
    doc = finding.to_dict()["details"]
    printed = [(line, argv) for line, argv in zip(doc["commands"], finding.commands, strict=True)]
    for shown, alternative in zip(doc["alternatives"], finding.alternatives, strict=True):
        assert shown["label"] == alternative.label
        printed += list(zip(shown["commands"], alternative.commands, strict=True))
    for line, argv in printed:
        [recorded] = pasted(sandbox, line)
        assert recorded[0] == argv[0] and recorded == argv


# -- what an argument vector means ------------------------------------------------------------------


JSON_OPTIONS = {
    "--key",
    "--item",
    "--expression-attribute-values",
    "--cli-input-json",
    "--attribute-definitions",
    "--key-schema",
    "--replica-updates",
    "--stream-specification",
    "--point-in-time-recovery-specification",
    "--versioning-configuration",
    "--public-access-block-configuration",
    "--policy",
    "--lifecycle-configuration",
}


def meaning(argv: list[str]) -> tuple[Any, ...]:
    """What a command does, as its program reads it."""
    if argv[0] == "tfjanitor":
        args = build_parser().parse_args(argv[1:])
        return ("tfjanitor", args.command, args.region, args.profile, args.table, args.bucket, args.lockfile, args.lock_id, args.state)
    if argv[0] == "terraform":
        assert argv[:4] == ["terraform", "force-unlock", "-force", "--"] and len(argv) == 5  # Go flags stop at --
        return ("terraform", "force-unlock", argv[4])
    assert argv[0] == "aws"
    options: dict[str, Any] = {}
    rest = argv[3:]
    i = 0
    while i < len(rest):  # argparse: a word after an option is its value unless it starts with "-"
        word = rest[i]
        assert word.startswith("--"), argv
        name, sep, value = word.partition("=")
        if not sep:
            if i + 1 < len(rest) and not rest[i + 1].startswith("-"):
                value, i = rest[i + 1], i + 1
            else:  # a flag
                assert name not in JSON_OPTIONS, argv  # (json.loads would refuse True)
                options[name] = True
                i += 1
                continue
        options[name] = json.loads(value) if name in JSON_OPTIONS else value
        i += 1
    for name in ("--key", "--prefix", "--bucket"):
        if isinstance(options.get(name), str):
            assert not options[name].startswith(("file://", "fileb://", "http://", "https://")), argv  # read as a file/URL
    return ("aws", argv[1], argv[2], options)


def aws_meaning(service: str, operation: str, reg: str, prof: str | None, **options: Any) -> tuple[Any, ...]:
    context = {"--region": reg, **({"--profile": prof} if prof else {})}
    return ("aws", service, operation, context | {f"--{k.replace('_', '-')}": v for k, v in options.items()})


def unlock_meaning(
    reg: str, prof: str | None, lock_id: str, *, table: str | None = None, bucket: str | None = None, state: str
) -> tuple[Any, ...]:
    return ("tfjanitor", "unlock", reg, prof, table, bucket, bucket is not None, lock_id, state)


def passable(m: tuple[Any, ...]) -> bool:
    """Whether a command line can pass this meaning: argv cannot hold a NUL (JSON carries one escaped), and
    argparse (the AWS CLI, tfjanitor) drops an option value that is exactly ``--``."""
    if m[0] == "terraform":
        return "\x00" not in m[2]
    if m[0] == "tfjanitor":
        options, positional = [v for v in m[1:-1] if isinstance(v, str)], [m[-1]]  # the state comes after "--"
    else:
        options, positional = [v for v in m[3].values() if isinstance(v, str)], []
    return not any("\x00" in v for v in options + positional) and "--" not in options


def check_means(finding: Finding, options: list[list[tuple[Any, ...]]]) -> None:
    """``options``: the intended fixes, recommended first; one a command line cannot pass is left out."""
    usable = [o for o in options if o and all(passable(m) for m in o)]
    got = [[meaning(a) for a in finding.commands]] + [[meaning(a) for a in alt.commands] for alt in finding.alternatives]
    if not usable:
        assert got == [[]]
        return
    assert got == usable


def lock(lock_id: str, who: str, path: str) -> Any:
    raw = json.dumps(
        {
            "ID": lock_id,
            "Operation": "OperationTypeApply",
            "Info": "",
            "Who": who,
            "Version": "1.11.4",
            "Created": "2026-11-25T00:00:00.123456789Z",
            "Path": path,
        },
        ensure_ascii=False,
    )
    return parse_lock_info(raw)


def digest_key(lock_id: str) -> dict[str, Any]:
    return {"LockID": {"S": lock_id}}


# -- the properties ------------------------------------------------------------------------------------


@LONG
@given(reg=region, prof=profile, table=hostile, bucket=no_slash, key=hostile, lock_id=non_empty, who=hostile)
def test_stale_lock_commands_release_exactly_that_lock(sandbox, reg, prof, table, bucket, key, lock_id, who) -> None:
    info = lock(lock_id, who, f"{bucket}/{key}")
    finding = build.stale_lock(reg, table, bucket, key, info, NOW, HOUR, profile=prof)
    check_means(
        finding,
        [
            [unlock_meaning(reg, prof, lock_id, table=table, state=f"{bucket}/{key}")],
            [
                aws_meaning(
                    "dynamodb",
                    "delete-item",
                    reg,
                    prof,
                    table_name=table,
                    key=digest_key(f"{bucket}/{key}"),
                    condition_expression="Info = :info",
                    expression_attribute_values={":info": {"S": info.raw}},
                )
            ],
            [("terraform", "force-unlock", lock_id)],
        ],
    )
    check_printed(sandbox, finding)


@LONG
@given(reg=region, prof=profile, bucket=no_slash, key=hostile, lock_id=non_empty, who=hostile, etag=md5)
def test_stale_lockfile_commands_release_exactly_that_object(sandbox, reg, prof, bucket, key, lock_id, who, etag) -> None:
    finding = build.stale_lockfile(reg, bucket, key, etag, lock(lock_id, who, f"{bucket}/{key}"), NOW, HOUR, profile=prof)
    check_means(
        finding,
        [
            [unlock_meaning(reg, prof, lock_id, bucket=bucket, state=key)],
            [
                aws_meaning(
                    "s3api",
                    "delete-object",
                    reg,
                    prof,
                    cli_input_json={"Bucket": bucket, "Key": f"{key}.tflock", "IfMatch": f'"{etag}"'},
                )
            ],
            [("terraform", "force-unlock", lock_id)],
        ],
    )
    check_printed(sandbox, finding)


@LONG
@given(reg=region, prof=profile, table=hostile, bucket=no_slash, key=hostile, stored=md5, actual=md5)
def test_digest_fixes_are_conditional_on_the_digest_seen(sandbox, reg, prof, table, bucket, key, stored, actual) -> None:
    assume(stored != actual)
    digest_id = f"{bucket}/{key}-md5"
    seen = {"condition_expression": "Digest = :d", "expression_attribute_values": {":d": {"S": stored}}}
    versions = aws_meaning("s3api", "list-object-versions", reg, prof, cli_input_json={"Bucket": bucket, "Prefix": key})
    delete = aws_meaning("dynamodb", "delete-item", reg, prof, table_name=table, key=digest_key(digest_id), **seen)
    drift = build.digest_drift(reg, table, bucket, key, stored, actual, actual, 10, profile=prof)
    check_means(
        drift,
        [
            [
                aws_meaning(
                    "dynamodb",
                    "put-item",
                    reg,
                    prof,
                    table_name=table,
                    item={"LockID": {"S": digest_id}, "Digest": {"S": actual}},
                    **seen,
                )
            ],
            [versions],
            [delete],
        ],
    )
    check_printed(sandbox, drift)
    orphan = build.orphan_digest(reg, table, bucket, key, stored, profile=prof)
    check_means(orphan, [[delete], [versions]])
    check_printed(sandbox, orphan)
    leftover = state_rules.lockfile_migration(
        reg,
        bucket,
        [
            state_rules.StateEvidence(
                key=key,
                digests={table: stored},
                lock_holds=[(NOW - HOUR, NOW)],
                obj=ObjectFacts(actual, 10, NOW - HOUR / 2),
                md5=actual,
            )
        ],
        profile=prof,
    )
    assert leftover is not None
    check_means(leftover, [[delete]])
    check_printed(sandbox, leftover)


@LONG
@given(
    reg=region,
    prof=profile,
    table=hostile,
    lock_id=st.one_of(st.none(), hostile),
    info=hostile,
    etag=md5,
    bucket=no_slash,
    key=hostile,
)
def test_malformed_items_are_read_then_deleted_only_if_unchanged(sandbox, reg, prof, table, lock_id, info, etag, bucket, key) -> None:
    item = build.malformed_item(reg, table, lock_id, "lock info is not JSON", False, {"Info": info}, profile=prof)
    if lock_id is None:
        check_means(item, [[aws_meaning("dynamodb", "scan", reg, prof, table_name=table)]])
    else:
        check_means(
            item,
            [
                [
                    aws_meaning("dynamodb", "get-item", reg, prof, table_name=table, key=digest_key(lock_id)),
                    aws_meaning(
                        "dynamodb",
                        "delete-item",
                        reg,
                        prof,
                        table_name=table,
                        key=digest_key(lock_id),
                        condition_expression="Info = :v0",
                        expression_attribute_values={":v0": {"S": info}},
                    ),
                ]
            ],
        )
    check_printed(sandbox, item)
    foreign = build.malformed_item(reg, table, lock_id, "neither", True, profile=prof)
    assert all(argv[2] in ("get-item", "scan") for argv in foreign.commands)  # another workload's item: read only
    lockfile = build.malformed_lockfile(reg, bucket, key, "not JSON", NOW, etag, profile=prof)
    check_means(
        lockfile,
        [
            [
                aws_meaning(
                    "s3api",
                    "delete-object",
                    reg,
                    prof,
                    cli_input_json={"Bucket": bucket, "Key": f"{key}.tflock", "IfMatch": f'"{etag}"'},
                )
            ]
        ],
    )
    check_printed(sandbox, lockfile)


def _audit_findings(reg: str, prof: str | None, table: str, bucket: str, key: str, digest: str) -> list[Finding]:
    facts = TableFacts(table, reg, (("id", "HASH", "S"),), replicas=((reg, "ACTIVE"), ("eu-west-1", "ACTIVE")))
    arn = f"arn:aws:dynamodb:{reg}:1:table/x/stream/1"
    versions = [ObjectVersion(f"{key}.tflock", "1", False, NOW - HOUR), ObjectVersion(f"{key}.tflock", "2", True, NOW, True)]
    holders = {reg: state_rules.Holder(digest="a" * 32), "eu-west-1": state_rules.Holder(digest=digest)}
    found = [
        build.cross_region_bucket(reg, table, bucket, "eu-west-1", 1, profile=prof),
        audit.lock_table_missing(reg, table, prof),
        audit.lock_table_schema(facts, prof),
        audit.replicated_lock_table(facts, prof),
        audit.deletion_protection_disabled(facts, prof),
        audit.pitr_disabled(reg, table, "DISABLED", prof),
        audit.stream_disabled(facts, arn, prof),
        bucket_rules.versioning_disabled(reg, bucket, reg, None, prof),
        bucket_rules.public_access_open(reg, bucket, reg, None, prof),
        bucket_rules.tls_not_enforced(reg, bucket, reg, None, prof),
        bucket_rules.lockfile_versions_accumulating(reg, bucket, reg, "Enabled", versions, [], prof),
        state_rules.split_brain_lock(reg, table, bucket, key, holders, ObjectFacts("a" * 32, 1, NOW), None, reg, prof),
    ]
    return [f for f in found if f is not None]


@LONG
@given(reg=region, prof=profile, table=hostile, bucket=no_slash, key=hostile, digest=md5)
def test_audit_commands_name_exactly_the_table_and_bucket(sandbox, reg, prof, table, bucket, key, digest) -> None:
    findings = _audit_findings(reg, prof, table, bucket, key, digest)
    assert len(findings) == 12
    for finding in findings:
        for argv in finding.commands:
            _, _, _, options = meaning(argv)
            assert options.get("--profile") == prof and options["--region"] in (reg, "eu-west-1"), argv
            names = {options.get("--table-name"), options.get("--bucket"), (options.get("--cli-input-json") or {}).get("Bucket")}
            assert names & {table, bucket, f"{table}-terraform-lock"}, argv
        check_printed(sandbox, finding)
    split = findings[-1]
    if split.commands:  # none when the table's name cannot be passed at all (a NUL)
        delete = meaning(split.commands[-1])[3]
        assert (delete["--region"], delete["--key"], delete["--expression-attribute-values"]) == (
            "eu-west-1",
            digest_key(f"{bucket}/{key}-md5"),
            {":d": {"S": digest}},
        )


@pytest.mark.parametrize(
    "make",
    [
        lambda: build.stale_lock("us-east-1", "t", "b", "k", lock("-h", "w", "b/k"), NOW, HOUR),
        lambda: build.stale_lockfile("us-east-1", "b", "-k", "e" * 32, lock("--version", "w", "b/-k"), NOW, HOUR),
    ],
)
def test_values_that_look_like_options_stay_values(make: Callable[[], Finding]) -> None:
    """A lock ID ``-h`` is not ``terraform force-unlock -h``, nor ``tfjanitor unlock --id -h`` (an argparse error)."""
    finding = make()
    for argv in [*finding.commands, *(a for alt in finding.alternatives for a in alt.commands)]:
        meaning(argv)  # parses, and means what it says (checked above)
    assert finding.alternatives[-1].commands[-1][-2:] == ["--", finding.lock_id]


def test_profile_reaches_every_command_and_only_when_given() -> None:
    info = lock("id-1", "w", "b/k")
    with_profile = build.stale_lock("us-east-1", "t", "b", "k", info, NOW, HOUR, profile="prod admin")
    without = build.stale_lock("us-east-1", "t", "b", "k", info, NOW, HOUR)
    assert with_profile.command_lines()[0].startswith("tfjanitor unlock --region us-east-1 --profile 'prod admin' ")
    assert all("--profile" not in argv for argv in without.commands)
    assert with_profile.alternatives[0].commands[0][5:7] == ["--profile", "prod admin"]
