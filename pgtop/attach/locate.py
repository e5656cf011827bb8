"""Finding a running PostgreSQL server: by data directory, by postmaster PID, or by port.

`-D DIR` reads DIR/postmaster.pid (line 1 the PID, line 4 the port, line 5 the socket
directory, line 8 the status); `--port N` reads the socket lock file `.s.PGSQL.N.lock`
(same first five lines) in the socket directories; `--pid N` asks the process table, and
the postmaster's working directory is its data directory (PostgreSQL chdirs there).
Each failure is one line that says what to do instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil

from pgtop.attach.proctable import process_start_time
from pgtop.attach.titles import TITLE_PREFIX, parse_title, title_text
from pgtop.core.vocabulary import PidStatus

DEFAULT_SOCKET_DIRS = (Path("/tmp"), Path("/var/run/postgresql"))
DEFAULT_PORT = 5432
PID_FILE = "postmaster.pid"


class AttachError(Exception):
    """The server cannot be attached to; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class LockFile:
    """The lines of postmaster.pid or of a socket lock file that were there."""

    pid: int
    data_dir: Path | None = None
    port: int | None = None
    socket_dir: Path | None = None
    status: PidStatus | None = None


@dataclass(frozen=True, slots=True)
class ServerLocation:
    """A running postmaster and what is known about where it lives."""

    pid: int
    started_at: float  # the kernel's start time of the postmaster
    owner: str
    data_dir: Path | None
    port: int
    socket_dir: Path | None
    major_version: int | None


def parse_lock_file(text: str) -> LockFile | None:
    """Lines 1, 2, 4, 5 and 8 (spec §9); None if line 1 is not a PID yet."""
    lines = text.split("\n")
    first = lines[0].strip() if lines else ""
    if not first.lstrip("-").isdigit() or int(first) <= 0:
        return None

    def line(number: int) -> str | None:
        return lines[number - 1] if len(lines) > number - 1 and lines[number - 1] != "" else None

    port = line(4)
    status = next((s for s in PidStatus if s.value == line(8)), None)
    return LockFile(
        pid=int(first),
        data_dir=Path(line(2)) if line(2) else None,
        port=int(port) if port and port.strip().isdigit() else None,
        socket_dir=Path(line(5)) if line(5) else None,
        status=status,
    )


def read_lock_file(path: Path) -> LockFile | None:
    """The lock file, None if it is not there; AttachError if it cannot be read."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return None
    except PermissionError:
        raise AttachError(f"cannot read {path}: permission denied (run pgtop as the server's owner, or use --pid)") from None
    except OSError as error:
        raise AttachError(f"cannot read {path}: {error.strerror}") from None
    return parse_lock_file(text)


def read_pid_status(data_dir: Path | None) -> PidStatus | None:
    """Line 8 of postmaster.pid now, quietly None when it cannot be read."""
    if data_dir is None:
        return None
    try:
        found = read_lock_file(data_dir / PID_FILE)
    except AttachError:
        return None
    return found.status if found is not None else None


def locate(*, data_dir: Path | None = None, pid: int | None = None, port: int | None = None, socket_dirs: tuple[Path, ...] = DEFAULT_SOCKET_DIRS) -> ServerLocation:
    """The running postmaster named by exactly one of data_dir, pid, port."""
    if data_dir is not None:
        lock = read_lock_file(data_dir / PID_FILE)
        if lock is None:
            if not data_dir.is_dir():
                raise AttachError(f"{data_dir} is not a directory")
            raise AttachError(f"no server running in {data_dir} (no postmaster.pid)")
        return _located(lock.pid, lock, f"{data_dir / PID_FILE}")
    if port is not None:
        for directory in socket_dirs:
            lock = read_lock_file(directory / f".s.PGSQL.{port}.lock")
            if lock is not None:
                return _located(lock.pid, lock, str(directory / f".s.PGSQL.{port}.lock"))
        places = ", ".join(str(d) for d in socket_dirs)
        raise AttachError(f"no server on port {port}: no .s.PGSQL.{port}.lock in {places} (use --host-dir DIR)")
    if pid is not None:
        return _located(pid, None, None)
    raise AttachError("say which server: -D DIR, --pid PID or --port N")


def _located(pid: int, lock: LockFile | None, source: str | None) -> ServerLocation:
    process = _postmaster_process(pid, source)
    try:
        with process.oneshot():
            owner, cmdline = process.username(), process.cmdline()
        started_at = process_start_time(pid)
    except (psutil.NoSuchProcess, ProcessLookupError):
        raise AttachError(f"the postmaster (PID {pid}) has just exited") from None
    data_dir = lock.data_dir if lock is not None and lock.data_dir else _data_dir_of(process, cmdline)
    if lock is None and data_dir is not None:
        try:
            lock = read_lock_file(data_dir / PID_FILE)
        except AttachError:
            lock = None  # a stranger's server: what the process table shows is enough
    port = lock.port if lock is not None else None
    if port is None:
        given = _option(cmdline, "-p", "port") or ""
        port = int(given) if given.isdigit() else DEFAULT_PORT
    return ServerLocation(
        pid=pid,
        started_at=started_at,
        owner=owner,
        data_dir=data_dir,
        port=port,
        socket_dir=lock.socket_dir if lock is not None else None,
        major_version=_major_version(data_dir),
    )


def _postmaster_process(pid: int, source: str | None) -> psutil.Process:
    where = f" (named in {source})" if source else ""
    try:
        process = psutil.Process(pid)
        title = title_text(process.cmdline())
        parent = process.parent()
    except psutil.NoSuchProcess:
        stale = " is stale" if source else ""
        raise AttachError(f"no process with PID {pid}{where}{stale}: is the server running?") from None
    except psutil.AccessDenied:
        raise AttachError(f"cannot inspect process {pid}: permission denied") from None
    if title.startswith(TITLE_PREFIX):
        label = parse_title(title).label
        parent_pid = parent.pid if parent is not None else "?"
        raise AttachError(f"PID {pid} is not a postmaster: it is a {label} (its postmaster is PID {parent_pid})")
    program = os.path.basename(title.split(" ")[0])
    if "postgres" not in program and "postmaster" not in program and process.name() != "postgres":
        raise AttachError(f"PID {pid}{where} is not a PostgreSQL server: {title[:60]}")
    return process


def _data_dir_of(process: psutil.Process, cmdline: list[str]) -> Path | None:
    """The postmaster works in its data directory; `-D DIR` says it too."""
    try:
        return Path(process.cwd())
    except (psutil.AccessDenied, psutil.NoSuchProcess, FileNotFoundError):
        pass
    value = _option(cmdline, "-D", "data_directory")
    return Path(value) if value and os.path.isabs(value) else None


def _option(cmdline: list[str], flag: str, setting: str) -> str | None:
    """A command-line option: `-p 5433`, `-p5433` or `-c port=5433`."""
    for index, arg in enumerate(cmdline):
        if arg == flag and index + 1 < len(cmdline):
            return cmdline[index + 1]
        if arg.startswith(flag) and len(arg) > len(flag):
            return arg[len(flag) :]
        if arg.startswith(f"{setting}=") and index > 0 and cmdline[index - 1] == "-c":
            return arg.split("=", 1)[1]
        if arg.startswith(f"--{setting}="):
            return arg.split("=", 1)[1]
    return None


def _major_version(data_dir: Path | None) -> int | None:
    if data_dir is None:
        return None
    try:
        text = (data_dir / "PG_VERSION").read_text().strip()
    except OSError:
        return None
    return int(text.split(".")[0]) if text.split(".")[0].isdigit() else None
