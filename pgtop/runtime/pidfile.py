"""postmaster.pid, postmaster.opts and the socket lock files, as PostgreSQL writes them (spec §9).

The lock file is created with O_CREAT|O_EXCL, so two postmasters can never both own a data
directory. An existing file is handled as CreateLockFile does (miscinit.c):

- its PID is alive and is neither us nor our parent: FATAL 'lock file "%s" already exists'.
  PostgreSQL cannot tell a postmaster from an unrelated process that reused the PID, and
  neither do we: any live process counts (kill(pid, 0) succeeds). EPERM means the process
  belongs to another user, so it cannot be a postmaster of this data directory: stale.
- its PID is dead: the file is stale (a killed postmaster). If the shared memory segment
  it names is still in use, orphaned children may live on: FATAL; otherwise remove, retry.
- it is empty or its first line is not a PID: FATAL too ('lock file "%s" is empty' /
  'bogus data in lock file "%s": "%s"'). PostgreSQL refuses rather than guess, because an
  empty file is also what a postmaster that is starting right now looks like.

Later lines are rewritten in place as AddToDataDirLockFile does: one pwrite of the whole
file, so a reader (pg_ctl, `pgtop ctl`) sees the old or the new content, never half of it.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pgtop.core.vocabulary import PidStatus

PID_FILE_NAME = "postmaster.pid"
OPTS_FILE_NAME = "postmaster.opts"

LINE_PID = 1
LINE_DATA_DIR = 2
LINE_START_TIME = 3
LINE_PORT = 4
LINE_SOCKET_DIR = 5
LINE_LISTEN_ADDR = 6
LINE_SHMEM_KEY = 7
LINE_PM_STATUS = 8

_LOCK_FILE_MODE = 0o600  # pg_file_create_mode
_CREATE_TRIES = 100


class LockFileError(Exception):
    """FATAL: the lock file cannot be taken. `message` and `hint` are PostgreSQL's texts."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True, slots=True)
class PidFileContents:
    """What postmaster.pid says; fields of lines not written yet are None."""

    pid: int
    datadir: str | None = None
    start_time: int | None = None
    port: int | None = None
    socket_dir: str | None = None
    listen_address: str | None = None
    shmem_key: int | None = None
    shmem_id: int | None = None
    status: PidStatus | None = None

    @property
    def standalone(self) -> bool:
        """A standalone backend writes its PID negated."""
        return self.pid < 0


class PidFile:
    """The data directory's lock file, owned by this postmaster from create() to remove()."""

    def __init__(self, path: Path, pid: int) -> None:
        self.path = path
        self.pid = pid

    @classmethod
    def create(
        cls,
        datadir: str | Path,
        pid: int,
        port: int,
        start_time: int,
        socket_dir: str = "",
        *,
        shmem_in_use: Callable[[int, int], bool] | None = None,
    ) -> PidFile:
        """CreateDataDirLockFile(): lines 1-5; raises LockFileError.

        `shmem_in_use(key, id)` answers PGSharedMemoryIsInUse for a stale file's line 7.
        """
        datadir = os.path.abspath(datadir)
        path = Path(datadir) / PID_FILE_NAME
        content = _lock_lines(pid, datadir, start_time, port, socket_dir)

        def shmem_check(old: str) -> None:
            _check_stale_shmem(old, datadir, shmem_in_use)

        def hint(other: int, who: str) -> str:
            return f'Is another {who} (PID {other}) running in data directory "{datadir}"?'

        _create_lock_file(path, PID_FILE_NAME, content, hint=hint, stale_check=shmem_check)
        return cls(path, pid)

    def update_line(self, line: int, text: str) -> str | None:
        """AddToDataDirLockFile(): replace line `line` (1-based), adding empty lines before it
        if the file is shorter. The file is rewritten with a single write.

        Returns None, or the LOG text of a failure (PostgreSQL logs it and carries on; the
        minute recheck will notice a missing file).
        """
        try:
            old = self.path.read_text(errors="replace")
        except OSError as exc:
            return f'could not open file "{PID_FILE_NAME}": {exc.strerror}'
        lines = old.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        while len(lines) < line:
            lines.append("")
        lines[line - 1] = text
        return _rewrite_in_place(self.path, "\n".join(lines) + "\n")

    def set_status(self, status: PidStatus) -> str | None:
        """Line 8: starting, stopping, ready, standby (always 8 characters)."""
        return self.update_line(LINE_PM_STATUS, status.value)

    def set_shmem(self, key: int, shmem_id: int) -> str | None:
        """Line 7, as '%9lu %9lu'."""
        return self.update_line(LINE_SHMEM_KEY, f"{key:9d} {shmem_id:9d}")

    def set_socket_dir(self, socket_dir: str) -> str | None:
        return self.update_line(LINE_SOCKET_DIR, socket_dir)

    def set_listen_address(self, address: str) -> str | None:
        return self.update_line(LINE_LISTEN_ADDR, address)

    def remove(self) -> None:
        """Unlink the file at exit (only if it is still ours)."""
        contents = _read_contents(self.path)
        if contents is not None and contents.pid != self.pid:
            return
        _unlink_quietly(self.path)


