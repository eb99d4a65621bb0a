"""The machine tfjanitor runs on, as Terraform sees it: the ``Who`` its runs write, its live terraform runs, and
what ``terraform init`` left in a working directory.

Behind the small :class:`Machine` interface (``who``, ``terraform_processes``) so that decisions can be tested
with a fake; :class:`LocalMachine` reads the real one. The parsers below are pure and take the texts.

``Who`` is ``<user>@<host>`` as Terraform's ``statemgr.NewLockInfo`` builds it from Go's ``os/user.Current()``
and ``os.Hostname()``. Terraform and OpenTofu release binaries are built without cgo, where ``Current()`` looks
the real uid up in ``/etc/passwd`` (Go's own parser: :func:`go_username`) and, failing that, takes ``$USER``,
but only when ``$USER`` and ``$HOME`` are both set; otherwise it fails and the user part is empty (``@host``).
``os.Hostname()`` on Linux is uname's nodename (``/proc/sys/kernel/hostname`` when that is empty or may be
cut), on macOS ``kern.hostname``, which is what ``os.uname()`` gives here.

A live run is any process of this user whose name (``comm``, ``argv[0]`` or executable) starts with
``terraform`` or ``tofu``: the binaries themselves, the ``terraform-bin`` behind setup-terraform's wrapper,
Atlantis's ``terraform1.x.y``, and providers, which only live while their terraform does. A zombie (exited,
not yet reaped) holds nothing. Start times come from ``/proc/<pid>/stat`` (clock ticks after boot) and the
boot time, or from ``ps -o lstart`` (whole seconds) where there is no ``/proc``; each is never later than the
real start, so a run's own lock is never judged older than the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from tfjanitor.workdir import (
    BACKEND_FILE,
    DATA_DIR,
    DATA_DIR_ENV,
    ENVIRONMENT_FILE,
    FILE_LIMIT,
    WORKSPACE_ENV,
    WorkdirError,
    WorkingDir,
    working_dir,
)

TERRAFORM_NAMES = ("terraform", "tofu", "opentofu")  # prefixes of a process name that may be a terraform run
PS_TIMEOUT = 30.0


class MachineError(Exception):
    """The machine cannot say who it is or which runs are alive: nothing may be released."""


@dataclass(frozen=True)
class Process:
    pid: int
    name: str  # the name that made it a terraform run (comm, argv[0] or the executable's)
    started: datetime  # UTC, never later than the real start

    def to_dict(self) -> dict[str, object]:
        return {"pid": self.pid, "name": self.name, "started": self.started.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}


class Machine(Protocol):
    def who(self) -> str:
        """What Terraform writes as ``Who`` on this machine for this user."""
        ...

    def terraform_processes(self) -> list[Process]:
        """Every live terraform/tofu process of this user on this machine."""
        ...


# -- Go's os/user and os.Hostname, exactly -------------------------------------------------------------------

# Go's unicode.IsSpace (what bytes.TrimSpace trims): ASCII space, \t \n \v \f \r, U+0085, U+00A0 and the other
# White_Space characters.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def go_text(raw: bytes) -> str:
    """Bytes as Go's encoding/json writes them into a string: each byte of an invalid UTF-8 sequence becomes
    U+FFFD (Python's ``errors="replace"`` would merge some into one)."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        lead = raw[i]
        size = 1 if lead < 0x80 else 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if 0xF0 <= lead <= 0xF4 else 0
        if size:
            try:
                out.append(raw[i : i + size].decode("utf-8"))
                i += size
                continue
            except UnicodeDecodeError:
                pass
        out.append("\ufffd")
        i += 1
    return "".join(out)


def _go_atoi(text: str) -> bool:
    """Whether Go's strconv.Atoi accepts ``text`` (an optional sign, decimal digits, within int64)."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    return bool(digits) and digits.isascii() and digits.isdigit() and -(2**63) <= int(text) < 2**63


def passwd_name(uid: int, passwd: bytes) -> str | None:
    """The user name of ``uid`` in an ``/etc/passwd`` text, by Go's pure-Go rules (``os/user`` without cgo): lines
    trimmed, blank and ``#`` lines skipped, at least 7 fields, the first line whose uid field is exactly the
    decimal uid and whose gid is a number wins; names that are empty or start with ``+``/``-`` (NIS) never do."""
    want = str(uid)
    for line in passwd.split(b"\n"):
        text = go_text(line).strip(_GO_SPACE)
        if not text or text.startswith("#") or f":{want}:" not in text or text.count(":") < 6:
            continue
        parts = text.split(":", 6)
        if parts[2] != want or not parts[0] or parts[0][0] in "+-":
            continue
        if not _go_atoi(parts[2]) or not _go_atoi(parts[3]):
            continue
        return parts[0]
    return None


def go_username(uid: int, passwd: bytes | None, environ: Mapping[str, str]) -> str:
    """The user part of Terraform's ``Who``: ``/etc/passwd``'s name for the uid; else ``$USER`` when ``$USER`` and
    ``$HOME`` are both non-empty; else empty (``os/user.Current`` failed, and NewLockInfo writes ``""``)."""
    name = passwd_name(uid, passwd) if passwd is not None else None
    if name is not None:
        return name
    user, home = environ.get("USER", ""), environ.get("HOME", "")
    return go_text(os.fsencode(user)) if user and home else ""


def go_hostname(nodename: str, proc_hostname: bytes | None) -> str:
    """Go's ``os.Hostname`` on Linux: uname's nodename if it is 1 to 63 bytes; else ``/proc/sys/kernel/hostname``
    without its newline; ``""`` if that cannot be read (NewLockInfo ignores the error)."""
    raw = os.fsencode(nodename)
    if 0 < len(raw) < 64:
        return go_text(raw)
    if proc_hostname is None:
        return ""
    return go_text(proc_hostname[:-1] if proc_hostname.endswith(b"\n") else proc_hostname)


# -- the process table ---------------------------------------------------------------------------------------


def is_terraform_name(name: str) -> bool:
    return os.path.basename(name).lower().startswith(TERRAFORM_NAMES)


def parse_proc_stat(text: bytes) -> tuple[str, str, int]:
    """(comm, state, start time in clock ticks after boot) of a ``/proc/<pid>/stat`` line. ``comm`` may hold spaces
    and parentheses: it ends at the last ``)``."""
    start, end = text.find(b"("), text.rfind(b")")
    if start < 0 or end < start:
        raise ValueError("not a /proc/<pid>/stat line")
    fields = text[end + 1 :].split()
    if len(fields) < 20:
        raise ValueError("a /proc/<pid>/stat line with too few fields")
    return go_text(text[start + 1 : end]), fields[0].decode("ascii", "replace"), int(fields[19])  # field 3 and 22


def parse_status_uids(text: bytes) -> tuple[int, ...]:
    """The real, effective, saved and filesystem uids of a ``/proc/<pid>/status``."""
    for line in text.split(b"\n"):
        if line.startswith(b"Uid:"):
            return tuple(int(v) for v in line[4:].split())
    raise ValueError("no Uid line in /proc/<pid>/status")


def boot_epoch(btime: int, realtime: float | None, boottime: float | None) -> float:
    """When the machine booted, in seconds since the epoch (the clock /proc start times count from).

    ``/proc/stat``'s ``btime`` is that instant cut to whole seconds: up to a second early, which would put every
    start time early and keep a dead run's lock taken in the second before a live run started. The clocks give it
    exactly (CLOCK_REALTIME - CLOCK_BOOTTIME, what the kernel computes btime from), and are used when they agree
    with btime; if they do not, the earlier of the two (an early start only ever keeps a lock)."""
    if realtime is None or boottime is None:
        return float(btime)
    precise = realtime - boottime
    if btime - 0.01 <= precise < btime + 1.01:
        return precise
    return min(float(btime), precise)


def parse_btime(text: bytes) -> int:
    for line in text.split(b"\n"):
        if line.startswith(b"btime "):
            return int(line.split()[1])
    raise ValueError("no btime line in /proc/stat")


_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def _local_epoch(year: int, month: int, day: int, hms: str) -> float:
    """A local wall-clock time as seconds since the epoch; in a repeated hour (DST ends), the earlier instant."""
    hour, minute, second = (int(v) for v in hms.split(":"))
    return min(datetime(year, month, day, hour, minute, second, fold=fold).timestamp() for fold in (0, 1))


def parse_ps_args(text: str) -> dict[int, str]:
    """``ps -A -o pid= -o args=``: each process's ``argv[0]`` (its first word: a path with spaces is cut, and only
    makes the name check fail the way ``comm`` already decides it)."""
    found: dict[int, str] = {}
    for line in text.splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) >= 2 and parts[0].isdigit():
            found[int(parts[0])] = parts[1]
    return found


def parse_ps(text: str, uid: int, argv0: Mapping[int, str] | None = None) -> list[Process]:
    """``ps -A -o pid= -o uid= -o state= -o lstart= -o comm=`` (LC_ALL=C): the live terraform processes of ``uid``,
    by ``comm`` or by ``argv[0]`` (``argv0``, from :func:`parse_ps_args`). ``lstart`` is local time in whole seconds
    (``Thu Dec  3 08:55:13 2026``), cut: never later than the start."""
    found: list[Process] = []
    for line in text.splitlines():
        parts = line.split(maxsplit=8)
        if len(parts) < 9 or not parts[0].isdigit():
            continue
        pid, owner, state, _, month, day, hms, year, comm = parts
        if not owner.lstrip("-").isdigit() or int(owner) != uid or state[:1] in ("Z", "X"):
            continue
        name = next((n for n in (comm, (argv0 or {}).get(int(pid), "")) if n and is_terraform_name(n)), None)
        if name is None:
            continue
        try:
            started = _local_epoch(int(year), _MONTHS[month], int(day), hms)
        except (KeyError, ValueError, OverflowError, OSError) as exc:
            raise MachineError(f"ps: a start time that is not one: {line.strip()!r}") from exc
        found.append(Process(int(pid), os.path.basename(name), datetime.fromtimestamp(started, timezone.utc)))
    return found


class LocalMachine:
    """This machine: ``/proc`` (or ``ps``), ``/etc/passwd``, uname. ``proc`` and ``passwd`` can point elsewhere
    (tests build a process table of their own)."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        proc: Path = Path("/proc"),
        passwd: Path = Path("/etc/passwd"),
        uid: int | None = None,
    ):
        self._environ = os.environ if environ is None else environ
        self._proc = proc
        self._passwd = passwd
        self._uid = uid

    @property
    def uid(self) -> int:
        if self._uid is not None:
            return self._uid
        if not hasattr(os, "getuid"):
            raise MachineError("tfjanitor unlock --mine needs a POSIX system (Linux, macOS): there is no uid here")
        return os.getuid()

    def who(self) -> str:
        if sys.platform == "win32":  # pragma: no cover (Who is DOMAIN\user@HOST there, from other calls)
            raise MachineError("tfjanitor unlock --mine does not run on Windows yet")
        try:
            passwd: bytes | None = self._passwd.read_bytes()
        except OSError:
            passwd = None
        try:
            proc_hostname: bytes | None = (self._proc / "sys" / "kernel" / "hostname").read_bytes()
        except OSError:
            proc_hostname = None
        return f"{go_username(self.uid, passwd, self._environ)}@{go_hostname(os.uname().nodename, proc_hostname)}"

    def terraform_processes(self) -> list[Process]:
        if (self._proc / "self" / "stat").exists() or (self._proc / "stat").exists():
            return self._from_proc()
        return self._from_ps()

    def _boot(self) -> float:
        try:
            btime = parse_btime((self._proc / "stat").read_bytes())
        except (OSError, ValueError) as exc:
            raise MachineError(f"cannot read the boot time from {self._proc / 'stat'}: {exc}") from exc
        if self._proc != Path("/proc") or not hasattr(time, "CLOCK_BOOTTIME"):
            return float(btime)
        return boot_epoch(btime, time.clock_gettime(time.CLOCK_REALTIME), time.clock_gettime(time.CLOCK_BOOTTIME))

    def _from_proc(self) -> list[Process]:
        uid = self.uid
        boot = self._boot()
        ticks = os.sysconf("SC_CLK_TCK")
        found: list[Process] = []
        try:
            entries = [e for e in os.scandir(self._proc) if e.name.isdigit()]
        except OSError as exc:
            raise MachineError(f"cannot list {self._proc}: {exc.strerror or exc}") from exc
        for entry in entries:
            where = Path(entry.path)
            # One of this user's processes that cannot be read could be a terraform run: never a guess.
            try:
                uids = parse_status_uids((where / "status").read_bytes())
            except (FileNotFoundError, ProcessLookupError):
                continue  # it ended meanwhile: not alive
            except (OSError, ValueError) as exc:
                if _owner(entry) in (uid, None):
                    raise MachineError(f"cannot read process {entry.name} in {self._proc}: {exc}") from exc
                continue  # another user's (hidepid): it writes another Who
            if uid not in uids[:2]:
                continue
            try:
                comm, state, start = parse_proc_stat((where / "stat").read_bytes())
                argv0 = (where / "cmdline").read_bytes().split(b"\0", 1)[0]
            except (FileNotFoundError, ProcessLookupError):
                continue
            except (OSError, ValueError) as exc:
                raise MachineError(f"cannot read process {entry.name} in {self._proc}: {exc}") from exc
            if state in ("Z", "X", "x"):
                continue  # exited, not yet reaped (or being reaped): it holds nothing
            try:
                exe = os.readlink(where / "exe")
            except OSError:
                exe = ""  # a kernel thread, or gone: comm and argv[0] still say what it is
            name = next((n for n in (comm, go_text(argv0), exe) if n and is_terraform_name(n)), None)
            if name is None:
                continue
            started = datetime.fromtimestamp(boot + start / ticks, timezone.utc)
            found.append(Process(int(entry.name), os.path.basename(name), started))
        return sorted(found, key=lambda p: (p.started, p.pid))

    def _from_ps(self) -> list[Process]:
        """Two listings: start times and names first, then each process's ``argv[0]``. A process only in the second
        started after the first, so after the locks were read: it holds none of them."""
        table = _ps(["pid=", "uid=", "state=", "lstart=", "comm="])
        argv0 = parse_ps_args(_ps(["pid=", "args="]))
        return sorted(parse_ps(table, self.uid, argv0), key=lambda p: (p.started, p.pid))


