"""``tfjanitor unlock --mine``: where to look (a working directory's backend, or a table / bucket), and the report.

The decisions and the release are ``release.mine``'s; this module turns the command line into a scope and a
session, and the report into a table or one JSON object. Everything shown at a terminal that came from a lock
table or bucket (keys, lock IDs, Who) goes through ``untrusted.shown``; JSON escapes by itself.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from tfjanitor.aws.session import AwsSession, valid_endpoint_url
from tfjanitor.cli.main import CliError, _session_and_region, _Stdout
from tfjanitor.durations import human_duration
from tfjanitor.model import BucketSpec
from tfjanitor.release.locks import DYNAMODB, ObservedLock
from tfjanitor.release.machine import LocalMachine, Machine, read_working_dir
from tfjanitor.release.mine import OTHER_MACHINE, MineReport, StateScope, StoreScope, parse_since, precise, release_mine
from tfjanitor.untrusted import LINE_LIMIT, shown
from tfjanitor.workdir import WorkdirError

OTHER_MACHINES_SHOWN = 20  # lines for other machines' locks in the table (the JSON lists more, and counts all)
COMMAND = "tfjanitor unlock --mine"


def _checked(args: argparse.Namespace) -> None:
    if args.state:
        raise CliError(
            f"{COMMAND} takes no BUCKET/KEY: it finds this machine's locks itself (in --chdir DIR's backend, or in --table / --bucket)"
        )
    if args.lock_id:
        raise CliError(f"{COMMAND}: --id names one lock; --mine releases every lock of this machine's dead runs")
    if args.lockfile:
        raise CliError(
            f"{COMMAND}: --lockfile is not needed: --chdir follows the backend's use_lockfile, and "
            "--bucket NAME[/PREFIX] looks at every .tflock there"
        )
    if args.chdir is not None and (args.table or args.bucket):
        raise CliError(f"{COMMAND}: --chdir DIR or --table / --bucket, not both")


def _store_scope(args: argparse.Namespace) -> StoreScope:
    spec = None
    if args.bucket:
        try:
            spec = BucketSpec.parse(args.bucket)
        except ValueError as exc:
            raise CliError(f"{COMMAND}: --bucket: {exc}") from None
    return StoreScope(args.table, spec)


def _working_dir_session(args: argparse.Namespace) -> tuple[AwsSession, str, StateScope]:
    directory = Path(args.chdir if args.chdir is not None else ".")
    try:
        wd = read_working_dir(directory, os.environ)
    except WorkdirError as exc:
        raise CliError(f"{COMMAND}: {exc}", "WorkingDirectory") from None
    backend = wd.backend
    if not backend.dynamodb_table and not backend.use_lockfile:
        raise CliError(
            f"{COMMAND}: the backend in {directory} locks with neither dynamodb_table nor use_lockfile: there is no lock to release",
            "NoLocking",
        )
    endpoints: dict[str, str] = {}
    if not args.endpoint_url:  # an explicit --endpoint-url wins over the backend's endpoints
        endpoints = {name: url for name, url in (("s3", backend.s3_endpoint), ("dynamodb", backend.dynamodb_endpoint)) if url}
        for name, url in endpoints.items():
            if not valid_endpoint_url(url):
                raise CliError(f"{COMMAND}: the backend's {name} endpoint is not an endpoint URL: {url!r}", "InvalidEndpoint")
    chosen = argparse.Namespace(**vars(args))
    chosen.profile = args.profile or backend.profile  # Terraform uses the backend's profile over AWS_PROFILE
    session, region = _session_and_region(chosen, args.region or backend.region)
    aws = AwsSession(session, endpoint_url=args.endpoint_url, service_endpoints=endpoints)
    scope = StateScope(
        backend.bucket, wd.state_key, backend.dynamodb_table, backend.use_lockfile, str(directory.resolve()), wd.workspace
    )
    return aws, region, scope


def cmd_unlock_mine(args: argparse.Namespace, out: _Stdout, machine: Machine | None = None) -> int:
    _checked(args)
    now = datetime.now(timezone.utc)
    since = None
    if args.since is not None:
        try:
            since = parse_since(args.since, now)
        except ValueError as exc:
            raise CliError(f"{COMMAND}: {exc}", "BadSince") from None
    if args.table or args.bucket:
        scope: StateScope | StoreScope = _store_scope(args)
        session, region = _session_and_region(args)
        aws = AwsSession(session, endpoint_url=args.endpoint_url)
    else:
        aws, region, scope = _working_dir_session(args)
    report = release_mine(aws, region, machine or LocalMachine(), scope, since, args.dry_run, now)
    out.write(mine_json(report) + "\n" if args.format == "json" else mine_table(report))
    return report.exit_code


# -- output ----------------------------------------------------------------------------------------------------


def mine_json(report: MineReport) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str)


def _place(lock: ObservedLock) -> str:
    if lock.source == DYNAMODB:
        return f"DynamoDB item {lock.bucket}/{lock.key} in {lock.table}"
    return f"s3://{lock.bucket}/{lock.key}.tflock"


def _lock_line(lock: ObservedLock, now: datetime) -> str:
    if lock.lock is None:
        return f"{_place(lock)}  (not a valid Terraform lock)"
    info = lock.lock
    return (
        f"{_place(lock)}  lock {info.id}  {info.operation or '?'}  by {info.who or '?'}  "
        f"created {precise(info.created)} ({human_duration(info.age_seconds(now))} ago)"
    )


def _scope_line(report: MineReport) -> str:
    scope = report.scope
    if scope.get("mode") == "working_dir":
        how = " and ".join(([f"lock table {scope['table']}"] if scope["table"] else []) + (["lock file"] if scope["lockfile"] else []))
        return (
            f"state {scope['bucket']}/{scope['key']} (workspace {scope['workspace']}, {how}) of the working "
            f"directory {scope['working_dir']}"
        )
    looked = ([f"every lock in table {scope['table']}"] if scope.get("table") else []) + (
        [f"every .tflock in s3://{scope['bucket']}"] if scope.get("bucket") else []
    )
    return " and ".join(looked)


def mine_table(report: MineReport) -> str:
    now = report.now
    lines = [
        f"{COMMAND}{' (dry run)' if report.dry_run else ''}: as {report.who or '?'}, region {report.region}",
        f"looked at {_scope_line(report)}: {report.looked} lock{'s' if report.looked != 1 else ''}"
        + (f"; --since {precise(report.since)}" if report.since else ""),
    ]
    if report.live:
        shown_runs = ", ".join(f"{p.name} pid {p.pid} since {precise(p.started)}" for p in report.live[:5])
        more = f" and {len(report.live) - 5} more" if len(report.live) > 5 else ""
        lines.append(f"live terraform runs of this user here: {shown_runs}{more}")
    elif report.who is not None and not report.errors:
        lines.append("live terraform runs of this user here: none")
    lines.append("")
    for result in report.released:
        lines.append(f"released: {_lock_line(result.lock, now)}")
    for lock, _ in report.would_release:
        lines.append(f"would release: {_lock_line(lock, now)}")
    others = [k for k in report.kept if k.code == OTHER_MACHINE]
    for kept in [k for k in report.kept if k.code != OTHER_MACHINE]:
        lines.append(f"kept: {_lock_line(kept.lock, now)}")
        lines.append(f"  {kept.verdict.reason}")
    for kept in others[:OTHER_MACHINES_SHOWN]:
        lines.append(f"kept: {_lock_line(kept.lock, now)}")
        lines.append(f"  {kept.verdict.reason}")
    if len(others) > OTHER_MACHINES_SHOWN:
        lines.append(
            f"kept: {len(others) - OTHER_MACHINES_SHOWN} more locks of other machines (--format json lists more, and counts them all)"
        )
    lines += [f"note: {note}" for note in report.notes]
    lines += [f"error: {error['message']}" for error in report.errors]
    if report.released or report.would_release or report.kept:
        lines.append("")
    lines.append(report.message() + (" Digest items and state objects were not touched." if report.released else ""))
    return "".join(shown(line, LINE_LIMIT) + "\n" for line in lines)
