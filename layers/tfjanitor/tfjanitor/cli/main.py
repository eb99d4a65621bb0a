"""The ``tfjanitor`` command line.

Exit codes (scan): 0 complete and nothing at warning or above; 1 findings at
warning or above; 2 the scan could not complete, or bad usage (``locks``: the same, except that
stale locks alone do not make it 1; an interrupted write does). Whatever the input, no
traceback: bad usage and unexpected errors are 2 with one line on stderr (and, with
``--format json``, one JSON object on stdout), Ctrl-C is 130, a closed stdout pipe ends quietly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any, NoReturn

import tfjanitor
from tfjanitor.durations import Deadline, parse_duration
from tfjanitor.model import BucketSpec, StalePolicy
from tfjanitor.untrusted import shown

if TYPE_CHECKING:  # imported where used: keeps --help fast
    import boto3

    from tfjanitor.model import ScanResult

EXIT_OK, EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CliError(Exception):
    """The command cannot run as asked (bad usage, no region, unknown profile): exit 2."""

    def __init__(self, message: str, code: str = "UsageError", usage: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """argparse's usage errors become ours: reported like every other (JSON included), never a bare exit."""
        raise CliError(f"{self.prog}: error: {message}", usage=self.format_usage())


class _Stdout:
    """stdout that outlives a reader that went away (``tfjanitor scan | head -c1``): the rest is dropped."""

    def __init__(self, stream: IO[str]):
        self._stream = stream
        self.wrote = False
        self.closed = False

    def write(self, text: str) -> int:
        self.wrote = True
        if not self.closed:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self.close()
        return len(text)

    def flush(self) -> None:
        if not self.closed:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self.close()

    def close(self) -> None:
        """Point the descriptor at /dev/null, so the interpreter's last flush has nowhere to fail."""
        self.closed = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _bucket_spec(text: str) -> str:
    try:
        return str(BucketSpec.parse(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _output_and_aws_options(parser: argparse.ArgumentParser) -> None:
    """What every AWS-reading command shares: output format, and the AWS CLI's endpoint/profile overrides."""
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    parser.add_argument("--endpoint-url", help="AWS endpoint override (default: AWS_ENDPOINT_URL)")
    parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")


def _read_options(parser: argparse.ArgumentParser) -> None:
    """What scan and locks read, and how they judge a lock's staleness."""
    parser.add_argument(
        "--region",
        dest="regions",
        action="append",
        default=[],
        metavar="REGION",
        help="AWS region of the lock tables (repeatable; default: AWS_REGION / profile)",
    )
    parser.add_argument("--all-regions", action="store_true", help="every region enabled in the account (read concurrently)")
    parser.add_argument("--table", dest="tables", action="append", default=[], metavar="NAME", help="lock table name (repeatable)")
    parser.add_argument(
        "--discover-tables",
        action="store_true",
        help="also find lock tables by their key schema (LockID, HASH, String) in each region scanned",
    )
    parser.add_argument("--role-arn", metavar="ARN", help="assume this role first (e.g. the read-only role of roles/reader.yaml)")
    parser.add_argument("--external-id", metavar="ID", help="external ID for --role-arn")
    parser.add_argument(
        "--bucket",
        dest="buckets",
        action="append",
        default=[],
        metavar="NAME[/PREFIX]",
        type=_bucket_spec,
        help="a bucket whose .tflock lock files to look for (states that lock with use_lockfile only, which no lock "
        "table names), in the whole bucket or under PREFIX only (repeatable)",
    )
    _staleness_options(parser)
    parser.add_argument(
        "--time-budget",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="stop reading after DURATION and report the scan incomplete (exit 2), as the Lambda does near its timeout",
    )


def _staleness_options(parser: argparse.ArgumentParser) -> None:
    """How scan and locks judge a lock's staleness: the fixed thresholds, and the learned ones."""
    parser.add_argument(
        "--stale-after",
        type=_duration,
        default=StalePolicy().default,
        metavar="DURATION",
        help="how long a lock may show no sign of life before it is stale: the fixed threshold, and the ceiling of "
        "learned ones (default 1h; e.g. 90s, 15m, 1h30m, 2h, 1d)",
    )
    parser.add_argument(
        "--read-only-stale-after",
        type=_duration,
        default=StalePolicy().read_only,
        metavar="DURATION",
        help="the same for plan locks (default 15m, never longer than --stale-after)",
    )
    parser.add_argument(
        "--findings-table",
        "--history-table",
        dest="findings_table",
        metavar="NAME",
        help="the stack's findings table (its FindingsTableName output; --history-table is the old name of this "
        "flag): also count the digest writes its stream monitor "
        "saw as signs of life, and learn each state's threshold from its own hold times; without it, the "
        "fixed thresholds",
    )
    parser.add_argument(
        "--min-stale-after",
        type=_duration,
        default=StalePolicy().min_stale_after,
        metavar="DURATION",
        help="the shortest learned threshold (default 10m)",
    )
    parser.add_argument(
        "--stale-multiplier",
        type=_multiplier,
        default=StalePolicy().multiplier,
        metavar="N",
        help="a learned threshold is N x the p95 of the state's recent holds (default 3)",
    )
    parser.add_argument(
        "--min-history",
        type=_positive,
        default=StalePolicy().min_history,
        metavar="N",
        help="finished holds of one kind needed before a threshold is learned (default 5)",
    )


def _multiplier(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"not a number of at least 1: {text!r}")
    return value


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of at least 1: {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tfjanitor", description="Find stale Terraform locks, digest drift and cross-region lock tables (S3 backend)."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {tfjanitor.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _scan_command(sub)
    _locks_command(sub)
    _unlock_command(sub)
    _local_command(sub)
    return parser


def _scan_command(sub: Any) -> None:
    scan = sub.add_parser(
        "scan",
        help="sweep lock tables and state buckets once and report findings",
        description=(
            "Sweep Terraform lock tables (DynamoDB) and state buckets (S3) in one region. "
            "Exit 0: complete, nothing at warning or above; 1: findings at warning or above; "
            "2: the scan could not complete (see errors) or bad usage."
        ),
    )
    _read_options(scan)
    scan.add_argument(
        "--peer-region",
        dest="peer_regions",
        action="append",
        default=[],
        metavar="REGION",
        help="also read the same-named lock tables in REGION, to catch split-brain locking (repeatable)",
    )
    scan.add_argument(
        "--skip-audit",
        action="store_true",
        help="only the sweep checks (locks, digests, cross-region buckets): no table/bucket posture or "
        "peer-region audit, as the scheduled sweeper runs",
    )
    _output_and_aws_options(scan)


def _locks_command(sub: Any) -> None:
    locks = sub.add_parser(
        "locks",
        help="list every lock held now, with its last sign of life and a verdict (alive, quiet, stale)",
        description=(
            "List every Terraform lock held right now, DynamoDB items and .tflock objects alike: who holds it, since "
            "when, its last sign of life (the lock taken, the state written, the digest written), the stale "
            "threshold in force and why, and a verdict: alive, quiet (silent longer than usual) or stale. Reads "
            "what scan reads. Exit 0: complete (stale locks included: scan judges them); 1: a lock's run died "
            "between its state and digest writes (interrupted write); 2: could not complete, or bad usage."
        ),
    )
    _read_options(locks)
    _output_and_aws_options(locks)


def _unlock_command(sub: Any) -> None:
    unlock = sub.add_parser(
        "unlock",
        help="release one stale lock, conditionally on the exact lock shown",
        description=(
            "Release a Terraform lock without a working directory. Shows the lock and asks before deleting it; "
            "the delete only happens if the lock is still exactly what was shown (DynamoDB: Info unchanged; "
            "S3: the .tflock's ETag unchanged). Never touches digest items or state objects. "
            "Exit 0: released; 1: nothing released (no lock, --id mismatch, declined, or it changed); "
            "2: could not complete, or bad usage. "
            "With --mine (for a CI step that always runs, e.g. GitHub's if: always(); see docs/ci-cleanup.md): release, "
            "without asking, the locks this machine's dead terraform/tofu runs left and nothing else: Who exactly this "
            "machine's, created before every live terraform run of this user here started (and at or after --since). "
            "It looks at the state of the working directory's initialised backend (--chdir, default the current "
            "directory), or at every lock in --table / --bucket. Exit 0: nothing of this machine's dead runs is left "
            "locked; 1: one could not be released (it changed since it was read); 2: could not complete, or bad usage."
        ),
    )
    unlock.add_argument(
        "state",
        nargs="?",
        metavar="BUCKET/KEY | KEY",
        help="BUCKET/KEY with --table; KEY with --bucket (the state key, workspace prefix included)",
    )
    unlock.add_argument("--region", help="AWS region (default: AWS_REGION / profile; with --mine --chdir: the backend's)")
    unlock.add_argument(
        "--table", metavar="NAME", help="lock table holding the DynamoDB lock item (with --mine: look at every lock in it)"
    )
    unlock.add_argument(
        "--bucket",
        metavar="NAME",
        help="state bucket (with --lockfile: release the .tflock; with --mine, NAME[/PREFIX]: look at every .tflock there)",
    )
    unlock.add_argument("--lockfile", action="store_true", help="release the S3 lock file <KEY>.tflock")
    unlock.add_argument("--id", dest="lock_id", metavar="LOCK_ID", help="refuse unless the lock has this ID")
    unlock.add_argument("--yes", action="store_true", help="do not ask for confirmation (--mine never asks)")
    unlock.add_argument(
        "--mine", action="store_true", help="release the locks this machine's dead terraform/tofu runs left, and nothing else"
    )
    unlock.add_argument(
        "--since",
        metavar="TIME",
        help="with --mine: keep locks created before TIME, the job's start (RFC 3339, e.g. "
        "2026-11-25T00:01:26Z, or a duration ago: 2h, 90m)",
    )
    unlock.add_argument(
        "--chdir",
        metavar="DIR",
        help="with --mine: the Terraform working directory whose initialised backend (.terraform) and "
        "selected workspace name the state (default: the current directory)",
    )
    unlock.add_argument("--dry-run", action="store_true", help="with --mine: say what would be released, release nothing")
    _output_and_aws_options(unlock)


def _local_command(sub: Any) -> None:
    local = sub.add_parser(
        "local",
        help="run template.yaml's functions locally against an emulator (schedules, stream, emails)",
        description=(
            "Run the stack the way Lambda would: scheduled functions on their rate, the lock table's stream "
            "in the template's batch size, alert emails captured and shown. Uses --endpoint-url / "
            "AWS_ENDPOINT_URL, or starts the embedded emulator (moto server on 127.0.0.1)."
        ),
    )
    local.add_argument("--template", default="template.yaml", help="SAM template (default template.yaml)")
    local.add_argument("--region", default=None, help="region of the stack (default AWS_REGION or ap-northeast-2)")
    local.add_argument("--endpoint-url", help="emulator endpoint (default AWS_ENDPOINT_URL, else start one)")
    local.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="template parameter override, e.g. --param StaleAfter=5m (repeatable)",
    )
    local.add_argument("--time-scale", type=float, default=1.0, help="run schedules N times faster (default 1)")
    local.add_argument("--duration", type=_duration, default=None, metavar="DURATION", help="stop after (default: Ctrl-C)")
    local.add_argument("--emails-dir", default=None, help="also write each alert email as an .eml file here")
    local.add_argument(
        "--in-process",
        action="store_true",
        help="run the handlers in this process from the source tree (fast), instead of as deployed: sam build's "
        "artefacts, the template created as a stack in the emulator, each function in a Lambda box with its "
        "MemorySize and CPU share (needs sam and the runtime's Python)",
    )
    local.add_argument("--full-cpu", action="store_true", help="as deployed, but without Lambda's CPU share")
    local.add_argument("--build-dir", default=None, help="where sam build writes (default .aws-sam/tfjanitor-local)")


def _session_and_region(args: argparse.Namespace, region: str | None = None) -> tuple[boto3.session.Session, str]:
    """Like the AWS CLI v2: --region, then AWS_REGION, then AWS_DEFAULT_REGION / the profile.

    Raises :class:`CliError` for an unknown profile, no region, a malformed region or endpoint URL.
    """
    from tfjanitor.aws.session import AwsError, profile_session  # noqa: PLC0415

    region_choice = region or getattr(args, "region", None) or os.environ.get("AWS_REGION") or None
    try:
        session = profile_session(args.profile, region_choice, args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL"))
    except AwsError as exc:
        raise CliError(exc.message, exc.code) from None
    if not session.region_name:
        raise CliError("no region: pass --region or set AWS_REGION", "NoRegion")
    return session, session.region_name


def cmd_unlock(args: argparse.Namespace, out: _Stdout) -> int:
    from tfjanitor.aws.backend import LockWriter  # noqa: PLC0415
    from tfjanitor.aws.session import AwsSession  # noqa: PLC0415
    from tfjanitor.cli.unlock import Console, run_unlock  # noqa: PLC0415
    from tfjanitor.release.by_hand import UnlockRequest  # noqa: PLC0415

    if args.mine:
        from tfjanitor.cli.mine import cmd_unlock_mine  # noqa: PLC0415

        return cmd_unlock_mine(args, out)
    for flag, given in (("--since", args.since is not None), ("--chdir", args.chdir is not None), ("--dry-run", args.dry_run)):
        if given:
            raise CliError(f"tfjanitor unlock: {flag} goes with --mine")
    if not args.state:
        raise CliError("tfjanitor unlock: name the state: BUCKET/KEY with --table, or KEY with --bucket")
    if args.lockfile and not args.bucket:
        raise CliError("tfjanitor unlock: --lockfile needs --bucket NAME")
    if not args.table and not args.lockfile:
        raise CliError("tfjanitor unlock: give --table NAME (DynamoDB lock) and/or --bucket NAME --lockfile")
    if args.bucket:
        bucket, key = args.bucket, args.state
    else:
        bucket, sep, key = args.state.partition("/")
        if not sep or not bucket or not key:
            raise CliError(f"tfjanitor unlock: {args.state!r} is not BUCKET/KEY")
    session, region = _session_and_region(args)
    writer = LockWriter(AwsSession(session, endpoint_url=args.endpoint_url), region)
    request = UnlockRequest(bucket, key, args.table, args.lockfile, args.lock_id)
    return run_unlock(writer, region, request, args.yes, args.format, Console(sys.stdin, out, sys.stderr))


# What `tfjanitor local` imports beyond the CLI's own boto3: the `local` extra (module -> distribution).
LOCAL_EXTRA = {"moto": "moto[server]", "samcli": "aws-sam-cli", "aws_lambda_powertools": "aws-lambda-powertools"}


def cmd_local(args: argparse.Namespace, out: _Stdout) -> int:
    import importlib.util  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    missing = [dist for module, dist in LOCAL_EXTRA.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise CliError(
            f"tfjanitor local: needs the 'local' extra (missing {', '.join(missing)}): pip install 'tfjanitor[local]'", "MissingExtra"
        )

    from tfjanitor.local.emulator import MotoServer  # noqa: PLC0415
    from tfjanitor.local.runner import LocalStack  # noqa: PLC0415
    from tfjanitor.local.template import ParameterError  # noqa: PLC0415

    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"tfjanitor local: --param wants KEY=VALUE, got {item!r}")
        params[key] = value
    region = args.region or os.environ.get("AWS_REGION") or "ap-northeast-2"
    endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    server = None
    if not endpoint:
        server = MotoServer().start()
        endpoint = server.url
        print(f"[local] embedded emulator on {endpoint} (stopped on exit)")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    try:
        stack = LocalStack(
            Path(args.template),
            endpoint,
            region,
            params,
            args.time_scale,
            Path(args.emails_dir) if args.emails_dir else None,
            as_deployed=not args.in_process,
            build_dir=Path(args.build_dir) if args.build_dir else None,
            full_cpu=args.full_cpu,
        )
        try:
            try:
                stack.setup()
            except ParameterError as exc:
                raise CliError(f"tfjanitor local: {args.template}: {exc}", "TemplateParameters") from None
            except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
                raise CliError(
                    f"tfjanitor local: cannot run the stack as deployed ({exc}); --in-process runs the handlers from the source tree",
                    "AsDeployed",
                ) from None
            try:
                stack.run(args.duration.total_seconds() if args.duration else float("inf"))
            except KeyboardInterrupt:
                pass
        finally:
            stack.close()
        print(f"[local] {len(stack.invocations)} invocations, {len(stack.emails)} emails")
    finally:
        if server is not None:
            server.stop()
    return EXIT_OK


def _read(args: argparse.Namespace, audit: bool, all_lockfiles: bool) -> ScanResult:
    """What scan and locks share: the session (role assumed), the regions, and one read of each."""
    from tfjanitor.aws.identity import account_id, assume_role, enabled_regions  # noqa: PLC0415 (keeps --help fast)
    from tfjanitor.aws.session import AwsError, AwsSession  # noqa: PLC0415
    from tfjanitor.scan.fleet import FleetRequest, scan_regions  # noqa: PLC0415

    if not args.tables and not args.discover_tables:
        raise CliError(f"tfjanitor {args.command}: name a lock table (--table NAME) or use --discover-tables")
    session, region = _session_and_region(args, args.regions[0] if args.regions else None)
    try:
        if args.role_arn:
            session = assume_role(session, args.role_arn, args.external_id, region, args.endpoint_url)
        aws = AwsSession(session, endpoint_url=args.endpoint_url)
        regions = enabled_regions(aws, region) if args.all_regions else list(dict.fromkeys(args.regions or [region]))
    except AwsError as exc:
        raise CliError(f"{exc.operation}: {exc.code}: {exc.message}", exc.code) from None
    try:
        account: str | None = account_id(aws, region)
    except AwsError as exc:  # the scan itself can still run: only the findings' account stays unknown
        print(f"tfjanitor: cannot tell the account ({exc.code}): findings carry account null", file=sys.stderr)
        account = None
    request = FleetRequest(
        regions=regions,
        tables=list(dict.fromkeys(args.tables)),
        buckets=list(dict.fromkeys(args.buckets)),
        discover_tables=args.discover_tables,
        peer_regions=list(dict.fromkeys(getattr(args, "peer_regions", []))),
        policy=StalePolicy(
            default=args.stale_after,
            read_only=args.read_only_stale_after,
            min_stale_after=args.min_stale_after,
            multiplier=args.stale_multiplier,
            min_history=args.min_history,
        ),
        audit=audit,
        deadline=Deadline.after(args.time_budget) if args.time_budget else None,
        profile=args.profile,
        findings_table=args.findings_table,
        all_lockfiles=all_lockfiles,
    )
    return scan_regions(aws, request, account)


def cmd_scan(args: argparse.Namespace, out: _Stdout) -> int:
    from tfjanitor.cli.output import to_json, to_table  # noqa: PLC0415

    result = _read(args, audit=not args.skip_audit, all_lockfiles=False)
    out.write(to_json(result) + "\n" if args.format == "json" else to_table(result))
    return result.exit_code


def cmd_locks(args: argparse.Namespace, out: _Stdout) -> int:
    """Every lock held now. Exit codes as scan, except that stale locks alone do not make it 1."""
    from tfjanitor.cli.output import locks_json, locks_table  # noqa: PLC0415

    result = _read(args, audit=False, all_lockfiles=True)
    out.write(locks_json(result) + "\n" if args.format == "json" else locks_table(result))
    if not result.complete:
        return EXIT_INCOMPLETE
    return EXIT_FINDINGS if any(lock.interrupted_write for lock in result.locks) else EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, _Stdout], int]] = {
    "scan": cmd_scan,
    "locks": cmd_locks,
    "unlock": cmd_unlock,
    "local": cmd_local,
}


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON, read before (or without) a successful parse."""
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if len(name) > 3 and "--format".startswith(name):  # argparse accepts unambiguous prefixes
            if (value if eq else (argv[i + 1] if i + 1 < len(argv) else "")) == "json":
                return True
    return False


def _failed(out: _Stdout, json_wanted: bool, command: str | None, code: str, message: str, exit_code: int, usage: str = "") -> int:
    """Say why the command stopped: on stderr, one line (after argparse's usage, for usage errors), and
    with --format json as the one JSON object on stdout, unless the command already printed its own."""
    line = shown(message, 4096)
    try:
        sys.stderr.write(f"{usage}{line}\n" if usage else f"tfjanitor: {line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    if json_wanted and not out.wrote:
        doc: dict[str, Any] = {
            "command": command,
            "complete": False,
            "errors": [{"check": "cli", "target": command or "tfjanitor", "code": code, "message": message}],
        }
        out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    out.flush()
    return exit_code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = _Stdout(sys.stdout)
    json_wanted = _wants_json(argv)
    command = next((a for a in argv if a in COMMANDS), None)
    try:
        args = build_parser().parse_args(argv)
        command, json_wanted = args.command, getattr(args, "format", "table") == "json"
        code = COMMANDS[args.command](args, out)
        out.flush()
        return code
    except CliError as exc:
        return _failed(out, json_wanted, command, exc.code, exc.message, EXIT_INCOMPLETE, exc.usage)
    except KeyboardInterrupt:
        return _failed(out, json_wanted, command, "Interrupted", "interrupted: nothing more was done", EXIT_INTERRUPTED)
    except BrokenPipeError:
        out.close()  # the reader went away: nobody is left to tell
        return EXIT_INCOMPLETE
    except Exception as exc:  # noqa: BLE001  (1 means findings: an unexpected error must never look like one)
        return _failed(out, json_wanted, command, "InternalError", f"internal error: {exc.__class__.__name__}: {exc}", EXIT_INCOMPLETE)


if __name__ == "__main__":
    sys.exit(main())
