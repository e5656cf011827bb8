"""The data directory: `pgtop init`, where everything lives, and the start-up checks on it.

The checks and their texts are PostgreSQL's (SelectConfigFiles, checkDataDir,
LocalProcessControlFile), with pgtop's file names: pgtop.yaml stands for postgresql.conf and
"pgtop init" for initdb. Exit codes follow the postmaster: 2 when the directory, the
configuration file or the control file cannot be found, 1 for the other FATAL errors.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
from dataclasses import dataclass, fields
from pathlib import Path

from pgtop.common.configfile import CONFIG_FILE_NAME, render_default_config
from pgtop.common.hba import DEFAULT_HBA, HBA_FILE_NAME
from pgtop.core.config import Config

from .pidfile import OPTS_FILE_NAME, PID_FILE_NAME

PG_VERSION = "14"
CONTROL_FILE = "global/pg_control"  # where pgtop.storage keeps the control file, as PostgreSQL
_PERMISSION_DETAIL = "Permissions should be u=rwx (0700) or u=rwx,g=rx (0750)."
_GROUP_WRITE_OR_OTHER = stat.S_IWGRP | stat.S_IRWXO  # PG_MODE_MASK_GROUP


class DataDirError(Exception):
    """A data directory problem, with PostgreSQL's message, DETAIL, HINT and exit code."""

    def __init__(self, message: str, *, detail: str | None = None, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.hint = hint
        self.exit_code = exit_code


@dataclass(frozen=True)
class InitSummary:
    """What `pgtop init` made, for the CLI to print."""

    datadir: Path
    port: int
    standby: bool
    storage_created: bool  # False while pgtop.storage is not there yet


class DataDir:
    """Paths of everything in a data directory (nothing is touched by building one)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(os.path.abspath(path))  # absolute, symlinks kept, as make_absolute_path

    config_file = property(lambda self: self.path / CONFIG_FILE_NAME)
    hba_file = property(lambda self: self.path / HBA_FILE_NAME)
    pid_file = property(lambda self: self.path / PID_FILE_NAME)
    opts_file = property(lambda self: self.path / OPTS_FILE_NAME)
    version_file = property(lambda self: self.path / "PG_VERSION")
    control_file = property(lambda self: self.path / CONTROL_FILE)
    wal_dir = property(lambda self: self.path / "pg_wal")
    log_dir = property(lambda self: self.path / Config().log_directory)
    promote_file = property(lambda self: self.path / "promote")
    logrotate_file = property(lambda self: self.path / "logrotate")
    standby_signal = property(lambda self: self.path / "standby.signal")
    backup_label = property(lambda self: self.path / "backup_label")

    def exists_and_valid(self) -> None:
        """The postmaster's checks before it takes the lock file; raises DataDirError."""
        self.check_directory()
        self.check_control_file()

    def check_directory(self) -> None:
        """SelectConfigFiles and checkDataDir: exists, has its configuration file, is ours
        and is not open to others."""
        try:
            info = os.stat(self.path)
        except OSError as exc:
            raise DataDirError(
                f'could not access directory "{self.path}": {exc.strerror}',
                hint='Run "pgtop init" to initialize a pgtop data directory.' if isinstance(exc, FileNotFoundError) else None,
                exit_code=2,
            ) from None
        try:
            os.stat(self.config_file)
        except OSError as exc:
            raise DataDirError(
                f'could not access the server configuration file "{self.config_file}": {exc.strerror}',
                exit_code=2,
            ) from None
        if not stat.S_ISDIR(info.st_mode):
            raise DataDirError(f'specified data directory "{self.path}" is not a directory')
        if info.st_uid != os.geteuid():
            raise DataDirError(
                f'data directory "{self.path}" has wrong ownership',
                hint="The server must be started by the user that owns the data directory.",
            )
        if info.st_mode & _GROUP_WRITE_OR_OTHER:
            raise DataDirError(f'data directory "{self.path}" has invalid permissions', detail=_PERMISSION_DETAIL)

    def check_control_file(self) -> None:
        """LocalProcessControlFile: without the control file there is no database system."""
        try:
            with open(self.control_file, "rb"):
                pass
        except OSError as exc:
            raise DataDirError(
                "could not find the database system",
                detail=f'Expected to find it in the directory "{self.path}", but could not open file "{self.control_file}": {exc.strerror}.',
                exit_code=2,
            ) from None


def init_datadir(path: str | Path, port: int = 5432, *, standby_of: str | None = None) -> InitSummary:
    """`pgtop init -D DIR [--port N]`: a new data directory; raises DataDirError.

    `standby_of` is the primary's connection string: the new cluster's storage is then a
    base backup of that running primary (pg_basebackup), and it gets the string as
    primary_conninfo and a standby.signal file. Nothing is printed; on failure nothing
    is left behind (initdb removes what it made, too).
    """
    _check_port(port)
    datadir = DataDir(path)
    made_directory = _prepare_directory(datadir.path)
    try:
        _write_files(datadir, port, standby_of)
        if standby_of is None:
            storage_created = _create_storage(datadir.path)
        else:
            storage_created = _receive_base_backup(datadir.path, standby_of)
    except BaseException:
        _undo(datadir.path, made_directory)
        raise
    return InitSummary(datadir.path, port, standby_of is not None, storage_created)


def _check_port(port: int) -> None:
    meta = {f.name: f.metadata for f in fields(Config)}["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not meta["min"] <= port <= meta["max"]:
        raise DataDirError(f'invalid port number: "{port}" (must be {meta["min"]}..{meta["max"]})')


def _prepare_directory(path: Path) -> bool:
    """Create the directory mode 0700 (parents too), or take over an empty one.
    True if we created it."""
    if path.exists():
        if not path.is_dir():
            raise DataDirError(f'could not create directory "{path}": File exists')
        if any(path.iterdir()):
            raise DataDirError(
                f'directory "{path}" exists but is not empty',
                hint=f'If you want to create a new database system, either remove or empty the directory "{path}" or run pgtop init with an argument other than "{path}".',
            )
        _chmod(path)  # initdb: "fixing permissions on existing directory"
        return False
    try:
        path.mkdir(mode=0o700, parents=True)
    except OSError as exc:
        raise DataDirError(f'could not create directory "{path}": {exc.strerror}') from None
    _chmod(path)  # the umask may have taken bits away; make it exactly 0700
    return True


def _chmod(path: Path) -> None:
    try:
        path.chmod(0o700)
    except OSError as exc:
        raise DataDirError(f'could not change permissions of directory "{path}": {exc.strerror}') from None


def _write_files(datadir: DataDir, port: int, standby_of: str | None) -> None:
    datadir.version_file.write_text(PG_VERSION + "\n")
    datadir.config_file.write_text(render_default_config(port, primary_conninfo=standby_of))
    datadir.hba_file.write_text(DEFAULT_HBA)
    datadir.log_dir.mkdir(mode=0o700)
    if standby_of is not None:
        datadir.standby_signal.write_text("")
    for made in (datadir.version_file, datadir.config_file, datadir.hba_file):
        made.chmod(0o600)


def _create_storage(path: Path) -> bool:
    """The control file, WAL and tables are pgtop.storage's; it may not be installed yet."""
    try:
        from pgtop.storage.initdb import create_cluster_storage  # type: ignore[import-not-found]
    except ModuleNotFoundError as exc:
        if exc.name not in ("pgtop.storage", "pgtop.storage.initdb"):
            raise
        # CALL SITE: pgtop.storage.initdb.create_cluster_storage(datadir) once it exists.
        return False
    create_cluster_storage(path)
    return True


def _receive_base_backup(path: Path, conninfo: str) -> bool:
    """A standby's storage is a copy of its running primary's (pg_basebackup)."""
    from pgtop.runtime.basebackup import BaseBackupError, receive_base_backup

    try:
        receive_base_backup(conninfo, path)
    except BaseBackupError as error:
        raise DataDirError(str(error)) from None
    return True


def _undo(path: Path, made_directory: bool) -> None:
    if made_directory:
        shutil.rmtree(path, ignore_errors=True)
        return
    for entry in path.iterdir():  # it was empty before we started
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def default_datadir() -> Path:
    """The per-user default cluster: $XDG_DATA_HOME/pgtop/default, else
    ~/.local/share/pgtop/default (the XDG spec ignores a relative XDG_DATA_HOME)."""
    base = os.environ.get("XDG_DATA_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "pgtop" / "default"


def find_free_port(start: int = 5432, socket_dir: str | Path | None = None) -> int:
    """The first port from `start` that can be bound on 127.0.0.1 (and ::1 where there is
    IPv6) and whose Unix socket and its lock file do not exist in `socket_dir` (default:
    the first of Config().unix_socket_directories)."""
    if socket_dir is None:
        socket_dir = Config().unix_socket_directories.split(",")[0].strip()
    for port in range(start, 65536):
        taken_socket = any(
            (Path(socket_dir) / name).exists() for name in (f".s.PGSQL.{port}", f".s.PGSQL.{port}.lock")
        )
        if not taken_socket and _bindable(socket.AF_INET, "127.0.0.1", port) and _bindable(socket.AF_INET6, "::1", port):
            return port
    raise DataDirError(f"no free port between {start} and 65535")


def _bindable(family: socket.AddressFamily, address: str, port: int) -> bool:
    try:
        probe = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        return True  # no IPv6 on this machine: nothing to collide with
    with probe:
        # The postmaster sets SO_REUSEADDR, so a port in TIME_WAIT is free for it too.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            return exc.errno == errno.EADDRNOTAVAIL  # ::1 not configured: nothing listens there
    return True