def postmaster_alive(pid: int) -> bool:
    """pg_ctl's check on the PID a lock file names: kill(pid, 0). A process we may not
    signal (another user's) is alive all the same."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read(datadir: str | Path) -> PidFileContents | None:
    """The lock file as `pgtop ctl` sees it; None if there is none (or it is not readable yet)."""
    return _read_contents(Path(datadir) / PID_FILE_NAME)


def recheck(datadir: str | Path, pid: int) -> str | None:
    """RecheckDataDirLockFile(): None if the file is still ours, else the LOG text.

    Open or read failures other than a missing file are only worth a warning in PostgreSQL
    ("...; continuing anyway"), so they count as fine here.
    """
    path = Path(datadir) / PID_FILE_NAME
    try:
        first = path.read_text(errors="replace").split("\n", 1)[0]
    except (FileNotFoundError, NotADirectoryError) as exc:
        return f'could not open file "{PID_FILE_NAME}": {os.strerror(exc.errno)}'
    except OSError:
        return None
    file_pid = _atol(first)
    if file_pid == pid:
        return None
    return f'lock file "{PID_FILE_NAME}" contains wrong PID: {file_pid} instead of {pid}'


def write_opts(datadir: str | Path, argv: Sequence[str]) -> None:
    """CreateOptsFile(): the full command line, the program unquoted, each argument in quotes."""
    program = argv[0] if argv else "pgtop"
    if os.sep not in program:
        program = shutil.which(program) or program
    program = os.path.abspath(program)
    line = program + "".join(f' "{arg}"' for arg in argv[1:]) + "\n"
    (Path(datadir) / OPTS_FILE_NAME).write_text(line)


# -- socket lock files --------------------------------------------------------------------


def socket_lock_path(socket_dir: str | Path, port: int) -> Path:
    return Path(socket_dir) / f".s.PGSQL.{port}.lock"


def create_socket_lock(
    socket_dir: str | Path, port: int, pid: int, datadir: str | Path, start_time: int
) -> Path:
    """CreateSocketLockFile(): `.s.PGSQL.<port>.lock` with lines 1-5; raises LockFileError.

    Once the lock is ours, a leftover socket file is stale: remove it (Lock_AF_UNIX), so
    bind() does not fail.
    """
    socket_path = Path(socket_dir) / f".s.PGSQL.{port}"
    path = socket_lock_path(socket_dir, port)
    content = _lock_lines(pid, os.path.abspath(datadir), start_time, port, str(socket_dir))
    def hint(other: int, who: str) -> str:
        return f'Is another {who} (PID {other}) using socket file "{socket_path}"?'

    _create_lock_file(path, str(path), content, hint=hint)
    _unlink_quietly(socket_path)
    return path


def remove_socket_lock(path: str | Path) -> None:
    _unlink_quietly(Path(path))


# -- the shared machinery -----------------------------------------------------------------


def _lock_lines(pid: int, datadir: str, start_time: int, port: int, socket_dir: str) -> str:
    return f"{pid}\n{datadir}\n{start_time}\n{port}\n{socket_dir}\n"


def _create_lock_file(
    path: Path,
    shown_name: str,
    content: str,
    *,
    hint: Callable[[int, str], str],
    stale_check: Callable[[str], None] | None = None,
) -> None:
    """CreateLockFile(): create exclusively, or judge the existing file and retry."""
    for _ in range(_CREATE_TRIES):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, _LOCK_FILE_MODE)
        except FileExistsError:
            pass
        except OSError as exc:
            raise LockFileError(f'could not create lock file "{shown_name}": {exc.strerror}') from None
        else:
            _write_all(fd, content, path)
            return
        try:
            old = path.read_text(errors="replace")
        except FileNotFoundError:
            continue  # its owner removed it between our two calls: try again
        except OSError as exc:
            raise LockFileError(f'could not open lock file "{shown_name}": {exc.strerror}') from None
        _judge_existing(old, shown_name, hint)
        if stale_check is not None:
            stale_check(old)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LockFileError(
                f'could not remove old lock file "{shown_name}": {exc.strerror}',
                "The file seems accidentally left over, but it could not be removed. "
                "Please remove the file by hand and try again.",
            ) from None
    raise LockFileError(f'could not create lock file "{shown_name}": {os.strerror(errno.EEXIST)}')


def _judge_existing(old: str, shown_name: str, hint: Callable[[int, str], str]) -> None:
    """Raise unless the existing lock file is stale."""
    if old == "":
        raise LockFileError(
            f'lock file "{shown_name}" is empty',
            "Either another server is starting, or the lock file is the remnant of a "
            "previous server startup crash.",
        )
    encoded = _atol(old)
    other = abs(encoded)
    if other <= 0:
        first_line = old.split("\n", 1)[0]  # PostgreSQL shows the whole file; one line is enough
        raise LockFileError(f'bogus data in lock file "{shown_name}": "{first_line}"')
    # Our own PID or our parent's can be in a stale file after a reboot in a container
    # (PID numbers repeat); PostgreSQL ignores them for that reason.
    if other in (os.getpid(), os.getppid()):
        return
    if _process_alive(other):
        who = "postgres" if encoded < 0 else "postmaster"
        raise LockFileError(f'lock file "{shown_name}" already exists', hint(other, who))


def _check_stale_shmem(old: str, datadir: str, shmem_in_use: Callable[[int, int], bool] | None) -> None:
    if shmem_in_use is None:
        return
    lines = old.split("\n")
    if len(lines) < LINE_SHMEM_KEY:
        return  # written in steps: no segment yet
    parts = lines[LINE_SHMEM_KEY - 1].split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return
    key, shmem_id = int(parts[0]), int(parts[1])
    if shmem_in_use(key, shmem_id):
        raise LockFileError(
            f"pre-existing shared memory block (key {key}, ID {shmem_id}) is still in use",
            f'Terminate any old server processes associated with data directory "{datadir}".',
        )


def _process_alive(pid: int) -> bool:
    """kill(pid, 0): ESRCH means gone, EPERM means another user's process (not a rival)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def _atol(text: str) -> int:
    """C's atol(): optional blanks and sign, then digits; 0 when there are none."""
    text = text.lstrip(" \t\n\r\f\v")
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    digits = ""
    for ch in text:
        if not ch.isdigit() or not ch.isascii():
            break
        digits += ch
    return sign * int(digits) if digits else 0