def _ps(columns: list[str]) -> str:
    argv = ["ps", "-A"] + [arg for column in columns for arg in ("-o", column)]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=PS_TIMEOUT,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
            stdin=subprocess.DEVNULL,
            errors="replace",
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MachineError(f"no /proc, and ps could not list the processes: {exc}") from exc
    if proc.returncode != 0:
        raise MachineError(f"no /proc, and ps failed ({proc.returncode}): {proc.stderr.strip()[:200]}")
    return proc.stdout


def _owner(entry: os.DirEntry[str]) -> int | None:
    try:
        return entry.stat().st_uid
    except OSError:
        return None


def _read_limited(path: Path) -> str:
    with path.open("rb") as handle:
        data = handle.read(FILE_LIMIT + 1)
    if len(data) > FILE_LIMIT:
        raise WorkdirError(f"{path}: larger than {FILE_LIMIT} bytes: not what terraform init writes")
    return data.decode("utf-8", errors="replace")


def read_working_dir(directory: Path, environ: Mapping[str, str]) -> WorkingDir:
    """The backend and workspace ``terraform init`` recorded in ``directory`` (``TF_DATA_DIR`` and ``TF_WORKSPACE``
    honoured as Terraform does). :class:`WorkdirError`, in one line, for anything that is not there or unreadable."""
    if not directory.is_dir():
        raise WorkdirError(f"{directory}: not a directory")
    data_dir = directory / (environ.get(DATA_DIR_ENV) or DATA_DIR)
    backend_file = data_dir / BACKEND_FILE
    if not data_dir.is_dir():
        raise WorkdirError(
            f"{directory}: no {data_dir.name} directory: run terraform init there first, or pass --chdir "
            "the directory terraform ran in"
        )
    try:
        backend_state = _read_limited(backend_file)
    except FileNotFoundError:
        raise WorkdirError(f"{backend_file}: not there: the working directory has no initialised backend (a local state?)") from None
    except OSError as exc:
        raise WorkdirError(f"cannot read {backend_file}: {exc.strerror or exc}") from None
    try:
        environment: str | None = _read_limited(data_dir / ENVIRONMENT_FILE)
    except FileNotFoundError:
        environment = None
    except OSError as exc:
        raise WorkdirError(f"cannot read {data_dir / ENVIRONMENT_FILE}: {exc.strerror or exc}") from None
    return working_dir(backend_state, environment, environ.get(WORKSPACE_ENV), str(backend_file))