def _write_all(fd: int, content: str, path: Path) -> None:
    try:
        os.write(fd, content.encode())
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        _unlink_quietly(path)
        raise LockFileError(f'could not write lock file "{path.name}": {exc.strerror}') from None
    os.close(fd)


def _rewrite_in_place(path: Path, content: str) -> str | None:
    """One pwrite of the whole file; truncate only if it got shorter (it rarely does,
    which is why the status line is padded to 8 characters)."""
    data = content.encode()
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as exc:
        return f'could not open file "{PID_FILE_NAME}": {exc.strerror}'
    try:
        os.pwrite(fd, data, 0)
        if os.fstat(fd).st_size > len(data):
            os.ftruncate(fd, len(data))
        os.fsync(fd)
    except OSError as exc:
        return f'could not write to file "{PID_FILE_NAME}": {exc.strerror}'
    finally:
        os.close(fd)
    return None


def _read_contents(path: Path) -> PidFileContents | None:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    lines = text.split("\n")[:-1]  # only complete lines
    pid = _atol(lines[0]) if lines else 0
    if pid == 0:
        return None

    def line(n: int) -> str | None:
        return lines[n - 1] if len(lines) >= n else None

    def number(n: int) -> int | None:
        value = line(n)
        return _atol(value) if value not in (None, "") else None

    key = id_ = None
    shmem = (line(LINE_SHMEM_KEY) or "").split()
    if len(shmem) == 2 and all(p.isdigit() for p in shmem):
        key, id_ = int(shmem[0]), int(shmem[1])
    status_text = line(LINE_PM_STATUS)
    status = next((s for s in PidStatus if s.value == status_text), None)
    return PidFileContents(
        pid=pid,
        datadir=line(LINE_DATA_DIR),
        start_time=number(LINE_START_TIME),
        port=number(LINE_PORT),
        socket_dir=line(LINE_SOCKET_DIR),
        listen_address=line(LINE_LISTEN_ADDR),
        shmem_key=key,
        shmem_id=id_,
        status=status,
    )


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
